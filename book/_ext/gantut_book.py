"""Sphinx extension for the gantut book: the parts of the site generated from the notebooks.

- ``{gantut-corrections}``, a directive that lists every correction of the source found in
  the notebooks (``<a id="correction-SLUG"></a>`` followed by a "What the source says / what
  is right" box) and links each one to the cell that demonstrates it. The "Corrections to
  the source" page is this directive, so the list is rebuilt from the notebooks at every
  build and cannot go stale. A box's ``{glue:text}`` roles cite numbers its notebook
  recorded; on this page they are pointed at that notebook (myst-nb's ``path::key``).
- ``{gantut-chapters}``, the landing page's table of chapters with the run times their
  headers state (one header format, :data:`HEADER`).
- Numbers in prose: every ``gantut.report.record`` output of an executed notebook becomes a
  myst-nb glue entry of the same name, so that markdown can cite ``{glue:text}`name:.1f```;
  the recorded lines themselves are left off the page (the prose shows the numbers), and a
  code cell that only records is hidden. A role whose name was not recorded is a warning.
- The raw ``<a id>`` anchors of the notebooks (the corrections') as link targets, so that
  notebooks can link to each other's corrections and the links are checked.
- A "Run it yourself" box at the top of every notebook page: how to download the notebook
  and open it in JupyterLab, and which profile and seed produced the outputs shown.
- The CJK font the site serves itself (Noto Sans SC, installed by ``install_assets.sh``),
  cut at the end of the build to the characters the built pages use.
- Checks at the start of the build: every chapter in ``_toc.yml`` has its notebook (a
  missing one is an error that names it; ``GANTUT_BOOK_ALLOW_MISSING=1`` turns that into a
  warning while chapters are being written), and the JavaScript and the font the site serves
  itself (``install_assets.sh``) are in place.
"""

from __future__ import annotations

import ast
import json
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

ANCHOR = re.compile(r'<a id="(correction-[A-Za-z0-9_-]+)"></a>')
FIELD = re.compile(r"\*\*(Source|Right|Evidence|正确说法)[:：]\*\*")  # 正确说法: the Chinese "Right"
SECTION = re.compile(r"\(§\s*([0-9][0-9.]*)([^)]*)\)")  # (§2.2), (§5, challenge 1), (§6 Q3)
FONT = "vendor/noto-sans-sc/noto-sans-sc-400.woff"  # under _static; gantut.css names it
ASSETS = ("vendor/mathjax/tex-chtml.js", "vendor/require.js", "vendor/html-manager/embed-amd.js", FONT)


@dataclass
class Correction:
    """One "What the source says / what is right" box of a notebook."""

    slug: str          # the anchor id, "correction-..."
    section: str       # the source's section it corrects, "2.2"
    where: str         # as the box says it, "§5, challenge 1"
    source: str        # markdown: what the source says
    right: str         # markdown: what is right
    evidence: str      # markdown: which cell shows it
    chinese: str = ""  # markdown: the "正确说法：" line, what is right in Chinese (optional)
    docname: str = ""  # the notebook page, "notebooks/02_core_concepts"
    title: str = ""    # that notebook's title


def parse_corrections(markdown: str) -> list[Correction]:
    """Every correction box in a piece of markdown (one notebook cell, or a whole page).

    Raises ``ValueError`` naming the slug when a box lacks its section or one of the
    Source / Right / Evidence fields, so that a malformed box fails the build.
    """
    found = []
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        m = ANCHOR.search(line)
        if not m:
            continue
        box = []
        for nxt in lines[i + 1:]:
            if not nxt.lstrip().startswith(">"):
                if box or nxt.strip():
                    break
                continue  # blank lines between the anchor and the box
            box.append(re.sub(r"^\s*> ?", "", nxt))
        text = "\n".join(box)
        section = SECTION.search(text.split("\n", 1)[0] if text else "")
        parts = FIELD.split(text)  # [head, name, body, name, body, ...]
        fields = {parts[k]: parts[k + 1].strip() for k in range(1, len(parts) - 1, 2)}
        missing = [f for f in ("Source", "Right", "Evidence") if not fields.get(f)]
        if not box or "What the source says / what is right" not in text:
            raise ValueError(f"{m.group(1)}: the anchor is not followed by a "
                             "'> **What the source says / what is right** (§x.y)' box")
        if section is None:
            raise ValueError(f"{m.group(1)}: the box's first line lacks the section, e.g. (§2.2)")
        if missing:
            raise ValueError(f"{m.group(1)}: the box lacks **{'**, **'.join(missing)}:**")
        if "正确说法" in fields and not fields["正确说法"]:
            raise ValueError(f"{m.group(1)}: the box's **正确说法：** line is empty")
        number = section.group(1).rstrip(".")
        found.append(Correction(m.group(1), number, f"§{number}{section.group(2).rstrip()}",
                                fields["Source"], fields["Right"], fields["Evidence"],
                                fields.get("正确说法", "")))
    return found


def notebook_corrections(path: Path, docname: str) -> list[Correction]:
    """The corrections in one notebook's markdown cells, in order, tagged with the notebook."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    title, found = docname, []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if title == docname:
            heading = re.search(r"^# (.+)$", src, re.M)
            title = heading.group(1).strip() if heading else title
        try:
            found += parse_corrections(src)
        except ValueError as e:
            raise ExtensionError(f"{path}: {e}") from e
    for c in found:
        c.docname, c.title = docname, title
    return found


def _relink(markdown: str, from_doc: str, to_doc: str) -> str:
    """Rewrite the relative links of markdown taken from ``from_doc`` to work in ``to_doc``.

    A box's "[the experiment](#experiment)" means the notebook's own cell; on the corrections
    page it must say "notebooks/05_1_sample_quality.ipynb#experiment".
    """
    def fix(m):
        url = m.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", url):  # http:, mailto:, ...
            return m.group(0)
        path, _, frag = url.partition("#")
        src = posixpath.basename(from_doc) + ".ipynb" if not path else path
        target = posixpath.normpath(posixpath.join(posixpath.dirname(from_doc), src))
        rel = posixpath.relpath(target, posixpath.dirname(to_doc) or ".")
        return f"]({rel}#{frag})" if frag else f"]({rel})"
    return re.sub(r"\]\(([^)\s]+)\)", fix, markdown)


GLUE_ROLE = re.compile(r"\{glue(:text|:any|:md|:)?\}`([^`]*)`")


def _reglue(markdown: str, from_doc: str, suffix: str = ".ipynb") -> str:
    """Point the glue roles of markdown taken from notebook ``from_doc`` at that notebook.

    ``{glue:text}`fid:.1f``` cites a number the notebook recorded; myst-nb resolves such a
    role only on the page that glued it, so on the corrections page it must say
    ``{glue:text}`/notebooks/05_1_sample_quality.ipynb::fid:.1f``` (a path from the book's
    root). Roles that already name a notebook (``other.ipynb::key``) are made absolute too.
    """
    def fix(m):
        kind, text = m.group(1) or "", m.group(2)
        if kind == ":md":
            raise ValueError(f"{{glue:md}}`{text}` cannot be quoted on another page: "
                             "use {glue:text} in a correction box")
        doc, _, key = text.rpartition("::")
        fmt = None
        if kind == ":text":
            key, sep, fmt = key.partition(":")
            fmt = fmt if sep else "s"  # no format given: myst-nb's default
        doc = (posixpath.normpath(posixpath.join(posixpath.dirname(from_doc), doc)) if doc
               else from_doc + suffix)
        target = f"/{doc.lstrip('/')}::{key}" + (f":{fmt}" if fmt is not None else "")
        return f"{{glue{kind}}}`{target}`"
    return GLUE_ROLE.sub(fix, markdown)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _section_key(c: Correction):
    return [int(x) for x in c.section.split(".") if x]


def toc_chapters(app) -> list[str]:
    """The docnames of the notebook chapters, in the order of ``_toc.yml``."""
    site_map = getattr(app.env, "external_site_map", None) or app.config.external_site_map
    ordered, stack = [], [site_map.root.docname]
    while stack:  # depth-first, in TOC order
        name = stack.pop(0)
        if name in ordered:
            continue
        ordered.append(name)
        doc = site_map[name] if name in site_map else None
        stack = (doc.child_files() if doc else []) + stack
    return [d for d in ordered if d.startswith("notebooks/")]


class CorrectionsDirective(SphinxDirective):
    """``{gantut-corrections}``: every correction of the source made in the notebooks."""

    has_content = False

    def run(self):
        env = self.env
        corrections, pages = [], 0
        for docname in toc_chapters(env.app):
            path = Path(env.doc2path(docname))
            if not path.exists():
                continue
            env.note_dependency(str(path))
            found = notebook_corrections(path, docname)
            corrections += found
            pages += bool(found)
        env.gantut_corrections_docs = getattr(env, "gantut_corrections_docs", set()) | {env.docname}
        slugs = [c.slug for c in corrections]
        dupes = sorted({s for s in slugs if slugs.count(s) > 1})
        if dupes:
            raise ExtensionError(f"correction slugs must be unique across notebooks: {dupes}")
        corrections.sort(key=_section_key)  # stable: notebook order within a section

        out = [nodes.paragraph(text=f"{_count(len(corrections), 'correction')}, demonstrated in "
                                    f"{_count(pages, 'notebook')}, in the order of the source's "
                                    "sections.")]
        for c in corrections:
            box = nodes.container(classes=["gantut-correction"], ids=[f"list-{c.slug}"])
            head = nodes.paragraph(classes=["gantut-correction-head"])
            head += nodes.strong(text=c.where)
            head += nodes.Text("  ·  ")
            uri = env.app.builder.get_relative_uri(env.docname, c.docname) + "#" + c.slug
            head += nodes.reference("", f"{c.title} → the demonstration", refuri=uri,
                                    internal=True, classes=["gantut-correction-link"])
            box += head
            chinese = f"**正确说法：** {c.chinese}\n\n" if c.chinese else ""
            md = _relink(f"**Source:** {c.source}\n\n**Right:** {c.right}\n\n{chinese}"
                         f"**Evidence:** {c.evidence}\n", c.docname, env.docname)
            try:
                md = _reglue(md, c.docname, Path(env.doc2path(c.docname)).suffix)
            except ValueError as e:
                raise ExtensionError(f"{c.docname}, {c.slug}: {e}") from e
            body = nodes.container(classes=["gantut-correction-body"])
            self.state.nested_parse(StringList(md.splitlines(), source=c.docname), 0, body)
            box += body
            out.append(box)
        return out


# The one header line of every notebook (in its first markdown cell), e.g.
#   **Run time on a 2-core CPU:** smoke ≈ 25 s, quick ≈ 2.5 min (GPU: profile `full`).
# tests/test_prose.py checks that each notebook has it in exactly this shape.
DURATION = r"\d+(?:\.\d+)? (?:s|min)"
HEADER = re.compile(rf"^\*\*Run time on a 2-core CPU:\*\* smoke ≈ (?P<smoke>{DURATION}), "
                    rf"quick ≈ (?P<quick>{DURATION}) \(GPU: profile `full`\)\.$", re.M)


def notebook_summary(path: Path) -> dict:
    """Title, stated run times, and how the executed copy was run (papermill's metadata)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = next((c for c in nb["cells"] if c["cell_type"] == "markdown"), {"source": ""})
    src = "".join(first["source"])
    title = re.search(r"^# (.+)$", src, re.M)
    stated = HEADER.search(src)
    pm = nb.get("metadata", {}).get("papermill", {})
    return {"title": title.group(1).strip() if title else path.stem,
            "smoke": stated["smoke"] if stated else None,
            "quick": stated["quick"] if stated else None,
            "profile": pm.get("parameters", {}).get("profile", "?"),
            "duration": pm.get("duration")}


class ChaptersDirective(SphinxDirective):
    """``{gantut-chapters}``: the chapters with their stated and measured run times."""

    has_content = False

    def run(self):
        env = self.env
        rows = ["| chapter | smoke, 2-core CPU | quick, 2-core CPU | this site: profile, time |",
                "|---|---|---|---|"]
        for docname in toc_chapters(env.app):
            path = Path(env.doc2path(docname))
            if not path.exists():
                rows.append(f"| `{docname}` (not written yet) | | | |")
                continue
            env.note_dependency(str(path))
            s = notebook_summary(path)
            took = f"{s['duration']:.0f} s" if s["duration"] else "?"
            rel = posixpath.relpath(docname, posixpath.dirname(env.docname))
            smoke, quick = (f"≈ {s['smoke']}", f"≈ {s['quick']}") if s["smoke"] else ("not stated",) * 2
            rows.append(f"| [{s['title']}]({rel}.ipynb) | {smoke} | {quick} | {s['profile']}, {took} |")
        env.gantut_corrections_docs = getattr(env, "gantut_corrections_docs", set()) | {env.docname}
        table = nodes.container(classes=["gantut-chapters"])
        self.state.nested_parse(StringList(rows, source=env.docname), 0, table)
        return [table]


RECORD_MIME = "application/vnd.gantut.record+json"  # gantut.report.MIME (a test checks they agree)
GLUE_PREFIX = "application/papermill.record/"       # what myst_nb.glue(..., display=False) writes


def _records_only(code: str) -> bool:
    """Whether a code cell does nothing but call ``record(...)`` (in loops or ifs, at most)."""
    def only(stmts):
        return bool(stmts) and all(
            (isinstance(st, ast.Expr) and isinstance(st.value, ast.Call)
             and (getattr(st.value.func, "id", None) == "record"
                  or getattr(st.value.func, "attr", None) == "record"))
            or (isinstance(st, (ast.For, ast.If)) and only(st.body)
                and (not st.orelse or only(st.orelse)))
            for st in stmts)
    try:
        return only(ast.parse(code).body)
    except SyntaxError:  # IPython magics: not a plain record cell
        return False


def records_to_glue(nb: dict) -> int:
    """Turn the ``record`` outputs of an executed notebook into myst-nb glue; return how many.

    Each recorded line becomes the glue entry that ``myst_nb.glue(name, value,
    display=False)`` writes, so markdown's ``{glue:text}`name:.1f``` shows the number and the
    line itself is not on the page. A code cell that only records is hidden (its input; and
    the whole cell when nothing else is left in its output).
    """
    n = 0
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        outputs, kept = [], 0
        for out in cell.get("outputs", []):
            rec = out.get("data", {}).get(RECORD_MIME)
            if rec is None:
                outputs.append(out)
                kept += 1
                continue
            outputs.append({"output_type": "display_data",
                            "data": {GLUE_PREFIX + "text/plain": repr(rec["value"])},
                            "metadata": {"scrapbook": {"name": rec["name"], "mime_prefix": GLUE_PREFIX}}})
            n += 1
        if kept == len(outputs):
            continue
        cell["outputs"] = outputs
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if _records_only(src):
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            tags += ["remove-input"] + ([] if kept else ["remove-output"])
    return n


def _glue_records(app, docname, source):
    """``source-read``: the book reads each executed notebook with its records as glue."""
    if Path(app.env.doc2path(docname)).suffix != ".ipynb":
        return
    nb = json.loads(source[0])
    if records_to_glue(nb):
        source[0] = json.dumps(nb, ensure_ascii=False)


def _always_reread_corrections(app, env, added, changed, removed):
    """Pages generated from the notebooks depend on all of them: read them again at each build."""
    return sorted(getattr(env, "gantut_corrections_docs", set()) & set(env.found_docs))


def _check_sources(app):
    """Fail early, and say what to do, when a chapter's notebook or the site's JavaScript is missing."""
    static = Path(app.srcdir) / "_static"
    absent = [a for a in ASSETS if not (static / a).exists()]
    if absent:
        raise ExtensionError(f"{', '.join(absent)} missing under {static}: run "
                             "book/install_assets.sh (or `make book`), which installs them from npm")
    missing = []
    for docname in toc_chapters(app):
        if not any((Path(app.srcdir) / f"{docname}{suffix}").exists()
                   for suffix in app.config.source_suffix):
            missing.append(docname)
    if not missing:
        return
    msg = (f"gantut: _toc.yml lists {len(missing)} chapter(s) with no executed notebook in "
           f"{app.srcdir}: {', '.join(missing)}. Write notebooks/<name>.ipynb and run `make book` "
           "(which executes it into book/notebooks/), or remove the chapter from _toc.yml.")
    if os.environ.get("GANTUT_BOOK_ALLOW_MISSING", "") not in ("", "0"):
        logger.warning(msg + " (allowed: GANTUT_BOOK_ALLOW_MISSING is set)",
                       type="gantut", subtype="missing_chapter")
    else:
        raise ExtensionError(msg)


HTML_ANCHOR = re.compile(r'<a\s+(?:id|name)="([^"]+)"\s*>')


def _register_html_anchors(app, doctree):
    """Make each ``<a id="...">`` of a notebook's markdown a target Sphinx and MyST know.

    The correction anchors (and any other) are raw HTML, which MyST cannot see: a link
    ``[…](03_math.ipynb#correction-SLUG)`` from another notebook would warn "local id not
    found", and ``[…](#SLUG)`` or ``{ref}`SLUG``` would not resolve. The HTML link itself
    works either way; this makes it checked like any other.
    """
    env, docname = app.env, app.env.docname
    path = Path(env.doc2path(docname))
    if path.suffix != ".ipynb":
        return
    nb = json.loads(path.read_text(encoding="utf-8"))
    where = {c.slug: c.where for c in notebook_corrections(path, docname)}
    slugs = env.metadata[docname].setdefault("myst_slugs", {})
    std = env.get_domain("std")
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for anchor in HTML_ANCHOR.findall("".join(cell["source"])):
            text = f"the correction of {where[anchor]}" if anchor in where else anchor
            slugs.setdefault(anchor, (0, anchor, text))
            std.anonlabels.setdefault(anchor, (docname, anchor))
            std.labels.setdefault(anchor, (docname, anchor, text))


def _run_it_yourself(app, doctree):
    """Put a "Run it yourself" box under the title of each notebook page."""
    docname = app.env.docname
    path = Path(app.env.doc2path(docname))
    if not docname.startswith("notebooks/") or path.suffix != ".ipynb":
        return
    meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("papermill", {})
    params = meta.get("parameters", {})
    name = path.name
    download = posixpath.relpath(f"_sources/{docname}.ipynb", posixpath.dirname(docname))

    box = nodes.admonition(classes=["tip", "gantut-run"])
    box += nodes.title(text="Run it yourself")
    p = nodes.paragraph()
    p += nodes.Text("Download ")
    p += nodes.reference("", name, refuri=download, classes=["gantut-download"])
    p += nodes.Text(" (also under ⤓ at the top of the page) and open it in JupyterLab, or, in a "
                    "clone of gantut, run ")
    p += nodes.literal(text="make lab")
    p += nodes.Text(" and open ")
    p += nodes.literal(text=f"notebooks/{name}")
    p += nodes.Text(". ")
    p += nodes.literal(text="GANTUT_PROFILE=smoke make lab")
    p += nodes.Text(" runs every cell in seconds; the default profile, quick, shows the results "
                    "on this page in minutes on a laptop CPU.")
    box += p
    if params:
        shown = nodes.paragraph()
        took = meta.get("duration")
        took = "" if not took else f", in {took:.0f} s" if took < 120 else f", in {took / 60:.1f} min"
        shown += nodes.Text(f"The outputs below were produced with profile "
                            f"{params.get('profile', '?')}, seed {params.get('seed', '?')}{took}.")
        box += shown
    # papermill's injected copy of the parameters repeats the parameters cell: not for readers
    for cell in list(doctree.findall(nodes.container)):
        if "tag_injected-parameters" in cell.get("classes", []):
            cell.parent.remove(cell)
    # Just before the parameters cell (after the notebook's introduction), else under the title.
    for cell in doctree.findall(nodes.container):
        if "tag_parameters" in cell.get("classes", []):
            cell.parent.insert(cell.parent.index(cell), box)
            return
    section = doctree.next_node(nodes.section)
    if section is not None:
        section.insert(section.index(section.next_node(nodes.title)) + 1, box)


# The font's unicode-range in _static/gantut.css: the CJK blocks, full-width forms included.
CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0002fa1f]")


def site_characters(outdir: Path) -> set[str]:
    """Every character the built site can show: its pages, search index and page sources."""
    chars: set[str] = set()
    for path in outdir.rglob("*"):
        if (path.suffix not in (".html", ".js", ".txt", ".ipynb", ".md") or not path.is_file()
                or "vendor" in path.relative_to(outdir).parts):
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        text += re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
        chars.update(text)
    return chars


def subset_font(src: Path, dst: Path, chars: set[str]) -> set[str]:
    """Write the font ``src`` cut to the CJK ones of ``chars`` to ``dst`` (WOFF); return those it lacks."""
    from fontTools import subset

    options = subset.Options()
    options.flavor = "woff"  # zlib: no brotli needed
    font = subset.load_font(str(src), options)
    have = font.getBestCmap()
    wanted = {ord(c) for c in chars if CJK.match(c)} & set(have)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=wanted)
    subsetter.subset(font)
    tmp = dst.with_name(dst.name + ".tmp")
    subset.save_font(font, str(tmp), options)
    os.replace(tmp, dst)
    return {c for c in chars if CJK.match(c) and ord(c) not in have}


def _cut_font(app, exception):
    """``build-finished``: the site ships the CJK font cut to the characters its pages use.

    The full Noto Sans SC (its simplified-Chinese subset, about 1.5 MB) is copied into the
    site with ``_static``; here it is replaced by the glyphs the site needs (tens of KB per
    hundred characters). A Chinese character the font lacks would be drawn as a box: that is
    a warning naming it.
    """
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    font = outdir / "_static" / FONT
    if not font.exists():
        return
    before = font.stat().st_size
    missing = subset_font(font, font, site_characters(outdir))
    logger.info(f"gantut: CJK font cut to the site's characters: {before // 1024} KB -> "
                f"{font.stat().st_size // 1024} KB")
    if missing:
        logger.warning(f"gantut: the site's font lacks {len(missing)} character(s), drawn as boxes: "
                       f"{''.join(sorted(missing))}", type="gantut", subtype="font")


def _unlist_vendored_js(app, config):
    """Jupyter Book 1 adds every .js under _static to every page; the vendored scripts load
    themselves (MathJax its components, the widget manager on pages with widgets), so drop them."""
    config.html_js_files = [f for f in config.html_js_files
                            if not str(f[0] if isinstance(f, tuple) else f).startswith("vendor/")]


def setup(app):
    app.connect("config-inited", _unlist_vendored_js)
    app.add_directive("gantut-corrections", CorrectionsDirective)
    app.add_directive("gantut-chapters", ChaptersDirective)
    app.connect("builder-inited", _check_sources)
    app.connect("env-get-outdated", _always_reread_corrections)
    app.connect("doctree-read", _register_html_anchors)
    app.connect("doctree-read", _run_it_yourself)
    app.connect("source-read", _glue_records)
    app.connect("build-finished", _cut_font)
    app.add_css_file("gantut.css")
    return {"version": "1.0", "parallel_read_safe": False, "parallel_write_safe": True}
