"""GraSP (gradient signal preservation), as a ticketbench plugin (numpy).

Wang, Zhang & Grosse 2020, "Picking Winning Tickets Before Training by Preserving Gradient
Flow", arXiv 2002.07376, as the authors' code (alecwangcq/GraSP) computes it. The score is

    S = −θ ⊙ H g,    S ← S / (|Σ S| + 1e-10),    remove the largest S (keep the LOWEST),

at θ_0, with g held constant. As in the reference code the scoring batch (x, y) of N examples
is split into halves B_1 = rows [0, N//2), B_2 = rows [N//2, N) (an empty half is skipped) and

    g  = Σ_h ∇_W L(B_h)                        (weights only: the direction is 0 on biases)
    Hg = Σ_h ∇_W (gᵀ ∇_W L(B_h))               (= Σ_h H_h v, v = (g on weights, 0 on biases))

where H_h is the Hessian of L(B_h) w.r.t. all parameters (biases in place), restricted to the
weight rows. Classification losses are the batch mean of cross-entropy(softmax(logits / T), y)
with temperature T = 200 (``params: {temperature: ...}``); regression tasks use MSE without a
temperature. Hv is computed exactly by the R-operator (mlp.hvp), float64. Biases are never
scored.

Run as ``python3 examples/grasp.py`` (suite entry with ``data: scoring-batch``).
"""

import numpy as np

import mlp
from ticketbench_plugin import serve


def halves(x, y):
    """The reference code's two half batches [0, N//2) and [N//2, N), empty ones dropped."""
    n = len(x)
    cut = n // 2
    return [(x[a:b], y[a:b]) for a, b in ((0, cut), (cut, n)) if b > a]


def grasp_hg(weights, biases, x, y, kind="classification", temperature=200.0):
    """(g, Hg) on the weights: g = Σ_h ∇_W L(B_h), Hg = Σ_h H_h (g, 0)."""
    parts = halves(x, y)
    t = 1.0 if kind == "regression" else temperature
    g = None
    for xb, yb in parts:
        _, dws, _ = mlp.gradients(weights, biases, xb, yb, kind, t)
        g = dws if g is None else [a + b for a, b in zip(g, dws)]
    hg = None
    for xb, yb in parts:
        hw, _ = mlp.hvp(weights, biases, xb, yb, g, None, kind, t)
        hg = hw if hg is None else [a + b for a, b in zip(hg, hw)]
    return g, hg


def grasp_scores(weights, biases, x, y, kind="classification", temperature=200.0):
    """Normalised GraSP scores −W ⊙ Hg / (|Σ(−W ⊙ Hg)| + 1e-10); the lowest are kept."""
    _, hg = grasp_hg(weights, biases, x, y, kind, temperature)
    scores = [-np.asarray(w, dtype=np.float64) * h for w, h in zip(weights, hg)]
    norm = abs(sum(float(s.sum()) for s in scores)) + 1e-10
    return [s / norm for s in scores]


def prune(req):
    mlp.check_linear(req)
    x, y = req.scoring_batch()
    temperature = float(req.params.get("temperature", 200.0))
    scores = grasp_scores(req.weights, req.biases, x, y, mlp.task_kind(req), temperature)
    return req.top_k(scores, keep="lowest")


if __name__ == "__main__":
    serve(prune)
