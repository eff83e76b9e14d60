"""The judging engine: a learner's piece run on a spec's cases and compared with an exact answer.

Shared by the visible checks (`bncourse.checks`) and the hidden tests (`autograder.hidden`):
both build a piece's cases from its spec (bncourse.pieces), run the learner's function on
fresh copies of the inputs and compare the result with an exact float64 answer within the
spec's allowance (bncourse.rounding). Nothing here names a piece: what differs between
pieces is in their specs.
"""
from __future__ import annotations

import ast
import contextlib
import inspect

import numpy as np

from bncourse import stored
from bncourse.adapters import take_changes
from bncourse.cases import Case, changed_inputs, make_batch, shape_grid
from bncourse.pieces import spec
from bncourse.verdicts import Failure, Raised, compare, describe


def make_cases(piece, seed=0, count=12):
    """Inputs for one piece: fixed edge cases + `count` random shapes, float32 and float64,
    with large offsets and constant features; the piece's spec turns each batch into a call."""
    s = spec(piece)
    rng = np.random.default_rng(seed)
    cases = []
    for i, (n, d) in enumerate(shape_grid(rng, count)):
        dtype = np.float32 if i % 2 else np.float64
        offset = [0.0, 1e3, 1e4][(i // 2) % 3]  # each offset in both dtypes
        if dtype == np.float32:
            offset = min(offset, s.float32_offset)
        constant = int(d > 1 and i % 3 == 0)
        x = make_batch(rng, n, d, dtype, offset, constant)
        label = f"{np.dtype(dtype).name} x of shape {x.shape}" + (
            f", features offset by ~{offset:g}" if offset else "") + (
            ", one constant feature" if constant else "")
        cases.append(_with_defaults(s.make_case(rng, x, label, i), defaults(piece)))
    return cases


def defaults(piece):
    """{argument: default} of the piece's documented signature (literal defaults only)."""
    try:
        tree = ast.parse(f"def {spec(piece).signature.removeprefix('class ')}: pass")
    except SyntaxError:
        return {}
    a = tree.body[0].args
    pairs = list(zip(a.args[len(a.args) - len(a.defaults):], a.defaults))
    pairs += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
    found = {}
    for arg, node in pairs:
        try:
            found[arg.arg] = ast.literal_eval(node)
        except ValueError:
            pass
    return found


def _with_defaults(case, documented):
    """The case with every keyword argument that equals its documented default left out, so each
    piece is also called with its defaults (a wrong default cannot hide behind explicit values)."""
    left = [k for k, v in case.kwargs.items()
            if k in documented and type(v) is type(documented[k]) and v == documented[k]]
    if not left:
        return case
    kwargs = {k: v for k, v in case.kwargs.items() if k not in left}
    return Case(case.label + f" ({', '.join(left)} left to the default{'s' * (len(left) > 1)})", case.args, kwargs)


def pure(piece, fn):
    """What is recorded and judged for a piece: fn itself, or the function of arrays its spec
    builds around it (a stateful piece over a sequence of steps, a module over its life...)."""
    adapter = spec(piece).adapter
    return adapter(fn) if adapter else fn


def allowed_error(piece, case, exact, what="out", exact_all=None):
    """Largest |answer - exact| a correct implementation may show, element-wise. what: which
    output (for pieces with several); exact_all: all the exact outputs."""
    return spec(piece).allowed(case, exact, what, exact_all)


def outcome(fn, args, kwargs):
    """Call fn; return (output, None), or (None, (kind, message)) when it raises."""
    from bncourse.tripwire import ForbiddenCall
    try:
        return fn(*args, **kwargs), None
    except Raised as e:
        return None, (e.kind, e.text)
    except NotImplementedError as e:
        return None, ("not_implemented", f"{_unimplemented(fn, e)} is not implemented yet: replace "
                      "`raise NotImplementedError()` with your code")
    except ForbiddenCall as e:
        return None, ("forbidden", f"{_name(fn)} called torch's own normalisation: {e}")
    except Exception as e:  # the learner's code crashed: say how, briefly
        return None, ("raised", f"{_name(fn)} raised {type(e).__name__}: {e}")


def call(fn, case, may_change=()):
    """Run fn on fresh copies of the case's inputs; report exceptions and any change to its
    inputs: arrays and dicts here, and the models, layers, modules and tensors an adapter hands
    it (adapters.changes), but for the kinds of change its spec declares (may_change)."""
    args = case.fresh_args()
    before = case.fresh_args()
    take_changes()  # (left over from an earlier call that raised)
    out, error = outcome(fn, args, case.kwargs)
    changed = [words for kind, words in take_changes() if kind not in may_change]
    if error is not None:
        raise Failure(error[1], case, error[0])
    for i, key in changed_inputs(args, before):
        what = f"argument {i + 1}" + (f" (its entry '{key}')" if key else "")
        raise Failure(f"{_name(fn)} changed its input {what} in place (e.g. `x -= mean`); "
                      "write results into new arrays instead: the caller still needs its inputs",
                      case, "mutated")
    if changed:
        raise Failure(f"{_name(fn)} changed what it was given: {', '.join(changed)}. Work on copies, and "
                      "put back any mode or hook you change: the caller still needs its model and tensors "
                      "as they were", case, "mutated")
    return out


def _name(fn):
    return getattr(fn, "__name__", "your function")


name_of = _name


def _unimplemented(fn, error):
    """Which function still raises NotImplementedError: fn itself, or a step it calls."""
    tb = error.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    where = tb.tb_frame.f_code.co_name
    return _name(fn) if where in (_name(fn), "<module>") else f"{where} (called by {_name(fn)})"



def judge_case(piece, fn, case, expected):
    """Check one case. `expected(case)` returns the exact answer. Raises Failure."""
    s = spec(piece)
    out = call(fn, case, s.may_change)
    exact = expected(case)
    if s.verdict is not None:
        s.verdict(out, exact, case)
    elif s.outputs:
        if not (isinstance(out, (tuple, list)) and len(out) == len(s.outputs)):
            raise Failure(f"{piece} must return a tuple ({', '.join(s.outputs)}); got {describe(out)}",
                          case, "type")
        for name, got, want in zip(s.outputs, out, exact):
            compare(name, got, want, s.allowed(case, want, name, exact), case, _explainer(s, name, case))
    else:
        compare(f"{piece}'s output", out, exact, s.allowed(case, exact), case, _explainer(s, "out", case))


def _explainer(s, what, case):
    if s.explain is None:
        return None
    return lambda index, got, exact: s.explain(what, index, got, exact, case)


def expected_from(module, piece):
    """`expected(case)` for judge_case: what `module.<piece>` answers on the case's inputs."""
    return lambda case: getattr(module, piece)(*case.args, **case.kwargs)


def oracle_of(piece):
    """`expected(case)` for judge_case from the piece's torch oracle; for a piece without one,
    the visible checks' stored expected values (bncourse.stored: those cases only)."""
    oracle = spec(piece).oracle
    if oracle is None:
        return lambda case: stored.answer(piece, case.args, case.kwargs)
    return lambda case: oracle(*case.args, **case.kwargs)


def first_failure(piece, fn, cases, expected):
    """The Failure of fn's first wrong answer over `cases`, or None when all are right."""
    for case in cases:
        try:
            judge_case(piece, fn, case, expected)
        except Failure as failure:
            return failure
    return None


# ---------------------------------------------------------------- grading a piece on its own

def documented_signature(piece):
    """The inspect.Signature of the piece's documented call (its spec's signature), or None for a
    class, whose interface is its methods'."""
    text = spec(piece).signature
    if text.startswith("class "):
        return None
    params = text[text.index("(") + 1:text.rindex(")")]
    stub = {}
    exec(f"def stub({params}): pass", {}, stub)  # (the spec's own text: literal defaults only)
    return inspect.signature(stub["stub"])


def called_as_documented(piece, stand_in):
    """stand_in, callable every way the piece's documented signature may be called (positional,
    keyword, defaults left out): the call is bound to that signature, as the learner's own
    function would bind it, and handed on positionally. A wrong call raises TypeError, as it would."""
    signature = documented_signature(piece)
    if signature is None:
        return stand_in

    def part(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return stand_in(*bound.args, **bound.kwargs)
    part.__name__ = piece
    part.__signature__ = signature
    return part


def _keep_dtype(trusted, name):
    """Trusted maths computes in float64; hand back the dtype of the piece's first input, as a
    learner's would (stand_in calls it with every documented argument in place, positionally)."""
    def part(*args, **kwargs):
        dtype = np.asarray(args[0]).dtype
        out = trusted(*args, **kwargs)
        if isinstance(out, tuple):
            return tuple(np.asarray(o).astype(dtype) for o in out)
        return np.asarray(out).astype(dtype)
    part.__name__ = name
    return part


def stand_in(piece):
    """What takes the learner's `piece` while a later piece that calls it is judged: its trusted
    version, or torch's answer (its oracle) in the input's dtype; called as the learner's may be."""
    part = spec(piece)
    return called_as_documented(piece, part.trusted() if part.trusted else _keep_dtype(part.oracle, piece))


@contextlib.contextmanager
def trusted_parts(piece, namespace):
    """Inside the block, the earlier pieces that `piece` calls through `namespace` (a notebook's
    globals()) are torch's (their specs' oracles, or trusted stand-ins); the learner's own are
    put back afterwards. So a mistake in an earlier step never costs a later step its points."""
    names = [n for n in spec(piece).parts if namespace is not None and n in namespace]
    saved = {n: namespace[n] for n in names}
    try:
        for n in names:
            namespace[n] = stand_in(n)
        yield
    finally:
        if namespace is not None:
            namespace.update(saved)
