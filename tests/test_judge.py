"""The judging engine without nbgrader: visible checks and hidden tests on the catalogue."""
import contextlib
import io

import numpy as np
import pytest

from autograder import hidden, reference
from bncourse import checks, judge, pieces
from bncourse.misconceptions import CATALOGUE, diagnose
from bncourse.verdicts import Failure, compare
from tests.catalogue import MUTANTS, VARIANTS, compile_piece

PIECES = list(pieces.REGISTRY)


def answers(overrides=None):
    """A namespace with every piece (the reference's float64 maths as plain functions, then
    the overrides), like a learner's notebook."""
    ns = {"np": np}
    for source in VARIANTS["in_place"].values():
        compile_piece(source, ns)
    for source in (overrides or {}).values():
        compile_piece(source, ns)
    return ns


def expected_message(mutant):
    named = {m.name: m.message for m in CATALOGUE[mutant.piece]}
    return named.get(mutant.expect, mutant.expect)


def run_check(piece, fn):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ok = getattr(checks, f"check_{piece}")(fn)
    return ok, out.getvalue()


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("piece", PIECES)
def test_correct_variants_pass_visible_and_hidden(variant, piece):
    ns = answers(VARIANTS[variant])
    ok, printed = run_check(piece, ns[piece])
    assert ok, printed
    hidden.grade(piece, ns[piece], namespace=ns)
    assert diagnose(piece, judge.pure(piece, ns[piece])) == []  # a correct answer is never called a mistake


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_fails_and_is_named(mutant):
    ns = answers({mutant.piece: mutant.source})
    fn = ns[mutant.piece]
    message = expected_message(mutant)
    ok, printed = run_check(mutant.piece, fn)
    assert not ok
    assert message in printed, printed
    with pytest.raises(AssertionError) as failure:
        hidden.grade(mutant.piece, fn, namespace=ns)
    assert message in str(failure.value)


def test_every_catalogued_misconception_has_a_mutant_or_is_probed_independently():
    covered = {(m.piece, m.expect) for m in MUTANTS}
    for piece, known in CATALOGUE.items():
        for m in known:
            # each probe must at least recognise its own wrong formula, not a correct answer
            assert not m.probe(judge.pure(piece, answers()[piece])), f"{piece}/{m.name} fires on a correct answer"
    assert len(covered) >= 12


def test_not_implemented_is_reported_plainly():
    def batch_mean(x):
        raise NotImplementedError()
    ok, printed = run_check("batch_mean", batch_mean)
    assert not ok and "not implemented yet" in printed and "Traceback" not in printed


def test_an_unimplemented_earlier_step_is_named():
    ns = answers(VARIANTS["explicit_loops"])  # its forward calls batch_mean, batch_variance
    exec("def batch_variance(x):\n    raise NotImplementedError()", ns)
    ok, printed = run_check("batchnorm_forward", ns["batchnorm_forward"])
    # judged on its own (torch's steps in place of the learner's), it passes, and says which of
    # the learner's own steps is missing
    assert ok and "but with your own" in printed
    assert "batch_variance (called by batchnorm_forward) is not implemented yet" in printed


def test_torch_float32_stays_within_tolerance_on_hidden_cases():
    """The float32 bound is above torch's own float32 error (see calibrate_tolerances.py)."""
    import torch
    for case in hidden.hidden_cases("batchnorm_forward"):
        x, g, b = (torch.as_tensor(a) for a in case.args)
        y = torch.nn.functional.batch_norm(x, None, None, g, b, training=True,
                                           eps=case.kwargs.get("eps", 1e-5)).numpy()
        exact, _ = reference.batchnorm_forward(*case.args, **case.kwargs)
        compare("y", y, exact, judge.allowed_error("batchnorm_forward", case, exact), case)


def test_known_bug_breaks_float32_tolerance_on_large_offsets():
    """One-pass variance fails in float32 (most of all with large offsets) and in float64 only
    with large offsets: in exact arithmetic it is right, so only precision can catch it."""
    one_pass = next(m for m in MUTANTS if m.name == "var_one_pass")
    fn = answers({"batch_variance": one_pass.source})["batch_variance"]
    caught = []
    for case in hidden.hidden_cases("batch_variance"):
        try:
            judge.judge_case("batch_variance", fn, case, judge.oracle_of("batch_variance"))
        except Failure:
            caught.append(case)
    assert any(c.dtype == np.float32 and "offset by ~10000" in c.label for c in caught)
    assert all(c.dtype == np.float32 or "offset" in c.label for c in caught)


def test_later_piece_graded_with_reference_parts():
    """A wrong batch_variance must not cost batchnorm_forward its points."""
    bad = next(m for m in MUTANTS if m.name == "var_unbiased")
    ns = answers({"batch_variance": bad.source})
    hidden.grade("batchnorm_forward", ns["batchnorm_forward"], namespace=ns)
    assert ns["batch_variance"].__name__ == "batch_variance" and "ddof" in bad.source
    with pytest.raises(AssertionError):  # ...and the namespace is restored afterwards
        hidden.grade("batch_variance", ns["batch_variance"])


@pytest.mark.parametrize("piece", PIECES)
def test_answers_survive_the_files_between_sandbox_and_grader(piece, tmp_path):
    """Inputs (arrays, a cache dict, a formula f) are written, read back in 'the sandbox',
    answered, and the answers judged from their file: the verdict is the in-process one."""
    from bncourse import answers as rec
    ns = answers()
    cases = hidden.hidden_cases(piece)
    calls = hidden.calls_for(piece, cases)
    rec.save_calls(rec.calls_path(tmp_path, piece), calls)
    loaded = rec.load_calls(rec.calls_path(tmp_path, piece))
    assert [rec.digest(*c) for c in loaded] == [rec.digest(*c) for c in calls]
    arrays, meta = rec.answer_calls(piece, ns[piece], loaded, ns)
    rec._save(rec.answers_path(tmp_path, piece), arrays, meta)
    replay = rec.Replay(piece, calls, rec.load_answers(rec.answers_path(tmp_path, piece), len(calls)))
    assert hidden.verdict(piece, replay, cases)[0]


def test_a_backward_that_writes_into_the_cache_is_caught_through_the_files(tmp_path):
    from bncourse import answers as rec
    source = "def batchnorm_backward(dout, cache):\n" \
             "    cache['x_hat'] *= 1.0\n    cache['gamma'] *= 2.0\n" \
             "    return batchnorm_backward_staged(dout, {**cache, 'gamma': cache['gamma'] / 2})\n"
    ns = answers({"batchnorm_backward": source})
    cases = hidden.hidden_cases("batchnorm_backward")
    calls = hidden.calls_for("batchnorm_backward", cases)
    arrays, meta = rec.answer_calls("batchnorm_backward", ns["batchnorm_backward"], calls, ns)
    rec._save(rec.answers_path(tmp_path, "p"), arrays, meta)
    replay = rec.Replay("batchnorm_backward", calls, rec.load_answers(rec.answers_path(tmp_path, "p"), len(calls)))
    passed, message = hidden.verdict("batchnorm_backward", replay, cases)
    assert not passed and "changed its input argument 2 (its entry 'gamma') in place" in message


@pytest.mark.parametrize("piece", ["BatchNormFunction", "BatchNorm1d", "BatchNorm2d", "record_layer_inputs",
                                   "shift_per_step", "gradient_norms", "activation_summary", "batch_mean_noise"])
def test_correct_answers_pass_under_other_secret_keys(piece):
    """While grading a class every student gets other hidden inputs (keyed by a secret):
    correct answers must pass all of them, not only the fixed in-process ones (see also
    benchmarks/calibrate_tolerances.py, which tries many more)."""
    ns = answers()
    fn = judge.pure(piece, ns[piece])
    for key in (b"one", b"two", b"three", b"four", b"five", b"six", b"seven", b"eight"):
        cases = hidden.hidden_cases(piece, key)
        for source, expected in hidden.sources(piece).items():
            with judge.trusted_parts(piece, ns):
                failure = judge.first_failure(piece, fn, cases, expected)
            assert failure is None, f"{key}, against {source}: {failure} ({failure.case.label})"


def test_the_advice_on_own_steps_names_the_step_whose_check_fails():
    """A module that assembles torch's steps right but gives a wrong answer with the learner's own
    says which of their steps fails its own check (and no advice points at a check that passes)."""
    in_graph = next(m for m in MUTANTS if m.expect == "stats_in_graph" and m.piece == "training_forward")
    ns = answers({"training_forward": in_graph.source})
    ok, printed = run_check("BatchNorm1d", ns["BatchNorm1d"])
    assert ok and "Fix training_forward first: its own check fails" in printed, printed
    assert "make_parameters_and_buffers first" not in printed


def test_the_model_solution_reads_its_attributes_at_each_call_as_torch_does():
    """torch's test_batchnorm_buffer_update_when_stats_are_not_tracked, and the other attributes a
    user may change after construction, on the lesson's model solution against torch.nn.BatchNorm1d."""
    import torch

    from tests.experiment_runs import solution_functions
    mine = solution_functions("05_batchnorm_module")["BatchNorm1d"]
    x = torch.randn(8, 3, dtype=torch.float64) * 3 + 1
    for changes in ({"track_running_stats": False}, {"momentum": None, "eps": 1e-2}, {"training": False}):
        modules = [cls(3, dtype=torch.float64) for cls in (mine, torch.nn.BatchNorm1d)]
        outputs = []
        for m in modules:
            for name, value in changes.items():
                setattr(m, name, value)
            outputs.append([m(x).detach(), m(x + 1).detach()] + [b.clone() for b in m.buffers()])
        for got, want in zip(*outputs):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12, msg=f"after {changes}")
