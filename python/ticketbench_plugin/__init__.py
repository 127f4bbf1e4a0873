"""The Python side of ticketbench's external-method protocol (docs/external-methods.md).

A plugin is a script that calls :func:`serve` with a function ``prune(req) -> answer``.
ticketbench starts the script once per worker thread and sends it one request per job, so
imports (``import torch``) are paid once per run. ``req`` (a :class:`Request`) holds θ_0 as
numpy arrays, the job's density and exact kept count, the task, the method's ``params:`` from
the suite and a per-request seed; ``req.scoring_batch()`` and ``req.train_split()`` read the
job's data. ``prune`` returns a list of masks (one array per layer, shaped like the weights),
or an :class:`Answer` (mask and/or scores, start weights, a log); ``req.top_k(scores)`` makes
one from scores with ticketbench's own exact top-k (ties to the lower flat index).

While ``prune`` runs, anything written to stdout (``print``) goes to stderr: stdout carries
the protocol's answer lines only. An exception fails that job (its message and traceback
reach the results, the traceback is on stderr) and the plugin goes on serving.
"""

import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

PROTOCOL = 1

__all__ = ["PROTOCOL", "Answer", "ProtocolError", "Request", "serve"]


class ProtocolError(Exception):
    """A request ticketbench sent, or an answer the plugin built, breaks the protocol."""


class Answer:
    """What a plugin answers for one request.

    mask   -- one array per layer (bool or 0/1), shaped like the layer's weights, with exactly
              ``req.kept`` ones in all; or None when ``scores`` are given (ticketbench then
              keeps the global top-k itself).
    scores -- one float array per layer (any finite values); with a mask, ticketbench uses
              them for the ``invert`` check and the planted-recovery AUROC.
    keep   -- which end of ``scores`` ranks best: "highest" (default) or "lowest" (GraSP).
    start  -- the weights the ticket trains from, when not θ_0 (IMP's rewound weights):
              a list of (weight, bias-or-None) pairs, one per layer.
    log    -- {"rounds": [{"round", "density", "test_acc", "test_loss"}...],
               "events": {name: number}}, shown in the report like built-in methods' logs.
    """

    def __init__(self, mask=None, scores=None, keep="highest", start=None, log=None):
        if mask is None and scores is None:
            raise ProtocolError("an Answer needs a mask or scores")
        if keep not in ("highest", "lowest"):
            raise ProtocolError(f"keep must be 'highest' or 'lowest', not {keep!r}")
        self.mask = mask
        self.scores = scores
        self.keep = keep
        self.start = start
        self.log = log

    def write(self, req):
        """Writes the answer files into the request directory; returns the answer line."""
        files = req.meta["answer"]
        if self.mask is not None:
            layers = _per_layer(req, self.mask, "mask")
            save_file(
                {f"layers.{l}.mask": (np.asarray(m) != 0).astype(np.uint8) for l, m in enumerate(layers)},
                str(req.dir / files["mask"]),
            )
        if self.scores is not None:
            layers = _per_layer(req, self.scores, "scores")
            save_file(
                {f"layers.{l}.scores": np.ascontiguousarray(s, dtype=np.float64) for l, s in enumerate(layers)},
                str(req.dir / files["scores"]),
            )
        if self.start is not None:
            if len(self.start) != len(req.layers):
                raise ProtocolError(f"start has {len(self.start)} layers, the network {len(req.layers)}")
            tensors = {}
            weights = _per_layer(req, [w for w, _ in self.start], "start weights")
            for l, (w, (_, b)) in enumerate(zip(weights, self.start)):
                tensors[f"start.{l}.weight"] = np.ascontiguousarray(w, dtype=np.float32)
                if b is not None:
                    tensors[f"start.{l}.bias"] = np.ascontiguousarray(_numpy(b), dtype=np.float32)
            save_file(tensors, str(req.dir / files["start"]))
        if self.log is not None:
            with open(req.dir / files["log"], "w") as f:
                json.dump(_json_safe(self.log), f)
        return {"status": "ok", "keep": self.keep}


def _json_safe(value):
    """The log with numpy scalars as numbers and non-finite numbers as "NaN", "inf", "-inf"
    (the strings ticketbench reads; bare NaN is not JSON)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, float, np.integer, np.floating)) or hasattr(value, "item"):
        number = float(value)
        if np.isnan(number):
            return "NaN"
        if np.isinf(number):
            return "inf" if number > 0 else "-inf"
        return number
    return value


def _seed_global_rngs(seed):
    """Seeds Python's, numpy's and (when imported) torch's global generators from the
    request's seed, so a plugin that draws from them gives the same answer whichever worker
    serves the request and in whatever order."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def _per_layer(req, arrays, what):
    arrays = [_numpy(a) for a in arrays]
    if len(arrays) != len(req.layers):
        raise ProtocolError(f"{what} has {len(arrays)} layers, the network {len(req.layers)}")
    for l, (a, layer) in enumerate(zip(arrays, req.layers)):
        if list(a.shape) != list(layer["shape"]):
            raise ProtocolError(f"{what} of layer {l} has shape {list(a.shape)}, the weights {layer['shape']}")
    return arrays


def _numpy(a):
    """numpy view of a numpy array, a torch tensor (any device) or a nested list."""
    if hasattr(a, "detach"):
        a = a.detach().cpu()
        if str(a.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            a = a.float()
        a = a.numpy()
    return np.asarray(a)


class Request:
    """One job's request, read from its directory.

    Attributes: dir, meta (request.json as a dict), density, kept (exact number of weights to
    keep), total, layers (dicts with kind, shape, bias, conv geometry), weights and biases
    (θ_0, numpy float32, [out, in] or [out, in, kh, kw]; bias None when the layer has none),
    params (the suite entry's ``params:``), seed (this request's seed for the method's own
    randomness), task (name, label, kind, inputs, outputs), data ("none", "scoring-batch",
    "full-training"), train (the suite's training recipe), check (the sanity check the job
    runs, or None), threads (the job's share of the cores; the process's OpenMP/BLAS thread
    variables are already set to it).
    """

    def __init__(self, path):
        self.dir = Path(path)
        with open(self.dir / "request.json") as f:
            self.meta = json.load(f)
        if self.meta.get("protocol") != PROTOCOL:
            raise ProtocolError(
                f"request protocol {self.meta.get('protocol')}, this ticketbench_plugin speaks {PROTOCOL}"
            )
        m = self.meta
        self.density = m["density"]
        self.kept = m["kept"]
        self.total = m["total"]
        self.layers = m["layers"]
        self.params = m["method"]["params"]
        self.seed = m["seed"]
        self.task = m["task"]
        self.data = m["data"]
        self.train = m["train"]
        self.check = m["job"]["check"]
        self.threads = m["job"]["threads"]
        theta0 = load_file(m["files"]["theta0"])
        self.weights = [theta0[f"layers.{l}.weight"] for l in range(len(self.layers))]
        self.biases = [theta0.get(f"layers.{l}.bias") for l in range(len(self.layers))]

    def rng(self):
        """A numpy Generator seeded with this request's seed."""
        return np.random.default_rng(self.seed)

    def scoring_batch(self):
        """(x, y): the job's class-balanced scoring batch, the one the built-in SNIP and GraSP
        use. x float32 [n, inputs]; y int64 class labels [n], or float32 [n, outputs] for
        regression. Data checks (random_labels, random_pixels) hand over the corrupted batch."""
        return self._split("scoring")

    def train_split(self):
        """(x, y): the whole training split (only with ``data: full-training``)."""
        return self._split("train")

    def _split(self, name):
        path = self.meta["files"].get(name)
        if path is None:
            raise ProtocolError(
                f"this request has no {name} data: declare `data: "
                + ("scoring-batch" if name == "scoring" else "full-training")
                + "` (or more) on the suite's method entry"
            )
        t = load_file(path)
        return t[f"{name}.x"], t[f"{name}.y"]

    def top_k(self, scores, keep="highest", counts=None):
        """An Answer with the exact top-``req.kept`` mask of ``scores`` and the scores themselves.

        Global ranking over every layer's flattened weights (layer 0 first, row-major), ties to
        the lower flat index, as ticketbench's built-in methods rank; ``counts`` (one number per
        layer, summing to ``req.kept``) ranks each layer on its own instead.
        ``keep="lowest"`` keeps the smallest scores (GraSP)."""
        layers = [np.asarray(s, dtype=np.float64) for s in _per_layer(self, scores, "scores")]
        for l, s in enumerate(layers):
            if not np.all(np.isfinite(s)):
                raise ProtocolError(f"scores of layer {l} are not all finite")
        if counts is None:
            flat = np.concatenate([s.ravel() for s in layers])
            keep_flat = _top(flat, self.kept, keep)
            masks, offset = [], 0
            for s in layers:
                masks.append(keep_flat[offset:offset + s.size].reshape(s.shape))
                offset += s.size
        else:
            if len(counts) != len(layers) or sum(counts) != self.kept:
                raise ProtocolError(f"counts {list(counts)} must give one count per layer summing to {self.kept}")
            for l, (s, k) in enumerate(zip(layers, counts)):
                if not 0 <= int(k) <= s.size:
                    raise ProtocolError(f"count {k} of layer {l} is outside 0..{s.size}")
            masks = [_top(s.ravel(), int(k), keep).reshape(s.shape) for s, k in zip(layers, counts)]
        return Answer(mask=masks, scores=layers, keep=keep)


def _top(flat, k, keep):
    """Boolean mask of the k best entries of flat; ties to the lower index.

    The same set as a stable sort's first k, in linear time: every entry strictly better than
    the k-th best value, then the entries equal to it in index order until k are kept."""
    out = np.zeros(flat.size, dtype=bool)
    if k <= 0:
        return out
    if k >= flat.size:
        out[:] = True
        return out
    key = -flat if keep == "highest" else flat  # the smaller key ranks first
    kth = np.partition(key, k - 1)[k - 1]
    out = key < kth
    out[np.flatnonzero(key == kth)[: k - int(out.sum())]] = True
    return out


def _as_answer(result):
    if isinstance(result, Answer):
        return result
    if isinstance(result, (list, tuple)):
        return Answer(mask=list(result))
    raise ProtocolError(f"prune returned {type(result).__name__}; return a list of masks or an Answer")


def serve(prune, stdin=None):
    """Answers requests until stdin closes: one JSON line in, one JSON line out."""
    stdin = stdin or sys.stdin
    # The protocol owns the real stdout; everything else written to fd 1 (print, C libraries)
    # goes to stderr, where ticketbench keeps the last lines for error messages.
    sys.stdout.flush()
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    while True:
        line = stdin.readline()
        if not line:
            return
        if not line.strip():
            continue
        try:
            message = json.loads(line)
            if message.get("protocol") != PROTOCOL:
                raise ProtocolError(
                    f"ticketbench speaks protocol {message.get('protocol')}, this ticketbench_plugin {PROTOCOL}"
                )
            req = Request(message["request"])
            _seed_global_rngs(req.seed)
            reply = _as_answer(prune(req)).write(req)
        except Exception as e:  # one failed job, not a dead worker
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            reply = {"status": "error", "message": f"{type(e).__name__}: {e}"}
        channel.write(json.dumps(reply) + "\n")
        channel.flush()
