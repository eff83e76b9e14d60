"""A piece as a function of arrays: what is recorded in the grading sandbox and judged.

Most pieces already are one. A stateful piece runs over a whole sequence of steps; a piece
that takes or returns torch objects (a model, a layer, an autograd.Function, a module class)
is wrapped so that it receives arrays and hands back arrays (and text, as uint8 arrays).
"""
import numpy as np

# ---------------------------------------------------------------- inputs left as they were

_CHANGES = []  # what the last adapted call changed in its inputs (judge.call reads it)


def report_changes(changed):
    """changed: [(kind, words)], kind one of "values", "parameters", "buffers", "mode",
    "hooks", "requires_grad" (a spec declares which kinds its piece may change)."""
    _CHANGES.extend((str(kind), str(words)) for kind, words in changed)


def take_changes():
    """What was reported since the last take, emptied: [(kind, words)]."""
    changed = list(dict.fromkeys(_CHANGES))
    _CHANGES.clear()
    return changed


def fingerprint(obj):
    """What a call must leave as it found it: an array's or a tensor's values (and whether it
    requires grad); a module's parameters and buffers, their requires_grad, every submodule's
    training mode, and its hooks."""
    import torch
    if isinstance(obj, np.ndarray):
        return ("array", obj.copy())
    if isinstance(obj, torch.Tensor):
        return ("tensor", obj.detach().clone(), obj.requires_grad)
    if isinstance(obj, torch.nn.Module):
        return ("module", {n: (p.detach().clone(), p.requires_grad) for n, p in obj.named_parameters()},
                {n: b.detach().clone() for n, b in obj.named_buffers()},
                {n: m.training for n, m in obj.named_modules()},
                {n: len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                 + len(getattr(m, "_backward_pre_hooks", {})) for n, m in obj.named_modules()})
    raise TypeError(f"cannot fingerprint {type(obj).__name__}")


def _equal(a, b):
    return a.shape == b.shape and bool((a == b).all() | (a.isnan() & b.isnan()).all()
                                       if hasattr(a, "isnan") else np.array_equal(a, b, equal_nan=True))


def changes(what, before, obj):
    """[(kind, words)] for every way obj differs from `before`, its fingerprint."""
    import torch
    kind = before[0]
    if kind in ("array", "tensor"):
        now = obj.detach() if isinstance(obj, torch.Tensor) else np.asarray(obj)
        found = [] if _equal(now, before[1]) else [("values", f"{what}'s values")]
        if kind == "tensor" and obj.requires_grad != before[2]:
            found.append(("requires_grad", f"{what}.requires_grad"))
        return found
    _, params, buffers, modes, hooks = before
    _, params_now, buffers_now, modes_now, hooks_now = fingerprint(obj)
    found = []
    for name, (value, grad) in params.items():
        now = params_now.get(name)
        if now is None or not _equal(now[0], value):
            found.append(("parameters", f"{what}'s parameter {name}"))
        elif now[1] != grad:
            found.append(("requires_grad", f"{what}'s parameter {name}.requires_grad"))
    found += [("buffers", f"{what}'s buffer {name}") for name, value in buffers.items()
              if name not in buffers_now or not _equal(buffers_now[name], value)]
    switched = [name for name, mode in modes.items() if modes_now.get(name) != mode]
    for name in switched[:1] if "" in switched else switched[:3]:  # the whole model's, or its parts'
        found.append(("mode", f"{what}'s mode ({'train' if modes[name] else 'eval'} -> "
                              f"{'eval' if modes[name] else 'train'}{' in ' + name if name else ''})"))
    found += [("hooks", f"{what}'s hooks{' in ' + name if name else ''}") for name, count in hooks.items()
              if hooks_now.get(name, 0) != count]
    return found


# ---------------------------------------------------------------- the adapters

BUFFERS = ("running_mean", "running_var", "num_batches_tracked")  # a BatchNorm's, in torch's order

def torch_layers(weight, bias, gamma, beta, running_mean, running_var, eps=1e-5):
    """The Linear (or Conv2d, for a 4-D weight) and the eval-mode BatchNorm these arrays describe;
    an empty bias means a layer without one."""
    import torch
    t = torch.as_tensor
    conv = weight.ndim == 4
    c_out, c_in = weight.shape[:2]
    dtype = t(weight).dtype
    if conv:
        layer = torch.nn.Conv2d(c_in, c_out, weight.shape[-1], padding=weight.shape[-1] // 2,
                                bias=bias.size > 0, dtype=dtype)
        bn = torch.nn.BatchNorm2d(c_out, eps=eps, dtype=dtype)
    else:
        layer = torch.nn.Linear(c_in, c_out, bias=bias.size > 0, dtype=dtype)
        bn = torch.nn.BatchNorm1d(c_out, eps=eps, dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(t(weight))
        if bias.size:
            layer.bias.copy_(t(bias))
        for name, value in (("weight", gamma), ("bias", beta), ("running_mean", running_mean),
                            ("running_var", running_var)):
            getattr(bn, name).copy_(t(value))
    bn.eval()
    return layer, bn


def adapt_fold(fold):
    """fold_batchnorm as a function of arrays: build the layer and its BatchNorm, fold them
    with `fold`, and return what the folded layer outputs for x."""
    def folded_outputs(x, weight, bias, gamma, beta, running_mean, running_var, eps=1e-5):
        import torch
        layer, bn = torch_layers(weight, bias, gamma, beta, running_mean, running_var, eps)
        before = fingerprint(layer), fingerprint(bn)
        folded = fold(layer, bn)
        report_changes(changes("the layer", before[0], layer) + changes("the BatchNorm", before[1], bn))
        if not isinstance(folded, torch.nn.Module):
            raise TypeError(f"fold_batchnorm must return a torch.nn.Linear or Conv2d; got "
                            f"{type(folded).__name__}")
        with torch.no_grad():
            return folded(torch.as_tensor(x)).numpy()
    folded_outputs.__name__ = getattr(fold, "__name__", "fold_batchnorm")
    return folded_outputs



def adapt_steps(layer_forward):
    """batchnorm_layer_forward as a pure function of a whole sequence of steps, so it can be
    recorded and compared like the other pieces: a fresh state (torch's initial values),
    then one call per step; returns (ys (S, N, D), running_means (S, D), running_vars (S, D),
    num_batches_tracked (S,)) as they are after each step."""
    def steps(xs, training, gamma, beta, **kwargs):
        d = xs.shape[2]
        state = {"running_mean": np.zeros(d, xs.dtype), "running_var": np.ones(d, xs.dtype),
                 "num_batches_tracked": 0}
        ys, means, variances, counts = [], [], [], []
        for x, train in zip(xs, training):
            given = np.array(x), gamma.copy(), beta.copy()  # the state may change: it is the layer's
            ys.append(np.asarray(layer_forward(*given, state, bool(train), **kwargs)))
            report_changes([c for name, a, b in zip(("x", "gamma", "beta"), given, (x, gamma, beta))
                            for c in changes(name, ("array", b), a)])
            means.append(np.array(state["running_mean"]))
            variances.append(np.array(state["running_var"]))
            counts.append(int(state["num_batches_tracked"]))
        return np.stack(ys), np.stack(means), np.stack(variances), np.array(counts)
    steps.__name__ = getattr(layer_forward, "__name__", "batchnorm_layer_forward")
    return steps



def torch_mlp(params, batchnorm=False, activation="tanh"):
    """The MLP these arrays describe, nested so hooks must reach inside blocks:
    Sequential(Sequential(Sequential(Linear, [BatchNorm1d], act), ...), Linear)."""
    import torch
    from torch import nn
    count = len([k for k in params if k.startswith("w")])
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    layers = []
    with torch.random.fork_rng(devices=[]):  # Linear's random init: leave the caller's generator alone
        for k in range(count):
            w = torch.as_tensor(params[f"w{k}"])
            linear = nn.Linear(w.shape[1], w.shape[0], dtype=w.dtype)
            with torch.no_grad():
                linear.weight.copy_(w)
                linear.bias.copy_(torch.as_tensor(params[f"b{k}"]))
            norm = [nn.BatchNorm1d(w.shape[0], dtype=w.dtype)] if batchnorm else []
            layers.append(nn.Sequential(linear, *norm, act()) if k < count - 1 else linear)
    return nn.Sequential(nn.Sequential(*layers[:-1]), layers[-1]).train()


def adapt_recorder(record):
    """record_layer_inputs as a function of arrays: what it returns for the MLP `params`
    describes (in train or eval mode), preceded by how many forward hooks it left behind."""
    def recorded(x, params, batchnorm=False, train=True):
        import torch
        model = torch_mlp(params, batchnorm).train(train)
        xt = torch.as_tensor(x)
        before = fingerprint(model), fingerprint(xt)
        got = record(model, xt)
        report_changes(changes("the model", before[0], model) + changes("x", before[1], xt))
        if not isinstance(got, (list, tuple)):
            raise TypeError(f"record_layer_inputs must return a list of arrays; got {type(got).__name__}")
        left = sum(len(m._forward_hooks) for m in model.modules())
        return (np.array(left),) + tuple(got)
    recorded.__name__ = getattr(record, "__name__", "record_layer_inputs")
    return recorded


def adapt_gradient_norms(norms_fn):
    """gradient_norms as a function of arrays: its answer for the MLP `params` describes (in
    train or eval mode), whose .grad fields hold stale gradients (as after a training step), and
    the largest change it made to a parameter."""
    def measured(x, labels, params, batchnorm=False, train=True):
        import torch
        model = torch_mlp(params, batchnorm, activation="relu").train(train)
        stale = torch.Generator().manual_seed(0)
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=stale, dtype=p.dtype)
        before = [p.detach().clone() for p in model.parameters()]
        xt, yt = torch.as_tensor(x), torch.as_tensor(labels)
        kept = fingerprint(model), fingerprint(xt), fingerprint(yt)
        got = norms_fn(model, xt, yt)
        moved = max(float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before))
        report_changes(changes("the model", kept[0], model) + changes("x", kept[1], xt) + changes("y", kept[2], yt))
        return got, np.array(moved)
    measured.__name__ = getattr(norms_fn, "__name__", "gradient_norms")
    return measured



# A module's text answers (its layout, its errors) travel as uint8 arrays, like every other
# answer; no numeric answer is ever uint8.
def encode_text(s):
    return np.frombuffer(s.encode(), dtype=np.uint8).copy()


def is_text(a):
    return np.asarray(a).dtype == np.uint8


def decode_text(a):
    return bytes(np.asarray(a, np.uint8)).decode(errors="replace")


def _layout(module):
    """Names, shapes, dtypes (and requires_grad, grad_fn where set) of a module's parameters and
    buffers, and its state_dict keys."""
    def listing(pairs):
        return ", ".join(sorted(f"{n} {tuple(v.shape)} {str(v.dtype).replace('torch.', '')}"
                                + " requires_grad" * v.requires_grad + " grad_fn" * (v.grad_fn is not None)
                                for n, v in pairs))
    none = [n for n in ("weight", "bias", *BUFFERS)
            if n in module._parameters and module._parameters[n] is None
            or n in module._buffers and module._buffers[n] is None]
    return (f"parameters: {listing(module.named_parameters()) or 'none'}; "
            f"buffers: {listing(module.named_buffers()) or 'none'}; "
            f"registered as None: {', '.join(sorted(none)) or 'none'}; "
            f"state_dict keys: {', '.join(sorted(module.state_dict())) or 'none'}")


def _bad_inputs(piece, c):
    """(what, shape, training, constructor changes) of inputs torch refuses (or accepts) with a
    clear error."""
    if piece == "BatchNorm2d":
        dims = [("3-D input", (2, c, 3)), ("5-D input", (2, c, 2, 2, 2))]
        single, fine = (1, c, 1, 1), (2, c, 2, 2)
    else:
        dims = [("1-D input", (c,)), ("4-D input", (2, c, 2, 2))]
        single, fine = (1, c), (4, c)
    return [(what, shape, True, {}) for what, shape in dims] + [
        ("one value per channel in training", single, True, {}),
        ("one value per channel in eval", single, False, {}),
        ("eps=0 in training", fine, True, {"eps": 0.0}),
        ("eps=-1e-5 in training", fine, True, {"eps": -1e-5})]


def _errors(piece, build, c, dtype):
    import torch
    found = []
    for what, shape, train, changes in _bad_inputs(piece, c):
        module = build(dtype, **changes).train(train)
        try:
            module(torch.ones(shape, dtype=dtype))
            found.append(f"{what}: no error")
        except Exception as e:
            found.append(f"{what}: {type(e).__name__}")
    return "; ".join(found)


def tensor_state(name, t, kind, dtype):
    """What a step may get wrong about a tensor it keeps, besides its values: whether it is a
    parameter or a buffer, its dtype (against `dtype`, the one it was made in), requires_grad and
    whether it hangs in an autograd graph (a grad_fn)."""
    if t is None:
        return f"{name}: None"
    words = [kind, "same dtype" if t.dtype == dtype else str(t.dtype).replace("torch.", ""),
             f"requires_grad={t.requires_grad}", "grad_fn=" + ("None" if t.grad_fn is None else "set")]
    return f"{name}: {', '.join(w for w in words if w)}"


def module_state(module, dtype):
    """tensor_state of each parameter and buffer of a module (floating ones made in `dtype`)."""
    import torch
    tensors = [(n, t, "parameter") for n, t in module._parameters.items()] + \
        [(n, t, "buffer") for n, t in module._buffers.items()]
    return "; ".join(tensor_state(n, t, kind, dtype if t is None or t.is_floating_point() else torch.int64)
                     for n, t, kind in tensors)


def _steps_text(states):
    return encode_text(" | ".join(f"after step {i + 1}: {s}" for i, s in enumerate(states)))


def _flat_state(module):
    return np.concatenate([np.asarray(v.detach(), np.float64).reshape(-1) for v in module.state_dict().values()]
                          or [np.zeros(0)])


def torch_module_class(piece):
    import torch
    return {"BatchNorm1d": torch.nn.BatchNorm1d, "BatchNorm2d": torch.nn.BatchNorm2d}[piece]


SET = "set_"  # a module case's config entry set_<name>: module.<name> = value after construction


def adapt_module(cls, exact=False, piece=None):
    """A BatchNorm module class as a function of arrays: build it with `config`, load the
    initial weight and bias, run the steps (train or eval, forward, backward with dout) and
    return what it gives at each step (with the state of every parameter and buffer after it:
    tensor_state), its layout, initial values and errors, and two state_dict round trips
    through torch's own class. exact: compute in float64 (the layout still in the case's dtype)."""
    piece = piece or getattr(cls, "__name__", "BatchNorm1d")
    piece = piece if piece in ("BatchNorm1d", "BatchNorm2d") else "BatchNorm1d"

    def module_steps(xs, training, douts, start_weight, start_bias, state, **config):
        # (start_*: the values to load; config's own bias= is the constructor's switch; its set_<name>
        # entries are attributes a user changes after construction, before the steps)
        import torch
        after = {k.removeprefix(SET): v for k, v in config.items() if k.startswith(SET)}
        config = {k: v for k, v in config.items() if not k.startswith(SET)}
        c, dtype = xs.shape[2], torch.as_tensor(xs).dtype
        compute = torch.float64 if exact else dtype

        def build(dt, **changes):
            return cls(c, dtype=dt, **{**config, **changes})

        def grad_of(module, name):
            p = getattr(module, name, None)
            if p is None:
                return np.zeros(0)
            return np.full(c, np.nan) if p.grad is None else p.grad.detach().numpy().copy()

        def buffer_of(module, name):
            b = getattr(module, name, None)
            return np.zeros(0) if b is None else np.asarray(b.detach(), np.float64).copy()

        new = build(dtype)
        out = {"layout": encode_text(_layout(new)), "errors": encode_text(_errors(piece, build, c, dtype)),
               "initial weight and bias": _initial_values(new, ("weight", "bias")),
               "initial buffers": _initial_values(new, BUFFERS)}
        module = build(compute)
        with torch.no_grad():
            if start_weight.size:
                module.weight.copy_(torch.as_tensor(start_weight))
            if start_bias.size:
                module.bias.copy_(torch.as_tensor(start_bias))
        for name, value in after.items():
            setattr(module, name, value)
        steps = {k: [] for k in ("y", "dx", "dweight", "dbias", "running_mean", "running_var",
                                 "num_batches_tracked")}
        states = []
        for x, dout, train in zip(xs, douts, training):
            if after:  # (as a user who changes attributes by hand would switch modes)
                module.training = bool(train)
            else:
                module.train(bool(train))
            x = torch.tensor(x, dtype=compute, requires_grad=True)
            dy = torch.tensor(dout, dtype=compute)  # its own copy: a change to it is told apart
            before = fingerprint(x), fingerprint(dy)
            y = module(x)
            y.backward(dy)
            report_changes(changes("x", before[0], x) + changes("the upstream gradient", before[1], dy))
            steps["y"].append(y.detach().numpy().copy())
            steps["dx"].append(np.full(x.shape, np.nan) if x.grad is None else x.grad.numpy().copy())
            steps["dweight"].append(grad_of(module, "weight"))
            steps["dbias"].append(grad_of(module, "bias"))
            for p in module.parameters():
                p.grad = None
            for name in BUFFERS:
                steps[name].append(buffer_of(module, name))
            states.append(module_state(module, compute))
        out.update({k: np.stack(v) for k, v in steps.items()})
        out["state after each step"] = _steps_text(states)
        twin = torch_module_class(piece)(c, dtype=compute, **config)
        try:
            twin.load_state_dict(module.state_dict())
            out["state_dict loaded into torch's module"] = _flat_state(twin)
        except Exception as e:
            out["state_dict loaded into torch's module"] = encode_text(f"{type(e).__name__}: {e}")
        if getattr(module, "running_mean", None) is not None:  # (torch's own fails without buffers)
            module.reset_running_stats()
        out["after reset_running_stats()"] = np.concatenate(
            [buffer_of(module, n).reshape(-1) for n in BUFFERS])
        fresh = build(compute)
        try:
            fresh.load_state_dict({k: torch.as_tensor(v).to(compute if v.dtype.kind == "f" else torch.int64)
                                   for k, v in state.items()})
            with torch.no_grad():
                loaded = fresh.eval()(torch.tensor(xs[-1], dtype=compute))
            out["eval output after loading torch's state_dict"] = loaded.numpy().copy()
        except Exception as e:
            out["eval output after loading torch's state_dict"] = encode_text(f"{type(e).__name__}: {e}")
        return out
    module_steps.__name__ = piece
    return module_steps


def adapt_function(fn_cls, exact=False):
    """BatchNormFunction as a function of arrays: y = fn_cls.apply(x, weight, bias, eps), then
    y.backward(dout); returns (y, dx, dweight, dbias)."""
    def function_outputs(x, weight, bias, dout, eps=1e-5):
        import torch
        dt = torch.float64 if exact else torch.as_tensor(x).dtype
        inputs = [torch.tensor(a, dtype=dt, requires_grad=True) for a in (x, weight, bias)]
        dy = torch.tensor(dout, dtype=dt)  # its own copy: a change to it is told apart
        before = [fingerprint(t) for t in inputs + [dy]]
        y = fn_cls.apply(*inputs, eps)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"forward must return a tensor; got {type(y).__name__}")
        y.backward(dy)
        report_changes([c for name, b, t in zip(("x", "weight", "bias", "the upstream gradient dy"), before,
                                                inputs + [dy]) for c in changes(name, b, t)])
        for name, t in zip(("x", "weight", "bias"), inputs):
            if t.grad is None:
                raise TypeError(f"backward returned no gradient for {name} (None): it must return "
                                "(dx, dweight, dbias, None)")
        return tuple(t.detach().numpy().copy() for t in [y] + [t.grad for t in inputs])
    function_outputs.__name__ = "BatchNormFunction"
    return function_outputs



def torch_function():
    """An autograd.Function with BatchNormFunction's interface whose forward and backward are
    torch's own: the decomposition of aten's native_batch_norm that ships with torch
    (torch._decomp), differentiated by autograd, in float64. A module is judged with it in
    place of the learner's Function, so a mistake there does not cost the modules their points.
    Unlike F.batch_norm it refuses nothing (one value per channel, eps <= 0), as a Function
    need not: those checks are the module's."""
    import warnings

    import torch
    from torch._decomp import decomposition_table

    native_batch_norm = decomposition_table[torch.ops.aten.native_batch_norm.default]

    class BatchNormFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, bias, eps):
            inputs = [t.detach().double().requires_grad_() for t in (x, weight, bias)]
            with torch.enable_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an empty batch: var_mean's degrees of freedom
                y = native_batch_norm(*inputs, None, None, True, 0.0, eps)[0]
            ctx.inputs, ctx.y, ctx.dtype = inputs, y, x.dtype
            return y.detach().to(x.dtype)

        @staticmethod
        def backward(ctx, dy):
            grads = torch.autograd.grad(ctx.y, ctx.inputs, dy.double(), allow_unused=True)
            return tuple(torch.zeros_like(t, dtype=ctx.dtype) if g is None else g.to(ctx.dtype)
                         for g, t in zip(grads, ctx.inputs)) + (None,)
    return BatchNormFunction


# ---------------------------------------------------------------- lesson 05's steps
# The module is built in steps, each graded on its own: its parameters and buffers, its training
# forward (with the running statistics), its eval forward, its input errors. Each step is judged
# as a function of arrays; while the module itself is judged, torch's versions of the steps
# stand in for the learner's (the torch_* factories below), so a wrong step costs only its points.

def _initial_values(module, names):
    """The values of the module's tensors `names` that exist, one after the other."""
    import torch
    return np.concatenate([np.asarray(t.detach(), np.float64).reshape(-1)
                           for t in (getattr(module, n, None) for n in names)
                           if isinstance(t, torch.Tensor)] or [np.zeros(0)])


def adapt_parameters(make):
    """make_parameters_and_buffers as a function of arrays: what it registers on an empty
    torch.nn.Module for x's number of channels and dtype: its layout (parameter or buffer, shape,
    dtype, requires_grad, grad_fn of each) and the initial values of its parameters and buffers."""
    def made(x, **config):
        import torch
        module = torch.nn.Module()
        make(module, x.shape[1], dtype=torch.as_tensor(x).dtype, **config)
        return {"layout": encode_text(_layout(module)),
                "initial weight and bias": _initial_values(module, ("weight", "bias")),
                "initial buffers": _initial_values(module, BUFFERS)}
    made.__name__ = getattr(make, "__name__", "make_parameters_and_buffers")
    return made


STEP_OUTPUTS = ("y", "dx", "dweight", "dbias", "running_mean", "running_var", "num_batches_tracked",
                "state after each step")


def adapt_training(step, exact=False):
    """training_forward as a function of arrays: running statistics as a module starts them (none
    when not tracking), then one call per batch of xs (S, M, C) with its upstream gradient; returns
    each step's y, gradients and buffers as they are after it (the module's answer keys), and the
    buffers' state (dtype, requires_grad, grad_fn: tensor_state) after each step."""
    def training_steps(xs, training, douts, weight, bias, state, momentum=0.1, eps=1e-5,
                       track_running_stats=True):
        import torch
        c, dtype = xs.shape[2], torch.as_tensor(xs).dtype
        compute = torch.float64 if exact else dtype
        buffers = [torch.zeros(c, dtype=compute), torch.ones(c, dtype=compute), torch.tensor(0)] \
            if track_running_stats else [None] * 3
        steps = {k: [] for k in STEP_OUTPUTS[:-1]}
        states = []
        for x, dout in zip(xs, douts):
            tensors = [torch.tensor(a, dtype=compute, requires_grad=True) for a in (x, weight, bias)]
            dy = torch.tensor(dout, dtype=compute)
            before = [fingerprint(t) for t in tensors + [dy]]
            y = step(*tensors, *buffers, momentum, eps)
            if not isinstance(y, torch.Tensor):
                raise TypeError(f"training_forward must return a tensor; got {type(y).__name__}")
            y.backward(dy)
            report_changes([c for name, b, t in zip(("rows", "weight", "bias", "the upstream gradient"), before,
                                                    tensors + [dy]) for c in changes(name, b, t)])
            steps["y"].append(y.detach().numpy().copy())
            for name, t in zip(("dx", "dweight", "dbias"), tensors):
                steps[name].append(np.full(t.shape, np.nan) if t.grad is None else t.grad.numpy().copy())
            for name, b in zip(BUFFERS, buffers):
                steps[name].append(np.zeros(0) if b is None else np.asarray(b.detach(), np.float64).copy())
            states.append("; ".join(tensor_state(name, b, "", made) for name, b, made in
                                    zip(BUFFERS, buffers, (compute, compute, torch.int64))))
        return {**{k: np.stack(v) for k, v in steps.items()}, "state after each step": _steps_text(states)}
    training_steps.__name__ = getattr(step, "__name__", "training_forward")
    return training_steps


def adapt_eval(step, exact=False):
    """eval_forward as a function of arrays: y = step(x, weight, bias, running_mean, running_var,
    eps), then y.backward(dout); returns (y, dx, dweight, dbias). The running statistics must be
    left as they were."""
    def eval_outputs(x, weight, bias, running_mean, running_var, dout, eps=1e-5):
        import torch
        dt = torch.float64 if exact else torch.as_tensor(x).dtype
        inputs = [torch.tensor(a, dtype=dt, requires_grad=True) for a in (x, weight, bias)]
        stats = [torch.tensor(a, dtype=dt) for a in (running_mean, running_var)]
        dy = torch.tensor(dout, dtype=dt)
        names = ("rows", "weight", "bias", "running_mean", "running_var", "the upstream gradient")
        before = [fingerprint(t) for t in inputs + stats + [dy]]
        y = step(*inputs, *stats, eps)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"eval_forward must return a tensor; got {type(y).__name__}")
        y.backward(dy)
        report_changes([c for name, b, t in zip(names, before, inputs + stats + [dy]) for c in changes(name, b, t)])
        return (y.detach().numpy().copy(),) + tuple(
            np.full(t.shape, np.nan) if t.grad is None else t.grad.numpy().copy() for t in inputs)
    eval_outputs.__name__ = getattr(step, "__name__", "eval_forward")
    return eval_outputs


def input_situations(c, dims):
    """(what, shape, use_batch_statistics, eps) of inputs a BatchNorm accepting `dims`-D input
    meets: some it must refuse with ValueError as torch does, some it must accept."""
    dims = tuple(int(d) for d in dims)
    fine = (4, c) if 2 in dims else (2, c, 2, 2)
    other = [d for d in (1, 2, 3, 4, 5) if d not in dims]
    found = [("a fine input in training", fine, True, 1e-5), ("a fine input in eval", fine, False, 1e-5)]
    for d in dims:
        found.append((f"{d}-D input with one value per channel in training", (1, c) + (1,) * (d - 2), True, 1e-5))
        found.append((f"{d}-D input with one value per channel in eval", (1, c) + (1,) * (d - 2), False, 1e-5))
        if d > 2:
            found.append((f"{d}-D input: one example, 3 values per channel, in training",
                          (1, c, 3) + (1,) * (d - 3), True, 1e-5))
    found += [(f"{d}-D input", (2, c, 2, 2, 2)[:d] if d > 1 else (c,), True, 1e-5) for d in other]
    found += [(f"{other[-1]}-D input in eval", (2, c, 2, 2, 2)[:other[-1]], False, 1e-5),
              ("an empty batch in training", (0, c) + fine[2:], True, 1e-5),
              ("eps=0 in training", fine, True, 0.0), ("eps=-1e-5 in training", fine, True, -1e-5),
              ("eps=1e-3 in training", fine, True, 1e-3)]
    return found


def adapt_input_check(check):
    """check_input as a function of arrays: which of input_situations it refuses (and how)."""
    def refused(x, dims):
        import torch
        found = []
        for what, shape, use_batch, eps in input_situations(x.shape[1], dims):
            try:
                check(torch.ones(shape, dtype=torch.as_tensor(x).dtype), tuple(int(d) for d in dims), use_batch, eps)
                found.append(f"{what}: no error")
            except NotImplementedError:
                raise  # (not written yet: said as such)
            except Exception as e:
                found.append(f"{what}: {type(e).__name__}")
        return encode_text("; ".join(found))
    refused.__name__ = getattr(check, "__name__", "check_input")
    return refused


def _native_batch_norm():
    import torch
    from torch._decomp import decomposition_table
    return decomposition_table[torch.ops.aten.native_batch_norm.default]


def torch_parameters():
    """make_parameters_and_buffers as torch does it: the parameters and buffers a
    torch.nn.BatchNorm1d of these arguments creates, registered on `module`."""
    import torch

    def make_parameters_and_buffers(module, num_features, affine=True, track_running_stats=True,
                                    device=None, dtype=None, bias=True):
        twin = torch.nn.BatchNorm1d(num_features, affine=affine, track_running_stats=track_running_stats,
                                    device=device, dtype=dtype, bias=bias)
        for name in ("weight", "bias"):
            module.register_parameter(name, twin._parameters[name])
        for name in BUFFERS:
            module.register_buffer(name, twin._buffers[name])
    return make_parameters_and_buffers


def torch_training_forward():
    """training_forward from torch's own parts: the count and the momentum=None rule as
    torch.nn.BatchNorm1d's forward has them, the running statistics' update from torch's
    decomposition of native_batch_norm (float64), the output through torch_function()."""
    import warnings

    import torch
    function = torch_function()
    native_batch_norm = _native_batch_norm()

    def training_forward(rows, weight, bias, running_mean, running_var, num_batches_tracked, momentum=0.1,
                         eps=1e-5):
        if num_batches_tracked is not None:
            num_batches_tracked.add_(1)
            factor = 1.0 / float(num_batches_tracked) if momentum is None else momentum
            if rows.shape[0] > 0 and running_mean is not None:
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    mean, var = running_mean.double(), running_var.double()
                    native_batch_norm(rows.detach().double(), None, None, mean, var, True, factor, eps)
                    running_mean.copy_(mean)
                    running_var.copy_(var)
        return function.apply(rows, weight, bias, eps)
    return training_forward


def torch_eval_forward():
    """eval_forward from torch's decomposition of native_batch_norm in eval mode (float64),
    differentiated by autograd."""
    native_batch_norm = _native_batch_norm()

    def eval_forward(rows, weight, bias, running_mean, running_var, eps=1e-5):
        y = native_batch_norm(rows.double(), weight.double(), bias.double(), running_mean.detach().double(),
                              running_var.detach().double(), False, 0.0, eps)[0]
        return y.to(rows.dtype)
    return eval_forward


def torch_input_check():
    """check_input from torch's own checks: torch.nn.BatchNorm1d's or BatchNorm2d's
    _check_input_dim (other dims: the same message), F.batch_norm's batch-size check and its eps
    rule."""
    import torch
    import torch.nn.functional as F

    def check_input(x, dims, use_batch_statistics, eps=1e-5):
        known = {(2, 3): torch.nn.BatchNorm1d, (4,): torch.nn.BatchNorm2d}
        if tuple(dims) in known:
            known[tuple(dims)]._check_input_dim(None, x)
        elif x.dim() not in dims:  # (a module of the learner's that accepts other shapes)
            raise ValueError(f"expected {' or '.join(f'{d}D' for d in dims)} input (got {x.dim()}D input)")
        if use_batch_statistics:
            F._verify_batch_size(x.size())
            if eps <= 0:
                raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    return check_input
