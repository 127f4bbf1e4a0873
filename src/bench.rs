//! `ticketbench bench-step`: training-step throughput of one masked MLP — the number a user
//! puts beside the same loop written by hand in PyTorch (`benches/reference/`).
//!
//! One step is what a suite's training does per batch: forward, cross-entropy, backward,
//! SGD update and re-masking. The data is the `gaussian` task (N(0, I) inputs, random
//! labels) with exactly `steps × batch` training examples, so one epoch is `steps` steps;
//! a separate warm-up epoch runs first (allocator and thread-pool start-up excluded).

use crate::engine::{Engine, EngineError};
use crate::train::{Optimizer, TrainRecipe};
use serde::Serialize;
use std::time::Instant;
use thiserror::Error;
use ticketbench_baselines::random_ticket;
use ticketbench_baselines::ratios::RatioError;
use ticketbench_baselines::ratios::{RatioRule, RuleInput, Uniform};
use ticketbench_core::{CoreError, Density, InitScheme, Mask, Network, Streams};
use ticketbench_planted::tasks::{Gaussian, GaussianParams, Task};

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct StepBench {
    /// Layer widths `W0, …, WL` (`WL` ≥ 2 classes).
    pub widths: Vec<usize>,
    pub batch: usize,
    /// Density of a uniform random ticket (1 = dense).
    pub density: Density,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps before.
    pub warmup: usize,
}

/// A measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepResult {
    pub widths: Vec<usize>,
    pub batch: usize,
    pub density: f64,
    pub kept: usize,
    pub total: usize,
    pub device: String,
    /// Kernels of the native CPU step (`auto`, `dense`, `sparse`).
    pub kernel: String,
    pub threads: usize,
    pub steps: usize,
    pub seconds: f64,
    pub steps_per_s: f64,
    pub examples_per_s: f64,
    /// GEMM work done per second, counting [`step_flops`] per step (masks are applied as
    /// dense multiplies, so the GEMMs are dense whatever the density).
    pub gemm_gflops: f64,
}

/// Floating-point operations of the GEMMs of one training step of a `widths` MLP on a
/// batch of `batch`: per layer `2·B·in·out` for the forward and for the weight gradient,
/// and for the input gradient of every layer but the first (the data needs none).
pub fn step_flops(widths: &[usize], batch: usize) -> f64 {
    widths
        .windows(2)
        .enumerate()
        .map(|(l, w)| {
            let passes = if l == 0 { 2.0 } else { 3.0 };
            passes * 2.0 * (batch * w[0] * w[1]) as f64
        })
        .sum()
}

#[derive(Debug, Error)]
pub enum BenchError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Ratio(#[from] RatioError),
    #[error("bench-step needs {0}")]
    Invalid(&'static str),
}

/// The `steps × batch`-example Gaussian data of `widths`.
fn gaussian(widths: &[usize], examples: usize) -> Gaussian {
    Gaussian::new(GaussianParams {
        inputs: widths[0],
        classes: widths[widths.len() - 1],
        // Half train, half test: the train split is exactly `examples` long.
        samples: 2 * examples,
        train_fraction: 0.5,
    })
}

/// One epoch of plain SGD (lr 0.01) with batches of `batch`: the step every benchmark times.
pub fn sgd_epoch(batch: usize) -> TrainRecipe {
    TrainRecipe {
        optimizer: Optimizer::Sgd,
        lr: 0.01,
        momentum: 0.0,
        weight_decay: 0.0,
        epochs: 1,
        batch_size: batch,
    }
}

/// The benchmarks' ticket: dense at density 1, else a uniform random ticket (exact-k per
/// layer) drawn from `streams`.
pub fn uniform_ticket(
    net: &Network,
    density: Density,
    streams: &Streams,
) -> Result<Mask, BenchError> {
    let shapes = net.shapes();
    if density == Density::DENSE {
        return Ok(Mask::dense(&shapes));
    }
    let counts = Uniform.counts(RuleInput::Shapes(&shapes), density)?;
    Ok(random_ticket(&shapes, &counts, streams, "bench"))
}

/// `c = a·b` for row-major `n × n` matrices through the native CPU step's GEMM (its blocks
/// in parallel on the caller's rayon pool): the sustained GEMM rate to set against the
/// machine's peak, which `benches/reference/peak.py` measures with the same shapes in
/// numpy/OpenBLAS (`cargo bench --bench gemm`).
pub fn square_matmul(c: &mut [f32], a: &[f32], b: &[f32], n: usize) {
    use crate::native::gemm::{View, matmul};
    matmul(c, View::rows(a, n, n), View::rows(b, n, n), false);
}

/// Measures `bench` on `engine` (inside the caller's thread pool of `threads` threads).
pub fn bench_step(
    engine: &Engine,
    threads: usize,
    bench: &StepBench,
) -> Result<StepResult, BenchError> {
    if bench.steps == 0 || bench.batch == 0 {
        return Err(BenchError::Invalid("--steps and --batch of at least 1"));
    }
    if bench.widths.last().is_none_or(|&c| c < 2) {
        return Err(BenchError::Invalid("an output width of at least 2 classes"));
    }
    let streams = Streams::new(0);
    let net = Network::mlp(&bench.widths, true, InitScheme::KaimingNormal, &streams)?;
    let mask = uniform_ticket(&net, bench.density, &streams)?;
    let recipe = sgd_epoch(bench.batch);
    if bench.warmup > 0 {
        let warm =
            engine.upload(gaussian(&bench.widths, bench.warmup * bench.batch).generate(&streams));
        engine.train(&net, &mask, &warm, &recipe, &streams, &mut |_| {})?;
    }
    let data = engine.upload(gaussian(&bench.widths, bench.steps * bench.batch).generate(&streams));
    let start = Instant::now();
    engine.train(&net, &mask, &data, &recipe, &streams, &mut |_| {})?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(StepResult {
        widths: bench.widths.clone(),
        batch: bench.batch,
        density: bench.density.get(),
        kept: mask.kept(),
        total: mask.total(),
        device: engine.spec().to_string(),
        kernel: format!("{:?}", engine.kernel()).to_lowercase(),
        threads,
        steps: bench.steps,
        seconds,
        steps_per_s: bench.steps as f64 / seconds,
        examples_per_s: (bench.steps * bench.batch) as f64 / seconds,
        gemm_gflops: step_flops(&bench.widths, bench.batch) * bench.steps as f64 / seconds / 1e9,
    })
}

impl std::fmt::Display for StepResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let widths: Vec<String> = self.widths.iter().map(|w| w.to_string()).collect();
        write!(
            f,
            "{} batch {} density {} ({} of {} weights) on {} ({} kernels) with {} thread(s): {} steps in {:.3} s = {:.1} steps/s ({:.0} examples/s, {:.1} GEMM GFLOP/s)",
            widths.join("-"),
            self.batch,
            self.density,
            self.kept,
            self.total,
            self.device,
            self.kernel,
            self.threads,
            self.steps,
            self.seconds,
            self.steps_per_s,
            self.examples_per_s,
            self.gemm_gflops
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_flops_counts_forward_weight_and_input_gradients() {
        // LeNet-300-100 at batch 128: forward and weight gradient of all three layers,
        // input gradient of the last two.
        let macs = 128.0
            * (2.0 * (784.0 * 300.0 + 300.0 * 100.0 + 100.0 * 10.0)
                + (300.0 * 100.0 + 100.0 * 10.0));
        assert_eq!(step_flops(&[784, 300, 100, 10], 128), 2.0 * macs);
        // One layer: forward and weight gradient only, 2 · 2 · 3·2.
        assert_eq!(step_flops(&[3, 2], 1), 24.0);
    }
}
