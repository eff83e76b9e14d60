"""Submissions that try to game the grader or break it, each with the outcome it must get.

Every cheat is lesson 01 handed in by one student. `answers` fills solution cells (a cell may
hold any code, as a learner's can); `edit` changes the notebook in other ways. `scores`
says what each piece must earn: 0, or "full" (a piece the trick does not touch keeps its
points). `says` is a phrase the failed test's message must contain, `flag` one that the
CSV's flags must contain. `{marker}`, `{repo}`, `{work}` and `{victim}` are filled in with
real paths by the test, which then checks that nothing outside the submission changed.
"""
from collections.abc import Callable
from dataclasses import dataclass, field

LESSON = "01_batch_statistics"
WRONG_MEAN = "def batch_mean(x):\n    return x.sum(axis=0)  # wrong: a sum, not a mean\n"
RIGHT_VARIANCE = ("def batch_variance(x):\n    mean = x.mean(axis=0)\n"
                  "    return ((x - mean) ** 2).mean(axis=0)\n")


@dataclass(frozen=True)
class Cheat:
    name: str
    answers: dict
    scores: dict
    says: str = ""
    flag: str = ""
    edit: Callable | None = None
    status: str = ""  # a phrase the row's status must contain
    tags: tuple = field(default=())


def _is_mean_test(cell):
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "test_batch_mean"


def _drop_test_cell(nb):
    nb.cells = [c for c in nb.cells if not _is_mean_test(c)]


def _blank_test_cell(nb):
    for cell in filter(_is_mean_test, nb.cells):
        cell.source = "pass  # nothing to see here"


CHEATS = [
    Cheat("patched_comparisons",
          {"batch_mean": "import numpy as np, torch\n"
                         "np.allclose = lambda *a, **k: True\nnp.array_equal = lambda *a, **k: True\n"
                         "np.testing.assert_allclose = lambda *a, **k: None\n"
                         "torch.allclose = lambda *a, **k: True\n" + WRONG_MEAN},
          {"batch_mean": 0, "batch_variance": "full"}, says="did not divide by N",
          flag="replaces np.allclose"),
    Cheat("patched_checks_and_assertion_error",
          {"batch_mean": "import builtins\nfrom bncourse import checks\n"
                         "checks.run_checks = lambda *a, **k: True\n"
                         "checks.check_batch_mean = lambda *a, **k: True\n"
                         "builtins.AssertionError = type('Quiet', (Exception,), dict())\n" + WRONG_MEAN},
          {"batch_mean": 0, "batch_variance": "full"}, says="did not divide by N",
          flag="replaces checks.run_checks"),
    Cheat("swallowed_errors",  # an IPython hook that hides every error of every cell
          {"batch_mean": "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n"
                         + WRONG_MEAN},
          {"batch_mean": 0, "batch_variance": "full"}, says="did not divide by N",
          flag="get_ipython"),
    Cheat("system_exit_when_judged",
          {"batch_mean": "def batch_mean(x):\n    raise SystemExit(0)\n"},
          {"batch_mean": 0, "batch_variance": "full"}, says="no answers of batch_mean"),
    Cheat("kernel_exit_in_a_later_piece",  # the kernel dies: what ran before still counts
          {"batch_variance": "import os\ndef batch_variance(x):\n    os._exit(0)\n"},
          {"batch_mean": "full", "batch_variance": 0}, says="kernel died",
          status="stopped early", flag="_exit"),
    Cheat("torch_batch_norm",
          {"batch_mean": "import torch\ndef batch_mean(x):\n"
                         "    layer = torch.nn.BatchNorm1d(x.shape[1], momentum=1.0, affine=False,"
                         " dtype=torch.float64)\n"
                         "    layer(torch.as_tensor(x, dtype=torch.float64))\n"
                         "    return layer.running_mean.numpy().astype(x.dtype)\n"},
          {"batch_mean": 0, "batch_variance": "full"}, says="BatchNorm1d"),
    Cheat("torch_batch_norm_disguised",  # no forbidden name in the source: the tripwire stops it
          {"batch_mean": "import torch\nF = torch.nn.functional\n"
                         "norm = getattr(F, 'batch' + '_norm')\n"
                         "def batch_mean(x):\n    t = torch.as_tensor(x, dtype=torch.float64)\n"
                         "    rm = torch.zeros(x.shape[1], dtype=torch.float64)\n"
                         "    norm(t, rm, torch.ones_like(rm), training=True, momentum=1.0)\n"
                         "    return rm.numpy().astype(x.dtype)\n"},
          {"batch_mean": 0, "batch_variance": "full"}, says="torch's own normalisation",
          flag="getattr() with a computed name"),
    Cheat("torch_past_the_import_hook",  # torch loaded by importlib, unseen by the audit hook
          {"batch_mean": "import importlib\n"
                         "def batch_mean(x):\n"
                         "    torch = importlib.import_module('to' + 'rch')\n"
                         "    F = importlib.import_module('to' + 'rch.nn.functional')\n"
                         "    t = torch.as_tensor(x, dtype=torch.float64)\n"
                         "    rm = torch.zeros(x.shape[1], dtype=torch.float64)\n"
                         "    getattr(F, 'batch' + '_norm')(t, rm, torch.ones_like(rm), training=True, momentum=1.0)\n"
                         "    return rm.numpy().astype(x.dtype)\n"},
          {"batch_mean": 0, "batch_variance": "full"}, says="torch's own normalisation", flag="importlib"),
    Cheat("hidden_reference",
          {"batch_mean": "from autograder import reference\n"
                         "def batch_mean(x):\n    return reference.batch_mean(x).astype(x.dtype)\n"},
          {"batch_mean": 0, "batch_variance": "full"}, says="the grader's own code"),
    Cheat("hidden_reference_disguised",  # importable only outside the sandbox
          {"batch_mean": "import importlib\n"
                         "ref = importlib.import_module('auto' + 'grader.refer' + 'ence')\n"
                         "def batch_mean(x):\n    return ref.batch_mean(x).astype(x.dtype)\n"},
          {"batch_mean": 0, "batch_variance": "full"}, says="batch_mean", flag="importlib"),
    Cheat("course_helpers",  # bncourse's oracle computes with torch, past the tripwire
          {"batch_mean": "from bncourse import oracle\ndef batch_mean(x):\n    return oracle.batch_mean(x)\n"},
          {"batch_mean": 0, "batch_variance": "full"}, says="imports the course's own bncourse.oracle"),
    Cheat("reads_the_solutions",
          {"batch_mean": "import json\n"
                         "path = '{repo}/solu' + 'tions/01_batch_statistics/01_batch_statistics.ipynb'\n"
                         "cells = json.load(open(path))['cells']\n"
                         "exec(next(''.join(c['source']) for c in cells\n"
                         "          if c['metadata'].get('nbgrader', {{}}).get('grade_id') == 'batch_mean'))\n"},
          {"batch_mean": 0, "batch_variance": "full"}, says="batch_mean", flag="calls exec()"),
    Cheat("vandal",  # a right answer that also tries to damage everything it can name (and
          # loses its points for naming the grader's files)
          {"batch_mean": "import os, pathlib, shutil, socket\nhits = []\n"
                         "for target in ['{repo}/solutions', '{repo}/course', '{repo}/autograder',\n"
                         "               '{work}/gradebook.db', '{work}/grades.csv',\n"
                         "               '{work}/staged/{victim}', '{inbox}/{victim}', '{marker}']:\n"
                         "    try:\n        p = pathlib.Path(target)\n"
                         "        shutil.rmtree(p) if p.is_dir() else p.write_text('owned')\n"
                         "        hits.append(target)\n    except OSError:\n        pass\n"
                         "try:\n    socket.create_connection(('pypi.org', 443), timeout=3)\n"
                         "    hits.append('network')\nexcept OSError:\n    pass\n"
                         "print('reached:', hits)\n"
                         "def batch_mean(x):\n    return x.mean(axis=0)\n"},
          {"batch_mean": 0, "batch_variance": "full"}, says="grader's files"),
    Cheat("detached_process_rewrites_grades",  # outlives the notebook, then edits the gradebook
          {"batch_mean": "import subprocess, sys\n"
                         "later = (\"import time, sqlite3, pathlib; time.sleep(4); \"\n"
                         "         \"pathlib.Path('{marker}').write_text('still here'); \"\n"
                         "         \"db = sqlite3.connect('{work}/gradebook.db'); \"\n"
                         "         \"db.execute('update grade set auto_score = 99'); db.commit()\")\n"
                         "subprocess.Popen([sys.executable, '-c', later], start_new_session=True)\n"
                         + WRONG_MEAN},
          {"batch_mean": 0, "batch_variance": "full"}, says="grader's files", flag="subprocess"),
    Cheat("edited_test_cell", {"batch_mean": WRONG_MEAN}, {"batch_mean": 0, "batch_variance": "full"},
          says="did not divide by N", edit=_blank_test_cell),
    Cheat("deleted_test_cell", {"batch_mean": WRONG_MEAN}, {"batch_mean": 0, "batch_variance": "full"},
          says="deleted", edit=_drop_test_cell),
    Cheat("forged_answers",  # answers computed by torch outside the answer, record_answers silenced
          {"batch_mean": "import numpy as np, torch\nimport bncourse.answers as answers\n"
                         "calls = answers.load_calls('.grading/batch_mean.calls.npz')\n"
                         "fake = [torch.nn.functional.batch_norm(torch.as_tensor(a[0]), None, None,"
                         " training=True) for a, k in calls]\n"
                         "answers.record_answers = lambda *a, **k: None\n" + WRONG_MEAN},
          {"batch_mean": 0, "batch_variance": "full"}, says="batch_norm"),
    Cheat("runaway_ignoring_interrupts",
          {"batch_variance": "import signal\ndef batch_variance(x):\n"
                             "    signal.signal(signal.SIGINT, signal.SIG_IGN)\n    while True:\n"
                             "        pass\n"},
          {"batch_mean": "full", "batch_variance": 0}, says="ignored the interrupt",
          status="stopped early", flag="signal", tags=("slow",)),
    Cheat("memory_hog",
          {"batch_variance": "import numpy as np\ndef batch_variance(x):\n    hog = []\n"
                             "    while True:\n        hog.append(np.ones(10**7))\n"},
          {"batch_mean": "full", "batch_variance": 0}, says="MemoryError"),
    Cheat("segfault",
          {"batch_variance": "import ctypes\ndef batch_variance(x):\n    ctypes.string_at(0)\n"},
          {"batch_mean": "full", "batch_variance": 0}, says="kernel died", status="stopped early",
          flag="ctypes"),
]
