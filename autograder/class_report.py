"""The class report: what to re-explain after the break.

    python -m autograder report DIR      DIR/report.html and a summary on the terminal

Built only from what grading stored in DIR: grades.csv (who handed in what, scores, statuses) and
verdicts.csv (each graded piece's points and verdict: passed, kind, the named mistake's id). It
re-runs nothing and reads no message text: a mistake is counted by its id, and its words come
from bncourse.misconceptions' catalogue. The page is one offline file (figures embedded as PNG
data URIs, no external style sheet or script).
"""
import base64
import csv
import html
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from autograder import reports

REPORT = "report.html"
# the kinds of failure that are not a wrong answer (autograder.hidden.KINDS), in the order shown;
# an answer that raised an error is one of them, unless a named mistake explains it
NOT_ANSWERED = ("raised", "not_implemented", "missing", "forbidden", "not_own_work", "deleted", "unjudged")


def _others(t):
    """[(kind, learners)] of a piece's failures that are not wrong answers, in NOT_ANSWERED's order."""
    return sorted(t.other.items(), key=lambda kv: (NOT_ANSWERED.index(kv[0]) if kv[0] in NOT_ANSWERED
                                                   else len(NOT_ANSWERED), kv[0]))


class ReportError(RuntimeError):
    """DIR holds no graded class (the command exits non-zero)."""


@dataclass
class PieceTally:
    lesson: str
    piece: str
    max_points: float = 0.0
    learners: set = field(default_factory=set)  # every learner judged on this piece
    passed: set = field(default_factory=set)
    wrong: set = field(default_factory=set)  # answered, and wrong
    unnamed: set = field(default_factory=set)  # wrong, matching no named mistake
    mistakes: dict = field(default_factory=dict)  # mistake id -> set of learners
    other: dict = field(default_factory=dict)  # kind (NOT_ANSWERED) -> set of learners
    points: Counter = field(default_factory=Counter)  # points scored -> how many learners

    def unnamed_share(self):
        """The share of wrong answers that matched no named mistake (None without wrong answers)."""
        return len(self.unnamed) / len(self.wrong) if self.wrong else None


def load(workdir):
    """(grades.csv's rows, verdicts.csv's rows) of a grading workspace."""
    work = Path(workdir)
    missing = [name for name in ("grades.csv", reports.VERDICTS) if not (work / name).exists()]
    if missing:
        raise ReportError(f"{work} has no {' and no '.join(missing)}: grade the class first "
                          f"(python -m autograder grade INBOX --workdir {work})")
    with open(work / "grades.csv", newline="") as f:
        grades = list(csv.DictReader(f))
    return grades, reports.read_verdicts(work)


def tally(verdicts):
    """{lesson: {piece: PieceTally}} from verdicts.csv's rows, in the order they come."""
    lessons = {}
    for v in verdicts:
        t = lessons.setdefault(v["lesson"], {}).setdefault(v["piece"], PieceTally(v["lesson"], v["piece"]))
        who = v["student"]
        t.max_points = max(t.max_points, v["max_points"])
        t.learners.add(who)
        t.points[v["points"]] += 1
        if v["passed"]:
            t.passed.add(who)
        elif v["kind"] == "wrong":
            t.wrong.add(who)
            if v["mistake"]:
                t.mistakes.setdefault(v["mistake"], set()).add(who)
            else:
                t.unnamed.add(who)
        else:
            t.other.setdefault(v["kind"], set()).add(who)
    return lessons


def mistake_counts(verdicts):
    """{(lesson, piece, mistake id): learners who made it}: the report's headline numbers."""
    return {(lesson, piece, m): len(who) for lesson, by_piece in tally(verdicts).items()
            for piece, t in by_piece.items() for m, who in t.mistakes.items()}


def message_of(piece, mistake):
    from bncourse.misconceptions import CATALOGUE
    return next((m.message for m in CATALOGUE.get(piece, []) if m.name == mistake),
                "(no longer in the catalogue)")


def handed_in(grades):
    """(students, lessons, {(student, lesson): grades.csv row}): students in grades.csv's order,
    lessons in the course's (then any other in grades.csv's order)."""
    from autograder.submissions import lessons as course_lessons
    students = list(dict.fromkeys(r["student"] for r in grades))
    found = list(dict.fromkeys(r["lesson"] for r in grades))
    order = {lesson: i for i, lesson in enumerate(course_lessons())}
    lessons = sorted(found, key=lambda lesson: (order.get(lesson, len(order)), found.index(lesson)))
    return students, lessons, {(r["student"], r["lesson"]): r for r in grades}


def status_word(row):
    """A grades.csv row's status in one word: graded, missing, malformed, refused, error."""
    if row is None:
        return "absent"
    status = row["status"]
    for word in ("graded", "missing", "malformed", "refused"):
        if status.startswith(word):
            return word
    return "error"


# ------------------------------------------------------------------ the terminal

def _pct(x):
    return "–" if x is None else f"{100 * x:.0f}%"


def summary(grades, verdicts):
    students, lessons, cell = handed_in(grades)
    tallies = tally(verdicts)
    graded = sum(status_word(r) == "graded" for r in grades)
    lines = [f"Class report: {len(students)} learners, {len(lessons)} lessons, {graded} notebooks graded."]
    for lesson in lessons:
        words = Counter(status_word(cell.get((s, lesson))) for s in students)
        lines.append(f"\n{lesson}: " + ", ".join(f"{n} {w}" for w, n in words.items()))
        for piece, t in tallies.get(lesson, {}).items():
            line = f"  {piece}: {len(t.passed)}/{len(t.learners)} passed"
            if t.wrong:
                line += (f"; {len(t.wrong)} wrong, {len(t.unnamed)} of them with no named mistake "
                         f"({_pct(t.unnamed_share())})")
            line += "".join(f"; {len(who)} {kind.replace('_', ' ')}" for kind, who in _others(t))
            lines.append(line)
            for m, who in sorted(t.mistakes.items(), key=lambda kv: (-len(kv[1]), kv[0])):
                lines.append(f"      {len(who)} × {m}: {message_of(piece, m)}")
    ranked = ranking(tallies, lessons)
    lines.append("\nTo re-explain first (named mistakes, most learners first):" if ranked else
                 "\nNo named mistake was made.")
    lines += [f"- {n} learner{'s' * (n != 1)}: {lesson} / {piece} / {m}" for n, lesson, piece, m in ranked[:10]]
    return "\n".join(lines)


def ranking(tallies, lessons):
    """[(learners, lesson, piece, mistake id)], most learners first, then in course order."""
    return sorted(((len(who), lesson, piece, m) for lesson, by_piece in tallies.items()
                   for piece, t in by_piece.items() for m, who in t.mistakes.items()),
                  key=lambda r: (-r[0], lessons.index(r[1]) if r[1] in lessons else len(lessons), r[2], r[3]))


# ------------------------------------------------------------------ the page

def _figure_uri(fig):
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def score_figure(lesson, by_piece):
    """One horizontal bar per piece: how many learners scored each number of points."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(by_piece)
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(names) + 1.2))
    cmap = matplotlib.colormaps["RdYlGn"]
    for y, piece in enumerate(names):
        t, left = by_piece[piece], 0
        for points in sorted(t.points):
            n = t.points[points]
            share = points / t.max_points if t.max_points else 0.0
            ax.barh(y, n, left=left, color=cmap(0.1 + 0.8 * share), edgecolor="white")
            ax.text(left + n / 2, y, f"{points:g}/{t.max_points:g}" + (f" ×{n}" if n > 1 else ""),
                    ha="center", va="center", fontsize=8)
            left += n
    ax.set_yticks(range(len(names)), names, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("learners (each segment: points scored / points of the piece)")
    ax.set_title(f"{lesson}: score distribution per piece", fontsize=10)
    ax.xaxis.get_major_locator().set_params(integer=True)
    return _figure_uri(fig)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.graded { background: #e6f4e6; } .missing, .absent { background: #f4f4f4; color: #777; }
.malformed, .refused, .error { background: #fbe3e3; }
img { max-width: 100%; }
.muted { color: #777; }
"""


def _e(text):
    return html.escape(str(text))


def page(grades, verdicts, title="Class report"):
    students, lessons, cell = handed_in(grades)
    tallies = tally(verdicts)
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
           f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>",
           f"<p>{len(students)} learners, {len(lessons)} lessons. Counts are learners; a learner is "
           "counted once per piece. Built from <code>grades.csv</code> and <code>verdicts.csv</code>.</p>"]

    rows = ranking(tallies, lessons)
    out.append("<h2>Named mistakes: what to re-explain</h2>")
    if rows:
        out.append("<table id='mistakes'><thead><tr><th>lesson</th><th>piece</th><th>mistake</th>"
                   "<th>learners</th><th>what they did</th></tr></thead><tbody>")
        for n, lesson, piece, m in rows:
            out.append(f"<tr data-lesson='{_e(lesson)}' data-piece='{_e(piece)}' data-mistake='{_e(m)}' "
                       f"data-count='{n}'><td>{_e(lesson)}</td><td>{_e(piece)}</td><td><code>{_e(m)}</code>"
                       f"</td><td class='n'>{n}</td><td>{_e(message_of(piece, m))}</td></tr>")
        out.append("</tbody></table>")
    else:
        out.append("<p id='mistakes'>No named mistake was made.</p>")

    for lesson in lessons:
        by_piece = tallies.get(lesson, {})
        words = Counter(status_word(cell.get((s, lesson))) for s in students)
        out.append(f"<h2 id='lesson-{_e(lesson)}'>{_e(lesson)}</h2><p>"
                   + ", ".join(f"{n} {_e(w)}" for w, n in words.items()) + "</p>")
        if not by_piece:
            out.append("<p class='muted'>No notebook of this lesson was graded.</p>")
            continue
        out.append(f"<table class='pieces' data-lesson='{_e(lesson)}'><thead><tr><th>piece</th>"
                   "<th>judged</th><th>passed</th><th>wrong</th><th>wrong, no named mistake</th>"
                   "<th>raised an error, or not answered</th><th>named mistakes (learners)</th></tr></thead><tbody>")
        for piece, t in by_piece.items():
            share = t.unnamed_share()
            other = ", ".join(f"{len(w)} {k.replace('_', ' ')}" for k, w in _others(t)) or "–"
            named = "<br>".join(f"<code>{_e(m)}</code> {len(w)}: {_e(message_of(piece, m))}"
                                for m, w in sorted(t.mistakes.items(), key=lambda kv: (-len(kv[1]), kv[0])))
            out.append(f"<tr data-piece='{_e(piece)}' data-wrong='{len(t.wrong)}' "
                       f"data-unnamed='{len(t.unnamed)}'><td>{_e(piece)}</td>"
                       f"<td class='n'>{len(t.learners)}</td><td class='n'>{len(t.passed)}</td>"
                       f"<td class='n'>{len(t.wrong)}</td>"
                       f"<td class='n'>{len(t.unnamed)} ({_pct(share)})</td><td>{_e(other)}</td>"
                       f"<td>{named or '–'}</td></tr>")
        out.append("</tbody></table>")
        out.append(f"<img class='figure' alt='{_e(lesson)}: score distribution per piece' "
                   f"src='{score_figure(lesson, by_piece)}'>")

    out.append("<h2>Who handed in what</h2><p>Score for a graded notebook; <em>missing</em>: no "
               "notebook where grading looked; <em>malformed</em>: not a readable notebook; "
               "<em>refused</em>: links or special files; <em>error</em>: grading itself failed; "
               "<em>absent</em>: that lesson was not graded for this learner. Hover a cell for "
               "grades.csv's status.</p>")
    out.append("<table id='handed-in'><thead><tr><th>learner</th>"
               + "".join(f"<th>{_e(lesson)}</th>" for lesson in lessons) + "</tr></thead><tbody>")
    for s in students:
        out.append(f"<tr><td>{_e(s)}</td>")
        for lesson in lessons:
            row, word = cell.get((s, lesson)), status_word(cell.get((s, lesson)))
            shown = f"{row['score']}/{row['max_score']}" if word == "graded" else word
            note = _e(row["status"]) if row else "no row"
            out.append(f"<td class='{word}' data-status='{word}' title='{note}'>{_e(shown)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></body></html>")
    return "\n".join(out)


def write(workdir, out=None):
    """Write the page (default WORKDIR/report.html); return (its path, the terminal summary)."""
    grades, verdicts = load(workdir)
    path = Path(out) if out else Path(workdir) / REPORT
    path.write_text(page(grades, verdicts), encoding="utf-8")
    return path, summary(grades, verdicts)
