"""Sphinx configuration of lmermagic's documentation site (``make docs``).

scripts/build_docs.py lays the pages out in build/site-src as they sit in the repository
(README.md as the home page index.md, docs/, docs/examples/ with the executed notebooks,
benchmarks/), adds the API pages of docs/site/api/, and builds with ``-W -n``: any
warning, a broken link or cross-reference among them, fails the build.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import lmermagic  # noqa: E402

project = "lmermagic"
author = "the lmermagic developers"
copyright = "2026, the lmermagic developers"
release = lmermagic.__version__
version = release

extensions = [
    "myst_nb",  # Markdown pages (myst-parser) and executed notebooks
    "sphinx.ext.autodoc",
    "numpydoc",
    "sphinx_design",  # the gallery's cards
    "lmm_site",
]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# Markdown: the pages' own links ("usage.md#options") resolve to headings.
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence", "dollarmath"]
suppress_warnings: list[str] = []

# Notebooks: shown with the outputs `make demo` saved; never executed by the site build.
nb_execution_mode = "off"
nb_merge_streams = True

# API reference: the docstrings carry the types (numpydoc); signatures show no annotations,
# which name private modules' types.
autodoc_typehints = "none"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# A public name with no docstring fails the build. The sections (parameters with types,
# returns, raises, examples) are held by tests/test_docstrings.py; numpydoc's own PR01 would
# ask result classes to document their fields as constructor parameters, and they are
# attributes (made by lmermagic, not by the user).
numpydoc_validation_checks = {"GL08"}

html_theme = "pydata_sphinx_theme"
html_title = "lmermagic"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "icon_links": [],
}
html_static_path = ["_static"]
html_css_files = ["lmm.css"]
html_show_sourcelink = False
html_copy_source = False
