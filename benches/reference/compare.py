#!/usr/bin/env python3
"""Runs `ticketbench bench-step` and the same step by hand (PyTorch if importable, and
numpy) for both benchmark nets at densities 1, 0.1 and 0.01, with the same thread count,
and prints a Markdown table of steps/s and the ratio ticketbench / reference. Each number
is the median of `--repeats` runs. Also prints the machine's numpy GEMM peak (peak.py).

    cargo build --release
    python3 benches/reference/compare.py --threads 1 [--bin target/release/ticketbench]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NETS = [("784,300,100,10", 128), ("2,1000,1000,4", 64)]
DENSITIES = ["1", "0.1", "0.01"]


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def median_rate(cmd, repeats, env=None):
    return statistics.median(run_json(cmd, env)["steps_per_s"] for _ in range(repeats))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="target/release/ticketbench")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
        print("PyTorch not importable: numpy reference only", file=sys.stderr)
    import numpy

    peak = run_json([sys.executable, os.path.join(HERE, "peak.py")], env)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"threads {a.threads}; numpy {numpy.__version__}"
          + (f", torch {__import__('torch').__version__}" if have_torch else ""))
    print(f"numpy 1024³ fp32 GEMM peak ({a.threads} thread(s)): {peak['gflops']:.1f} GFLOP/s\n")
    refs = (["pytorch"] if have_torch else []) + ["numpy"]
    head = "| net | batch | density | ticketbench steps/s | " + " | ".join(
        f"{r} steps/s | ratio vs {r}" for r in refs) + " |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for widths, batch in NETS:
        for d in DENSITIES:
            common = ["--widths", widths, "--batch", str(batch), "--density", d,
                      "--steps", str(a.steps)]
            ours = median_rate([a.bin, "bench-step", *common, "--threads", str(a.threads),
                                "--json"], a.repeats)
            cells = [f"{ours:.1f}"]
            for r in refs:
                script = os.path.join(HERE, "torch_step.py" if r == "pytorch" else "numpy_step.py")
                extra = ["--threads", str(a.threads)] if r == "pytorch" else []
                ref = median_rate([sys.executable, script, *common, *extra], a.repeats, env)
                cells += [f"{ref:.1f}", f"{ours / ref:.2f}x"]
            print(f"| {widths.replace(',', '-')} | {batch} | {d} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
