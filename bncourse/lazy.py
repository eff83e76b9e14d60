"""Modules imported at their first use.

A NumPy lesson's grading kernel should not pay ~2 s for importing torch only because a course
module it loads (the oracle, the timing or training helpers of a demonstration) names torch:

    torch = lazy.Module("torch")      # imported when torch.<something> is first read
"""
import importlib


class Module:
    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name), attr)
