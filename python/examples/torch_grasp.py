"""GraSP (gradient signal preservation), as a ticketbench plugin (PyTorch autograd, float64).

Wang, Zhang & Grosse 2020, arXiv 2002.07376, following the authors' code alecwangcq/GraSP:
the scoring batch is split into halves B_1 = [0, N//2), B_2 = [N//2, N); with logits / T,
T = 200 (``params: {temperature: ...}``),

    g  = Σ_h ∇_W L(B_h)                    (torch.autograd.grad, then detached: held constant)
    z  = Σ_h gᵀ ∇_W L(B_h)                 (torch.autograd.grad with create_graph=True)
    Hg = ∇_W z                             (double backward; biases in the graph, not in g)
    S  = −W ⊙ Hg,  S ← S / (|Σ S| + 1e-10),  keep the LOWEST (``req.top_k(keep="lowest")``).

Regression tasks use MSE without a temperature. Biases are never scored. Same as grasp.py,
with autograd's exact Hessian-vector product instead of the hand-written R-operator.

Run as ``python3 examples/torch_grasp.py`` (suite entry with ``data: scoring-batch``).
"""

import torch

import torch_mlp
from ticketbench_plugin import serve


def grasp_hg(weights, biases, x, y, kind="classification", temperature=200.0):
    """(g, Hg) on the weights as float64 tensors."""
    ws, bs = torch_mlp.tensors(weights, biases, requires_grad=True)
    xt, yt = torch_mlp.data(x, y, kind)
    t = 1.0 if kind == "regression" else temperature
    n, cut = xt.shape[0], xt.shape[0] // 2
    parts = [(xt[a:b], yt[a:b]) for a, b in ((0, cut), (cut, n)) if b > a]
    g = None
    for xb, yb in parts:
        grads = torch.autograd.grad(torch_mlp.loss(ws, bs, xb, yb, kind, t), ws)
        g = list(grads) if g is None else [a + b for a, b in zip(g, grads)]
    g = [a.detach() for a in g]
    z = 0.0
    for xb, yb in parts:
        grads = torch.autograd.grad(torch_mlp.loss(ws, bs, xb, yb, kind, t), ws, create_graph=True)
        z = z + sum((a * b).sum() for a, b in zip(g, grads))
    hg = torch.autograd.grad(z, ws)
    return g, list(hg)


def grasp_scores(weights, biases, x, y, kind="classification", temperature=200.0):
    """Normalised GraSP scores −W ⊙ Hg / (|Σ(−W ⊙ Hg)| + 1e-10), float64 tensors."""
    ws, _ = torch_mlp.tensors(weights, biases)
    _, hg = grasp_hg(weights, biases, x, y, kind, temperature)
    scores = [-w * h for w, h in zip(ws, hg)]
    norm = torch.abs(sum(s.sum() for s in scores)) + 1e-10
    return [s / norm for s in scores]


def prune(req):
    torch_mlp.check_linear(req)
    x, y = req.scoring_batch()
    temperature = float(req.params.get("temperature", 200.0))
    scores = grasp_scores(req.weights, req.biases, x, y, torch_mlp.task_kind(req), temperature)
    return req.top_k(scores, keep="lowest")


if __name__ == "__main__":
    serve(prune)
