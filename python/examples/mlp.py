"""Shared numpy code for the example plugins: a float64 ReLU MLP, its loss, exact gradients
and exact Hessian-vector products (Pearlmutter 1994, "Fast exact multiplication by the
Hessian", the R-operator), plus the SynFlow pass and a masked exact top-k.

Network convention (ticketbench's): layers l = 0..L-1, weights W_l [out, in], biases b_l [out]
or None. With h_0 = x ([n, in]):

    z_l = h_l W_l^T + b_l,    h_{l+1} = relu(z_l) for l < L-1,    logits = z_{L-1}.

(In this file ``hs[l]`` is the *input* of layer l, so ``hs[0] = x`` and ``hs[L] = logits``.)

Losses (``loss_grad``): classification, y int labels [n]: the mean over the batch of
cross-entropy(softmax(logits / T), y); regression, y float [n, outputs]: mean squared error,
the mean over all n * outputs entries (no temperature).

Gradient (reverse mode): delta_{L-1} = dL/dlogits; dW_l = delta_l^T h_l; db_l = sum_n delta_l;
dh_l = delta_l W_l; delta_{l-1} = relu'(z_{l-1}) * dh_l.

Hessian-vector product H v, v = (V_l, c_l) on (W_l, b_l), by the R-operator
R{f} = d/dr f(theta + r v) at r = 0 (forward-over-reverse). Forward R-pass:
R{h_0} = 0, R{z_l} = R{h_l} W_l^T + h_l V_l^T + c_l, R{h_{l+1}} = relu'(z_l) * R{z_l}.
At the loss: for cross-entropy with p = softmax(z/T), dL/dz = (p - onehot(y)) / (n T) and
R{dL/dz} = R{p} / (n T) with R{p} = p * (R{z}/T - sum_j p_j R{z}_j / T) (the softmax Jacobian);
for MSE, R{dL/dz} = 2 R{z} / (n outputs). Backward R-pass (ReLU's second derivative is 0
almost everywhere, so relu' is a constant 0/1 pattern): R{dW_l} = R{delta_l}^T h_l +
delta_l^T R{h_l}; R{db_l} = sum_n R{delta_l}; R{dh_l} = R{delta_l} W_l + delta_l V_l;
R{delta_{l-1}} = relu'(z_{l-1}) * R{dh_l}. Then (H v) = (R{dW_l}, R{db_l}): the first terms are
the Gauss-Newton part through the softmax, the `delta_l^T R{h_l}` and `delta_l V_l` terms come
from the product structure of the weights across layers.

relu'(0) is taken as 0, as PyTorch does.
"""

import os
import sys

import numpy as np

try:  # the plugin package, when it is not installed: python/ticketbench_plugin beside examples/
    import ticketbench_plugin  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def as_f64(weights, biases):
    """float64 copies of the weights and biases (bias None stays None)."""
    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    bs = [None if b is None else np.asarray(b, dtype=np.float64) for b in biases]
    return ws, bs


def check_linear(req):
    """Raises unless every layer of the request is a linear layer (these examples are MLP-only)."""
    for l, layer in enumerate(req.layers):
        if layer.get("kind", "linear") != "linear":
            raise NotImplementedError(
                f"layer {l} is {layer.get('kind')!r}; these example plugins handle linear (MLP) layers only"
            )


def task_kind(req):
    """"classification" or "regression", from the request's task."""
    return "regression" if req.task.get("kind") == "regression" else "classification"


def forward(weights, biases, x):
    """Forward pass. Returns (zs, hs): zs[l] the pre-activation of layer l, hs[l] its input
    (hs[0] = x, hs[L] = zs[L-1] = logits)."""
    L = len(weights)
    h = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    zs, hs = [], [h]
    for l, w in enumerate(weights):
        z = h @ w.T
        if biases[l] is not None:
            z = z + biases[l]
        zs.append(z)
        h = np.maximum(z, 0.0) if l < L - 1 else z
        hs.append(h)
    return zs, hs


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def loss_grad(logits, y, kind="classification", temperature=1.0):
    """(loss, dL/dlogits, p) for the batch; p = softmax(logits / T) (None for regression)."""
    n = logits.shape[0]
    if kind == "regression":
        y = np.asarray(y, dtype=np.float64).reshape(logits.shape)
        r = logits - y
        return float(np.mean(r * r)), 2.0 * r / r.size, None
    y = np.asarray(y).astype(np.int64).reshape(-1)
    s = logits / temperature
    s = s - s.max(axis=1, keepdims=True)
    logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    p = np.exp(logp)
    loss = -float(np.mean(logp[np.arange(n), y]))
    d = p.copy()
    d[np.arange(n), y] -= 1.0
    return loss, d / (n * temperature), p


def loss(weights, biases, x, y, kind="classification", temperature=1.0):
    """The scalar loss of the batch."""
    _, hs = forward(weights, biases, x)
    return loss_grad(hs[-1], y, kind, temperature)[0]


def _backward(weights, zs, hs, delta):
    """Gradients (dWs, dbs, deltas) given delta = dL/dlogits; deltas[l] = dL/dz_l."""
    L = len(weights)
    dws, dbs, deltas = [None] * L, [None] * L, [None] * L
    for l in range(L - 1, -1, -1):
        deltas[l] = delta
        dws[l] = delta.T @ hs[l]
        dbs[l] = delta.sum(axis=0)
        if l > 0:
            delta = (delta @ weights[l]) * (zs[l - 1] > 0)
    return dws, dbs, deltas


def gradients(weights, biases, x, y, kind="classification", temperature=1.0):
    """(loss, dL/dW_l list, dL/db_l list) in float64; db_l is None where the layer has no bias."""
    ws, bs = as_f64(weights, biases)
    zs, hs = forward(ws, bs, x)
    value, delta, _ = loss_grad(hs[-1], y, kind, temperature)
    dws, dbs, _ = _backward(ws, zs, hs, delta)
    dbs = [None if b is None else db for b, db in zip(bs, dbs)]
    return value, dws, dbs


def hvp(weights, biases, x, y, vw, vb=None, kind="classification", temperature=1.0):
    """Exact Hessian-vector product of the loss w.r.t. all parameters (weights and biases).

    vw: direction on the weights (one array per layer); vb: direction on the biases (None, or
    one entry per layer, None meaning 0). Returns (Hv on the weights, Hv on the biases)."""
    ws, bs = as_f64(weights, biases)
    L = len(ws)
    vw = [np.asarray(v, dtype=np.float64) for v in vw]
    vb = [None] * L if vb is None else [None if c is None else np.asarray(c, dtype=np.float64) for c in vb]
    zs, hs = forward(ws, bs, x)
    logits = hs[-1]
    _, delta_out, p = loss_grad(logits, y, kind, temperature)
    _, _, deltas = _backward(ws, zs, hs, delta_out)

    # Forward R-pass: R{hs[l]} (R{hs[0]} = 0) and R{z_l}.
    r_hs = [np.zeros_like(hs[0])]
    r_zs = []
    for l in range(L):
        r_z = r_hs[l] @ ws[l].T + hs[l] @ vw[l].T
        if bs[l] is not None and vb[l] is not None:
            r_z = r_z + vb[l]
        r_zs.append(r_z)
        r_hs.append(r_z * (zs[l] > 0) if l < L - 1 else r_z)

    # R{dL/dlogits}.
    n = logits.shape[0]
    r_out = r_zs[-1]
    if kind == "regression":
        r_delta = 2.0 * r_out / r_out.size
    else:
        t = r_out / temperature
        r_p = p * (t - (p * t).sum(axis=1, keepdims=True))
        r_delta = r_p / (n * temperature)

    # Backward R-pass.
    hw, hb = [None] * L, [None] * L
    for l in range(L - 1, -1, -1):
        hw[l] = r_delta.T @ hs[l] + deltas[l].T @ r_hs[l]
        hb[l] = None if bs[l] is None else r_delta.sum(axis=0)
        if l > 0:
            r_dh = r_delta @ ws[l] + deltas[l] @ vw[l]
            r_delta = r_dh * (zs[l - 1] > 0)
    return hw, hb


def synflow_scores(weights, biases, masks=None):
    """One SynFlow scoring pass (Tanaka et al. 2020): every parameter replaced by its absolute
    value (masked weights |W_l| * m_l, biases |b_l|), the all-ones input (one row), the
    forward a_{l+1} = (|W_l| m_l) a_l + |b_l| (ReLU is the identity on this nonnegative pass),
    R = sum of the output. S_l[o, i] = |W_l[o, i]| m_l[o, i] g_l[o] a_l[i] with g_l = dR/dz_l
    (g_{L-1} = 1, g_{l-1} = (|W_l| m_l)^T g_l) and a_l layer l's input.
    Returns (scores per layer, R)."""
    ws, bs = as_f64(weights, biases)
    if masks is None:
        masks = [np.ones(w.shape, dtype=bool) for w in ws]
    aw = [np.abs(w) * np.asarray(m, dtype=np.float64) for w, m in zip(ws, masks)]
    acts = [np.ones(ws[0].shape[1])]
    for l, w in enumerate(aw):
        a = w @ acts[l]
        if bs[l] is not None:
            a = a + np.abs(bs[l])
        acts.append(a)
    r = float(acts[-1].sum())
    scores = [None] * len(aw)
    g = np.ones(aw[-1].shape[0])
    for l in range(len(aw) - 1, -1, -1):
        scores[l] = aw[l] * np.outer(g, acts[l])
        g = aw[l].T @ g
    return scores, r


def top_k_among(scores, k, candidates=None, keep="highest"):
    """Exact global top-k over the flattened layers (layer 0 first, row-major), ties to the
    lower flat index, ranking only the entries where ``candidates`` is true (all when None).
    Returns one boolean mask per layer with exactly k ones."""
    flat = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in scores])
    if candidates is None:
        pool = np.arange(flat.size)
    else:
        pool = np.flatnonzero(np.concatenate([np.asarray(c, dtype=bool).ravel() for c in candidates]))
    if k > pool.size:
        raise ValueError(f"cannot keep {k} of {pool.size} candidates")
    key = -flat[pool] if keep == "highest" else flat[pool]
    order = np.argsort(key, kind="stable")  # pool is ascending: ties keep the lower flat index
    out = np.zeros(flat.size, dtype=bool)
    out[pool[order[:k]]] = True
    masks, offset = [], 0
    for s in scores:
        size = np.asarray(s).size
        masks.append(out[offset:offset + size].reshape(np.asarray(s).shape))
        offset += size
    return masks
