"""The course's late-submission policy, applied by nbgrader while autograding.

nbgrader's AssignLatePenalties step asks this plugin for each notebook of a submission whose
timestamp (timestamp.txt, written by `nbgrader submit`) is after the assignment's due date
in the gradebook (`nbgrader db assignment add LESSON --duedate="YYYY-MM-DD HH:MM:SS UTC"`).
Without a due date nothing is late, so local grading (no due dates) is unaffected.
"""
import math

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Float


class PointsPerHourLate(LateSubmissionPlugin):
    """Take `points_per_hour` points off per started hour late (never more than the score)."""

    points_per_hour = Float(1.0, help="points taken off per started hour late").tag(config=True)

    def late_submission_penalty(self, student_id, score, total_seconds_late):
        if total_seconds_late <= 0:
            return None
        hours = math.ceil(total_seconds_late / 3600)
        return min(score, self.points_per_hour * hours)
