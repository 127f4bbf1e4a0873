"""Iterative SynFlow (iterative synaptic flow pruning), as a ticketbench plugin (numpy).

Tanaka, Kunin, Yamins & Ganguli 2020, "Pruning neural networks without any data by
iteratively conserving synaptic flow", arXiv 2006.05467. Data-free. Every parameter is replaced
by its absolute value (masked weights |W_l| ⊙ m_l, and |b_l| where the layer has a bias), the
all-ones input is fed forward (ReLU is the identity on this nonnegative pass) and

    R = 1ᵀ f(1; |θ| ⊙ m),    S = |θ| ⊙ m ⊙ ∂R/∂(|θ| ⊙ m),
    S_l[o, i] = |W_l[o, i]| m_l[o, i] · g_l[o] · a_{l−1}[i],

with a_{l−1} layer l's input activity and g_l = ∂R/∂z_l (mlp.synflow_scores). n rounds
(``params: {rounds: ...}``, default 100) on the exponential schedule (``schedule: linear``
gives d_k = 1 − (1 − D) k/n instead): round k = 1..n keeps
k_k = floor(D^(k/n) · total + 0.5) weights (the last round exactly ``req.kept``), re-scoring the
masked network each round and ranking only the still-kept weights (pruned weights stay
pruned), global exact top-k with ties to the lower flat index. Float64. Biases are never
pruned. The answer is the last round's mask and scores.

Run as ``python3 examples/synflow.py`` (suite entry with ``data: none``).
"""

import math

import numpy as np

import mlp
from ticketbench_plugin import Answer, serve


def round_counts(density, total, kept, rounds, schedule="exponential"):
    """Kept count per round k = 1..rounds: floor(d_k · total + 0.5) with d_k = D^(k/n)
    (exponential, the paper's) or 1 − (1 − D) k/n (linear); the last round exactly ``kept``."""
    if schedule not in ("exponential", "linear"):
        raise ValueError(f"schedule must be 'exponential' or 'linear', not {schedule!r}")
    counts = []
    for k in range(1, rounds + 1):
        if k == rounds:
            counts.append(int(kept))
            continue
        if schedule == "exponential":
            d_k = density ** (k / rounds)
        else:
            d_k = 1.0 - (1.0 - density) * k / rounds
        counts.append(min(int(math.floor(d_k * total + 0.5)), total))
    return counts


def synflow_prune(weights, biases, density, kept, rounds=100, schedule="exponential"):
    """(masks, scores) of iterative SynFlow: the last round's mask (exactly ``kept`` ones) and
    the scores it was chosen from."""
    total = sum(int(np.asarray(w).size) for w in weights)
    masks = [np.ones(np.asarray(w).shape, dtype=bool) for w in weights]
    scores = None
    for k_keep in round_counts(density, total, kept, rounds, schedule):
        scores, _ = mlp.synflow_scores(weights, biases, masks)
        masks = mlp.top_k_among(scores, k_keep, candidates=masks, keep="highest")
    return masks, scores


def prune(req):
    mlp.check_linear(req)
    rounds = int(req.params.get("rounds", 100))
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds}")
    schedule = req.params.get("schedule", "exponential")
    masks, scores = synflow_prune(req.weights, req.biases, req.density, req.kept, rounds, schedule)
    got = sum(int(m.sum()) for m in masks)
    if got != req.kept:
        raise RuntimeError(f"synflow kept {got} weights, the request asks for {req.kept}")
    return Answer(mask=masks, scores=scores)


if __name__ == "__main__":
    serve(prune)
