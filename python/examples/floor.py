"""The protocol's floor: keep the first ``req.kept`` weights in flat order, score nothing.

Not a pruning method. ``benches/pruning.rs`` (group ``external/lenet-300-100``) runs it to
measure what the protocol itself costs per job -- the request written, θ_0 and the request
read by ``ticketbench_plugin``, a mask written, read back and checked -- apart from any
method's own compute. Run as ``python3 examples/floor.py`` (``data: none``).
"""

import numpy as np

import mlp  # noqa: F401  (puts ticketbench_plugin on sys.path when it is not installed)
from ticketbench_plugin import Answer, serve


def prune(req):
    flat = np.zeros(sum(w.size for w in req.weights), dtype=np.uint8)
    flat[: req.kept] = 1
    masks, offset = [], 0
    for w in req.weights:
        masks.append(flat[offset : offset + w.size].reshape(w.shape))
        offset += w.size
    return Answer(mask=masks)


if __name__ == "__main__":
    serve(prune)
