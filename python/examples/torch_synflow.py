"""Iterative SynFlow, as a ticketbench plugin (PyTorch autograd, float64).

Tanaka, Kunin, Yamins & Ganguli 2020, arXiv 2006.05467, as their code does it: parameters
replaced by their absolute values (weights |W_l| ⊙ m_l, biases |b_l|), the all-ones input (one
row), R = Σ f(1; |θ| ⊙ m) with ReLU (the identity on this nonnegative pass), R.backward(),
S = |θ| ⊙ m ⊙ ∂R/∂(|θ| ⊙ m) on the weights. ``rounds`` rounds (default 100) on the exponential
schedule d_k = D^(k/n) (``schedule: linear``: 1 − (1 − D) k/n), kept count
floor(d_k · total + 0.5) (the last round exactly ``req.kept``), ranking only still-kept weights
(global, ties to the lower flat index). The answer is the last round's mask and scores.
Same as synflow.py, with autograd for ∂R/∂θ.

Run as ``python3 examples/torch_synflow.py`` (suite entry with ``data: none``).
"""

import math

import torch

import torch_mlp
from ticketbench_plugin import Answer, serve


def synflow_scores(weights, biases, masks=None):
    """One SynFlow pass: (scores per layer as float64 tensors, R)."""
    ws, bs = torch_mlp.tensors(weights, biases)
    if masks is None:
        masks = [torch.ones_like(w, dtype=torch.bool) for w in ws]
    eff = [(torch.abs(w) * torch.as_tensor(m).to(w.dtype)).requires_grad_(True) for w, m in zip(ws, masks)]
    abs_b = [None if b is None else torch.abs(b) for b in bs]
    ones = torch.ones(1, ws[0].shape[1], dtype=torch_mlp.DTYPE)
    r = torch_mlp.forward(eff, abs_b, ones).sum()
    grads = torch.autograd.grad(r, eff)
    return [(g * w).detach() for g, w in zip(grads, eff)], float(r.detach())


def top_k_among(scores, k, candidates):
    """Exact global top-k (highest) among the candidate entries, ties to the lower flat index."""
    flat = torch.cat([s.reshape(-1) for s in scores])
    cand = torch.cat([torch.as_tensor(c, dtype=torch.bool).reshape(-1) for c in candidates])
    if k > int(cand.sum()):
        raise ValueError(f"cannot keep {k} of {int(cand.sum())} candidates")
    key = torch.where(cand, -flat, torch.full_like(flat, math.inf))
    order = torch.sort(key, stable=True).indices
    out = torch.zeros(flat.numel(), dtype=torch.bool)
    out[order[:k]] = True
    masks, offset = [], 0
    for s in scores:
        masks.append(out[offset:offset + s.numel()].reshape(s.shape))
        offset += s.numel()
    return masks


def round_counts(density, total, kept, rounds, schedule="exponential"):
    """Kept count per round k = 1..rounds, the last exactly ``kept``."""
    if schedule not in ("exponential", "linear"):
        raise ValueError(f"schedule must be 'exponential' or 'linear', not {schedule!r}")
    counts = []
    for k in range(1, rounds + 1):
        if k == rounds:
            counts.append(int(kept))
            continue
        d_k = density ** (k / rounds) if schedule == "exponential" else 1.0 - (1.0 - density) * k / rounds
        counts.append(min(int(math.floor(d_k * total + 0.5)), total))
    return counts


def synflow_prune(weights, biases, density, kept, rounds=100, schedule="exponential"):
    """(masks, scores) of iterative SynFlow, torch tensors."""
    total = sum(int(w.size) for w in weights)
    masks = [torch.ones(tuple(w.shape), dtype=torch.bool) for w in weights]
    scores = None
    for k_keep in round_counts(density, total, kept, rounds, schedule):
        scores, _ = synflow_scores(weights, biases, masks)
        masks = top_k_among(scores, k_keep, masks)
    return masks, scores


def prune(req):
    torch_mlp.check_linear(req)
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
