"""Magnitude pruning at initialisation, as a ticketbench plugin (PyTorch).

Data-free: S = |θ_0| on every weight (biases are never scored), keep the global top-k
(``req.top_k``: exact k = req.kept, ties to the lower flat index). The one-shot magnitude
criterion at init, the baseline of Frankle & Carbin 2019 (arXiv 1803.03635). Same as
magnitude.py, with torch tensors.

Run as ``python3 examples/torch_magnitude.py`` (suite entry with ``data: none``).
"""

import torch

import torch_mlp
from ticketbench_plugin import serve


def magnitude_scores(weights):
    """S_l = |W_l| as float64 tensors."""
    ws, _ = torch_mlp.tensors(weights, [None] * len(weights))
    return [torch.abs(w) for w in ws]


def prune(req):
    return req.top_k(magnitude_scores(req.weights))


if __name__ == "__main__":
    serve(prune)
