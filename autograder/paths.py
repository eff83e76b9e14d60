"""Where the course's own folders are: the one module every other grading module may import
(it imports nothing of the course)."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "solutions"  # nbgrader's source: solutions and hidden tests, edited by hand
RELEASE = REPO / "course"  # nbgrader's release: generated from SOURCE
