"""A small demo class for `make grade-demo`: model solutions, a correct-but-different
learner, some classic mistakes, an untouched notebook, a missing and a broken submission."""
import sys
from pathlib import Path

from autograder import submissions
from autograder.paths import REPO


def build_class(inbox):
    """Write INBOX/<student>/<lesson>/<lesson>.ipynb for the demo students; return the inbox."""
    sys.path.insert(0, str(REPO))
    from tests.catalogue import MUTANTS, VARIANTS

    bug = {m.name: m for m in MUTANTS}
    inbox = Path(inbox)
    lessons = submissions.lessons()

    def hand_in(student, lesson, answers=None, fill_rest=True):
        nb = submissions.filled_notebook(lesson, answers, fill_rest=fill_rest)
        submissions.write(nb, inbox / student / lesson / f"{lesson}.ipynb")

    def with_bugs(*names):
        return {lesson: {bug[n].piece: bug[n].source for n in names if bug[n].lesson == lesson}
                for lesson in lessons}

    for lesson in lessons:
        hand_in("ada_model_solution", lesson)
        hand_in("eve_einsum", lesson, {p: s for p, s in VARIANTS["einsum"].items()
                                       if p in submissions.solution_sources(lesson)})
    for student, names in {"ben_unbiased_swapped": ("var_unbiased", "gamma_beta_swapped"),
                           "cy_one_pass_eps": ("var_one_pass", "eps_outside_sqrt"),
                           "gus_ones_flipped": ("compact_dout_all_ones", "torch_update_flipped")}.items():
        for lesson, answers in with_bugs(*names).items():
            if answers:
                hand_in(student, lesson, answers)
    first = lessons[0]
    hand_in("dee_untouched", first, fill_rest=False)       # handed back the blank notebook;
    broken = inbox / "fay_broken_json" / first / f"{first}.ipynb"  # and nothing for the rest
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text('{"cells": [ this is not json')
    return inbox
