"""Build lmermagic's documentation site into build/site (``make docs``).

Usage: python scripts/build_docs.py [--execute] [--out DIR]

Lays the pages out in build/site-src as they sit in the repository, so that their own
links work unchanged: README.md (the home page, as index.md), docs/*.md (the user guide),
benchmarks/*.md, and docs/examples/*.ipynb taken from the executed copies `make demo`
writes to build/<name>.ipynb. Adds the gallery's index (a card with the first plot of each
notebook) and the API pages of docs/site/api/, then runs Sphinx with -W -n --keep-going:
a warning of any kind, a broken link, a missing docstring or a notebook that was not
executed, fails the build.

The fits are not re-run: a notebook with no executed copy newer than its source is an
error that says to run `make demo`. ``--execute`` (``make docs EXECUTE=1``) runs those
notebooks first, and only those.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import run_demo  # noqa: E402

SITE = ROOT / "docs" / "site"
BUILD = ROOT / "build"
PAGES = ["README.md", "docs/*.md", "benchmarks/*.md"]

# The site's navigation: four sections, each with its landing page. The user guide's is
# docs/site/guide.md; the benchmarks' is their README with these pages under it.
SECTIONS = ["docs/index", "docs/examples/index", "api/index", "benchmarks/README"]
BENCHMARKS = ["RESULTS", "PROFILE", "WARMSTART", "STATUS"]
WEB_UNSHOWN = ("text/typst",)


def _toctree(entries: list[str]) -> str:
    lines = "\n".join(entries)
    return f"\n```{{toctree}}\n:hidden:\n\n{lines}\n```\n"


def _append(page: Path, text: str) -> None:
    page.write_text(page.read_text(encoding="utf-8") + text, encoding="utf-8")


def notebook_title(nb: dict) -> str:
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise SystemExit("a gallery notebook has no '# title' in its first markdown cells")


def first_plot(nb: dict) -> bytes | None:
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                return base64.b64decode("".join(png) if isinstance(png, list) else png)
    return None


def _web_outputs(nb: dict) -> dict:
    """The notebook without output formats a web page cannot show (maketables' tables
    carry a Typst copy beside their HTML; myst-nb warns on a format it does not know)."""
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            for mime in WEB_UNSHOWN:
                out.get("data", {}).pop(mime, None)
    return nb


def _stale(source: Path) -> bool:
    copy = BUILD / source.name
    return not copy.is_file() or copy.stat().st_mtime < source.stat().st_mtime


def executed_copies(execute: bool) -> list[Path]:
    """The executed copy of each gallery notebook, newer than its source; with ``execute``,
    the notebooks without one are run first (in make demo's runner, its checks included)."""
    notebooks = run_demo.gallery()
    stale = [source for source in notebooks if _stale(source)]
    if execute and stale:
        cmd = [sys.executable, str(ROOT / "scripts" / "run_demo.py"), *map(str, stale)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        stale = [source for source in notebooks if _stale(source)]
    if stale:
        raise SystemExit(
            f"no executed copy newer than its source for {', '.join(s.name for s in stale)} "
            "in build/: run `make demo` (it executes the notebooks), or `make docs EXECUTE=1`")
    return [BUILD / source.name for source in notebooks]


def stage(src: Path, copies: list[Path]) -> None:
    if src.exists():
        shutil.rmtree(src)
    for pattern in PAGES:
        for page in sorted(ROOT.glob(pattern)):
            target = src / page.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(page, target)
    shutil.copytree(SITE / "api", src / "api")
    shutil.copy2(SITE / "guide.md", src / "docs" / "index.md")
    _append(src / "benchmarks" / "README.md", _toctree(BENCHMARKS))
    gallery = src / "docs" / "examples"
    (gallery / "_thumbs").mkdir(parents=True)
    cards = []
    for copy in copies:
        nb = json.loads(copy.read_text(encoding="utf-8"))
        (gallery / copy.name).write_text(json.dumps(_web_outputs(nb)), encoding="utf-8")
        image = first_plot(nb)
        card = f":::{{grid-item-card}} {notebook_title(nb)}\n:link: {copy.stem}\n:link-type: doc\n"
        if image:
            (gallery / "_thumbs" / f"{copy.stem}.png").write_bytes(image)
            card += f":img-top: _thumbs/{copy.stem}.png\n"
        cards.append(card + ":::\n")
    intro = (SITE / "gallery.md").read_text(encoding="utf-8")
    grid = "::::{grid} 1 2 2 3\n:gutter: 3\n\n" + "\n".join(cards) + "::::\n"
    (gallery / "index.md").write_text(
        intro + "\n" + grid + _toctree([c.stem for c in copies]), encoding="utf-8")
    # README.md is the home page, index.md: the one page that links to it says so.
    readme = src / "README.md"
    home = src / "index.md"
    readme.rename(home)
    for page in src.glob("*/*.md"):
        text = page.read_text(encoding="utf-8")
        if "](../README.md" in text:
            page.write_text(text.replace("](../README.md", "](../index.md"), encoding="utf-8")
    home.write_text(
        # the gallery's folder is its index page on the site
        home.read_text(encoding="utf-8").replace("](docs/examples/)", "](docs/examples/index.md)")
        + _toctree(SECTIONS), encoding="utf-8")

def sphinx_build(src: Path, out: Path, doctrees: Path,
                 **kwargs: object) -> subprocess.CompletedProcess:
    """Sphinx on ``src`` with the site's configuration; every warning an error."""
    cmd = [sys.executable, "-m", "sphinx", "-W", "-n", "--keep-going", "-q", "-b", "html",
           "-c", str(SITE), "-d", str(doctrees), str(src), str(out)]
    return subprocess.run(cmd, **kwargs)  # type: ignore[call-overload]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true",
                        help="first run the notebooks with no fresh executed copy")
    parser.add_argument("--out", type=Path, default=BUILD / "site")
    args = parser.parse_args()
    copies = executed_copies(args.execute)
    src = BUILD / "site-src"
    stage(src, copies)
    # a fresh build each time: the navigation of every page follows the home page's
    for old in (args.out, BUILD / "site-doctrees"):
        shutil.rmtree(old, ignore_errors=True)
    done = sphinx_build(src, args.out, BUILD / "site-doctrees")
    if done.returncode == 0:
        print(f"site: {args.out / 'index.html'}")
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
