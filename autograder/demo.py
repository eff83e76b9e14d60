"""A small demo class for `make grade-demo`: model solutions, a correct-but-different
learner, some classic mistakes, an untouched notebook, a missing and a broken submission.
The demo's learners are its own: their answers are written here (the test suite's mutant
catalogue, tests/catalogue.py, is not part of the grader)."""
from pathlib import Path

from autograder import submissions

# a learner who does it another, correct way (einsum)
EINSUM = {
    "batch_mean": 'def batch_mean(x):\n    return np.einsum("nd->d", x) / x.shape[0]\n',
    "batch_variance": ('def batch_variance(x):\n    xc = x - np.einsum("nd->d", x) / x.shape[0]\n'
                       '    return np.einsum("nd,nd->d", xc, xc) / x.shape[0]\n'),
}
# learners with classic mistakes, two each
MISTAKES = {
    "ben_unbiased_swapped": {
        "batch_variance": "def batch_variance(x):\n    return x.var(axis=0, ddof=1)\n",
        "scale_and_shift": "def scale_and_shift(x_hat, gamma, beta):\n    return beta * x_hat + gamma\n",
    },
    "cy_one_pass_eps": {
        "batch_variance": ("def batch_variance(x):\n"
                           "    return (x ** 2).mean(axis=0) - x.mean(axis=0) ** 2\n"),
        "normalise": ("def normalise(x, mean, var, eps=1e-5):\n"
                      "    return (x - mean) / (np.sqrt(var) + eps)\n"),
    },
    "gus_direct_path_flipped": {
        "batchnorm_backward_staged": (
            "def batchnorm_backward_staged(dout, cache):\n"
            '    x_hat, var, eps, gamma = (cache[k] for k in ("x_hat", "var", "eps", "gamma"))\n'
            "    return dout * gamma / np.sqrt(var + eps), (dout * x_hat).sum(axis=0), dout.sum(axis=0)\n"),
        "update_running_stats": (
            "def update_running_stats(running_mean, running_var, batch_mean, batch_var, momentum=0.9):\n"
            "    return ((1 - momentum) * running_mean + momentum * batch_mean,\n"
            "            (1 - momentum) * running_var + momentum * batch_var)\n"),
    },
}

# what each of them plants: {student: {piece: the mistake's id in bncourse.misconceptions}}; the
# class report (python -m autograder report) must count exactly these
PLANTED = {
    "ben_unbiased_swapped": {"batch_variance": "unbiased", "scale_and_shift": "swapped"},
    "cy_one_pass_eps": {"batch_variance": "one_pass", "normalise": "eps_outside_sqrt"},
    "gus_direct_path_flipped": {"batchnorm_backward_staged": "direct_path_only",
                                "update_running_stats": "flipped"},
}
UNTOUCHED, BROKEN = "dee_untouched", "fay_broken_json"  # hand in only the first lesson


def build_class(inbox):
    """Write INBOX/<student>/<lesson>/<lesson>.ipynb for the demo students; return the inbox."""
    inbox = Path(inbox)
    lessons = submissions.lessons()
    pieces = {lesson: set(submissions.solution_sources(lesson)) for lesson in lessons}

    def hand_in(student, lesson, answers=None, fill_rest=True):
        nb = submissions.filled_notebook(lesson, answers, fill_rest=fill_rest)
        submissions.write(nb, inbox / student / lesson / f"{lesson}.ipynb")

    def mine(answers, lesson):
        return {p: code for p, code in answers.items() if p in pieces[lesson]}

    for lesson in lessons:
        hand_in("ada_model_solution", lesson)
        hand_in("eve_einsum", lesson, mine(EINSUM, lesson))
    for student, answers in MISTAKES.items():
        for lesson in lessons:
            if mine(answers, lesson):
                hand_in(student, lesson, mine(answers, lesson))
    first = lessons[0]
    hand_in(UNTOUCHED, first, fill_rest=False)       # handed back the blank notebook;
    broken = inbox / BROKEN / first / f"{first}.ipynb"  # and nothing for the rest
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text('{"cells": [ this is not json')
    return inbox
