"""Magnitude pruning at initialisation, as a ticketbench plugin (numpy).

Data-free: S = |θ_0| on every weight (biases are never scored), keep the global top-k
(``req.top_k``: exact k = req.kept, ties to the lower flat index). The one-shot magnitude
criterion at init, the baseline of Frankle & Carbin 2019 (arXiv 1803.03635) and of the
pruning-at-init comparisons (e.g. Frankle et al. 2021, arXiv 2009.08576).

Run as ``python3 examples/magnitude.py`` (suite entry with ``data: none``).
"""

import numpy as np

import mlp  # noqa: F401  (puts ticketbench_plugin on sys.path when it is not installed)
from ticketbench_plugin import serve


def magnitude_scores(weights):
    """S_l = |W_l| in float64, one array per layer."""
    return [np.abs(np.asarray(w, dtype=np.float64)) for w in weights]


def prune(req):
    return req.top_k(magnitude_scores(req.weights))


if __name__ == "__main__":
    serve(prune)
