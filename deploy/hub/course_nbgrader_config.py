# nbgrader_config.py of an instructor's course root on the hub (copy it there; the course root
# is private to the instructor, mode 0700). It calls the repository's one configuration
# function, so `nbgrader ...` in the course root, the formgrader service and
# `python -m autograder grade submitted --workdir .` all see the same settings:
# nbgrader's layout (source/ release/ submitted/ autograded/ feedback/ gradebook.db) under
# this folder, the course's sandboxed grading and the late policy. The grading code
# (autograder/, bncourse/, solutions/) comes from the instructor's private copy on PYTHONPATH.
from pathlib import Path

from autograder.settings import configure

HERE = Path(__file__).resolve().parent
c = get_config()  # noqa: F821  (provided by nbgrader when it reads this file)
configure(c, root=HERE, source=HERE / "source", release=HERE / "release")
c.CourseDirectory.course_id = "bn101"  # the course id: the name of its formgrader service
