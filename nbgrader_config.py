# nbgrader configuration for standard commands run from the repository root, e.g.
#   nbgrader generate_assignment 01_batch_statistics --force
#   nbgrader autograde 01_batch_statistics
#   nbgrader generate_feedback 01_batch_statistics
#   nbgrader export
# source = solutions/, release = course/, and a git-ignored grading workspace in grading/
# (submitted/, autograded/, feedback/, gradebook.db). The settings live in autograder/settings.py.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from autograder.settings import configure  # noqa: E402

configure(get_config())  # noqa: F821  (provided by nbgrader when it reads this file)
