"""SNIP (connection sensitivity), as a ticketbench plugin (PyTorch autograd, float64).

Lee, Ajanthan & Torr 2019, arXiv 1810.02340: S_j = |g_j θ_j| / Σ_k |g_k θ_k| with
g = ∇_W L(θ_0) on ``req.scoring_batch()`` (batch-mean cross-entropy of softmax(logits), MSE for
regression tasks); biases never scored; keep the global top-k (``req.top_k``). Same as
snip.py, with torch.autograd.grad for the gradient.

Run as ``python3 examples/torch_snip.py`` (suite entry with ``data: scoring-batch``).
"""

import torch

import torch_mlp
from ticketbench_plugin import serve


def snip_scores(weights, biases, x, y, kind="classification"):
    """Normalised SNIP scores, one float64 tensor per layer."""
    ws, bs = torch_mlp.tensors(weights, biases, requires_grad=True)
    xt, yt = torch_mlp.data(x, y, kind)
    value = torch_mlp.loss(ws, bs, xt, yt, kind, temperature=1.0)
    grads = torch.autograd.grad(value, ws)
    scores = [torch.abs(g * w.detach()) for g, w in zip(grads, ws)]
    total = sum(s.sum() for s in scores)
    if total > 0:
        scores = [s / total for s in scores]
    return scores


def prune(req):
    torch_mlp.check_linear(req)
    x, y = req.scoring_batch()
    return req.top_k(snip_scores(req.weights, req.biases, x, y, torch_mlp.task_kind(req)))


if __name__ == "__main__":
    serve(prune)
