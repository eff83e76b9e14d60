"""A correct answer never loses a point, whatever the grading key.

While a class is graded every student's hidden inputs come from a secret key. Each piece's
model solution and correct variants (tests/catalogue.VARIANTS) go through the hidden verdict
as grading runs it, under KEYS keys per piece shared out among its answers in turn: a smaller
run of benchmarks/sweep_keys.py, which tries 2,000 keys per piece and answer. Pieces whose keys
cost more get fewer (measured on a quiet 2-core machine, seconds per key): the module pieces,
BatchNormFunction and the training step (sweep_keys.SLOW, 0.25-0.85 s) SLOW_KEYS, the pieces in MEDIUM (0.1-0.35 s)
MEDIUM_KEYS. The keys are fixed, so a failure here is reproducible:
`python benchmarks/sweep_keys.py --key HEX piece`. The file takes 104-121 s on a quiet 2-core
machine (2 min 56 s under load); the 2,000-key run is the benchmark.
"""
import numpy as np
import pytest

from autograder import hidden
from benchmarks import sweep_keys
from bncourse import timing, verdicts
from bncourse.cases import Case

KEYS = 100
MEDIUM = ("gradient_norms", "numerical_gradient", "batchnorm_layer_forward", "record_layer_inputs",
          "check_input", "fold_batchnorm", "eval_forward")
MEDIUM_KEYS = 40
SLOW_KEYS = 20


def key_count(piece):
    return SLOW_KEYS if piece in sweep_keys.SLOW else MEDIUM_KEYS if piece in MEDIUM else KEYS


@pytest.mark.parametrize("piece", sweep_keys.PIECES)
def test_correct_answers_pass_under_many_keys(piece):
    answers = sweep_keys.answers_for(piece)
    names = list(answers)
    keys = sweep_keys.keys(key_count(piece), f"make test:{piece}")
    fails = []
    with timing.one_thread():
        for i, key in enumerate(keys):
            name = names[i % len(names)]  # each answer in turn: every key judged once
            passed, message, _ = sweep_keys.judged(piece, answers[name], key)
            if not passed:
                fails.append(f"{name} under key {key.hex()}:\n{message}")
    assert not fails, f"{len(fails)} of {len(keys)} keys fail a correct {piece}:\n" + "\n".join(fails[:3])


def test_the_sweep_sees_a_wrong_answer_fail():
    """The sweep's verdict is grading's: a catalogued mutant fails under the first key."""
    from tests.catalogue import MUTANTS, compile_piece
    mutant = next(m for m in MUTANTS if m.name == "numerical_one_sided")
    ns = compile_piece(mutant.source, {"np": np})
    passed, message, ratio = sweep_keys.judged("numerical_gradient", ns, sweep_keys.keys(1, "make test")[0])
    assert not passed and "one-sided" in message.lower() and ratio > 10


def test_third_derivatives_of_the_formulas_match_torch():
    """numerical_gradient's allowance rests on Formula.third_derivatives (written out): torch's
    forward-mode derivatives of the same f agree, at and away from x."""
    import torch
    from torch.func import jvp, vmap
    for case in hidden.hidden_cases("numerical_gradient")[:12]:
        f, x, dout = case.args
        xt, dt = torch.as_tensor(x), torch.as_tensor(dout)

        def loss(y, f=f, dt=dt):
            return (f(y, xp=torch) * dt).sum()

        def d3(y, e, loss=loss):
            def d2(t):
                return jvp(lambda u: jvp(loss, (u,), (e,))[1], (t,), (e,))[1]
            return jvp(d2, (y,), (e,))[1]
        directions = torch.eye(x.size, dtype=torch.float64).reshape((x.size,) + x.shape)
        for s in (0.0, 1e-4, -0.3):
            with torch.no_grad():
                want = vmap(d3)(xt + s * directions, directions).reshape(x.shape).numpy()
            got = f.third_derivatives(x, dout, s)
            assert np.allclose(got, want, rtol=1e-7, atol=1e-9 * np.abs(want).max()), case.label


def test_margins_record_how_close_answers_come():
    case = Case("x", (np.zeros(2),))
    with verdicts.margins() as ratios:
        verdicts.compare("out", np.array([1.0, 0.5]), np.array([1.0, 0.0]), np.array([1.0, 2.0]), case)
    assert ratios == [0.25]
