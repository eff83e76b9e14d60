"""A piece built from earlier pieces is judged with stand-ins for them (judge.trusted_parts). A
learner may call those pieces any way their documented signatures allow: positionally, by keyword
(`scale_shift_backward(dy=dout, x_hat=x_hat, gamma=gamma)`), with defaults left out. Every stand-in
must take every such call, and a correct answer written in any of these conventions keeps its points.
Generic over the registry: no piece is named here."""
import ast
import inspect

import pytest

from autograder import hidden, submissions
from bncourse import judge, pieces
from tests.catalogue import compile_piece
from tests.test_judge import answers, run_check

WITH_PARTS = [s.name for s in pieces.REGISTRY.values() if s.parts]
PARTS = sorted({(s.name, part) for s in pieces.REGISTRY.values() for part in s.parts
                if judge.documented_signature(part) is not None})
CONVENTIONS = ("positional", "every argument by keyword", "defaults left out", "optional ones by keyword")


def _is_default(value, default):
    if value is default:
        return True
    try:
        return type(value) is type(default) and bool(value == default)
    except (TypeError, ValueError):
        return False


def called(fn, signature, convention):
    """fn, called in `convention` whatever way its caller used (the arguments bound to `signature`)."""
    def shim(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        params = signature.parameters
        if convention == "positional":
            return fn(*bound.args, **bound.kwargs)
        if convention == "every argument by keyword":
            return fn(**bound.arguments)
        required = [n for n, p in params.items() if p.default is p.empty and p.kind != p.KEYWORD_ONLY]
        optional = {n: v for n, v in bound.arguments.items() if n not in required}
        if convention == "defaults left out":
            optional = {n: v for n, v in optional.items() if not _is_default(v, params[n].default)}
        return fn(*[bound.arguments[n] for n in required], **optional)
    shim.__name__ = getattr(fn, "__name__", "part")
    return shim


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("piece, part", PARTS, ids=[f"{p}->{q}" for p, q in PARTS])
def test_every_stand_in_takes_every_documented_call(piece, part, convention):
    """The stand-in that takes `part`'s place while `piece` is judged, called in `convention`,
    passes `part`'s own visible check."""
    ns = answers()
    with judge.trusted_parts(piece, ns):
        stand_in = ns[part]
    fn = called(stand_in, judge.documented_signature(part), convention)
    cases = judge.make_cases(part, seed=0, count=2)
    failure = judge.first_failure(part, judge.pure(part, fn), cases, judge.oracle_of(part))
    assert failure is None, f"{part}'s stand-in, called with {convention}: {failure} ({failure.case.label})"


def test_a_wrong_call_is_refused_as_python_would():
    ns = answers()
    piece, part = PARTS[0]
    with judge.trusted_parts(piece, ns):
        stand_in = ns[part]
    with pytest.raises(TypeError):
        stand_in(no_such_argument=1)


def parameter_names(part, stand_in):
    """The names a call of `part` may use: its documented signature's, or for a class (an
    autograd.Function) those of its forward after ctx."""
    signature = judge.documented_signature(part)
    if signature is None:
        return list(inspect.signature(stand_in.forward).parameters)[1:]
    return [n for n, p in signature.parameters.items() if p.kind == p.POSITIONAL_OR_KEYWORD]


class ByKeyword(ast.NodeTransformer):
    """Every call of an earlier piece (`part(...)`, or `Part.apply(...)` for a Function) rewritten
    to pass each positional argument by its documented name."""

    def __init__(self, names):
        self.names = names  # {part: [parameter names]}

    def visit_Call(self, node):
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "apply":
            func = func.value
        name = func.id if isinstance(func, ast.Name) else None
        if name in self.names and not any(isinstance(a, ast.Starred) for a in node.args):
            node.keywords = [ast.keyword(arg=n, value=a) for n, a in zip(self.names[name], node.args)] \
                + node.keywords
            node.args = []
        return node


def keyword_sources(piece):
    """The lesson's model solution, every call of an earlier piece made by keyword."""
    ns = answers()
    with judge.trusted_parts(piece, ns):
        names = {part: parameter_names(part, ns[part]) for part in pieces.spec(piece).parts}
    sources = submissions.solution_sources(pieces.spec(piece).lesson)
    rewritten = {k: ast.unparse(ByKeyword(names).visit(ast.parse(s))) for k, s in sources.items()}
    return sources, rewritten


@pytest.mark.parametrize("piece", WITH_PARTS)
def test_a_solution_calling_its_steps_by_keyword_keeps_every_point(piece):
    sources, rewritten = keyword_sources(piece)
    assert any(rewritten[k] != ast.unparse(ast.parse(s)) for k, s in sources.items()), \
        f"{piece}'s lesson calls no earlier piece"
    ns = answers()
    for source in rewritten.values():  # (a class may build on another cell's class)
        compile_piece(source, ns)
    ok, printed = run_check(piece, ns[piece])
    assert ok and "but with your own" not in printed, printed
    hidden.grade(piece, ns[piece], namespace=ns)


def test_the_rewrite_is_by_keyword():
    names = {"normalise": ["x", "mean", "var", "eps"]}
    out = ast.unparse(ByKeyword(names).visit(ast.parse("y = normalise(x, m, v, eps)")))
    assert out == "y = normalise(x=x, mean=m, var=v, eps=eps)"
