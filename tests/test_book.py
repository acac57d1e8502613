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

import json
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


def test_correction_parser_reads_the_chinese_line():
    box = BOX.replace("> **Evidence:**", "> **正确说法：** 判别器只输出一个数，应使用 sigmoid。\n>\n> **Evidence:**")
    (c,) = _extension().parse_corrections(box)
    assert c.chinese == "判别器只输出一个数，应使用 sigmoid。"
    assert c.right.endswith("$D(x) = \\sigma(\\ell)$.") and c.evidence.startswith("the cell below")
    assert _extension().parse_corrections(BOX)[0].chinese == ""  # optional
    with pytest.raises(ValueError, match="正确说法"):
        _extension().parse_corrections(box.replace("判别器只输出一个数，应使用 sigmoid。", ""))


def test_corrections_page_points_glue_roles_at_their_notebook():
    """myst-nb resolves {glue:text}`key` only on the page that glued it: the copy names the notebook."""
    reglue = _extension()._reglue
    md = "FID {glue:text}`fid:.1f`, {glue:text}`n`, {glue}`grid` and {glue:text}`04_2_gan_code.ipynb::fid:.0f`"
    assert reglue(md, "notebooks/05_1_sample_quality") == (
        "FID {glue:text}`/notebooks/05_1_sample_quality.ipynb::fid:.1f`, "
        "{glue:text}`/notebooks/05_1_sample_quality.ipynb::n:s`, "
        "{glue}`/notebooks/05_1_sample_quality.ipynb::grid` and "
        "{glue:text}`/notebooks/04_2_gan_code.ipynb::fid:.0f`")
    with pytest.raises(ValueError, match="glue:md"):
        reglue("{glue:md}`table`", "notebooks/x")


@pytest.mark.parametrize("code, only", [
    ("record('fid', fid)", True),
    ("# the numbers the text cites\nrecord('a', 1)\nreport.record('b', 2, 'note')", True),
    ("for k in keys:\n    record(f'fid_{k}', fids[k])", True),
    ("fid = metrics.fid(G)\nrecord('fid', fid)", False),
    ("print(p)", False),
    ("%time record('a', 1)", False),
])
def test_cells_that_only_record(code, only):
    assert _extension()._records_only(code) is only


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
        assert "{glue" not in text, f"a glue role left unrendered: {text[:300]}"
    chinese = sum("> **正确说法：**" in cell.source or "> **正确说法:**" in cell.source
                  for nb in (SITE_SRC / "notebooks").glob("*.ipynb")
                  for cell in nbformat.read(nb, as_version=4).cells if cell.cell_type == "markdown")
    assert sum(box.get_text().count("正确说法") for box in page.select(".gantut-correction")) == chinese


def test_landing_and_reference_pages(pages):
    index = pages["index.html"].get_text()
    for needed in ("make lab", "make book", "smoke", "quick", "full", "Corrections to the source"):
        assert needed in index, f"the landing page does not mention {needed!r}"
    table = pages["index.html"].select_one(".gantut-chapters table")
    assert table is not None and len(table.select("tbody tr")) == len(CHAPTERS)
    assert "{cite" not in index and "[Goodfellow" in index, "the landing page's citation did not render"
    refs = pages["references.html"].get_text()
    for author in ("Goodfellow", "Radford", "Arjovsky", "Gulrajani", "Miyato", "Kingma",
                   "Heusel", "Kynkäänniemi", "Lucic", "Theis", "Dhariwal", "Lipman", "Yazıcı"):
        assert author in refs, f"references page lacks {author}"
    glossary = pages["glossary.html"].get_text()
    for term in ("生成器", "判别器", "模式崩溃", "generator", "discriminator", "mode collapse",
                 "Fréchet Inception 距离", "核 Inception 距离", "重参数化技巧", "自回归模型", "标准化流",
                 "扩散模型", "截断技巧", "实例噪声", "权重裁剪", "TTUR", "流匹配"):
        assert term in glossary, f"glossary lacks {term}"


# -- a real browser ---------------------------------------------------------------------------

# Once MathJax has finished and the fonts are ready, the probe writes onto <body> what a reader
# would see: whether the math rendered, how many images loaded, the Chinese characters of the
# visible text and whether they are drawn with the site's own face, and what sticks out sideways.
PROBE = """<script>
window.addEventListener("load", async () => {
  const b = document.body, set = (k, v) => b.setAttribute("data-probe-" + k, v);
  let mathjax = "absent";
  if (window.MathJax && MathJax.startup) {
    mathjax = await MathJax.startup.promise.then(() => "done", e => "error " + e);
  }
  await document.fonts.ready;
  const imgs = Array.from(document.images);
  set("mathjax", mathjax);
  set("images", imgs.length);
  set("images-loaded", imgs.filter(i => i.complete && i.naturalWidth > 0).length);
  // Chinese text and the face that draws it
  const cjk = Array.from(new Set(b.innerText.match(/[\\u2e80-\\u9fff\\uf900-\\ufaff\\ufe30-\\ufe4f\\uff00-\\uffef]/g) || [])).join("");
  const sample = cjk.slice(0, 24);
  const draw = family => {
    const c = document.createElement("canvas");
    c.width = 30 * Math.max(1, sample.length); c.height = 36;
    const g = c.getContext("2d"); g.font = "24px " + family; g.fillText(sample, 2, 28);
    return c.toDataURL();
  };
  const faces = Array.from(document.fonts).filter(f => f.family.replace(/["']/g, "") === "FAMILY");
  // Chinese characters as laid out on the page against the same run laid out afresh: Chromium
  // has drawn text laid out before the face loaded with boxes and kept them (a run 0.6 times as
  // wide). Punctuation is left out: at a line's end it is set half-width on purpose.
  const boxed = [], walker = document.createTreeWalker(b, NodeFilter.SHOW_TEXT);
  const run = /[\u3400-\u9fff\uf900-\ufaff]+/g;
  for (let n, checked = 0; (n = walker.nextNode()) && checked < 400;) {
    for (const m of n.data.matchAll(run)) {
      const r = document.createRange();
      r.setStart(n, m.index); r.setEnd(n, m.index + m[0].length);
      const shown = Array.from(r.getClientRects()).reduce((a, q) => a + q.width, 0);
      if (!shown || !n.parentElement) continue;
      const fresh = document.createElement("span");
      fresh.textContent = m[0];
      fresh.style.cssText = "position:absolute;visibility:hidden;white-space:nowrap";
      n.parentElement.appendChild(fresh);
      const width = fresh.getBoundingClientRect().width;
      fresh.remove();
      checked += 1;
      if (Math.abs(shown - width) > Math.max(2, 0.15 * width)) boxed.push(m[0] + " (" + Math.round(shown) + " px, not " + Math.round(width) + ")");
    }
  }
  set("boxed", JSON.stringify(boxed));
  set("cjk", cjk);
  set("font", JSON.stringify({
    faces: faces.map(f => f.status),
    check: sample ? document.fonts.check('16px "FAMILY"', sample) : null,
    drawn: sample ? draw('"FAMILY"') !== draw('"gantut-no-such-font"') : null,
    family: getComputedStyle(document.querySelector("h1") || b).fontFamily}));
  // does the page scroll sideways (or clip what sticks out)? and which elements stick out,
  // past the right edge and not inside a box that scrolls (a code block, a wide table's)
  const html = document.documentElement, vw = html.clientWidth, out = [];
  const clips = [html, b].some(e => ["hidden", "clip"].includes(getComputedStyle(e).overflowX));
  const scrolls = html.scrollWidth > vw + 1;
  for (const el of (scrolls || clips) ? b.querySelectorAll("*") : []) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.right <= vw + 1 || getComputedStyle(el).position === "fixed") continue;
    let p = el.parentElement, boxed = false;
    while (p && p !== b) {
      if (getComputedStyle(p).position === "fixed") { boxed = true; break; }
      if (getComputedStyle(p).overflowX !== "visible") { boxed = p.getBoundingClientRect().right <= vw + 1; break; }
      p = p.parentElement;
    }
    if (!boxed && !(el.parentElement && out.includes(el.parentElement))) out.push(el);
  }
  set("overflow", JSON.stringify({
    scrollWidth: html.scrollWidth, clientWidth: vw, clips: clips,
    culprits: out.slice(0, 8).map(el => el.tagName.toLowerCase() + "." + Array.from(el.classList).join(".")
      + " (" + Math.round(el.getBoundingClientRect().right) + " px): " + el.textContent.trim().slice(0, 60))}));
  set("done", "1");
  // inside the frame of render_for_reader: hand the findings to the page around it
  if (window.parent !== window) {
    const data = {};
    for (const a of b.attributes) if (a.name.startsWith("data-probe-")) data[a.name] = a.value;
    window.parent.postMessage({gantutProbe: data}, "*");
  }
});
</script>"""
FAMILY = "Noto Sans SC"  # the face book/_static/gantut.css declares; install_assets.sh installs it
PROBE = PROBE.replace("FAMILY", FAMILY)
FONT_FILE = HTML / "_static" / "vendor" / "noto-sans-sc" / "noto-sans-sc-400.woff"
SCREENSHOTS = SITE_SRC / "screenshots"
WIDTHS = {"desktop": 1300, "phone": 400}
READER_PAGES = ["index.html", "notebooks/01_background.html", "corrections.html"]


def chromium() -> str:
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    pytest.fail("the browser check needs Chromium: `apt-get install -y chromium` (Debian), or set "
                "CHROMIUM to a Chrome/Chromium binary")


def _chromium(url: str, tmp_path: Path, *args: str) -> str:
    """Headless Chromium on ``url`` with the network switched off; the final DOM as HTML."""
    run = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
         "--proxy-server=http://127.0.0.1:9",  # nothing from the network can load
         *args, "--virtual-time-budget=20000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "<body" in run.stdout, f"chromium failed:\n{run.stderr[-2000:]}"
    return run.stdout


def render_in_browser(page: str, tmp_path: Path) -> BeautifulSoup:
    """Load a built page from disk in headless Chromium with no network; return the final DOM.

    A copy of the page, beside it so that relative links still work, carries :data:`PROBE`.
    """
    src = HTML / page
    probe = src.with_name(f".probe-{src.name}")
    probe.write_text(src.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
                     encoding="utf-8")
    try:
        dom = BeautifulSoup(_chromium(probe.as_uri(), tmp_path), "html.parser")
    finally:
        probe.unlink()
    assert dom.body.get("data-probe-done") == "1", "the page's probe did not finish (a script error?)"
    return dom


FRAME = """<!DOCTYPE html><html><body style="margin:0">
<iframe src="SRC" style="width:WIDTHpx;height:1500px;border:0;display:block"></iframe>
<script>
window.addEventListener("message", e => {
  if (!e.data || !e.data.gantutProbe) return;
  for (const [k, v] of Object.entries(e.data.gantutProbe)) document.body.setAttribute(k, v);
});
</script></body></html>"""


def render_for_reader(page: str, tmp_path: Path, width: int, screenshot: Path) -> dict:
    """What :data:`PROBE` finds on a built page shown ``width`` CSS pixels wide; saves a screenshot.

    Chromium's window is at least 500 px wide, so the page is shown in a frame of ``width``
    pixels (its media queries see a phone at 400) inside a window as wide as needed; the
    screenshot is cut to the frame: the page's first 1,500 px.
    """
    from PIL import Image

    src = HTML / page
    probe, frame = src.with_name(f".probe-{src.name}"), src.with_name(f".frame-{src.name}")
    probe.write_text(src.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
                     encoding="utf-8")
    frame.write_text(FRAME.replace("SRC", probe.name).replace("WIDTH", str(width)), encoding="utf-8")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    try:
        dom = BeautifulSoup(_chromium(frame.as_uri(), tmp_path, f"--window-size={max(width, 500)},1500",
                                      f"--screenshot={screenshot}", "--hide-scrollbars"), "html.parser")
    finally:
        probe.unlink()
        frame.unlink()
    found = {k.removeprefix("data-probe-"): v for k, v in dom.body.attrs.items() if k.startswith("data-probe-")}
    assert found.get("done") == "1", "the page's probe did not report back (a script error?)"
    with Image.open(screenshot) as img:
        if img.width > width:
            img.crop((0, 0, width, img.height)).save(screenshot)
    return found


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


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
@pytest.mark.parametrize("page", READER_PAGES)
def test_browser_draws_chinese_with_the_sites_font(page, width, build_log, tmp_path):
    """As a reader without CJK fonts sees it: Chinese in the shipped face, nothing off the side.

    Saves what the window shows to build/book-smoke/screenshots/ (look at them: no empty boxes).
    """
    if not (HTML / page).exists() and ALLOW_MISSING:
        pytest.skip(f"{page} not built (GANTUT_BOOK_ALLOW_MISSING)")
    assert (HTML / page).exists(), f"{page} was not built"
    shot = SCREENSHOTS / f"{page.replace('/', '-').removesuffix('.html')}-{width}.png"
    found = render_for_reader(page, tmp_path, width, shot)
    assert shot.exists() and shot.stat().st_size > 10_000, f"no screenshot at {shot}"

    cjk = found.get("cjk", "")
    assert cjk, f"{page} shows no Chinese text"
    font = json.loads(found["font"])
    assert font["faces"], f"the page declares no {FAMILY!r} face (book/_static/gantut.css)"
    assert set(font["faces"]) == {"loaded"}, f"the {FAMILY} face did not load: {font['faces']}"
    assert font["check"] is True, f"document.fonts.check says {FAMILY} cannot draw {cjk[:24]!r}"
    assert font["drawn"] is True, f"{cjk[:24]!r} looks the same in {FAMILY} as in no font at all"
    assert FAMILY in font["family"], f"the page's text is not set in {FAMILY}: {font['family']}"
    boxed = json.loads(found["boxed"])
    assert not boxed, f"{page} at {width} px draws Chinese laid out before the face loaded as boxes: {boxed}"
    from fontTools.ttLib import TTFont

    cmap = TTFont(FONT_FILE).getBestCmap()
    boxes = "".join(c for c in cjk if ord(c) not in cmap)
    assert not boxes, f"{page}: the shipped font lacks {boxes!r}: drawn as empty boxes"

    overflow = json.loads(found["overflow"])
    assert overflow["clientWidth"] <= width, f"the page was shown {overflow['clientWidth']} px wide"
    assert not overflow["culprits"] and overflow["scrollWidth"] <= overflow["clientWidth"] + 1, (
        f"{page} at {width} px scrolls sideways ({overflow['scrollWidth']} px of content in "
        f"{overflow['clientWidth']} px{', clipped' if overflow['clips'] else ''}) because of:\n  "
        + "\n  ".join(overflow["culprits"]))


# -- numbers in prose: records become glue -----------------------------------------------------

GLUE_BOX = """<a id="correction-glue-check"></a>
> **What the source says / what is right** (§9)
>
> **Source:** “某个数字” (some number)
>
> **Right:** the run measures it.
>
> **正确说法：** 数字来自运行。
>
> **Evidence:** the cell above records an accuracy of {glue:text}`acc:.3f` and a loss of {glue:text}`loss`."""


def test_records_are_glued_into_prose_and_the_corrections_page(tmp_path):
    """A tiny book whose notebook records two numbers with gantut.report.record and cites them.

    The page shows the numbers where the markdown cites them, not the recorded lines; a cell
    that only records is not on the page; the corrections page quotes the box with the numbers
    (a role from another page, which myst-nb resolves only through ``path::key``); a role
    whose name was never recorded is a Sphinx warning, which ``test_build_warnings`` fails on.
    """
    import nbclient

    src = tmp_path / "book"
    (src / "notebooks").mkdir(parents=True)
    for name in ("_config.yml", "references.bib", "corrections.md"):
        shutil.copy2(BOOK / name, src / name)
    shutil.copytree(BOOK / "_ext", src / "_ext")
    shutil.copytree(BOOK / "_static", src / "_static", symlinks=True)
    (src / "index.md").write_text("# A tiny book\n", encoding="utf-8")
    (src / "_toc.yml").write_text("format: jb-book\nroot: index\nparts:\n  - caption: Test\n    chapters:\n"
                                  "      - file: notebooks/glue_check\n      - file: corrections\n")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 9 数字 — Glue check\n\nThe accuracy was {glue:text}`acc:.1%` "
                                      "and the loss {glue:text}`loss:.2f`; {glue:text}`never_recorded:.1f`."),
        nbformat.v4.new_code_cell("from gantut.report import record\nx = 0.979\nrecord('acc', x)"),
        nbformat.v4.new_code_cell("record('loss', 0.25, 'the recorded note')"),
        nbformat.v4.new_code_cell("print('a printed line')"),
        nbformat.v4.new_markdown_cell(GLUE_BOX)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    nbformat.write(nb, src / "notebooks" / "glue_check.ipynb")

    jb = Path(sys.executable).parent / "jupyter-book"
    run = subprocess.run([str(jb), "build", str(src)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "NO_COLOR": "1"})
    log = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)
    html = src / "_build" / "html"
    assert run.returncode == 0 and (html / "index.html").exists(), log[-3000:]
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert any("never_recorded" in w for w in warnings), f"no warning for the unknown key:\n{log[-3000:]}"
    assert len(warnings) == 1, "\n".join(warnings)

    page = (html / "notebooks" / "glue_check.html").read_text(encoding="utf-8")
    text = BeautifulSoup(page, "html.parser").select_one("article").get_text(" ")
    assert "The accuracy was 97.9% and the loss 0.25" in " ".join(text.split())
    flat = "".join(text.split())  # code is split into highlighted tokens
    assert "x=0.979" in flat and "aprintedline" in flat
    assert "acc=0.979" not in flat, "the recorded line is on the page beside the prose's number"
    assert "therecordednote" not in flat and "record('loss'" not in flat, "a cell that only records is shown"
    for raw in ("vnd.gantut.record", "papermill.record", "scrapbook"):
        assert raw not in page, f"the page shows a raw MIME bundle ({raw})"

    box = BeautifulSoup((html / "corrections.html").read_text(encoding="utf-8"), "html.parser")
    box = " ".join(box.select_one(".gantut-correction").get_text(" ").split())
    assert "an accuracy of 0.979 and a loss of 0.25" in box, box
    assert "正确说法： 数字来自运行。" in box or "正确说法：数字来自运行。" in box, box


def test_record_mime_is_the_one_the_book_reads():
    from gantut.report import MIME

    assert _extension().RECORD_MIME == MIME


@pytest.mark.parametrize("name", WRITTEN)
def test_glue_roles_name_recorded_numbers(name):
    """Every {glue:text}`name` of a notebook's markdown names a number the notebook records
    (or, as {glue:text}`other.ipynb::name`, one that notebook records)."""
    from gantut.report import read_records

    roles = []  # (notebook stem, record name, the role as written)
    for cell in nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).cells:
        if cell.cell_type == "markdown":
            for m in _extension().GLUE_ROLE.finditer(cell.source):
                doc, _, key = m.group(2).rpartition("::")
                roles.append((Path(doc).stem if doc else name, key.partition(":")[0], m.group(0)))
    recorded = {}
    for stem in sorted({stem for stem, _, _ in roles}):
        if not (NOTEBOOKS / f"{stem}.ipynb").exists():
            continue
        try:
            out, _ = execute(NOTEBOOKS / f"{stem}.ipynb", SMOKE_DIR, "smoke", cell_timeout=300)
        except Exception as e:  # test_notebooks reports it in full
            pytest.skip(f"{stem} did not execute in smoke: {type(e).__name__}")
        recorded[stem] = read_records(out)
    missing = [role for stem, key, role in roles if key not in recorded.get(stem, {})]
    assert not missing, f"{name}: markdown cites numbers no notebook records: {missing}"
