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
names and flags code that reaches around them (see docs/threat-model.md).

Arming does not import torch (a NumPy lesson's kernel need not pay ~2 s for it): where torch
is not loaded yet, the operators are *wanted*, and an audit hook (which no code can remove)
registers them as `import torch` runs, before the importer gets the module. Torch reached past
the import statement (importlib, or hidden from sys.modules) is caught by `unwatched()`, which
bncourse.answers checks after each recorded call, and records that call again, armed.
"""
import contextlib
import importlib
import os
import sys
import warnings

GRADING_ENV = "BNCOURSE_GRADING"  # set to the lesson id inside the grading sandbox
BANNED_ENV = "BNCOURSE_BANNED_OPS"  # comma-separated aten operators the grading kernel arms at start


class ForbiddenCall(RuntimeError):
    """An answer called one of torch's normalisation kernels while being graded."""


_library = None  # the registered torch.library.Library, or None
_ops = ()  # the operators wanted off: registered in _library once torch is loaded
_hooked = False
_busy = False


def _refuse(*args, **kwargs):
    raise ForbiddenCall("torch's built-in normalisation (batch_norm, BatchNorm1d, layer_norm, ...) "
                        "is switched off while this lesson is graded: the answer must compute it "
                        "with its own code")


def arm(ops):
    """Make `ops` (aten operator names) raise ForbiddenCall on CPU until disarm(): at once where
    torch is loaded, else as soon as it is."""
    global _ops
    disarm()
    _ops = tuple(ops)
    if not _ops:
        return
    if "torch" in sys.modules:
        _register()
    else:
        _hook()


def _register():
    global _library
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Overriding a previously registered kernel": intended
        library = torch.library.Library("aten", "IMPL")
        for op in _ops:
            library.impl(op, _refuse, "CPU")
    _library = library


def _on_import(event, args):
    """Audit hook: the first `import torch...` loads torch here and registers the wanted ops."""
    global _busy
    if event != "import" or not _ops or _library is not None or _busy:
        return
    if str(args[0]).partition(".")[0] != "torch" or "torch" in sys.modules:
        return  # (torch half-imported: its own nested imports; unwatched() covers that road)
    _busy = True
    try:
        importlib.import_module("torch")
        _register()
    finally:
        _busy = False


def _hook():
    global _hooked
    if not _hooked:
        sys.addaudithook(_on_import)
        _hooked = True


def _torch_mapped():
    """Is torch's C library in this process (however its Python module was reached)?"""
    try:
        with open("/proc/self/maps") as f:
            return "libtorch" in f.read()
    except OSError:
        return False


def unwatched():
    """True when operators are wanted off but torch got loaded past the audit hook: the caller
    must `watch()` and run again whatever ran meanwhile."""
    return bool(_ops) and _library is None and ("torch" in sys.modules or _torch_mapped())


def watch():
    """Register the wanted operators now (after unwatched()); raises ForbiddenCall when torch
    was loaded where this process cannot reach it."""
    if "torch" not in sys.modules:
        raise ForbiddenCall("torch was loaded out of the grader's sight (removed from sys.modules)")
    _register()


def disarm():
    global _library, _ops
    _ops = ()
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
    before = _ops
    arm(ops)
    try:
        yield
    finally:
        arm(before)


def armed():
    """Are some operators off (registered, or to be as torch loads)?"""
    return bool(_ops)


@contextlib.contextmanager
def allowed():
    """For the course's own helpers only: torch's kernels work inside the block."""
    ops = _ops
    disarm()
    try:
        yield
    finally:
        arm(ops)
