import bncourse  # noqa: F401  (first: it spares every grading process a slow import)
