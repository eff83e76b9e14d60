"""The one nbgrader configuration of the course, used by the repository's
nbgrader_config.py (standard `nbgrader ...` commands) and by `python -m autograder`."""
import os
import sys
from pathlib import Path

from traitlets.config import Config

from autograder.paths import RELEASE, REPO, SOURCE

__all__ = ["CELL_TIMEOUT", "RELEASE", "REPO", "SOURCE", "configure", "make_config"]
CELL_TIMEOUT = 60  # seconds a single cell may run while grading
LATE_POINTS_PER_HOUR = 1.0  # late policy (autograder.late): points off per started hour late


def configure(c, root=REPO / "grading", source=SOURCE, release=RELEASE, db=None,
              cell_timeout=CELL_TIMEOUT, submitted="submitted"):
    """Fill traitlets config `c`. Grading steps live under `root` (git-ignored workspace);
    source and release are the repository's solutions/ and course/ unless given.
    submitted: the folder nbgrader autogrades from (`python -m autograder grade` gives its
    own staged copies, so that nbgrader's submitted/ is never written)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)  # nbgrader chdirs into it; a fresh clone has none
    # nbgrader runs `alembic` as a command: find it beside this Python even without an
    # activated virtual environment
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    c.CourseDirectory.root = str(root)
    # absolute paths: os.path.join(root, step, ...) then resolves to them
    c.CourseDirectory.source_directory = str(Path(source))
    c.CourseDirectory.release_directory = str(Path(release))
    c.CourseDirectory.submitted_directory = submitted
    c.CourseDirectory.autograded_directory = "autograded"
    c.CourseDirectory.feedback_directory = "feedback"
    c.CourseDirectory.db_url = f"sqlite:///{Path(db) if db else root / 'gradebook.db'}"
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__"]

    c.Execute.timeout = cell_timeout
    c.SandboxedExecute.release_directory = str(Path(release))
    c.SandboxedExecute.source_directory = str(Path(source))
    c.Execute.interrupt_on_timeout = True
    # no history file per kernel; and quiet the kernel's own start-up warnings on the terminal
    c.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:", "--IPKernelApp.log_level=ERROR"]

    from nbgrader.converters import Autograde, GenerateFeedback  # heavy: import lazily

    from autograder import feedback
    from autograder.feedback import FeedbackSummary
    from autograder.nbgrader_plugins import PrivateFeedback, SandboxedExecute, StderrIsNotFailure

    steps = list(Autograde.class_traits()["autograde_preprocessors"].default())
    assert steps[0].__name__ == "Execute"
    steps[0] = SandboxedExecute  # same traits as Execute (timeout, ...), run in a sandbox
    steps.insert(1, StderrIsNotFailure)  # right after Execute, before grades are saved
    c.Autograde.autograde_preprocessors = steps
    c.GenerateFeedback.preprocessors = (list(GenerateFeedback.class_traits()["preprocessors"].default())
                                        + [PrivateFeedback, FeedbackSummary])
    c.PrivateFeedback.enforce_metadata = False
    feedback.configure(c)  # the page: maths as MathML (offline), a summary table, titles, folds
    # late submissions (only where the gradebook has a due date): autograder.late
    c.AssignLatePenalties.plugin_class = "autograder.late.PointsPerHourLate"
    c.PointsPerHourLate.points_per_hour = LATE_POINTS_PER_HOUR
    # `nbgrader export`: grades.csv's per-piece columns (CanvasExport: --exporter=...)
    c.ExportApp.plugin_class = "autograder.exports.GradesExport"
    return c


def make_config(**kwargs):
    return configure(Config(), **kwargs)
