"""The course's one-page reference sheets (docs/*.md), shipped in course/ as Markdown and as
printable, self-contained HTML: `python -m autograder release` writes them next to the lessons,
which link to them as ../notation.md and ../batchnorm_on_one_page.md.

    python -m autograder.sheets DEST     # DEST/{batchnorm_on_one_page,notation}.{md,html}

The formulas are plain Unicode, so the pages need no MathJax and print the same offline.
"""
import sys
from pathlib import Path

import mistune

DOCS = Path(__file__).resolve().parent.parent / "docs"
SHEETS = ("batchnorm_on_one_page", "notation")
STYLE = """
body { font: 11pt/1.4 system-ui, sans-serif; max-width: 48em; margin: 1.5em auto; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .3em; } h2 { font-size: 1.15em; margin: 1em 0 .3em; }
table { border-collapse: collapse; margin: .4em 0; } td, th { border: 1px solid #bbb; padding: .2em .5em; }
code { font-size: .95em; } ul { margin: .3em 0; padding-left: 1.3em; }
@media print { body { margin: 0; font-size: 9.5pt; } a { color: inherit; text-decoration: none; } }
"""


def render(name, docs=DOCS):
    """The sheet `name` (docs/<name>.md) as one HTML page; links to other sheets point at their HTML."""
    text = (docs / f"{name}.md").read_text(encoding="utf-8")
    for other in SHEETS:
        text = text.replace(f"({other}.md)", f"({other}.html)")
    body = mistune.create_markdown(escape=False, plugins=["table"])(text)
    title = text.splitlines()[0].lstrip("# ").strip()
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n")


def write(dest, docs=DOCS):
    """Both sheets, as Markdown and HTML, into dest; returns the paths written."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SHEETS:
        for path, text in ((dest / f"{name}.md", (docs / f"{name}.md").read_text(encoding="utf-8")),
                           (dest / f"{name}.html", render(name, docs))):
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m autograder.sheets DEST")
    for path in write(sys.argv[1]):
        print(path)
