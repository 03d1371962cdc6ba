"""Sphinx configuration of the course's web site (``python book/build.py`` builds it; see there).

The sources are staged by book/build.py in book/_build/src with the notebooks already executed,
so MyST-NB renders them with execution off. Everything the theme needs ships in its pip package:
the build runs offline.
"""
import ast
from pathlib import Path

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent

# The course's address is written once, in common/colab.py: read its two constants from the
# source (ast), without importing the package and torch; executing colab.py alone would need the
# course on sys.path (it imports common.runtime), which `python book/build.py` does not give.
_COLAB = {node.targets[0].id: node.value.value
          for node in ast.parse((ROOT / "common" / "colab.py").read_text()).body
          if isinstance(node, ast.Assign) and len(node.targets) == 1
          and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Constant)}

project = "The ImageNet 5"
html_title = "The ImageNet 5"
extensions = ["myst_nb"]
exclude_patterns = ["downloads/**"]          # the notebooks to download, not pages

# MyST: the notebooks' $...$ and $$...$$ math, GitHub-style heading anchors ("#results").
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# MyST-NB: the notebooks arrive executed (book/build.py caches their execution).
nb_execution_mode = "off"
nb_merge_streams = True
# Outputs in Markdown (common.table, Recipe.table()) are GitHub-flavoured: with tables, as
# JupyterLab shows them (the default, CommonMark, has no tables and prints their pipes).
nb_render_markdown_format = "gfm"

html_theme = "sphinx_book_theme"
html_static_path = [str(BOOK / "static")]
html_css_files = ["book.css"]
html_show_sourcelink = False
html_theme_options = {
    "repository_url": f"https://github.com/{_COLAB['REPOSITORY']}",
    "repository_branch": _COLAB["BRANCH"],
    "path_to_docs": "",
    "use_repository_button": True,
    "use_download_button": True,
    "launch_buttons": {"colab_url": "https://colab.research.google.com"},
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "navbar_persistent": [],    # the search field is in the sidebar: no second one above the page
}
