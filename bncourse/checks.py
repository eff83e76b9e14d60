"""Visible checks: run a learner's piece on a handful of inputs, compare with torch
(BatchNorm1d, or autograd for gradients), print what passed, and on failure name the likely
mistake.

    checks.check_batch_mean(batch_mean)                         # prints, returns True/False
    checks.check_batch_mean(batch_mean, raise_on_failure=True)  # for test cells
"""
from bncourse import judge, oracle
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


def explain(piece, fn, failure):
    """A failure message that leads with the likely mistake, then the evidence."""
    lines = []
    quiet = failure.kind in ("not_implemented", "missing", "forbidden")  # nothing to diagnose
    if not quiet:
        for mistake in diagnose(piece, fn)[:1]:
            lines.append(f"Likely mistake: {mistake.message}.")
    lines.append(str(failure))
    if failure.case is not None and not quiet:
        lines.append(f"(input: {failure.case.label})")
    return "\n".join(lines)


def run_checks(piece, fn, raise_on_failure=False, count=4, namespace=None):
    """namespace: the notebook's globals(), for a piece built from earlier pieces. It is then
    judged with torch's versions of those pieces, so it passes when it assembles them right."""
    cases = judge.make_cases(piece, seed=VISIBLE_SEED, count=count)
    fn = judge.pure(piece, fn)
    with judge.trusted_parts(piece, namespace, oracle):
        failure = judge.first_failure(piece, fn, cases, oracle.expected(piece))
    if failure is not None:
        message = f"{piece}: " + explain(piece, fn, failure)
        if raise_on_failure:
            raise CheckFailed(message) from None
        print("✗ " + message.replace("\n", "\n  "))
        return Verdict(False)
    if namespace is not None and piece in judge.PARTS and not raise_on_failure:
        own = judge.first_failure(piece, fn, cases, oracle.expected(piece))
        if own is not None:
            print(f"✓ {piece} assembles the steps correctly, but with your own "
                  f"{', '.join(judge.PARTS[piece])} it gives a wrong answer:\n  {own}\n"
                  "  Fix the earlier step whose check fails above; this piece is graded on its own.")
            return Verdict(True)
    print(f"✓ {piece} passed {len(cases)} checks against {oracle.NAMES[piece]}: "
          f"{COVERS.get(piece, COVERS[None])}.")
    return Verdict(True)


COVERS = {  # what the visible checks tried, as the learner reads it
    None: "shapes (4, 3), (2, 1), (2, 5), (7, 1), ...; float32 and float64; features offset by up to "
          "1e4; constant features",
    "numerical_gradient": "float64 batches up to (8, 4); f a BatchNorm forward pass or tanh(x @ W + b); "
                          "random dout; several h",
    "init_running_stats": "several sizes; float32 and float64",
    "batchnorm_layer_forward": "sequences of 6 training and evaluation steps; momentum 0.1, 0.5 and "
                               "None; float32 and float64",
}
COVERS.update({p: COVERS[None] + "; random dout" for p in judge.BACKWARD})
COVERS.update(
    group_norm="4-D, 3-D and 2-D inputs; 1 to 4 groups, and one group per channel; float32 and float64; "
               "offsets up to 1e4",
    fold_batchnorm="Linear and Conv2d layers (kernel 1 and 3), with and without a bias; float32 and "
                   "float64; several eps",
    activation_summary="arrays of shapes (4, 3), (2, 1), (7, 1), (64, 8), ...; float32 and float64; values "
                       "offset by up to 1e4",
    record_layer_inputs="MLPs of 1 to 5 hidden layers inside nested blocks, with and without BatchNorm in "
                        "train mode; float32 and float64",
    shift_per_step="several numbers of checkpoints and layers; float32 and float64",
    largest_stable_lr="grids of 1 to 9 rates, ascending and shuffled, with diverged (nan, inf) runs, a "
                      "large rate that trained after a smaller one failed, and grids where none trained",
    gradient_norms="MLPs of 1 to 5 hidden layers, with and without BatchNorm in train mode, stale "
                   "gradients in .grad; float32 and float64",
    effective_smoothness="1 to 5 step sizes from 1e-3 to 1; float32 and float64",
    batch_mean_noise="several batch sizes, with and without a remainder; float32 and float64",
    BatchNormFunction="(M, C) inputs of shapes (4, 3), (2, 1), (7, 1), (64, 8), ...; float32 and float64, "
                      "features offset by up to 1e3 in float32 and 1e4 in float64; random dy; outputs and the "
                      "three gradients",
    BatchNorm1d="(N, C) and (N, C, L) inputs over train/eval steps; affine and tracking on/off; momentum "
                "0.1, 0.5 and None; bias=False; float32 and float64; an empty batch; outputs, gradients, "
                "buffers, state_dict round trips, errors for bad input and eps <= 0",
    BatchNorm2d="(N, C, H, W) inputs from 1x1 to 16x16 over train/eval steps; affine and tracking on/off; "
                "momentum 0.1, 0.5 and None; bias=False; float32 and float64; an empty batch; outputs, gradients, "
                "buffers, state_dict round trips, errors for bad input and eps <= 0")


def check_batch_mean(fn, raise_on_failure=False):
    """Step 1: one mean per feature, shape (D,)."""
    return run_checks("batch_mean", fn, raise_on_failure)


def check_batch_variance(fn, raise_on_failure=False):
    """Step 2: biased, two-pass variance per feature, shape (D,)."""
    return run_checks("batch_variance", fn, raise_on_failure)


def check_normalise(fn, raise_on_failure=False):
    """Step 3: (x - mean) / sqrt(var + eps) with the given statistics."""
    return run_checks("normalise", fn, raise_on_failure)


def check_scale_and_shift(fn, raise_on_failure=False):
    """Step 4: gamma * x_hat + beta, per feature."""
    return run_checks("scale_and_shift", fn, raise_on_failure)


def check_batchnorm_forward(fn, raise_on_failure=False, namespace=None):
    """Steps 1-4 in training mode, returning (y, cache). Pass namespace=globals() to judge
    the assembly on its own (with torch's steps 1-4 in place of yours)."""
    return run_checks("batchnorm_forward", fn, raise_on_failure, namespace=namespace)


def check_batchnorm_backward_staged(fn, raise_on_failure=False):
    """Lesson 03: (dx, dgamma, dbeta) through the graph, node by node."""
    return run_checks("batchnorm_backward_staged", fn, raise_on_failure)


def check_batchnorm_backward(fn, raise_on_failure=False):
    """Lesson 03: (dx, dgamma, dbeta) in closed form."""
    return run_checks("batchnorm_backward", fn, raise_on_failure)


def check_numerical_gradient(fn, raise_on_failure=False):
    """Lesson 03: centred differences of sum(f(x) * dout), compared with torch.autograd."""
    return run_checks("numerical_gradient", fn, raise_on_failure)


def check_update_running_stats(fn, raise_on_failure=False):
    """Lesson 04: the seed's running averages, momentum weighing the old value."""
    return run_checks("update_running_stats", fn, raise_on_failure)


def check_batchnorm_inference(fn, raise_on_failure=False):
    """Lesson 04: normalise with the running statistics."""
    return run_checks("batchnorm_inference", fn, raise_on_failure)


def check_update_running_stats_torch(fn, raise_on_failure=False):
    """Lesson 04: PyTorch's running averages (momentum weighs the new batch; unbiased variance)."""
    return run_checks("update_running_stats_torch", fn, raise_on_failure)


def check_init_running_stats(fn, raise_on_failure=False):
    """Lesson 04: a new layer's state, as torch.nn.BatchNorm1d starts it."""
    return run_checks("init_running_stats", fn, raise_on_failure)


def check_batchnorm_layer_forward(fn, raise_on_failure=False, namespace=None):
    """Lesson 04: train and eval steps of a layer with running statistics, compared with
    torch.nn.BatchNorm1d step by step. Pass namespace=globals() to judge it on its own (with
    torch's versions of the pieces it calls)."""
    return run_checks("batchnorm_layer_forward", fn, raise_on_failure, namespace=namespace)



def check_layer_norm(fn, raise_on_failure=False):
    """Lesson 07: each example normalised over its features, compared with torch.nn.LayerNorm."""
    return run_checks("layer_norm", fn, raise_on_failure)


def check_group_norm(fn, raise_on_failure=False):
    """Lesson 07: groups of channels normalised per example, compared with torch.nn.GroupNorm."""
    return run_checks("group_norm", fn, raise_on_failure)


def check_fold_batchnorm(fn, raise_on_failure=False):
    """Lesson 07: the folded layer's outputs against the layer followed by its BatchNorm."""
    return run_checks("fold_batchnorm", fn, raise_on_failure)


def check_activation_summary(fn, raise_on_failure=False):
    """Lesson 00: [mean, std, p15, p50, p85] of all the values a layer receives."""
    return run_checks("activation_summary", fn, raise_on_failure)


def check_record_layer_inputs(fn, raise_on_failure=False):
    """Lesson 00: the input of every nn.Linear, recorded by forward hooks that are removed again."""
    return run_checks("record_layer_inputs", fn, raise_on_failure)


def check_shift_per_step(fn, raise_on_failure=False):
    """Lesson 00: how far each layer's mean moves between checkpoints, in units of its std."""
    return run_checks("shift_per_step", fn, raise_on_failure)


def check_largest_stable_lr(fn, raise_on_failure=False):
    """Lesson 06: the largest learning rate whose run ended finite and below the starting loss."""
    return run_checks("largest_stable_lr", fn, raise_on_failure)


def check_gradient_norms(fn, raise_on_failure=False):
    """Lesson 06: the norm of each Linear weight's gradient, compared with torch.autograd."""
    return run_checks("gradient_norms", fn, raise_on_failure)


def check_effective_smoothness(fn, raise_on_failure=False):
    """Lesson 06: the largest change of the gradient per unit of distance along -g0."""
    return run_checks("effective_smoothness", fn, raise_on_failure)


def check_batch_mean_noise(fn, raise_on_failure=False):
    """Lesson 06: the spread of batch means over consecutive batches."""
    return run_checks("batch_mean_noise", fn, raise_on_failure)


def check_BatchNormFunction(fn, raise_on_failure=False):
    """Lesson 05: the autograd.Function's output and gradients, compared with torch.autograd."""
    return run_checks("BatchNormFunction", fn, raise_on_failure)


def check_BatchNorm1d(fn, raise_on_failure=False, namespace=None):
    """Lesson 05: the module against torch.nn.BatchNorm1d over train/eval steps, configurations,
    state_dict round trips and bad inputs."""
    return run_checks("BatchNorm1d", fn, raise_on_failure, count=8, namespace=namespace)


def check_BatchNorm2d(fn, raise_on_failure=False, namespace=None):
    """Lesson 05: the module against torch.nn.BatchNorm2d (statistics per channel over N * H * W)."""
    return run_checks("BatchNorm2d", fn, raise_on_failure, count=8, namespace=namespace)
