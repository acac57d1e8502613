"""The notebooks' prose: one header line, no run figure typed in by hand, every citation in the bib.

Three conventions of the notebooks' markdown, each checked per notebook so that its owner can
run just theirs (``pytest tests/test_prose.py -k 04_2``):

- **The header.** The first markdown cell holds exactly one run-time line,
  ``**Run time on a 2-core CPU:** smoke ≈ 25 s, quick ≈ 2.5 min (GPU: profile `full`).``,
  which the landing page's chapter table reads (``book/_ext/gantut_book.py``, ``HEADER``).
- **Numbers come from the run.** A figure a run measures (an FID, a recall, an accuracy, a
  time) reaches markdown through ``gantut.report.record`` and myst-nb glue,
  ``{glue:text}`fid_dcgan:.1f```, never typed in: typed figures go stale the moment the data,
  the profile or the code changes. :func:`run_figures` finds the typed ones; maths
  (log 4 ≈ 1.39, √100 = 10), settings (Adam 2e-4, batch 64), section numbers and years pass,
  and so does a number in a sentence that cites its source with ``{cite}``.
- **Citations.** Every work cited is in ``book/references.bib`` and cited with a ``{cite}``
  role (``{cite:t}`goodfellow2014gan``` reads "Goodfellow et al. [2014]" in the book).
  :func:`citations` finds author-year citations typed as text ("Goodfellow et al. 2014",
  "(Lucic et al., 2018)", "Kingma & Welling 2013") and names-year ones ("DDPM 2020").
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import nbformat
import pytest

from gantut.execute import NOTEBOOKS, ROOT

BOOK = ROOT / "book"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
IDS = [p.stem for p in ALL]
PAGES = sorted(p for p in BOOK.glob("*.md") if p.name != "README.md")


def markdown_cells(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]


@cache
def extension():
    """book/_ext/gantut_book.py, whose header parser the landing page uses."""
    spec = importlib.util.spec_from_file_location("gantut_book", BOOK / "_ext" / "gantut_book.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


# -- the header line -------------------------------------------------------------------------

# The convention, written out here on its own so that a change of the parser cannot silently
# change what the notebooks must say.
HEADER_SHAPE = re.compile(r"\*\*Run time on a 2-core CPU:\*\* smoke ≈ (\d+(?:\.\d+)? (?:s|min)), "
                          r"quick ≈ (\d+(?:\.\d+)? (?:s|min)) \(GPU: profile `full`\)\.")
HEADER_EXAMPLE = "**Run time on a 2-core CPU:** smoke ≈ 25 s, quick ≈ 2.5 min (GPU: profile `full`)."


def header_problems(first_cell: str) -> list[str]:
    """What is wrong with the run-time line of a notebook's first markdown cell (nothing: [])."""
    lines = first_cell.splitlines()
    exact = [i for i, line in enumerate(lines) if HEADER_SHAPE.fullmatch(line)]
    other = [line for line in lines if "run time" in line.lower() and not HEADER_SHAPE.fullmatch(line)]
    problems = [f"a run-time line not in the one format: {line!r}" for line in other]
    if len(exact) != 1:
        problems.append(f"{len(exact)} lines of the form {HEADER_EXAMPLE!r} (one needed)")
    for i in exact:
        if i + 1 < len(lines) and lines[i + 1].strip():
            problems.append(f"the run-time line goes on to the next line: {lines[i + 1]!r}")
    return problems


def test_header_check_and_parser_agree_on_the_example():
    assert header_problems(f"# 4.2 Title\n\nIntro.\n\n{HEADER_EXAMPLE}\n") == []
    m = extension().HEADER.search(f"# T\n\n{HEADER_EXAMPLE}\n")
    assert (m["smoke"], m["quick"]) == ("25 s", "2.5 min")


@pytest.mark.parametrize("cell, problem", [
    ("**Run time on a 2-core CPU** (measured while other jobs shared the machine): smoke ≈ 20 s, "
     "quick ≈ 30 s.", "not in the one format"),
    ("**Run time on a 2-core CPU:** smoke ≈ 15 s, quick ≈ 110 s (measured with other jobs lightly\n"
     "loading the CPU).", "not in the one format"),
    ("**Run time on a 2-core CPU:** smoke ≈ 25 s, quick ≈ 2.5 min.", "not in the one format"),
    (HEADER_EXAMPLE + "\nThe kernel's CPU time was 213 s.", "goes on to the next line"),
    (HEADER_EXAMPLE + "\n\n" + HEADER_EXAMPLE, "2 lines of the form"),
    ("# A notebook without one", "0 lines of the form"),
])
def test_header_check_rejects(cell, problem):
    assert any(problem in p for p in header_problems(cell)), header_problems(cell)


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_header_line(path):
    """One run-time line in the lead's format; the landing page's table reads it."""
    first = markdown_cells(path)[0]
    problems = header_problems(first)
    assert not problems, (f"{path.name}: its first markdown cell needs exactly one line\n  "
                          f"{HEADER_EXAMPLE}\n(with its own values):\n  " + "\n  ".join(problems))
    summary = extension().notebook_summary(path)
    assert (summary["smoke"], summary["quick"]) == HEADER_SHAPE.search(first).groups()


# -- run figures typed in by hand ------------------------------------------------------------

MD_DIRECTIVES = {"dropdown", "note", "tip", "hint", "important", "warning", "caution", "attention",
                 "danger", "error", "seealso", "admonition", "margin", "sidebar", "topic", "glossary"}
CITE_MARK = "\u27e6cite\u27e7"  # stands in for a {cite} role while scanning


BOUNDARY = "\x00"  # where a fenced block opens or closes, in prose()'s lines


def _drop_indented_code(lines: list[str]) -> list[str]:
    """Lines without CommonMark's indented code blocks (4 spaces, after a blank line that
    follows a paragraph, not a list item: the exercises' solutions show code that way)."""
    out, in_code, prev = [], False, ""  # prev: the last non-blank line before a blank one
    for i, line in enumerate(lines):
        if line == BOUNDARY:  # a directive's body starts or ends: a new block
            in_code, prev = False, ""
            continue
        blank_before = i > 0 and (not lines[i - 1].strip() or lines[i - 1] == BOUNDARY)
        if line.strip() and line.startswith("    ") and (in_code or (
                blank_before and not prev.startswith(" ") and not re.match(r"\s*([-*+]|\d+\.)\s", prev))):
            in_code = True
            continue
        if line.strip():
            in_code, prev = False, line
        out.append(line)
    return out


def prose(markdown: str) -> str:
    """The running text of markdown: no code, maths, roles' content, HTML, link targets or header.

    Directives whose body is markdown (``{dropdown}``, ``{note}``, ...) keep their body; code
    blocks and other directives (``{math}``, ``{code-cell}``) are dropped. A ``{cite}`` role
    becomes a marker, so that a number in the sentence of a citation is read as the literature's.
    """
    out, fence = [], None  # fence: (marker, keep the body?)
    for line in markdown.splitlines():
        m = re.match(r"\s*(`{3,}|~{3,}|:{3,})\s*(\{([\w:-]+)\})?", line)
        if fence is None and m:
            keep = bool(m.group(3)) and m.group(3).split(":")[0] in MD_DIRECTIVES
            fence = (m.group(1), keep)
            out.append(BOUNDARY)
            continue
        if fence is not None and line.strip() == fence[0]:
            fence = None
            out.append(BOUNDARY)
            continue
        if fence is not None and (not fence[1] or re.match(r"\s*:[\w-]+:", line)):
            continue  # a code block's line, or a directive's option line
        if HEADER_SHAPE.fullmatch(line.strip()):
            continue
        out.append(line)
    text = "\n".join(_drop_indented_code(out))
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"(?<![\\$])\$[^$\n]+\$", " ", text)
    text = re.sub(r"\{cite(:\w+)?\}`[^`]*`", CITE_MARK, text)
    text = re.sub(r"\{[\w:-]+\}`[^`]*`", " ", text)         # {glue:text}`x:.1f`, {ref}`...`
    text = re.sub(r"`[^`\n]*`", " ", text)                   # inline code
    text = re.sub(r"<!--.*?-->|<[^>\n]+>", " ", text, flags=re.S)
    text = re.sub(r"\]\([^)\s]*\)", "]", text)               # link targets
    return text


NUM = r"(?<![\w.,])\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?(?=[x×]?(?!\w))"
METRIC = (r"\b(?:FID|KID|IS|recall|precision|accuracy|ELBO|NLL|log-likelihood|likelihood|"
          r"loss(?:es)?|entropy|coverage|modes covered|high-quality rate|hq rate|dead units|"
          r"nats|bits/dim|JSD|JS divergence|score)\b|\bD\(x\)|\bD\(G\(z\)\)")
MATHS = re.compile(r"\blog\b|\bln\b|√|\bsqrt\b|\bexp\b|π|∑|∫|\^|\d\s*/\s*\d")
SETTING = re.compile(r"(?:Adam|lr(?:_[dg])?|learning rate|batch(?: size)?|dropout|decay|momentum|"
                     r"β\d?|beta\d?|σ|sigma|std|λ|lambda|n_critic|seed|notebook|§|section|chapter|part|Q|"
                     r"exercise|step|figure|fig\.|table|equation|eq\.|et al\.|&|v|version)\s*[=:]?\s*$",
                     re.I)
COUNT = re.compile(r"\s*(?:[a-z-]+\s+){0,2}?(?:samples?|digits?|vectors?|draws?|images?|steps?|seeds?|points?|classes|"
                   r"dimensions?|dims?|units?|layers?|epochs?|runs?|networks?|models?|parameters|"
                   r"pixels?|features?|neighbou?rs?|balls?|modes?|Gaussians?|bins?|critic steps)\b", re.I)
DURATION = re.compile(rf"({NUM})\s?(?:s|sec|secs|seconds?|min|mins|minutes?|ms|h|hours?)\b")
LIMIT = re.compile(r"(?:≤|<|under|at most|within|less than|up to|no more than)\s*$", re.I)
DATA_COUNT = re.compile(rf"(?:\bthe|\bhave|\bhas|\bhad)\s+({NUM})\s+(?:training|held-out|test|real)\s+"
                        r"(?:digits|images)\b")
LIST_TAIL = re.compile(rf"(?:,?\s*(?:and|or|,)\s*{NUM})*")  # "300, 1,000 and 3,000" steps
AGAINST = re.compile(rf"({NUM})\s+(?:against|vs\.?|versus)\s+({NUM})")
APPROX = re.compile(rf"(?:≈|~|about|around|roughly)\s*({NUM})")
PERCENT = re.compile(rf"({NUM})\s?%")
RUN_WORDS = re.compile(r"accura|recall|precision|samples|digits|read as|recogni[sz]ed|classified|"
                       r"correct|of the data|FID|covered|modes", re.I)


def _sentence(text: str, pos: int) -> str:
    start = max(text.rfind(". ", 0, pos), text.rfind(".\n", 0, pos), text.rfind("\n\n", 0, pos))
    ends = [e for e in (text.find(". ", pos), text.find(".\n", pos), text.find("\n\n", pos)) if e >= 0]
    return text[start + 1:min(ends) if ends else len(text)]


def _is_constant(text: str, start: int, end: int) -> bool:
    """The number at text[start:end] is maths, a setting, a count, a year or a section number."""
    number = text[start:end]
    value = number.replace(",", "")
    if re.fullmatch(r"(?:19|20)\d\d", number) or value in ("0", "1", "0.0", "1.0") and "." not in number:
        return True
    near = text[max(0, start - 14):end + 10]
    if MATHS.search(near) or SETTING.search(text[max(0, start - 20):start]):
        return True
    if re.match(r"\.\d|-[A-Za-z]", text[end:end + 2]):  # 05.1: a notebook; 2-D, 16-dimensional
        return True
    return bool(COUNT.match(text[end + LIST_TAIL.match(text, end).end() - end:]))


def run_figures(markdown: str) -> list[str]:
    """Run figures typed into markdown, each as "kind: …snippet…" (empty: none found)."""
    text = prose(markdown)
    found: dict[int, str] = {}

    def add(pos: int, kind: str):
        if CITE_MARK in _sentence(text, pos):
            return  # a number with its citation: the literature's, not this run's
        snippet = " ".join(text[max(0, pos - 40):pos + 40].split())
        found.setdefault(pos, f"{kind}: …{snippet}…")

    for m in re.finditer(METRIC, text):
        window = re.split(r"[.;:|,\n](?:\s|$)|[|\n]", text[m.end():m.end() + 45])[0]
        n = re.search(NUM, window)
        if n and not _is_constant(text, m.end() + n.start(), m.end() + n.end()):
            add(m.end() + n.start(), f"{m.group(0)} figure")
    for m in AGAINST.finditer(text):
        if not _is_constant(text, m.start(1), m.end(1)):
            add(m.start(), "a comparison of figures")
    for m in APPROX.finditer(text):
        left = text[max(0, m.start() - 14):m.start()]
        if not MATHS.search(left) and not _is_constant(text, m.start(1), m.end(1)):
            add(m.start(1), "an approximate figure")
    for m in PERCENT.finditer(text):
        context = text[max(0, m.start() - 60):m.end() + 40]
        if RUN_WORDS.search(context) and "chance" not in text[max(0, m.start() - 20):m.start()]:
            add(m.start(), "a percentage")
    for m in DURATION.finditer(text):
        if not LIMIT.search(text[max(0, m.start() - 12):m.start()]):
            add(m.start(), "a time")
    for m in DATA_COUNT.finditer(text):
        if int(m.group(1).replace(",", "")) >= 100:
            add(m.start(1), "a data size (it depends on the data source: glue it)")
    return [found[k] for k in sorted(found)]


@pytest.mark.parametrize("markdown", [
    "The recipe trained right ended at FID ≈ 60, recall ≈ 0.65.",
    "its FID is about a sixth of the VAE's (59 against 342)",
    "with precision ≈ 0.90 but recall 0.0 on the held-out set",
    "the classifier reaches accuracy 97.9% on held-out digits",
    "On this machine 1,500 steps took 41 s.",
    "Two halves of real data score ≈ 17 with these sample sizes, uniform noise ≈ 2,300.",
    "about 60% of its samples read as a 2 or an 8",
    "D(G(z)) sinks to about 0.001 and stays there",
    "We have 4,000 training digits offline.",
    "the held-out ELBO is -98.3 nats",
    "The recipe moved FID 3x.",
    "> **Evidence:** the softmax gives 1.0 everywhere and D's mean distance ≈ 0.45 at the start.",
    "```{dropdown} Solution\nThe FID falls to 35 after the change.\n```",
])
def test_run_figures_are_found(markdown):
    assert run_figures(markdown), f"not flagged: {markdown!r}"


@pytest.mark.parametrize("markdown", [
    "the best discriminator's error is at most log 4 ≈ 1.39",
    "D's loss at the equilibrium is 2 log 2 ≈ 1.39, and √100 = 10.",
    "entropy log 10 = 2.30 when every digit is equally common",
    "non-saturating loss, dropout 0.3 in D, batch 64, Adam 2e-4 with β = (0.5, 0.999)",
    "FID (Heusel et al. 2017) compares feature statistics; see notebook 05.1 and §5.2.",
    HEADER_EXAMPLE,
    "The FID in our run was {glue:text}`fid_dcgan:.1f` against {glue:text}`fid_mlp:.1f`.",
    "Its recall is `recall_mlp` and its FID $\\approx 60$ in the formula.",
    "```python\nprint(f'FID ≈ {fid:.1f}')  # 2.5 min\n```",
    "BigGAN reached an Inception score of 166.5 {cite:p}`brock2019biggan`.",
    "KID of real digits is ≈ 0, and D(x) close to 1.",
    "the FID of 500 samples, the recall over the 10 classes",
    "a DCGAN with 2.7× the parameters; 5 critic steps per generator step",
    "Keep each notebook's quick run ≤ 6 min.",
    "share recognised as the digit asked for (chance: 10%)",
    "From about 2016 to 2020 GANs made the sharpest images.",
    "Measure the ELBO's gap after 300, 1,000 and 3,000 training steps.",
    "compare the held-out ELBO of the 2-D VAE with the 16-D one, on 8 held-out digits",
    "the non-saturating loss on 256 noise vectors; FID moves (σ = 0.25, barely visible)",
])
def test_maths_settings_and_literature_pass(markdown):
    assert run_figures(markdown) == []


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_no_typed_run_figures(path):
    """Figures a run measures reach markdown through glue: {glue:text}`name:.1f` (gantut.report)."""
    found = [f"markdown cell {i}: {f}" for i, md in enumerate(markdown_cells(path)) for f in run_figures(md)]
    assert not found, (f"{path.name} types {len(found)} run figure(s) into its markdown; record them "
                       "(gantut.report.record) and cite {glue:text}`name:.1f` instead, or write maths "
                       "as maths ($...$):\n  " + "\n  ".join(found))


# -- citations --------------------------------------------------------------------------------

@dataclass
class Entry:
    key: str
    names: list[str]      # the authors' last names, in order
    first: str            # the first author's last name
    years: set[str]       # the year, and an arXiv year kept in `note`
    shortnames: set[str]  # "DDPM", "BigGAN", ...


def _plain(latex: str) -> str:
    import latexcodec  # noqa: F401  (registers the codec; comes with pybtex)

    return latex.encode().decode("latex").replace("{", "").replace("}", "")


@cache
def bibliography() -> dict[str, Entry]:
    from pybtex.database import parse_file

    entries = {}
    for key, e in parse_file(BOOK / "references.bib").entries.items():
        people = e.persons.get("author", [])
        names = [_plain(" ".join(p.last_names)) for p in people]
        years = {e.fields["year"], *re.findall(r"\b(?:19|20)\d\d\b", e.fields.get("note", ""))}
        short = {s.strip().lower() for s in e.fields.get("shortname", "").split(",") if s.strip()}
        entries[key] = Entry(key, names, names[0] if names else "", years, short)
    return entries


NAME = r"(?:van den |de |von )?[A-Z][\w'’\-]*"
CITATION = re.compile(rf"(?P<first>{NAME})(?:(?P<etal>\s+et\s+al\.?)|\s*(?:&|and)\s+(?P<second>{NAME}))?"
                      rf",?\s*\(?(?P<year>(?:19|20)\d\d)[a-z]?\b")
NOT_A_NAME = {"Since", "In", "From", "Until", "By", "About", "Around", "Before", "After", "Between",
              "Circa", "Early", "Late", "Mid", "Summer", "Winter", "Spring", "Autumn", "The", "To",
              "NeurIPS", "NIPS", "ICLR", "ICML", "CVPR", "ICCV", "ECCV", "AAAI", "IJCAI", "UAI",
              "AISTATS", "JMLR", "TPAMI", "arXiv", "Python", "PyTorch", "TensorFlow", "MNIST",
              "January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"}


def citations(markdown: str) -> list[dict]:
    """Author-year (and name-year) citations typed as text, each with the bib entry it matches."""
    text = re.sub(r"\{cite(:\w+)?\}`[^`]*`", " ", prose(markdown))
    found = []
    for m in CITATION.finditer(text):
        first, second, year = m["first"].split()[-1], m["second"], m["year"]
        if first in NOT_A_NAME:
            continue
        matches = [e.key for e in bibliography().values() if year in e.years and (
            # the first author; the second where the citation names both of two; "et al.": 3 or more
            e.first == first and (not second or e.names[1:] == [second.split()[-1]])
            and (not m["etal"] or len(e.names) >= 3)
            # or a name the work goes by: DDPM 2020, BigGAN 2019
            or not second and first.lower() in e.shortnames)]
        found.append({"text": " ".join(m.group(0).split()), "keys": matches})
    return found


def cite_keys(markdown: str) -> list[str]:
    return [k.strip() for m in re.finditer(r"\{cite(?::\w+)?\}`([^`]*)`", markdown)
            for k in m.group(1).split(",") if k.strip()]


@pytest.mark.parametrize("markdown, keys", [
    ("A GAN (Goodfellow et al. 2014) is two functions.", [["goodfellow2014gan"]]),
    ("as Lucic et al. (2018) found at scale", [["lucic2018equal"]]),
    ("(Radford et al., 2015) and Kingma & Welling 2013", [["radford2015dcgan"], ["kingma2013vae"]]),
    ("the projection discriminator of Miyato &\nKoyama 2018", [["miyato2018projection"]]),
    ("diffusion (Sohl-Dickstein 2015, DDPM 2020)", [["sohldickstein2015diffusion"], ["ho2020ddpm"]]),
    ("EMA of G (Yazıcı et al. 2019); PPCA (Tipping & Bishop 1999)", [["yazici2019ema"], ["tipping1999ppca"]]),
    ("Smith et al. 2021 showed it", [[]]),
    ("a forgotten work (Nobody 2017)", [[]]),
    ("Glow 2018 and Fancy 2017", [["kingma2018glow"], []]),
    ("Since 2014 the field, NeurIPS 2014, from about 2016 to 2020", []),
    ("A GAN {cite:p}`goodfellow2014gan` is two functions; $\\text{Goodfellow 2014}$", []),
])
def test_citations_are_found_and_matched(markdown, keys):
    assert [c["keys"] for c in citations(markdown)] == keys


def test_every_bib_entry_parses_with_a_year_and_authors():
    for e in bibliography().values():
        assert e.years and e.first, f"references.bib: {e.key} lacks a year or an author"


@pytest.mark.parametrize("path", ALL + PAGES, ids=IDS + [p.name for p in PAGES])
def test_cited_works_are_in_the_bibliography(path):
    """Every author-year citation has its entry in book/references.bib; every {cite} key exists."""
    cells = markdown_cells(path) if path.suffix == ".ipynb" else [path.read_text(encoding="utf-8")]
    missing = sorted({c["text"] for md in cells for c in citations(md) if not c["keys"]})
    unknown = sorted({k for md in cells for k in cite_keys(md) if k not in bibliography()})
    assert not missing, (f"{path.name} cites works that book/references.bib lacks (add an entry with "
                         f"its real metadata, then cite it with {{cite:t}}`key`): {missing}")
    assert not unknown, f"{path.name}: {{cite}} keys not in book/references.bib: {unknown}"


@pytest.mark.parametrize("path", ALL + PAGES, ids=IDS + [p.name for p in PAGES])
def test_citations_use_the_cite_role(path):
    """"Goodfellow et al. 2014" as text does not link to the references: {cite:t}`goodfellow2014gan` does."""
    cells = markdown_cells(path) if path.suffix == ".ipynb" else [path.read_text(encoding="utf-8")]
    typed = sorted({f"{c['text']} -> {{cite:t}}`{c['keys'][0]}`" if c["keys"] else c["text"]
                    for md in cells for c in citations(md)})
    assert not typed, (f"{path.name} types {len(typed)} citation(s) as text; use {{cite:t}}`key` "
                       "(\"Goodfellow et al. [2014]\") or {cite:p}`key` (\"[Goodfellow et al., 2014]\"):\n  "
                       + "\n  ".join(typed))
