"""The Jupyter Book site, built from the smoke executions and checked as a reader would meet it.

The book's sources (``book/``) and the notebooks executed in the smoke profile
(``build/smoke/``, the copies ``test_notebooks.py`` makes, through the same cached executor)
are put together in ``build/book-smoke/`` and rendered once, without executing anything
again. Then: every chapter of ``book/_toc.yml`` has its notebook and its page; every
training notebook's page shows a figure; no page shows a traceback or a warning from our own
code; every internal link resolves; the site loads nothing from the network; the corrections
page lists every correction the notebooks make; and headless Chromium, with the network
switched off, renders the math of the landing page and of notebook 03 and loads their images.

A chapter listed in the TOC whose notebook does not exist is a failure; set
``GANTUT_BOOK_ALLOW_MISSING=1`` to build and check the others while chapters are being written.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
import yaml
from bs4 import BeautifulSoup

from gantut.execute import NOTEBOOKS, ROOT, execute

BOOK = ROOT / "book"
SMOKE_DIR = ROOT / "build" / "smoke"
SITE_SRC = ROOT / "build" / "book-smoke"
HTML = SITE_SRC / "_build" / "html"
ALLOW_MISSING = os.environ.get("GANTUT_BOOK_ALLOW_MISSING", "") not in ("", "0")
TRAINS = re.compile(r"\.fit\(|train_gan\(|train_vae\(|make_trainer\(")
OWN_WARNING = re.compile(r"(gantut/\w+\.py|ipykernel_\d+/\d+\.py|<module>):\d+: \w*Warning")


def toc_chapters() -> list[str]:
    """The notebook chapters of book/_toc.yml, in order, as names like ``03_math``."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    files = [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    return [f.split("/", 1)[1] for f in files if f.startswith("notebooks/")]


CHAPTERS = toc_chapters()
WRITTEN = [c for c in CHAPTERS if (NOTEBOOKS / f"{c}.ipynb").exists()]
FAILED: dict[str, str] = {}  # notebooks that did not execute in smoke, and why


def build_smoke_book() -> str:
    """Assemble build/book-smoke from book/ and the smoke executions, render it; return the log."""
    shutil.rmtree(SITE_SRC, ignore_errors=True)
    shutil.copytree(BOOK, SITE_SRC, ignore=shutil.ignore_patterns("_build", "notebooks"))
    (SITE_SRC / "notebooks").mkdir()
    for name in WRITTEN:
        try:  # cached: this executes only what test_notebooks would execute anyway
            out, _ = execute(NOTEBOOKS / f"{name}.ipynb", SMOKE_DIR, "smoke", cell_timeout=300)
        except Exception as e:  # test_notebooks reports it in full
            FAILED[name] = f"{type(e).__name__}: {str(e)[:500]}"
            continue
        shutil.copy2(out, SITE_SRC / "notebooks")
    jb = Path(sys.executable).parent / "jupyter-book"
    env = {**os.environ, "GANTUT_BOOK_ALLOW_MISSING": "1", "NO_COLOR": "1"}
    t0 = time.perf_counter()
    run = subprocess.run([str(jb), "build", str(SITE_SRC)], env=env, capture_output=True,
                         text=True, timeout=900)
    log = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)  # no terminal colours
    assert run.returncode == 0 and (HTML / "index.html").exists(), f"book build failed:\n{log[-5000:]}"
    print(f"smoke book built in {time.perf_counter() - t0:.1f} s")
    return log


@pytest.fixture(scope="module")
def build_log() -> str:
    return build_smoke_book()


@pytest.fixture(scope="module")
def pages(build_log) -> dict[str, BeautifulSoup]:
    """Every HTML page of the built site, by path relative to the site root."""
    return {p.relative_to(HTML).as_posix(): BeautifulSoup(p.read_text(encoding="utf-8"), "html.parser")
            for p in HTML.rglob("*.html") if "_static" not in p.parts}


def _extension():
    """book/_ext/gantut_book.py, the Sphinx extension that writes the generated pages."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gantut_book", BOOK / "_ext" / "gantut_book.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


BOX = """Some text.

<a id="correction-softmax"></a>
> **What the source says / what is right** (§3.1.2)
>
> **Source:** “输出通常被softmax函数处理” (the output is usually passed through a softmax)
>
> **Right:** a softmax over one output is the constant 1; use a sigmoid,
> $D(x) = \\sigma(\\ell)$.
>
> **Evidence:** the cell below prints the softmax of D's output: all ones.

More text."""


def test_correction_parser_reads_a_box():
    (c,) = _extension().parse_corrections(BOX)
    assert (c.slug, c.section, c.where) == ("correction-softmax", "3.1.2", "§3.1.2")
    (c,) = _extension().parse_corrections(BOX.replace("(§3.1.2)", "(§5, challenge 1)"))
    assert (c.section, c.where) == ("5", "§5, challenge 1")
    assert c.source.startswith("“输出通常")
    assert c.right.endswith("$D(x) = \\sigma(\\ell)$.") and "\n" in c.right
    assert c.evidence.startswith("the cell below")


@pytest.mark.parametrize("broken, message", [
    (BOX.replace("(§3.1.2)", ""), "lacks the section"),
    (BOX.replace("> **Evidence:**", "> Evidence:"), "lacks **Evidence:**"),
    (BOX.replace("> **What the source says / what is right** (§3.1.2)\n>\n", ""), "not followed by"),
])
def test_correction_parser_rejects_a_malformed_box(broken, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _extension().parse_corrections(broken)


def test_corrections_page_relinks_what_it_copies():
    """A box's links are relative to its notebook; on the corrections page they must still work."""
    md = "[run](#experiment), [03](03_math.ipynb#correction-x), [web](https://arxiv.org/abs/1406.2661)"
    assert _extension()._relink(md, "notebooks/05_1_sample_quality", "corrections") == (
        "[run](notebooks/05_1_sample_quality.ipynb#experiment), "
        "[03](notebooks/03_math.ipynb#correction-x), [web](https://arxiv.org/abs/1406.2661)")


def test_every_notebook_is_a_chapter():
    """A notebook outside the TOC would be executed by `make book` and then never shown."""
    orphans = sorted({p.stem for p in NOTEBOOKS.glob("*.ipynb")} - set(CHAPTERS))
    assert not orphans, f"notebooks missing from book/_toc.yml: {orphans}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_chapter_has_a_page(name, pages):
    if name not in WRITTEN:
        if ALLOW_MISSING:
            pytest.skip(f"notebooks/{name}.ipynb not written yet (GANTUT_BOOK_ALLOW_MISSING)")
        pytest.fail(f"book/_toc.yml lists notebooks/{name}.ipynb, which does not exist: write "
                    "it or remove it from the TOC (GANTUT_BOOK_ALLOW_MISSING=1 allows this)")
    assert name not in FAILED, f"notebooks/{name}.ipynb failed in smoke: {FAILED.get(name)}"
    page = pages.get(f"notebooks/{name}.html")
    assert page is not None, f"no page for notebooks/{name}.ipynb in {HTML}"
    assert page.find("h1"), f"notebooks/{name}.html has no title"


def test_build_warnings(build_log):
    """Sphinx warnings are broken links, bad markup or missing files on some page."""
    absent = [c for c in CHAPTERS if c not in WRITTEN or c in FAILED]  # failed above, by name
    warnings = [line for line in build_log.splitlines() if "WARNING" in line
                and "gantut: _toc.yml lists" not in line  # test_every_chapter_has_a_page
                and not any(f"nonexisting document 'notebooks/{c}'" in line for c in absent)]
    assert not warnings, "the book build warned:\n" + "\n".join(warnings)


@pytest.mark.parametrize("name", [c for c in WRITTEN if TRAINS.search((NOTEBOOKS / f"{c}.ipynb").read_text())])
def test_training_pages_have_figures(name, pages):
    if name in FAILED:
        pytest.skip("did not execute: test_every_chapter_has_a_page reports it")
    imgs = [i for i in pages[f"notebooks/{name}.html"].find_all("img")
            if "_images/" in i.get("src", "")]
    assert imgs, f"notebooks/{name}.html trains a model but shows no figure"


def test_no_tracebacks_or_own_warnings(pages):
    bad = []
    for path, soup in pages.items():
        for out in soup.select("div.output"):
            classes = out.get("class", [])
            text = out.get_text()
            if "traceback" in classes or "Traceback (most recent call last)" in text:
                bad.append(f"{path}: traceback: {text.strip()[:300]}")
            elif "stderr" in classes and OWN_WARNING.search(text):
                bad.append(f"{path}: warning from our code: {text.strip()[:300]}")
    assert not bad, "\n".join(bad)


def test_internal_links_resolve(pages):
    broken = []
    ids = {path: {t["id"] for t in soup.find_all(id=True)} for path, soup in pages.items()}
    for path, soup in pages.items():
        for tag, attr in (("a", "href"), ("img", "src"), ("script", "src"), ("link", "href")):
            for el in soup.find_all(tag):
                url = el.get(attr)
                if not url or url.startswith(("mailto:", "javascript:", "data:")):
                    continue
                parts = urlsplit(url)
                if parts.scheme or parts.netloc:
                    continue  # external: test_no_network_at_reading_time covers what loads
                target = (HTML / path).parent / unquote(parts.path) if parts.path else HTML / path
                target = target.resolve()
                if not target.exists():
                    broken.append(f"{path}: {url} (no such file)")
                    continue
                frag = unquote(parts.fragment)
                rel = target.relative_to(HTML.resolve()).as_posix() if target.suffix == ".html" else None
                if frag and rel in ids and frag not in ids[rel]:
                    broken.append(f"{path}: {url} (no id '{frag}' in {rel})")
    assert not broken, f"{len(broken)} broken internal links:\n" + "\n".join(sorted(set(broken))[:50])


def test_no_network_at_reading_time(pages):
    """Scripts, styles and images come from the site itself: it reads offline."""
    remote = []
    for path, soup in pages.items():
        for tag, attr in (("script", "src"), ("link", "href"), ("img", "src")):
            for el in soup.find_all(tag):
                if tag == "link" and "stylesheet" not in el.get("rel", []):
                    continue
                if urlsplit(el.get(attr) or "").scheme in ("http", "https"):
                    remote.append(f"{path}: <{tag} {attr}={el.get(attr)}>")
    assert not remote, "\n".join(remote)


def test_download_and_launch_hint(pages):
    for name in (n for n in WRITTEN if n not in FAILED):
        page = pages[f"notebooks/{name}.html"]
        link = page.select_one("a.gantut-download")
        assert link is not None, f"notebooks/{name}.html has no 'Run it yourself' box"
        assert (HTML / "notebooks" / link["href"]).resolve().name == f"{name}.ipynb"
        assert "make lab" in page.select_one(".gantut-run").get_text()


def test_corrections_page_lists_every_correction(pages):
    """Counted independently of the extension that writes the page: anchors in the notebooks."""
    expected = []
    for nb in sorted((SITE_SRC / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(nb, as_version=4).cells:
            if cell.cell_type == "markdown":
                expected += [f"notebooks/{nb.stem}.html#{slug}" for slug in
                             re.findall(r'<a id="(correction-[A-Za-z0-9_-]+)"></a>', cell.source)]
    page = pages["corrections.html"]
    links = [a["href"] for a in page.select(".gantut-correction a.gantut-correction-link")]
    assert sorted(links) == sorted(expected)
    assert len(page.select(".gantut-correction")) == len(expected)
    for box in page.select(".gantut-correction"):
        text = box.get_text()
        assert all(k in text for k in ("Source:", "Right:", "Evidence:")), text[:300]


def test_landing_and_reference_pages(pages):
    index = pages["index.html"].get_text()
    for needed in ("make lab", "make book", "smoke", "quick", "full", "Corrections to the source"):
        assert needed in index, f"the landing page does not mention {needed!r}"
    table = pages["index.html"].select_one(".gantut-chapters table")
    assert table is not None and len(table.select("tbody tr")) == len(CHAPTERS)
    refs = pages["references.html"].get_text()
    for author in ("Goodfellow", "Radford", "Arjovsky", "Gulrajani", "Miyato", "Kingma",
                   "Heusel", "Kynkäänniemi"):
        assert author in refs, f"references page lacks {author}"
    glossary = pages["glossary.html"].get_text()
    for term in ("生成器", "判别器", "模式崩溃", "generator", "discriminator", "mode collapse"):
        assert term in glossary, f"glossary lacks {term}"


# -- a real browser ---------------------------------------------------------------------------

PROBE = """<script>
window.addEventListener("load", () => {
  const done = (mathjax) => {
    const imgs = Array.from(document.images);
    const b = document.body;
    b.setAttribute("data-probe-mathjax", mathjax);
    b.setAttribute("data-probe-images", imgs.length);
    b.setAttribute("data-probe-images-loaded", imgs.filter(i => i.complete && i.naturalWidth > 0).length);
  };
  if (window.MathJax && MathJax.startup) MathJax.startup.promise.then(() => done("done"), e => done("error " + e));
  else done("absent");
});
</script>"""


def chromium() -> str:
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    pytest.fail("the browser check needs Chromium: `apt-get install -y chromium` (Debian), or set "
                "CHROMIUM to a Chrome/Chromium binary")


def render_in_browser(page: str, tmp_path: Path) -> BeautifulSoup:
    """Load a built page from disk in headless Chromium with no network; return the final DOM.

    A copy of the page, beside it so that relative links still work, carries a probe that
    records, once MathJax has finished, whether it did and how many images loaded.
    """
    src = HTML / page
    probe = src.with_name(f".probe-{src.name}")
    probe.write_text(src.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
                     encoding="utf-8")
    try:
        run = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
             "--proxy-server=http://127.0.0.1:9",  # nothing from the network can load
             "--virtual-time-budget=20000", "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    assert run.returncode == 0 and "<body" in run.stdout, f"chromium failed:\n{run.stderr[-2000:]}"
    return BeautifulSoup(run.stdout, "html.parser")


@pytest.mark.parametrize("page", ["index.html", "notebooks/03_math.html"])
def test_browser_renders_math_and_images(page, build_log, tmp_path):
    if not (HTML / page).exists() and ALLOW_MISSING:
        pytest.skip(f"{page} not built (GANTUT_BOOK_ALLOW_MISSING)")
    assert (HTML / page).exists(), f"{page} was not built"
    dom = render_in_browser(page, tmp_path)
    body = dom.body
    assert body.get("data-probe-mathjax") == "done", f"MathJax did not finish: {body.get('data-probe-mathjax')}"
    assert dom.find_all("mjx-container"), "no MathJax output elements: the math did not render"
    assert not dom.find_all("mjx-merror"), "MathJax reports errors in the math"
    article = dom.select_one("article") or body
    for el in article.find_all(["pre", "script", "style"]):
        el.decompose()
    text = article.get_text()
    assert "$$" not in text and not re.search(r"\\\(|\\\[", text), "raw TeX left in the page"
    n, loaded = int(body.get("data-probe-images")), int(body.get("data-probe-images-loaded"))
    assert loaded == n, f"only {loaded} of {n} images loaded"
    if page.startswith("notebooks/"):
        assert n > 0, "the page has no images"
