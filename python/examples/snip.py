"""SNIP (single-shot network pruning by connection sensitivity), as a ticketbench plugin (numpy).

Lee, Ajanthan & Torr 2019, "SNIP: Single-shot Network Pruning based on Connection
Sensitivity", arXiv 1810.02340. With multiplicative gates c = 1 on every weight,
∂L/∂c_j = g_j θ_j, so the connection sensitivity is

    S_j = |g_j ⊙ θ_j| / Σ_k |g_k ⊙ θ_k|,    g = ∇_W L(θ_0; D_b)

on one batch D_b (ticketbench's class-balanced ``req.scoring_batch()``), at θ_0, float64. The
loss is the batch mean of cross-entropy(softmax(logits), y) (MSE for regression tasks). Biases
are never scored. Keep the global top-k (``req.top_k``: exact k, ties to the lower flat index).

Run as ``python3 examples/snip.py`` (suite entry with ``data: scoring-batch``).
"""

import numpy as np

import mlp
from ticketbench_plugin import serve


def snip_scores(weights, biases, x, y, kind="classification"):
    """Normalised SNIP scores |∇_W L ⊙ W| / Σ|∇_W L ⊙ W|, one float64 array per layer."""
    _, dws, _ = mlp.gradients(weights, biases, x, y, kind, temperature=1.0)
    scores = [np.abs(g * np.asarray(w, dtype=np.float64)) for g, w in zip(dws, weights)]
    total = sum(float(s.sum()) for s in scores)
    if total > 0.0:
        scores = [s / total for s in scores]
    return scores


def prune(req):
    mlp.check_linear(req)
    x, y = req.scoring_batch()
    return req.top_k(snip_scores(req.weights, req.biases, x, y, mlp.task_kind(req)))


if __name__ == "__main__":
    serve(prune)
