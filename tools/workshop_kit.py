"""The host's kit pages that must follow the course: written from it, never edited by hand.

    python tools/workshop_kit.py            # say which pages are stale (exit 1 if any)
    python tools/workshop_kit.py --write    # write them

docs/workshop/common-mistakes.md, the handout: every named mistake of the misconception
catalogue (bncourse.misconceptions.CATALOGUE), piece by piece in lesson order, with where it
shows in the learner's answer (from the probe that recognises it) and the words the visible
check and the feedback say, which name the mistake and its fix. So it says what the checks say.

docs/workshop/agendas.md, the tables between its markers: each agenda's lessons with the times
of tools/lesson_times.py (the title cells' "**Time:**"), the breaks, each lesson's pieces
with the most named mistakes (where people get stuck), and which graded answers the agenda's
lessons hand out when released together (autograder/recaps.py). An agenda that no longer fits its length
fails here rather than promise a room what the lessons cannot keep.
"""
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))
import lesson_times  # noqa: E402

from autograder import recaps  # noqa: E402
from bncourse import misconceptions, pieces  # noqa: E402

DOCS = REPO / "docs" / "workshop"
HANDOUT = DOCS / "common-mistakes.md"
AGENDAS = DOCS / "agendas.md"
START, END = "<!-- agenda: {} (tools/workshop_kit.py --write) -->", "<!-- end of agenda: {} -->"

# Each agenda: its name, its length in minutes, and its slots: a lesson id, or (what, minutes).
# A lesson's minutes come from lesson_times; the slack left over is said, never hidden.
AGENDAS_PLAN = {
    "2 hours": (120, [("Welcome, set-up check (`make doctor`), how the checks talk", 10),
                      "01_batch_statistics", "02_normalise_and_scale",
                      ("Wrap-up: the four steps on the one-page sheet, what lessons 03–07 add", 10)]),
    "half a day": (240, [("Welcome, set-up check (`make doctor`), how the checks talk", 10),
                         "01_batch_statistics", "02_normalise_and_scale", ("Break", 15),
                         "04_running_statistics",
                         ("Wrap-up: the mistakes the room made (handout, class report), what comes next", 15)]),
    "a full day": (480, [("Welcome, set-up check (`make doctor`), how the checks talk", 15),
                         "01_batch_statistics", "02_normalise_and_scale", ("Break", 15),
                         "03_backward", ("Lunch", 60), "04_running_statistics", ("Break", 15),
                         ("Wrap-up: the mistakes the room made, lessons 05-07 to take home", 15)]),
}
STUCK = 3  # pieces named per lesson, most named mistakes first


class StaleAgenda(ValueError):
    """An agenda whose slots no longer fit its length, or a lesson it names that does not exist."""


# ------------------------------------------------------------------ the handout

def _escape(text):
    """Markdown table text: code spans kept, outside them * | < > escaped (the messages are plain text)."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(part.replace("|", r"\|"))
        else:
            out.append(part.replace("\\", "\\\\").replace("*", r"\*").replace("|", r"\|")
                       .replace("<", "&lt;").replace(">", "&gt;"))
    return "".join(out)


class _Labels(dict):
    """A stand-in answer whose parts name themselves, to read which part a probe compares."""

    def get(self, key, default=None):
        return f"`cache['{key}']`"


def shows_in(spec, probe):
    """Where a mistake shows in the learner's answer, read from the probe that recognises it."""
    kind = type(probe)
    if kind is misconceptions.precision:
        return "right in float64, far off in float32 on features far from 0"
    if kind is misconceptions.moved_parameters:
        return "the model's parameters change while it measures"
    if kind is misconceptions.crashes:
        return f"an error saying “{probe.phrase}”"
    if kind in (misconceptions.module_like, misconceptions.module_answer):
        key = probe.answer_key
        return f"the module's `{key}`" if key.isidentifier() else f"the module's answer “{key}”"
    names = tuple(f"`{name}`" if " " not in name else name for name in spec.outputs)
    ordinals = ("first", "second", "third", "fourth")
    pair = ("the first returned value", _Labels())  # (y, cache) as a forward pass returns them
    samples = [names] if names else [pair, tuple(f"the {o} returned value" for o in ordinals)]
    for sample in samples:
        try:
            part = probe.output(sample)
        except Exception:  # a probe that reads numbers, not names: the answer as a whole
            part = None
        if part is sample:
            break
        if part is pair[1]:
            return "the second returned value"
        if isinstance(part, str):
            return part
    return "the returned values" if names else "the returned value"


def handout():
    lines = ["# Common mistakes, lesson by lesson", "",
             "<!-- written by tools/workshop_kit.py --write from bncourse/misconceptions.py; "
             "tests/test_workshop_kit.py fails when it is stale. Do not edit by hand. -->", "",
             "Every mistake the course's checks recognise by name. A visible check that recognises one "
             "prints \"Likely mistake:\" and the words in the last column, the mistake and its fix; the "
             "feedback page of a graded notebook says the same. *Shows in* is the part of the answer that "
             "gives it away.", ""]
    count = 0
    for lesson in pieces.lessons():
        known = [s for s in pieces.of_lesson(lesson) if misconceptions.CATALOGUE.get(s.name)]
        if not known:
            continue
        title = lesson.split("_", 1)
        lines += [f"## Lesson {title[0]} · {title[1].replace('_', ' ')}", ""]
        for spec in known:
            lines += [f'<a id="{spec.name}"></a>', "", f"### `{spec.name}`", "",
                      "| mistake | shows in | what the check says |", "|---|---|---|"]
            for m in misconceptions.CATALOGUE[spec.name]:
                lines.append(f"| {m.name.replace('_', ' ')} | {_escape(shows_in(spec, m.probe))} | "
                             f"{_escape(m.message)} |")
                count += 1
            lines.append("")
    unnamed = [s.name for s in pieces.REGISTRY.values() if not misconceptions.CATALOGUE.get(s.name)]
    listed = ", ".join(f"`{n}`" for n in unnamed)
    rest = (f" The pieces without a named mistake ({listed}) are judged part by part: their check names the "
            "output and the input that went wrong.") if unnamed else ""
    lines += [f"{count} named mistakes.{rest}", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ the agendas

def stuck(lesson):
    """The lesson's pieces with the most named mistakes, as handout links: where people get stuck."""
    ranked = sorted(pieces.of_lesson(lesson), key=lambda s: -len(misconceptions.CATALOGUE.get(s.name, ())))
    return ", ".join(f"[`{s.name}`](common-mistakes.md#{s.name}) ({len(misconceptions.CATALOGUE[s.name])})"
                     for s in ranked[:STUCK] if misconceptions.CATALOGUE.get(s.name))


def _clock(minutes):
    return f"{minutes // 60}:{minutes % 60:02d}"


def agenda_table(name):
    length, slots = AGENDAS_PLAN[name]
    known = pieces.lessons()
    rows = ["| from | to | what | minutes | where people get stuck (named mistakes) |", "|---|---|---|---|---|"]
    at = 0
    for slot in slots:
        if isinstance(slot, str):
            if slot not in known:
                raise StaleAgenda(f"agenda {name!r} names lesson {slot!r}, which is not a lesson")
            minutes = lesson_times.estimate(slot)["total"]
            what, where = f"Lesson `{slot}`", stuck(slot)
        else:
            (what, minutes), where = slot, ""
        rows.append(f"| {_clock(at)} | {_clock(at + minutes)} | {what} | {minutes} | {where} |")
        at += minutes
    if at > length:
        raise StaleAgenda(f"agenda {name!r} takes {at} minutes, more than its {length}: the lesson times "
                          "(tools/lesson_times.py) grew; change its lessons in tools/workshop_kit.py")
    rows.append(f"| {_clock(at)} | {_clock(length)} | Slack: questions, the slowest laptops | {length - at} | |")
    lessons = [slot for slot in slots if isinstance(slot, str)]
    handed = [f"`{lesson}` hands out `{other}`'s ({', '.join(what)})"
              for lesson, other, what in recaps.leaks(lessons)]
    note = (f"Released together, these lessons hand out answers: {'; '.join(handed)} ([why](releasing.md))."
            if handed else "Released together, these lessons hand out none of each other's answers.")
    return "\n".join([START.format(name), "", *rows, "", note, "", END.format(name)])


def agendas_page(text):
    """The agendas page with each agenda's table written between its markers."""
    for name in AGENDAS_PLAN:
        start, end = START.format(name), END.format(name)
        if start not in text or end not in text:
            raise StaleAgenda(f"{AGENDAS.relative_to(REPO)} has no markers for agenda {name!r} ({start} ... {end})")
        i, j = text.index(start), text.index(end) + len(end)
        text = text[:i] + agenda_table(name) + text[j:]
    return text


def pages():
    """{path: the text it should hold}."""
    return {HANDOUT: handout(), AGENDAS: agendas_page(AGENDAS.read_text())}


def main(argv):
    if argv not in ([], ["--write"]):
        print(__doc__, file=sys.stderr)
        return 2
    stale = [path for path, text in pages().items() if not path.exists() or path.read_text() != text]
    if argv == ["--write"]:
        for path, text in pages().items():
            path.write_text(text)
        print("written:", ", ".join(str(p.relative_to(REPO)) for p in pages()))
        return 0
    for path in stale:
        print(f"stale: {path.relative_to(REPO)} (run python tools/workshop_kit.py --write)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
