"""Lesson 01: the batch's statistics, one mean and one variance per feature."""
import numpy as np

from bncourse import oracle
from bncourse.cases import Case
from bncourse.pieces.spec import Spec
from bncourse.rounding import f64, unit_of

LESSON = "01_batch_statistics"


def _batch(rng, x, label, i):
    return Case(label, (x,))


def mean_allowed(case, exact, what="out", exact_all=None):
    """A sum of N values errs by ~unit * max|x| (whatever order it adds them in)."""
    return unit_of(case) * (np.abs(exact) + np.abs(f64(case.args[0])).max(axis=0))


def variance_allowed(case, exact, what="out", exact_all=None):
    """Two passes: the mean's rounding error enters squared; the sum of n squares errs by up to
    (n + 2) eps/2 relative (n - 1 additions in any order, the square, the difference, the
    division): more than the dtype's unit once n passes ~14 in float32."""
    x, unit = f64(case.args[0]), unit_of(case)
    relative = max(unit, (x.shape[0] + 2) * float(np.finfo(case.dtype).eps) / 2)
    return relative * np.abs(exact) + (unit * np.abs(x).max(axis=0)) ** 2



def _stats_layer(x):
    """torch's BatchNorm1d in x's dtype after one batch with momentum 1."""
    import torch
    layer = torch.nn.BatchNorm1d(x.shape[1], momentum=1.0, affine=False, dtype=torch.as_tensor(x).dtype)
    with torch.no_grad():
        layer(torch.as_tensor(x))
    return layer


def _native_mean(x):
    return _stats_layer(x).running_mean.numpy()


def _native_variance(x):
    return (_stats_layer(x).running_var * ((len(x) - 1) / len(x))).numpy()


SPECS = [
    Spec("batch_mean", LESSON, "batch_mean(x)", "Step 1: one mean per feature, shape (D,).",
         make_case=_batch, allowed=mean_allowed, oracle=oracle.batch_mean, native=_native_mean),
    Spec("batch_variance", LESSON, "batch_variance(x)", "Step 2: biased, two-pass variance per feature, shape (D,).",
         make_case=_batch, allowed=variance_allowed, oracle=oracle.batch_variance, native=_native_variance),
]
