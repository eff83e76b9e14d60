"""Lesson 03: the backward pass: each node's local derivative (one small piece per node of the
graph), the staged backward that chains them, the closed form, and numerical gradients to check
them."""
import numpy as np

from bncourse import oracle
from bncourse.cases import Case, Formula, kw, params
from bncourse.pieces.spec import COVERS, Spec
from bncourse.rounding import TOLERANCE_K, f64, unit_of

LESSON = "03_backward"
OUTPUTS = ("dx", "dgamma", "dbeta")


def forward_cache(x, gamma, beta, eps):
    """The cache of a training-mode forward pass (torch's, in float64), stored in x's dtype."""
    _, cache = oracle.batchnorm_forward(x, gamma, beta, eps)
    dtype = x.dtype
    return {"x": x, "mean": cache["mean"].astype(dtype), "var": cache["var"].astype(dtype), "eps": eps,
            "x_hat": cache["x_hat"].astype(dtype), "gamma": gamma, "beta": beta}


def _backward_case(rng, x, label, i):
    gamma, beta = params(rng, x.shape[1], x.dtype)
    eps = [1e-5, 1e-3][i % 2]
    dout = rng.standard_normal(x.shape).astype(x.dtype)  # random: all ones would hide mistakes
    return Case(label + f", eps={eps:g}, random dout", (dout, forward_cache(x, gamma, beta, eps)))


def backward_allowed(case, exact, what, exact_all=None):
    """dbeta sums |dout|; dgamma sums |dout| * (|x_hat| + x_hat's error); dx is
    gamma * inv_std * (dout - mean(dout) - x_hat * mean(dout * x_hat)), where x - mean
    recomputed from the cache carries ~unit * max|x| of error, i.e. in x_hat units
    max|x| * inv_std. An error e in x_hat reaches dx as e * mean(dout * x_hat), as
    x_hat * mean(dout * e) and as e * mean(dout * e); the last one rules where x_hat ~ 0 (a
    feature whose values are equal in float32, at an offset)."""
    unit = unit_of(case)
    dout, cache = (f64(case.args[0]), {k: f64(v) for k, v in case.args[1].items()})
    x, x_hat, gamma = cache["x"], cache["x_hat"], cache["gamma"]
    n = dout.shape[0]
    if what == "dbeta":
        return unit * (np.abs(exact) + np.abs(dout).sum(axis=0))
    inv_std = 1 / np.sqrt(cache["var"] + cache["eps"])
    x_hat_err = np.abs(x).max(axis=0) * inv_std
    if what == "dgamma":
        return unit * (np.abs(exact) + (np.abs(dout) * (np.abs(x_hat) + x_hat_err)).sum(axis=0))
    e = unit * x_hat_err
    terms = np.abs(dout) + np.abs(dout).mean(axis=0) \
        + (np.abs(x_hat) + x_hat_err) * np.abs(dout * x_hat).sum(axis=0) / n \
        + (np.abs(x_hat) + e) * x_hat_err * np.abs(dout).mean(axis=0)
    return unit * (np.abs(exact) + np.abs(gamma) * inv_std * terms)


DX_TERMS = ("dout", "mean(dout)", "x_hat * mean(dout * x_hat)")


def dx_terms(dout, x_hat, gamma, var, eps):
    """The three terms of dx = gamma / sqrt(var + eps) * (dout - mean(dout) - x_hat * mean(dout * x_hat)),
    each with the sign it has in dx."""
    dout, x_hat = f64(dout), f64(x_hat)
    scale = f64(gamma) / np.sqrt(f64(var) + eps)
    return {"dout": scale * dout, "mean(dout)": -scale * dout.mean(axis=0) * np.ones_like(dout),
            "x_hat * mean(dout * x_hat)": -scale * x_hat * (dout * x_hat).mean(axis=0)}


# The path from y to x that each term of dx is (lesson 03 names the path, not the term: the learner
# derives the terms only in its compact backward)
DX_PATHS = {"dout": "the direct path", "mean(dout)": "the path through the mean",
            "x_hat * mean(dout * x_hat)": "the path through the variance"}


def name_the_term(terms, got, exact, paths=False):
    """Which term of dx the error follows (its residual is a multiple of that term), in words: the
    term in the formula of dx, or with paths=True the path from y to x that the term is."""
    r = got - exact
    best = None
    for name, t in terms.items():
        tt = float((t * t).sum())
        if tt == 0:
            continue
        c = float((r * t).sum()) / tt
        rest = np.linalg.norm(r - c * t) / max(np.linalg.norm(r), 1e-300)
        if rest < 0.2 and (best is None or rest < best[2]):
            best = (name, c, rest)
    if best is None:
        return None
    name, c, _ = best
    factor = 1 + c  # the learner's term is this many times the right one
    how = ("is missing" if abs(factor) < 0.1 else "has the wrong sign" if abs(factor + 1) < 0.1
           else "is counted twice" if abs(factor - 2) < 0.1 else f"is {factor:.2g} times what it should be")
    if paths:
        return f"(its error follows {DX_PATHS[name]} from y back to x: that path {how})"
    return (f"(its error is the term {name} of dx = gamma / sqrt(var + eps) * (dout - mean(dout) - "
            f"x_hat * mean(dout * x_hat)): that term {how})")


def _backward_explain(what, index, got, exact, case):
    if what != "dx":
        return None
    dout, cache = case.args
    return name_the_term(dx_terms(dout, cache["x_hat"], cache["gamma"], cache["var"], cache["eps"]), got, exact,
                         paths=True)


def _gradient_case(rng, x, label, i):
    """A small float64 x, a formula f and a random dout shaped like f(x)."""
    n, d = max(min(x.shape[0], 8), 2), min(x.shape[1], 4)
    x = rng.standard_normal((n, d)) * rng.uniform(0.5, 2.0, d) + rng.normal(0, 1, d)
    if i % 2:
        f = Formula("tanh_layer", W=rng.normal(0, 1 / np.sqrt(d), (d, 3)), b=rng.normal(0, 0.5, 3))
    else:
        f = Formula("batchnorm", gamma=rng.normal(1, 0.5, d), beta=rng.normal(0, 1, d))
    dout = rng.standard_normal(f(x).shape)
    kwargs = {"h": [1e-5, 1e-4, 1e-6][i % 3]} if i % 4 else {}
    return Case(f"float64 x of shape {x.shape}, {f!r}, random dout" + kw(kwargs), (f, x, dout), kwargs)


def central_difference_error(case, exact, what="out", exact_all=None):
    """How far a correct centred difference (L(x + h e_i) - L(x - h e_i)) / 2h, L = sum(f(x) * dout),
    computed in float64, may land from the exact gradient (torch.autograd), element-wise.

    truncation: with phi(s) = L(x + s e_i), Taylor's remainder of the centred difference is
      h^2/12 (phi3(s1) + phi3(s2)), s1 in (0, h), s2 in (-h, 0), phi3 the third derivative:
      at most h^2/6 max|phi3| over [-h, h] (Formula.third_derivatives, at s = -h, 0, h: the
      cases' f bend on the scale of sqrt(var + 1e-5) >= 3e-3 or of 1/|W|, >= 30 h, so these
      samples give the maximum to a fraction of a per cent). A correct answer shows this term
      in full (it is h^2/6 phi3(0) + O(h^4)), so it is counted three times: correct answers are
      to stay well under their allowance (the key sweep asks for half at most).
    rounding: each float64 L carries ~eps * sum|dout| * (|f| + the size f's own rounding scales
      with); the difference of two of them is divided by 2h. The steps x_i +- h are rounded
      too: the step taken is 2h to within eps |x_i|, a relative eps |x_i| / 2h.
    A one-sided difference is off by h/2 |phi''|, orders of magnitude more than h^2/3 |phi3|
    on most inputs; dividing by h instead of 2h doubles the answer."""
    f, x, dout = case.args
    h = case.kwargs.get("h", 1e-5)
    eps = float(np.finfo(np.float64).eps)
    x, dout = f64(x), f64(dout)
    fx = f(x)
    if f.kind == "batchnorm":  # (x - mean) / std: the mean's and the variance's rounding
        std = np.sqrt(x.var(axis=0) + 1e-5)
        size = np.abs(f.params["gamma"]) * np.abs(x).max(axis=0) / std * (1 + np.abs(x - x.mean(axis=0)) / std) \
            + np.abs(f.params["beta"])
    else:  # tanh(x @ W + b): the sum's rounding, times tanh's slope
        size = (1 - fx ** 2) * (np.abs(x) @ np.abs(f.params["W"]) + np.abs(f.params["b"]))
    rounding_of_l = TOLERANCE_K * eps * (np.abs(dout) * (np.abs(fx) + size)).sum()
    rounding = rounding_of_l / h + TOLERANCE_K * eps * np.abs(x) / (2 * h) * np.abs(exact)
    third = np.max([np.abs(f.third_derivatives(x, dout, s)) for s in (-h, 0.0, h)], axis=0)
    return 3 * h ** 2 / 6 * third + rounding


# ---------------------------------------------------------------- the nodes of the graph
# Each node's backward takes the gradient arriving at the node's output and the values its forward
# pass read, and returns the gradient for each of its inputs (shaped like that input).

def _node_values(rng, x, i):
    """The forward pass's values at each node for the batch x, exact (float64) then in x's dtype,
    and an eps."""
    eps = [1e-5, 1e-3][i % 2]
    x64 = f64(x)
    mean = x64.mean(axis=0)
    xc = x64 - mean
    var = (xc ** 2).mean(axis=0)
    s = np.sqrt(var + eps)
    gamma, _ = params(rng, x.shape[1], x.dtype)
    values = {"x": x64, "mean": mean, "xc": xc, "var": var, "s": s, "r": 1 / s, "x_hat": xc / s}
    return {k: v.astype(x.dtype) for k, v in values.items()} | {"gamma": gamma}, eps


def _upstream(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)  # random: all ones would hide mistakes


def _node_case(inputs):
    """make_case for a node: inputs(values, upstream(shape), eps) -> (args, what they are)."""
    def make(rng, x, label, i):
        v, eps = _node_values(rng, x, i)
        n, d = x.shape
        args, words = inputs(v, lambda *shape: _upstream(rng, shape, x.dtype), eps, n, d)
        return Case(f"{label}, {words}", args)
    return make


def _sums(case, exact, terms):
    """A sum over the batch of products: its rounding scales with the sum of |terms|."""
    return unit_of(case) * (np.abs(exact) + np.abs(terms).sum(axis=0))


def _elementwise(case, exact, what="out", exact_all=None):
    """A product or quotient of a few values: a few roundings, relative to the result."""
    return unit_of(case) * np.abs(exact)


def _scale_shift_allowed(case, exact, what, exact_all=None):
    dy, x_hat, _ = (f64(a) for a in case.args)
    return {"dx_hat": lambda: _elementwise(case, exact), "dgamma": lambda: _sums(case, exact, dy * x_hat),
            "dbeta": lambda: _sums(case, exact, dy)}[what]()


def _product_allowed(case, exact, what, exact_all=None):
    dx_hat, xc, _ = (f64(a) for a in case.args)
    return _elementwise(case, exact) if what == "dxc" else _sums(case, exact, dx_hat * xc)


def _centre_allowed(case, exact, what, exact_all=None):
    return _elementwise(case, exact) if what == "dx" else _sums(case, exact, f64(case.args[0]))


def _factor(got, exact, case):
    """When the wrong gradient is a multiple of the right one (a sign, a lost 1/N, a factor 2): which."""
    got, exact = f64(got), f64(exact)
    size = float((exact * exact).sum())
    if size == 0:
        return ""
    c = float((got * exact).sum()) / size
    if np.abs(got - c * exact).max() > 1e-6 * np.abs(got - exact).max() or abs(c - 1) < 1e-3:  # entry by entry
        return ""
    rows = [np.shape(a)[0] for a in case.args if np.ndim(a) == 2]
    if abs(c + 1) < 1e-3:
        return ": it has the wrong sign"
    for n in rows[:1]:
        if abs(c - n) < 1e-3 * n:
            return f": it is N = {n} times too large"
        if abs(c * n - 1) < 1e-3:
            return f": it is N = {n} times too small"
    return f": it is {c:.4g} times the right one"


def _names_the_node(node, inputs):
    """explain: which gradient of which node is wrong, in the graph's terms, and how when it is a
    multiple of the right one."""
    def explain(what, index, got, exact, case):
        return f"(the gradient that the node {node} sends back to {inputs.get(what, what)}{_factor(got, exact, case)})"
    return explain


NODES = (  # (name, signature, the node's forward, outputs -> the input each goes to, inputs, allowed)
    ("scale_shift_backward", "scale_shift_backward(dy, x_hat, gamma)", "y = gamma * x_hat + beta",
     {"dx_hat": "x_hat", "dgamma": "gamma", "dbeta": "beta"},
     lambda v, up, eps, n, d: ((up(n, d), v["x_hat"], v["gamma"]), "random dy"), _scale_shift_allowed),
    ("product_backward", "product_backward(dx_hat, xc, r)", "x_hat = xc * r",
     {"dxc": "xc", "dr": "r"},
     lambda v, up, eps, n, d: ((up(n, d), v["xc"], v["r"]), "random dx_hat"), _product_allowed),
    ("reciprocal_backward", "reciprocal_backward(dr, s)", "r = 1 / s", {"out": "s"},
     lambda v, up, eps, n, d: ((up(d), v["s"]), f"s = sqrt(var + {eps:g}), random dr"), _elementwise),
    ("sqrt_backward", "sqrt_backward(ds, var, eps)", "s = sqrt(var + eps)", {"out": "var"},
     lambda v, up, eps, n, d: ((up(d), v["var"], eps), f"eps={eps:g}, random ds"), _elementwise),
    ("variance_backward", "variance_backward(dvar, xc)", "var = (xc ** 2).mean(axis=0)", {"out": "xc"},
     lambda v, up, eps, n, d: ((up(d), v["xc"]), "random dvar"), _elementwise),
    ("centre_backward", "centre_backward(dxc)", "xc = x - mean", {"dx": "x", "dmean": "mean"},
     lambda v, up, eps, n, d: ((up(n, d),), "random dxc"), _centre_allowed),
    ("mean_backward", "mean_backward(dmean, x)", "mean = x.mean(axis=0)", {"out": "x"},
     lambda v, up, eps, n, d: ((up(d), v["x"]), "random dmean"), _elementwise),
)
NODE_NAMES = tuple(name for name, *_ in NODES)


def _node_spec(name, signature, forward, grads, inputs, allowed):
    outputs = tuple(k for k in grads if k != "out")
    return Spec(name, LESSON, signature, f"Node {forward}: the gradient{'s' * (len(outputs) > 1)} it sends back "
                f"to {', '.join(grads.values())}.",
                make_case=_node_case(inputs), allowed=allowed, oracle=getattr(oracle, name),
                oracle_name="torch.autograd", outputs=outputs, explain=_names_the_node(forward, grads),
                covers=COVERS.replace("; constant features", "; constant features (xc = 0)")
                + "; random upstream gradients", visible_count=2)


_BACKWARD = dict(make_case=_backward_case, allowed=backward_allowed, outputs=OUTPUTS, explain=_backward_explain,
                 oracle_name="torch.autograd", covers=COVERS + "; random dout",
                 float32_offset=0.0)  # x - mean of float32 features near 1e4 keeps ~3 digits: a
# correct backward that recomputes it could not be told from a wrong one (float64 keeps the offsets)


def _native_backward(dout, cache):
    """torch.autograd through F.batch_norm in the input's dtype."""
    import torch
    import torch.nn.functional as F
    t = [torch.tensor(np.asarray(cache[k])).requires_grad_() for k in ("x", "gamma", "beta")]
    y = F.batch_norm(t[0], None, None, t[1], t[2], training=True, eps=float(cache["eps"]))
    y.backward(torch.as_tensor(dout))
    return tuple(a.grad.numpy() for a in t)


SPECS = [_node_spec(*node) for node in NODES] + [
    Spec("batchnorm_backward_staged", LESSON, "batchnorm_backward_staged(dout, cache)",
         "Lesson 03: (dx, dgamma, dbeta) through the graph, node by node.",
         oracle=oracle.batchnorm_backward_staged, **_BACKWARD, native=_native_backward, parts=NODE_NAMES),
    Spec("batchnorm_backward", LESSON, "batchnorm_backward(dout, cache)",
         "Lesson 03: (dx, dgamma, dbeta) in closed form.", oracle=oracle.batchnorm_backward, **_BACKWARD,
         native=_native_backward),
    Spec("numerical_gradient", LESSON, "numerical_gradient(f, x, dout, h=1e-5)",
         "Lesson 03: centred differences of sum(f(x) * dout), compared with torch.autograd.",
         make_case=_gradient_case, allowed=central_difference_error, oracle=oracle.numerical_gradient,
         oracle_name="torch.autograd",
         covers="float64 batches up to (8, 4); f a BatchNorm forward pass or tanh(x @ W + b); random dout; "
                "several h"),
]
