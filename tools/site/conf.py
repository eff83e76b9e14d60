"""Sphinx configuration of the course's website (tools/site/build.py writes the source tree and
passes the values that change per build with -D; see its docstring)."""
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # mathml.py beside this file
sys.path.insert(0, str(HERE.parents[1]))  # the repository, for autograder.feedback's converter

# the course's public address: the repository button and the lessons' Binder and Colab links
_spec = importlib.util.spec_from_file_location("_public_url", HERE.parents[1] / "tools" / "public_url.py")
public_url = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(public_url)

project = "BatchNorm from scratch"
author = "the course's authors"
copyright = "code MIT, lesson text CC BY 4.0"
root_doc = "docs/index"
extensions = ["myst_nb", "mathml"]
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]

# the notebooks are committed without outputs and published so: learners run them (Binder, Colab, make lab)
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3  # the guides link to each other's sections (#anchors)
# the lessons go from their title (H1) to H3 sections on purpose
suppress_warnings = ["myst.header"]

# maths as MathML, drawn by the browser: no MathJax, no script, no network (mathml.py)
html_math_renderer = "mathml"
html_theme = "sphinx_book_theme"
html_title = "BatchNorm from scratch"
html_copy_source = True  # the lesson notebooks, for the download button (audited like the pages)
html_show_sourcelink = False  # the download button links them
html_theme_options = {
    "repository_url": public_url.public_url(),
    "repository_branch": "HEAD",
    "path_to_docs": "",
    "launch_buttons": {"binderhub_url": "https://mybinder.org", "colab_url": "https://colab.research.google.com",
                       "notebook_interface": "jupyterlab"},
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": True,
}
