#!/usr/bin/env python3
"""The training step of `ticketbench bench-step` by hand in numpy (fp32, BLAS GEMMs), for
machines without PyTorch. Same step as torch_step.py: masked ReLU MLP forward, mean
cross-entropy, hand-written backward (no input gradient for the first layer), the weight
gradient masked, plain SGD lr 0.01. Thread count: set OPENBLAS_NUM_THREADS (compare.py does).

    OPENBLAS_NUM_THREADS=1 python3 numpy_step.py --widths 784,300,100,10 --batch 128 --density 1
"""
import argparse
import json
import time

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--widths", default="784,300,100,10")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--density", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    widths = [int(w) for w in a.widths.split(",")]
    layers = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        # [in, out] so the forward is x·W, as ticketbench stores it on the device.
        w = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        m = None
        if a.density < 1.0:
            flat = np.zeros(fan_in * fan_out, np.float32)
            flat[rng.permutation(fan_in * fan_out)[: round(a.density * fan_in * fan_out)]] = 1.0
            m = flat.reshape(fan_in, fan_out)
            w *= m
        layers.append([w, np.zeros(fan_out, np.float32), m])

    def step(x, y):
        acts = [x]
        h = x
        for i, (w, b, m) in enumerate(layers):
            h = h @ (w if m is None else w * m) + b
            if i + 1 < len(layers):
                h = np.maximum(h, 0.0)
            acts.append(h)
        z = h - h.max(axis=1, keepdims=True)
        e = np.exp(z)
        prob = e / e.sum(axis=1, keepdims=True)
        loss = -np.log(prob[np.arange(len(y)), y]).mean()
        g = prob
        g[np.arange(len(y)), y] -= 1.0
        g /= len(y)
        for i in reversed(range(len(layers))):
            w, b, m = layers[i]
            gw = acts[i].T @ g
            gb = g.sum(axis=0)
            if i > 0:
                g = g @ (w if m is None else w * m).T
                g *= acts[i] > 0
            if m is not None:
                gw *= m
            w -= 0.01 * gw
            b -= 0.01 * gb
        return float(loss)

    def data(n_steps):
        # Drawn before the clock starts, as bench-step uploads its data before timing.
        n = n_steps * a.batch
        x = rng.standard_normal((n, widths[0])).astype(np.float32)
        return x, rng.integers(0, widths[-1], n), rng.permutation(n)

    def epoch(n_steps, x, y, order):
        for s in range(n_steps):
            idx = order[s * a.batch:(s + 1) * a.batch]
            step(x[idx], y[idx])

    epoch(a.warmup, *data(a.warmup))
    timed = data(a.steps)
    start = time.perf_counter()
    epoch(a.steps, *timed)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "impl": "numpy", "version": np.__version__, "widths": widths, "batch": a.batch,
        "density": a.density, "steps": a.steps, "seconds": seconds,
        "steps_per_s": a.steps / seconds,
    }))


if __name__ == "__main__":
    main()
