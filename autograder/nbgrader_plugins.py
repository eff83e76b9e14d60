"""nbgrader preprocessors that make grades and feedback trustworthy.

- StderrIsNotFailure (autograde, right after Execute): nbgrader 0.9 scores a test cell 0 as
  soon as anything reaches stderr, so a harmless torch or numpy warning would cost a correct
  answer its points. Stderr text is kept, but as ordinary output; only errors fail a cell.
- PrivateFeedback (generate_feedback): feedback shows each failing test's message, never the
  hidden test source nor a traceback through the hidden helpers.
"""
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor
from nbgrader import utils


class StderrIsNotFailure(NbGraderPreprocessor):
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and utils.is_grade(cell):
            for output in cell.outputs:
                if output.output_type == "stream" and output.name == "stderr":
                    output.name = "stdout"
        return cell, resources


HIDDEN_PLACEHOLDER = "# (hidden tests ran here; their source is not shown)"


class PrivateFeedback(ClearHiddenTests):
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code":
            if self._remove_hidden_test_region(cell):
                cell.source = cell.source.rstrip("\n") + "\n" + HIDDEN_PLACEHOLDER
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    # the message only: a traceback would quote hidden test and helper source
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources
