"""While a lesson is graded, torch's own normalisation kernels refuse to run.

An answer must compute BatchNorm itself. So inside the grading sandbox the kernel that runs a
submission arms this tripwire before any of the learner's code: the CPU kernels of torch's
normalisation operators (bncourse.pieces.spec.NORMALISATION_OPS) are replaced, at PyTorch's
dispatcher, by one that raises ForbiddenCall. That
covers every road to them (torch.nn.functional.batch_norm, nn.BatchNorm1d, torch.batch_norm,
torch.ops.aten..., layer_norm or group_norm on a transposed batch). The course's own helpers
(the visible checks' torch oracle) step over it with `allowed()`.

Which operators an answer may not call is each piece's `bans` (bncourse.pieces); the kernel
arms those that every piece of the lesson bans, and each piece's own while it is recorded.
The tripwire is one of three guards; the grader also reads the submission's source for these
names and flags code that reaches around them (see the README's threat model).
"""
import contextlib
import os
import warnings

GRADING_ENV = "BNCOURSE_GRADING"  # set to the lesson id inside the grading sandbox
BANNED_ENV = "BNCOURSE_BANNED_OPS"  # comma-separated aten operators the grading kernel arms at start


class ForbiddenCall(RuntimeError):
    """An answer called one of torch's normalisation kernels while being graded."""


_library = None  # the armed torch.library.Library, or None
_ops = ()


def _refuse(*args, **kwargs):
    raise ForbiddenCall("torch's built-in normalisation (batch_norm, BatchNorm1d, layer_norm, ...) "
                        "is switched off while this lesson is graded: the answer must compute it "
                        "with its own code")


def arm(ops):
    """Make `ops` (aten operator names) raise ForbiddenCall on CPU until disarm()."""
    global _library, _ops
    import torch
    disarm()
    _ops = tuple(ops)
    if not _ops:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Overriding a previously registered kernel": intended
        _library = torch.library.Library("aten", "IMPL")
        for op in _ops:
            _library.impl(op, _refuse, "CPU")


def disarm():
    global _library
    if _library is not None:
        _library._destroy()
        _library = None


def arm_from_environment():
    """Called by the grading kernel before the notebook's first cell: the operators that no
    answer of the lesson may call (each piece's own bans are armed while it is recorded)."""
    ops = [op for op in os.environ.get(BANNED_ENV, "").split(",") if op]
    if ops:
        arm(ops)


def grading():
    """True inside the grading sandbox's kernel."""
    return bool(os.environ.get(GRADING_ENV))


@contextlib.contextmanager
def banned(ops):
    """Inside the block exactly `ops` refuse to run (a piece's bans while it is recorded);
    the earlier state comes back afterwards."""
    before = _ops if armed() else ()
    arm(ops)
    try:
        yield
    finally:
        if before:
            arm(before)
        else:
            disarm()


def armed():
    return _library is not None


@contextlib.contextmanager
def allowed():
    """For the course's own helpers only: torch's kernels work inside the block."""
    ops = _ops if armed() else ()
    disarm()
    try:
        yield
    finally:
        if ops:
            arm(ops)
