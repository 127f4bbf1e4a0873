//! Sustained GEMM rate (`cargo bench --bench gemm`): one 1024 × 1024 × 1024 fp32 product
//! through the native CPU step's GEMM (`ticketbench::bench::square_matmul`), on rayon's
//! global pool, with criterion `Throughput::Elements` = flops (2·n³), so criterion's
//! "elem/s" reads as FLOP/s. The machine's peak is the same product in numpy/OpenBLAS:
//! `benches/reference/peak.py` (docs/performance.md puts the two side by side).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use ticketbench::bench::square_matmul;

fn gemm(c: &mut Criterion) {
    let n = 1024usize;
    // Values in [-1, 1), fixed: the rate does not depend on them.
    let fill = |salt: usize| -> Vec<f32> {
        (0..n * n)
            .map(|i| ((i * 7919 + salt) % 2048) as f32 / 1024.0 - 1.0)
            .collect()
    };
    let (a, b) = (fill(1), fill(2));
    let mut out = vec![0.0f32; n * n];
    let mut group = c.benchmark_group("gemm");
    group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
    group.bench_function(format!("square/{n}"), |bench| {
        bench.iter(|| square_matmul(black_box(&mut out), &a, &b, n))
    });
    group.finish();
}

criterion_group!(benches, gemm);
criterion_main!(benches);
