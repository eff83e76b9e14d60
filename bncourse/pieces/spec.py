"""What a spec says about a graded piece (see bncourse.pieces)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

COVERS = ("shapes (4, 3), (2, 1), (2, 5), (7, 1), ...; float32 and float64; features offset by up to "
          "1e4; constant features")
# torch's normalisation kernels (aten operators): what an answer that computes BatchNorm itself
# may not call (bncourse.tripwire switches them off while it is graded)
NORMALISATION_OPS = (
    "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit.no_stats",
    "_native_batch_norm_legit_no_training", "_batch_norm_with_update", "_batch_norm_no_update",
    "native_layer_norm", "native_group_norm",
)


@dataclass(frozen=True)
class Spec:
    name: str                 # the learner's function (or class) name
    lesson: str               # the notebook it is graded in
    signature: str            # as the learner writes it
    summary: str              # one line: what the visible check compares
    make_case: Callable       # (rng, x, label, i) -> cases.Case, from a batch x that make_cases drew
    allowed: Callable         # (case, exact, what, exact_all) -> largest |answer - exact| allowed
    oracle: Callable | None   # torch's answer on a case's inputs; None: the visible check's
    #                           answers are stored data (no torch counterpart; see visible_data)
    oracle_name: str = "torch.nn.BatchNorm1d"  # what the answers are compared with, as messages say it
    outputs: tuple = ()       # names of the outputs, for a piece that returns several
    verdict: Callable | None = None   # (out, exact, case) -> raise Failure; None: compare outputs
    explain: Callable | None = None   # (what, index, got, exact, case) -> words naming the part of
    #                                   output `what` that is wrong (which step, which term), or None
    adapter: Callable | None = None   # fn -> a function of arrays (recorded and judged)
    parts: tuple = ()         # earlier pieces it may call, swapped for trusted ones while judged
    trusted: Callable | None = None   # () -> the stand-in put in a namespace for this piece
    bans: tuple = NORMALISATION_OPS   # torch kernels the answer may not call while graded
    allowed_helpers: tuple = ()       # the course's own modules the answer may use (none by default)
    may_change: tuple = ()    # what the piece may change in the objects it is handed (else they must
    #                           stay as they were): "parameters", "buffers", "mode", "hooks", ...
    covers: str = COVERS      # what the visible checks tried, as the learner reads it
    native: Callable | None = None    # torch's kernels in the input's dtype: the bar a correct float32
    #                                   answer must clear (benchmarks/calibrate_tolerances.py)
    visible_count: int = 4    # random shapes in the visible check, besides the fixed ones
    float32_offset: float = float("inf")  # largest feature offset in the float32 cases


