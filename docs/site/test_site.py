"""The documentation site as a reader meets it (issue 22): `make docs-test` builds it with
`make docs`, then this opens it in headless Chromium (Debian's chromium + chromium-driver,
driven by Selenium) from a server on 127.0.0.1.

Every page is reached from the home page by its links and visited; no link points to a
missing page or anchor, no image is missing; search finds ``emmeans``; each gallery page
shows its notebook's plots; screenshots of the home, a gallery and an API page go to
build/site-*.png. It fails (never skips) when the site or the browser is missing.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))
import build_docs  # noqa: E402
import chromium  # noqa: E402  (tests/chromium.py: the browser of the JupyterLab tests too)

SITE = ROOT / "build" / "site"
BUILD = ROOT / "build"
NOT_PAGES = ("_static", "_sources", "_images")

# Everything a page shows a reader: its links, images and anchors, read in the browser.
PAGE_JS = """
const imgs = Array.from(document.images).map(i => ({src: i.currentSrc || i.src,
    complete: i.complete, width: i.naturalWidth, lazy: i.loading === 'lazy'}));
return {title: document.title,
        links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
        images: imgs,
        ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
        text: document.body.innerText.length};
"""


@pytest.fixture(scope="module")
def site() -> Path:
    if not (SITE / "index.html").is_file():
        raise RuntimeError(f"{SITE} has no index.html: run `make docs` first "
                           "(`make docs-test` does both)")
    return SITE


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = chromium.start(tmp_path_factory.mktemp("chromium"))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _file_of(url: str, server: str) -> Path:
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    target = SITE / path.lstrip("/")
    return target / "index.html" if path.endswith("/") else target


def _open(browser: Any, url: str) -> dict[str, Any]:
    browser.get(url)
    deadline = time.monotonic() + 30
    while browser.execute_script("return document.readyState") != "complete":
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not finish loading")
        time.sleep(0.05)
    return browser.execute_script(PAGE_JS)


@pytest.fixture(scope="module")
def crawl(browser: Any, server: str) -> dict[str, dict[str, Any]]:
    """Every page reached from the home page through links, as Chromium showed it; the
    search page (the search box's form leads there) and the index of names with it."""
    pages: dict[str, dict[str, Any]] = {}
    queue = [server + "genindex.html", server + "search.html", server + "index.html"]
    while queue:
        url = queue.pop()
        if url in pages:
            continue
        pages[url] = _open(browser, url)
        for link in pages[url]["links"]:
            bare = urllib.parse.urldefrag(link).url
            if bare.startswith(server) and bare.endswith(".html") and bare not in pages:
                queue.append(bare)
    return pages


def test_every_page_is_reached_and_shows_text(crawl: dict[str, dict[str, Any]],
                                              server: str) -> None:
    reached = {_file_of(url, server) for url in crawl}
    built = {p for p in SITE.rglob("*.html") if p.relative_to(SITE).parts[0] not in NOT_PAGES}
    assert built - reached == set(), f"pages no link reaches: {sorted(built - reached)}"
    assert len(reached) >= 30
    empty = [url for url, page in crawl.items()
             if page["text"] < 200 and not url.endswith("/search.html")]  # no query given
    assert not empty, f"pages with next to no text: {empty}"


def test_no_broken_link_or_anchor(crawl: dict[str, dict[str, Any]], server: str) -> None:
    ids = {urllib.parse.urldefrag(url).url: set(page["ids"]) for url, page in crawl.items()}
    broken = []
    for url, page in crawl.items():
        for link in page["links"]:
            if not link.startswith(server):
                continue  # the site is checked offline: outside links are not followed
            bare, fragment = urllib.parse.urldefrag(link)
            target = _file_of(bare, server)
            if not target.is_file():
                broken.append(f"{url} -> {link} (no such file)")
            elif fragment and bare in ids and urllib.parse.unquote(fragment) not in ids[bare]:
                broken.append(f"{url} -> {link} (no such anchor)")
    assert not broken, "\n".join(broken)


def test_no_missing_image(crawl: dict[str, dict[str, Any]], server: str) -> None:
    missing = []
    for url, page in crawl.items():
        for img in page["images"]:
            src = img["src"]
            if src.startswith("data:"):
                ok = len(base64.b64decode(src.split(",", 1)[1] + "==")) > 100
            elif src.startswith(server):
                target = _file_of(src, server)
                ok = target.is_file() and target.stat().st_size > 0
                ok = ok and (img["width"] > 0 or (img["lazy"] and not img["complete"]))
            else:
                ok = False  # the site must not need the network
            if not ok:
                missing.append(f"{url}: {src[:120]}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("notebook", build_docs.run_demo.gallery(), ids=lambda p: p.stem)
def test_gallery_page_shows_the_notebooks_plots(notebook: Path, browser: Any,
                                                server: str) -> None:
    executed = json.loads((BUILD / notebook.name).read_text(encoding="utf-8"))
    plots = sum("image/png" in out.get("data", {}) for cell in executed["cells"]
                for out in cell.get("outputs", []))
    page = _open(browser, f"{server}docs/examples/{notebook.stem}.html")
    # the page's title is the notebook's, up to its first inline code
    assert page["title"].startswith(build_docs.notebook_title(executed).split("`")[0][:20])
    # scrolled into view, each plot is decoded by the browser
    widths = browser.execute_script("""return (async () => {
        const out = [];
        for (const img of document.querySelectorAll('article img')) {
            img.scrollIntoView(); img.loading = 'eager';
            await img.decode().catch(() => null); out.push(img.naturalWidth);
        }
        return out; })();""") if plots else []
    assert len(widths) >= plots and all(w > 0 for w in widths), (notebook.stem, widths)
    n_code = sum(c["cell_type"] == "code" for c in executed["cells"])
    shown = browser.execute_script("return document.querySelectorAll('div.cell').length")
    assert shown >= n_code


def test_search_finds_emmeans(browser: Any, server: str) -> None:
    browser.get(f"{server}search.html?q=emmeans")
    deadline = time.monotonic() + 30
    hits: list[str] = []
    while time.monotonic() < deadline and not hits:
        time.sleep(0.2)
        hits = browser.execute_script(
            "return Array.from(document.querySelectorAll('#search-results li a'))"
            ".map(a => a.href)")
    assert hits, "search for emmeans found nothing"
    assert any("toolbox" in h for h in hits), hits  # the user guide's emmeans section
    assert any("lmermodel" in h for h in hits), hits  # LmerModel.emmeans in the API


def _shot(browser: Any, url: str, name: str, scroll_to: str | None = None) -> Path:
    browser.get(url)
    if scroll_to:
        browser.execute_script(
            f"const e = document.querySelector({scroll_to!r}); if (e) e.scrollIntoView();")
        time.sleep(0.5)
    path = BUILD / f"site-{name}.png"
    browser.save_screenshot(str(path))
    assert path.stat().st_size > 20_000, f"{path} is next to empty"
    return path


def test_screenshots(browser: Any, server: str) -> None:
    _shot(browser, server + "index.html", "home")
    _shot(browser, server + "docs/examples/dietox_plots.html", "gallery", "article img")
    _shot(browser, server + "api/lmermodel.html", "api", "dt[id='lmermagic.LmerModel.confint']")
