"""Visible checks: run a learner's piece on a handful of inputs, compare with torch
(BatchNorm1d, or autograd for gradients), print what passed, and on failure name the likely
mistake.

    checks.check_batch_mean(batch_mean)                         # prints, returns True/False
    checks.check_batch_mean(batch_mean, raise_on_failure=True)  # for test cells

There is one `check_<piece>` for every graded piece in bncourse.pieces; its docstring is the
piece's summary there. In the grading sandbox a check only says it was not run: the hidden tests
judge the piece on more inputs, and the check's torch oracle would cost a NumPy lesson's
grading kernel the import of torch.
"""
import inspect

from bncourse import judge, pieces, tripwire
from bncourse.misconceptions import diagnose

VISIBLE_SEED = 0


class CheckFailed(AssertionError):
    """A wrong answer. Jupyter shows just the message: no traceback through the checks."""

    def _render_traceback_(self):  # IPython's hook for custom tracebacks
        return [f"\x1b[0;31mCheckFailed\x1b[0m: {self}"]


class Verdict(int):
    """True/False that Jupyter does not echo under the check's own printout."""

    def _ipython_display_(self):
        pass


QUIET = ("not_implemented", "missing", "forbidden", "demonstration")  # failures that say it all: nothing to diagnose


def explain(piece, fn, failure):
    """A failure message that leads with the likely mistake, then the evidence."""
    return explanation(piece, fn, failure)[0]


def explanation(piece, fn, failure):
    """(message, mistake): explain()'s message and the Misconception it names first (None when
    it names none), so that a grader can keep the mistake as data instead of as words."""
    lines = []
    quiet = failure.kind in QUIET
    mistake = None if quiet else next(iter(diagnose(piece, fn)), None)
    if mistake is not None:
        lines.append(f"Likely mistake: {mistake.message}.")
    lines.append(str(failure))
    if failure.case is not None and not quiet:
        lines.append(f"(input: {failure.case.label})")
    return "\n".join(lines), mistake


def namespace_of(fn):
    """Where fn looks up the earlier pieces it calls: a function's globals (the notebook's, for
    a function defined there); for a class, its methods' globals."""
    if isinstance(fn, type):
        for cls in fn.__mro__:
            for member in vars(cls).values():
                if inspect.isfunction(member):
                    return member.__globals__
        return None
    return getattr(fn, "__globals__", None)


def run_checks(piece, fn, raise_on_failure=False, namespace=None):
    """For a piece built from earlier pieces, those are looked up where fn looks them up
    (namespace_of(fn), or `namespace` when given) and swapped for torch's while it is judged, so
    it passes when it assembles them right."""
    if tripwire.grading():  # its verdict would be thrown away: the hidden tests judge the piece
        print(f"(visible check of {piece}: not run while grading; the hidden tests judge it)")
        return Verdict(True)
    spec = pieces.spec(piece)
    if namespace is None and spec.parts:
        namespace = namespace_of(fn)
    cases = judge.make_cases(piece, seed=VISIBLE_SEED, count=spec.visible_count)
    fn = judge.pure(piece, fn)
    expected = judge.oracle_of(piece)
    with judge.trusted_parts(piece, namespace):
        failure = judge.first_failure(piece, fn, cases, expected)
    if failure is not None:
        message = f"{piece}: " + explain(piece, fn, failure)
        if raise_on_failure:
            raise CheckFailed(message) from None
        print("✗ " + message.replace("\n", "\n  "))
        return Verdict(False)
    if namespace is not None and spec.parts and not raise_on_failure:
        own = judge.first_failure(piece, fn, cases, expected)
        if own is not None:
            failing = failing_parts(piece, namespace)
            advice = (f"Fix {' and '.join(failing)} first: {'its' if len(failing) == 1 else 'their'} own "
                      "check fails" if failing else
                      "Each of them passes its own check, so look at what this piece hands them and how it "
                      "uses what they return")
            print(f"✓ {piece} assembles the steps correctly, but with your own "
                  f"{', '.join(p for p in spec.parts if p in namespace)} it gives a wrong answer:\n  {own}\n"
                  f"  {advice}; this piece is graded on its own.")
            return Verdict(True)
    against = spec.oracle_name if spec.oracle else "values stored from the reference"
    print(f"✓ {piece} passed {len(cases)} checks against {against}: {spec.covers}.")
    return Verdict(True)


def failing_parts(piece, namespace):
    """The earlier pieces that `piece` calls whose own visible check fails on the learner's
    version found in `namespace` (each judged as its own check judges it)."""
    failing = []
    for part in pieces.spec(piece).parts:
        if part not in namespace:
            continue
        cases = judge.make_cases(part, seed=VISIBLE_SEED, count=pieces.spec(part).visible_count)
        with judge.trusted_parts(part, namespace):
            if judge.first_failure(part, judge.pure(part, namespace[part]), cases, judge.oracle_of(part)):
                failing.append(part)
    return failing


def _check(piece):
    spec = pieces.spec(piece)

    def check(fn, raise_on_failure=False):
        return run_checks(piece, fn, raise_on_failure)
    extra = (f" Judged on its own: the pieces it calls ({', '.join(spec.parts)}) are torch's while it "
             "is checked." if spec.parts else "")
    check.__name__ = check.__qualname__ = f"check_{piece}"
    check.__doc__ = spec.summary + extra
    return check


def __getattr__(name):
    """check_<piece> for every piece in the registry."""
    if name.startswith("check_") and name[len("check_"):] in pieces.REGISTRY:
        check = _check(name[len("check_"):])
        globals()[name] = check
        return check
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + [f"check_{p}" for p in pieces.REGISTRY])
