"""The learner's package holds no answers: nothing in bncourse/ computes a graded piece.

For each graded piece, every function defined at module level in bncourse/ (its subpackages
too) whose signature takes the piece's positional arguments (as the learner's function gets
them, and, for a piece with an adapter, as the adapted function of arrays gets them; keyword
defaults such as eps=1e-5 given where the function takes them by name), and for the pieces
that are classes every torch.autograd.Function / nn.Module class defined there (or made and
returned by a function there), is run on the piece's visible check inputs with torch's
normalisation kernels switched off for good: bncourse.tripwire armed, and tripwire.allowed()
(and banned()) a no-op so nothing can step over it. A candidate that then answers as
autograder.reference does within the judge's tolerance, the whole answer or one of its outputs
(y of (y, cache), dx of (dx, dgamma, dbeta)...), is an answer shipped to learners: the test
fails and names it. Candidates that raise (torch's kernels included) or answer anything else
are fine: the trusted steps come from the grading side, or from torch.
"""
import ast
import contextlib
import functools
import importlib
import inspect
import io
import signal
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from autograder import reference
from bncourse import judge, oracle, pieces, tripwire
from bncourse.cases import digest
from bncourse.pieces.spec import NORMALISATION_OPS

PACKAGE = Path(judge.__file__).parent
NOT_SCANNED = {"tripwire"}  # the guard itself: arm() and disarm() would undo the scan's own arming
CLASS_PIECES = {"BatchNormFunction": "Function", "BatchNorm1d": "Module", "BatchNorm2d": "Module"}
SECONDS = 10  # for one candidate on one piece's inputs; slower ones are not answers (and are listed)


class TimedOut(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds):
    def expire(signum, frame):
        raise TimedOut(f"more than {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def kernels_off():
    """torch's normalisation kernels raise ForbiddenCall inside, and nothing can step over it."""
    tripwire.arm(NORMALISATION_OPS)
    try:
        with mock.patch.object(tripwire, "allowed", contextlib.nullcontext), \
                mock.patch.object(tripwire, "banned", lambda ops: contextlib.nullcontext()):
            yield
    finally:
        tripwire.disarm()


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.stem not in NOT_SCANNED:
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield importlib.import_module(name), path


def _returned_definitions(path):
    """{function name: names of the classes it defines and returns} of a module's top level."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            defined = {n.name for n in ast.walk(node) if isinstance(n, ast.ClassDef)}
            returned = {n.value.id for n in ast.walk(node) if isinstance(n, ast.Return)
                        and isinstance(n.value, ast.Name)}
            if defined & returned:
                found[node.name] = defined & returned
    return found


@functools.cache
def candidates():
    """(functions, classes, class factories): [(\"module:name\", object)] defined in bncourse/."""
    functions, classes, factories, seen = [], [], [], set()
    for module, path in _modules():
        makers = _returned_definitions(path)
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != module.__name__ or id(obj) in seen:
                continue
            seen.add(id(obj))
            where = f"{module.__name__}:{name}"
            if inspect.isfunction(obj):
                functions.append((where, obj))
                if name in makers:
                    factories.append((where, obj))
            elif inspect.isclass(obj):
                classes.append((where, obj))
    return functions, classes, factories


def _kind_of(obj, kind):
    import torch
    base = {"Function": torch.autograd.Function, "Module": torch.nn.Module}[kind]
    return inspect.isclass(obj) and issubclass(obj, base) and obj is not base


def _binds(fn, args, kwargs=None):
    try:
        inspect.signature(fn).bind(*args, **(kwargs or {}))
        return True
    except (TypeError, ValueError):
        return False


def _defaults_taken(fn, defaults):
    """The piece's keyword defaults (eps=1e-5, ...) that fn takes by name."""
    try:
        names = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in defaults.items() if k in names}


class _Asked(Exception):
    pass


def learner_args(piece, case):
    """The positional arguments the piece's adapter hands the learner's function."""
    asked = []

    def spy(*args, **kwargs):
        asked.append(args)
        raise _Asked
    with contextlib.suppress(_Asked):
        judge.pure(piece, spy)(*case.fresh_args(), **case.kwargs)
    return asked[0] if asked else None


_open = open


def _open_no_descriptor(file, *args, **kwargs):
    if isinstance(file, int):  # init_running_stats(3) must not become open(3) and close fd 3
        raise TypeError("the scan opens no file descriptor")
    return _open(file, *args, **kwargs)


def guarded(fn, defaults=None):
    """fn, given the piece's keyword defaults it takes (a case may leave eps out), and whose
    exits (argparse's SystemExit...) are ordinary exceptions, as a wrong answer's are; an int
    argument is never opened as a file descriptor (bncourse.data.sha256 would close it)."""
    defaults = defaults or {}

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            with mock.patch("builtins.open", _open_no_descriptor):
                return fn(*args, **{**defaults, **kwargs})
        except Exception:
            raise
        except BaseException as e:
            raise RuntimeError(repr(e)) from None
    return run


def _constant(values):
    try:
        return all(np.array_equal(np.asarray(values[0]), np.asarray(v)) for v in values[1:])
    except Exception:
        return False


def scan(piece):
    """(flagged, slow, tried): the candidates that answer `piece`, or one of its outputs, as the
    reference does; those slower than SECONDS; how many were tried."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = judge.make_cases(piece, seed=0, count=4)
    exact = {digest(c.args, c.kwargs): judge.expected_from(reference, piece)(c) for c in cases}  # kernels on
    answers = list(exact.values())

    def expected(case):
        return exact[digest(case.args, case.kwargs)]

    def as_output(fn, i):
        """fn's answer as the reference's output i, the reference's other outputs around it."""
        def whole(*args, **kwargs):
            outputs = list(exact[digest(args, kwargs)])
            outputs[i] = fn(*args, **kwargs)
            return tuple(outputs)
        return whole

    def passed_through(i):
        """Output i is one of the inputs, unchanged (xc = x - mean sends dxc back to x as it is):
        any function returning its argument would 'answer' it; that holds no answer."""
        return all(any(np.shape(a) == np.shape(exact[digest(c.args, c.kwargs)][i])
                       and np.array_equal(a, exact[digest(c.args, c.kwargs)][i]) for a in c.args
                       if isinstance(a, np.ndarray)) for c in cases)

    outputs = [i for i in range(len(answers[0])) if not _constant([a[i] for a in answers])
               and not passed_through(i)] \
        if all(isinstance(a, tuple) and len(a) == len(answers[0]) for a in answers) else []
    functions, classes, factories = candidates()
    torchs = pieces.spec(piece).oracle  # torch's answer, declared: see test_the_oracles_are_torchs
    functions = [(where, f) for where, f in functions if f is not torchs]
    tries = []  # (which, what to judge)
    if piece in CLASS_PIECES:
        kind = CLASS_PIECES[piece]
        tries += [(where, judge.pure(piece, c)) for where, c in classes if _kind_of(c, kind)]
        for where, make in factories:
            for args in ((), (piece,)):
                if _binds(make, args):
                    with contextlib.suppress(Exception), kernels_off():
                        made = make(*args)
                        if _kind_of(made, kind):
                            tries.append((f"{where}{args!r}", judge.pure(piece, made)))
    adapted = judge.pure(piece, learner_args) is not learner_args
    if adapted and piece not in CLASS_PIECES:  # as the learner's function
        wanted = learner_args(piece, cases[0])
        tries += [(where, judge.pure(piece, guarded(f))) for where, f in functions if _binds(f, wanted)]
    signature = inspect.signature(getattr(reference, piece)).parameters.values()
    defaults = {p.name: p.default for p in signature if p.default is not p.empty}
    for where, f in functions:  # as the function of arrays (the adapter's, for an adapted piece)
        taken = _defaults_taken(f, defaults)
        if _binds(f, cases[0].args, taken):
            label = " (as the function of arrays)" if adapted else ""
            tries.append((where + label, guarded(f, taken)))
            tries += [(f"{where}{label} (as output {i})", as_output(guarded(f, taken), i)) for i in outputs]
    flagged, slow = [], []
    for where, fn in tries:
        try:
            with kernels_off(), time_limit(SECONDS), warnings.catch_warnings(), \
                    contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                if judge.first_failure(piece, fn, cases, expected) is None:
                    flagged.append(where)
        except TimedOut:
            slow.append(where)
        except Exception:
            pass  # broke outside the piece's call: not an answer either
        finally:
            plt.close("all")
    return flagged, slow, len(tries)


@pytest.mark.parametrize("piece", list(pieces.REGISTRY))
def test_no_function_in_the_learner_package_answers(piece):
    flagged, slow, tried = scan(piece)
    if slow:
        print(f"{piece}: slower than {SECONDS} s, not judged: {', '.join(slow)}")
    assert not flagged, (f"{piece}: answered as autograder.reference does, with torch's normalisation "
                         f"kernels off ({tried} candidates tried): {', '.join(flagged)}")


class _NoTorch:
    def __getattr__(self, name):
        raise RuntimeError(f"torch.{name} is taken away")


@pytest.mark.parametrize("piece", [p for p, s in pieces.REGISTRY.items()
                                   if s.oracle is not None and s.oracle.__module__ == oracle.__name__])
def test_the_oracles_are_torchs(piece):
    """The oracle the scan excuses computes nothing itself: without torch it cannot answer."""
    case = judge.make_cases(piece, seed=0, count=1)[0]
    with mock.patch.object(oracle, "torch", _NoTorch()), mock.patch.object(oracle, "F", _NoTorch()), \
            pytest.raises(RuntimeError, match="taken away"):
        pieces.spec(piece).oracle(*case.args, **case.kwargs)


def test_the_scan_finds_an_answer_put_back():
    """The scan can fail: a BatchNorm forward pass (y) put into a bncourse module is named."""
    from bncourse import misconceptions

    def _bn(x, gamma, beta, eps, ddof=0, eps_outside=False):
        mean, var = x.mean(axis=0), x.var(axis=0, ddof=ddof)
        return gamma * (x - mean) / ((np.sqrt(var) + eps) if eps_outside else np.sqrt(var + eps)) + beta
    _bn.__module__ = misconceptions.__name__
    candidates.cache_clear()
    try:
        with mock.patch.object(misconceptions, "_bn", _bn, create=True):
            flagged = scan("batchnorm_forward")[0]
    finally:
        candidates.cache_clear()
    assert "bncourse.misconceptions:_bn (as output 0)" in flagged, flagged
