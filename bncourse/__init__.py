"""BatchNorm from scratch: the learner-side helpers of the course."""
import sys

# nbformat's schema checker imports rfc3987_syntax, which builds a grammar for ~0.7 s at import.
# Notebooks have no IRI fields, so the course's processes (lessons, grading runner, grader)
# skip it: a missing optional format checker is what jsonschema expects.
sys.modules.setdefault("rfc3987_syntax", None)
