#!/usr/bin/env python3
"""The machine's fp32 GEMM peak as the performance goal measures it: the best of 20
1024×1024×1024 numpy (OpenBLAS) matmuls, in GFLOP/s (2·n³ flops each). Threads: set
OPENBLAS_NUM_THREADS (compare.py runs 1 and the machine's core count)."""
import json
import time

import numpy as np

n = 1024
a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
b = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
a @ b
best = min(
    (lambda t0: (a @ b, time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(20)
)
print(json.dumps({"impl": "numpy", "n": n, "seconds": best, "gflops": 2 * n**3 / best / 1e9}))
