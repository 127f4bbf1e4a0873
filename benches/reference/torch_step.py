#!/usr/bin/env python3
"""The training step of `ticketbench bench-step`, written by hand in PyTorch (CPU, fp32).

One step: forward of a ReLU MLP whose weights are multiplied by a fixed 0/1 mask
(x·(W⊙M) + b, as ticketbench's MaskedLinear), mean cross-entropy, backward, plain SGD
(lr 0.01). Data: N(0, 1) inputs, uniform random labels, a fresh random batch order each
epoch; Kaiming-normal weights, zero biases, a uniform random mask per layer at `--density`.
Prints one JSON line with `steps_per_s` (the same field as `ticketbench bench-step --json`).

    python3 torch_step.py --widths 784,300,100,10 --batch 128 --density 1 --steps 200 --threads 1
"""
import argparse
import json
import time

import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--widths", default="784,300,100,10")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--density", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    widths = [int(w) for w in a.widths.split(",")]
    layers = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        w = (torch.randn(fan_out, fan_in) * (2.0 / fan_in) ** 0.5).requires_grad_()
        b = torch.zeros(fan_out, requires_grad=True)
        m = None
        if a.density < 1.0:
            keep = round(a.density * fan_in * fan_out)
            flat = torch.zeros(fan_in * fan_out)
            flat[torch.randperm(fan_in * fan_out)[:keep]] = 1.0
            m = flat.view(fan_out, fan_in)
            with torch.no_grad():
                w.mul_(m)
        layers.append((w, b, m))
    params = [t for w, b, _ in layers for t in (w, b)]
    opt = torch.optim.SGD(params, lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()

    def data(n_steps):
        # Drawn before the clock starts, as bench-step uploads its data before timing.
        n = n_steps * a.batch
        return torch.randn(n, widths[0]), torch.randint(0, widths[-1], (n,)), torch.randperm(n)

    def epoch(n_steps, x, y, order):
        for s in range(n_steps):
            idx = order[s * a.batch:(s + 1) * a.batch]
            h = x[idx]
            for i, (w, b, m) in enumerate(layers):
                h = torch.nn.functional.linear(h, w if m is None else w * m, b)
                if i + 1 < len(layers):
                    h = torch.relu(h)
            loss = loss_fn(h, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()  # ticketbench reads every loss back (divergence check)

    epoch(a.warmup, *data(a.warmup))
    timed = data(a.steps)
    start = time.perf_counter()
    epoch(a.steps, *timed)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "impl": "pytorch", "version": torch.__version__, "widths": widths, "batch": a.batch,
        "density": a.density, "threads": a.threads, "steps": a.steps, "seconds": seconds,
        "steps_per_s": a.steps / seconds,
    }))


if __name__ == "__main__":
    main()
