//! Native CPU training of a masked MLP under a fixed mask: the hot loop of every suite
//! (each ticket's final training, θ_T, IMP's levels), run without burn's autodiff graph.
//!
//! [`Engine::train`](crate::engine::Engine::train) on `--device cpu` lands here; training
//! with a [`TrainHook`](crate::train::TrainHook) (dynamic sparse training, Early-Bird,
//! rewinding) and every other backend keep the burn loop of `train.rs`. Why
//! (docs/performance.md): burn-flex's step spends its second thread poorly (1.08× from 1 to
//! 2 threads, PyTorch 1.9×, waking its workers for every op); here each batch is cut into
//! [`SHARDS`] shards that run the forward pass and the input gradients in parallel (one
//! hand-off per step), each dense layer's weight gradient is then one product over the
//! whole batch, cut into blocks that run in parallel (no per-shard gradients to sum),
//! buffers are allocated once per training, and layers at density ≤ 5 % use sparse kernels
//! (`sparse.rs`) whose cost follows the kept weights, not the dense shape (their weight
//! gradients, one value per kept weight, are computed per shard and summed).
//!
//! The step computes what `train.rs` computes, in f32 (tests/training.rs compares the two):
//! - forward `z_l = a_l·W_l + b_l`, `a_{l+1} = relu(z_l)`, linear output;
//! - mean cross-entropy over logits, or MSE averaged over all outputs;
//! - backward `∂W_l = a_lᵀ·g ⊙ M_l`, `∂b_l = Σ_rows g`, `g ← (g·W_lᵀ) ⊙ 1[a_l > 0]`: the
//!   gradient of `W ⊙ M`, so pruned weights (stored as exact zeros) stay exactly zero
//!   under SGD, momentum, L2 decay and Adam, as in the burn loop;
//! - burn-optim 0.22's update rules: L2 decay `g + λ·w`; SGD heavy-ball `v ← g + μ·v`
//!   (no dampening, `v = g` at the first step); Adam with bias correction
//!   `w ← w − lr · m̂·√(1−β₂ᵗ)/(1−β₁ᵗ) / (√v + ε·√(1−β₂ᵗ))`, β = (0.9, 0.999), ε = 1e-8.
//!
//! The batch order is the burn loop's (stream `train/shuffle`); each batch's rows are
//! gathered from the uploaded tensor, so the data is never copied whole. Results are
//! bit-identical for any thread count (fixed [`SHARDS`] and [`gemm::BLOCKS`]); they
//! differ from the burn loop's, and dense from sparse kernels, in the last bits (another
//! summation order), as flex and ndarray differ.

pub mod gemm;
mod sparse;

use crate::engine::{DeviceData, DeviceSplit, EngineError};
use crate::model::transpose;
use crate::train::{Divergence, EpochReport, Optimizer, TrainOutcome, TrainRecipe, shuffle_order};
use gemm::{View, matmul};
use rayon::prelude::*;
pub use sparse::SPARSE_MAX_DENSITY;
use sparse::{Csr, SparseScratch};
use ticketbench_core::{Layer as HostLayer, Mask, Network, Streams};
use ticketbench_planted::{OutputKind, Targets};

/// Element-wise passes over vectors longer than this run in parallel chunks of this size.
const PARALLEL_CHUNK: usize = 1 << 16;

/// The training split as the native step reads it: inputs stay in the uploaded tensor
/// (each batch's rows are gathered from it, so no second copy of the data is made), targets
/// are read to the host once (one label or output row per example).
struct HostSplit<'d> {
    split: &'d DeviceSplit,
    dim: usize,
    /// Network outputs per example.
    out: usize,
    targets: Targets,
}

impl<'d> HostSplit<'d> {
    fn new(split: &'d DeviceSplit, dim: usize, out: usize) -> HostSplit<'d> {
        HostSplit {
            split,
            dim,
            out,
            targets: split.targets(),
        }
    }

    /// Copies the input rows `idx` into `out` (`[idx.len(), dim]`).
    fn gather(&self, idx: &[usize], out: &mut [f32]) {
        self.split.gather_inputs_into(idx, out);
    }
}

/// Optimiser state of one parameter tensor.
enum Slot {
    Sgd,
    Momentum(Option<Vec<f32>>),
    Adam { m1: Vec<f32>, m2: Vec<f32> },
}

impl Slot {
    fn new(recipe: &TrainRecipe, len: usize) -> Slot {
        match recipe.optimizer {
            Optimizer::Sgd if recipe.momentum > 0.0 => Slot::Momentum(None),
            Optimizer::Sgd => Slot::Sgd,
            Optimizer::Adam => Slot::Adam {
                m1: vec![0.0; len],
                m2: vec![0.0; len],
            },
        }
    }
}

/// The scalars of one optimiser step.
#[derive(Clone, Copy)]
struct StepRule {
    lr: f32,
    decay: f32,
    momentum: f32,
    /// Adam at step `t`: `(β₁, β₂, √(1−β₂ᵗ)/(1−β₁ᵗ), ε·√(1−β₂ᵗ))`.
    adam: Option<(f32, f32, f32, f32)>,
}

impl StepRule {
    fn new(recipe: &TrainRecipe, t: i32) -> StepRule {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let bc2 = (1.0 - b2.powi(t)).sqrt();
        StepRule {
            lr: recipe.lr as f32,
            decay: recipe.weight_decay as f32,
            momentum: recipe.momentum as f32,
            adam: (recipe.optimizer == Optimizer::Adam)
                .then(|| (b1, b2, bc2 / (1.0 - b1.powi(t)), eps * bc2)),
        }
    }

    /// Updates `param` from `grad` (which it may overwrite) and the slot's state.
    fn apply(self, param: &mut [f32], grad: &mut [f32], slot: &mut Slot) {
        if self.decay > 0.0 {
            zip_chunks(grad, param, |g, w| {
                for (g, w) in g.iter_mut().zip(w) {
                    *g += *w * self.decay;
                }
            });
        }
        match slot {
            Slot::Sgd => sgd(param, grad, self.lr),
            Slot::Momentum(velocity) => {
                match velocity {
                    Some(v) => {
                        let mu = self.momentum;
                        zip_chunks(v, grad, |v, g| {
                            for (v, g) in v.iter_mut().zip(g) {
                                *v = *g + *v * mu;
                            }
                        });
                    }
                    None => *velocity = Some(grad.to_vec()),
                }
                sgd(param, velocity.as_deref().expect("set above"), self.lr);
            }
            Slot::Adam { m1, m2 } => {
                let (b1, b2, factor, eps) = self.adam.expect("Adam slots come with Adam rules");
                let lr = self.lr;
                let body = |w: &mut [f32], m1: &mut [f32], m2: &mut [f32], g: &[f32]| {
                    for (((w, m1), m2), g) in w.iter_mut().zip(m1).zip(m2).zip(g) {
                        *m1 = *m1 * b1 + g * (1.0 - b1);
                        *m2 = *m2 * b2 + g * g * (1.0 - b2);
                        *w -= *m1 * factor / (m2.sqrt() + eps) * lr;
                    }
                };
                if param.len() > PARALLEL_CHUNK {
                    param
                        .par_chunks_mut(PARALLEL_CHUNK)
                        .zip(m1.par_chunks_mut(PARALLEL_CHUNK))
                        .zip(m2.par_chunks_mut(PARALLEL_CHUNK))
                        .zip(grad.par_chunks(PARALLEL_CHUNK))
                        .for_each(|(((w, m1), m2), g)| body(w, m1, m2, g));
                } else {
                    body(param, m1, m2, grad);
                }
            }
        }
    }
}

/// `w ← w − lr·g`.
fn sgd(param: &mut [f32], grad: &[f32], lr: f32) {
    zip_chunks(param, grad, |w, g| {
        for (w, g) in w.iter_mut().zip(g) {
            *w -= *g * lr;
        }
    });
}

/// Runs `f` over matching chunks of `a` and `b` (in parallel when they are long).
fn zip_chunks(a: &mut [f32], b: &[f32], f: impl Fn(&mut [f32], &[f32]) + Sync) {
    if a.len() > PARALLEL_CHUNK {
        a.par_chunks_mut(PARALLEL_CHUNK)
            .zip(b.par_chunks(PARALLEL_CHUNK))
            .for_each(|(a, b)| f(a, b));
    } else {
        f(a, b);
    }
}

/// How a layer's weights are stored and multiplied.
enum Weights {
    /// `[in, out]` with pruned entries exactly 0, GEMM kernels; the gradient is masked.
    Dense {
        w: Vec<f32>,
        /// `[in, out]` of 0.0/1.0; `None` when the layer is dense.
        mask: Option<Vec<f32>>,
    },
    /// Only the kept entries (CSR), sparse kernels.
    Sparse(Csr),
}

/// Which kernels the native step uses for a masked layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Kernel {
    /// Sparse for layers at density ≤ [`SPARSE_MAX_DENSITY`], dense GEMMs otherwise.
    #[default]
    Auto,
    Dense,
    Sparse,
}

/// One layer: its weights, bias, the batch's gradients and optimiser state.
struct NativeLayer {
    fan_in: usize,
    fan_out: usize,
    weights: Weights,
    b: Option<Vec<f32>>,
    /// `∂L/∂W` of the whole batch: `[in, out]` (dense) or one per kept entry (sparse).
    gw: Vec<f32>,
    gb: Vec<f32>,
    w_slot: Slot,
    b_slot: Slot,
}

impl NativeLayer {
    fn new(host: &HostLayer, keep: &[bool], recipe: &TrainRecipe, kernel: Kernel) -> NativeLayer {
        let (fan_out, fan_in) = (host.shape.fan_out(), host.shape.fan_in());
        let masked: Vec<f32> = host
            .weight
            .iter()
            .zip(keep)
            .map(|(&w, &k)| if k { w } else { 0.0 })
            .collect();
        let w = transpose(&masked, fan_out, fan_in);
        let kept = keep.iter().filter(|&&k| k).count();
        let sparse = match kernel {
            Kernel::Auto => (kept as f64) <= SPARSE_MAX_DENSITY * keep.len() as f64,
            Kernel::Dense => false,
            Kernel::Sparse => true,
        };
        let weights = if sparse {
            let keep_t: Vec<bool> = (0..fan_in * fan_out)
                .map(|p| keep[(p % fan_out) * fan_in + p / fan_out])
                .collect();
            Weights::Sparse(Csr::from_dense(&w, &keep_t, fan_in, fan_out))
        } else {
            let mask = (kept < keep.len()).then(|| {
                let m: Vec<f32> = keep.iter().map(|&k| if k { 1.0 } else { 0.0 }).collect();
                transpose(&m, fan_out, fan_in)
            });
            Weights::Dense { w, mask }
        };
        // Sparse layers keep gradients and optimiser state for the kept entries only: a
        // pruned entry has zero gradient and zero state, so its update is exactly zero anyway.
        let w_len = match &weights {
            Weights::Dense { w, .. } => w.len(),
            Weights::Sparse(csr) => csr.vals.len(),
        };
        NativeLayer {
            fan_in,
            fan_out,
            weights,
            b: host.bias.clone(),
            gw: vec![0.0; w_len],
            gb: vec![0.0; fan_out],
            w_slot: Slot::new(recipe, w_len),
            b_slot: Slot::new(recipe, fan_out),
        }
    }

    /// `z = a·W + b` for `a` `[B, in]`, then ReLU unless `linear`.
    fn forward(&self, a: &[f32], z: &mut [f32], bsz: usize, linear: bool, s: &mut SparseScratch) {
        match &self.weights {
            Weights::Dense { w, .. } => matmul(
                z,
                View::rows(a, bsz, self.fan_in),
                View::rows(w, self.fan_in, self.fan_out),
                false,
            ),
            Weights::Sparse(csr) => csr.forward(a, z, bsz, s),
        }
        for row in z.chunks_exact_mut(self.fan_out) {
            if let Some(b) = &self.b {
                row.iter_mut().zip(b).for_each(|(z, b)| *z += b);
            }
            if !linear {
                row.iter_mut().for_each(|z| *z = z.max(0.0));
            }
        }
    }

    /// One shard's part of the backward pass, from its rows of the layer input `a` `[B, in]`
    /// and output gradient `g` `[B, out]`: with `gi`, the input gradient `gi = g·Wᵀ`; for a
    /// sparse layer also the shard's weight gradient on the kept entries into `gw_part`
    /// (reusing the feature-major copies of `a` and `g` that both products read; a dense
    /// layer's weight gradient is one product over the whole batch, [`Self::weight_gradient`]).
    fn backward_shard(
        &self,
        a: &[f32],
        g: &[f32],
        gi: Option<&mut [f32]>,
        gw_part: &mut [f32],
        bsz: usize,
        s: &mut SparseScratch,
    ) {
        match &self.weights {
            Weights::Dense { w, .. } => {
                if let Some(gi) = gi {
                    matmul(
                        gi,
                        View::rows(g, bsz, self.fan_out),
                        View::transposed(w, self.fan_in, self.fan_out),
                        false,
                    );
                }
            }
            Weights::Sparse(csr) => csr.backward(a, g, gw_part, gi, bsz, s),
        }
    }

    /// The whole batch's `gw = ∂L/∂W` (unmasked) and `gb = ∂L/∂b`, from the layer input `a`
    /// `[B, in]` and output gradient `g` `[B, out]`: one product over all rows for a dense
    /// layer; for a sparse layer the shards' parts (`shards[k].sparse_gw[l]`), summed in
    /// shard order.
    fn weight_gradient(&mut self, a: &[f32], g: &[f32], bsz: usize, shards: &[Shard], l: usize) {
        let (fan_in, fan_out) = (self.fan_in, self.fan_out);
        self.gb.fill(0.0);
        for row in g.chunks_exact(fan_out) {
            self.gb.iter_mut().zip(row).for_each(|(s, g)| *s += g);
        }
        match &self.weights {
            Weights::Dense { .. } => matmul(
                &mut self.gw,
                View::transposed(a, bsz, fan_in),
                View::rows(g, bsz, fan_out),
                false,
            ),
            Weights::Sparse(_) => {
                self.gw.copy_from_slice(&shards[0].sparse_gw[l]);
                for shard in &shards[1..] {
                    zip_chunks(&mut self.gw, &shard.sparse_gw[l], |s, g| {
                        s.iter_mut().zip(g).for_each(|(s, g)| *s += g)
                    });
                }
            }
        }
    }

    /// Masks the dense weight gradient and takes the optimiser step.
    fn update(&mut self, rule: StepRule) {
        match &mut self.weights {
            Weights::Dense { w, mask } => {
                if let Some(m) = mask {
                    zip_chunks(&mut self.gw, m, |g, m| {
                        g.iter_mut().zip(m).for_each(|(g, m)| *g *= m)
                    });
                }
                rule.apply(w, &mut self.gw, &mut self.w_slot);
            }
            Weights::Sparse(csr) => rule.apply(&mut csr.vals, &mut self.gw, &mut self.w_slot),
        }
        if let Some(b) = &mut self.b {
            rule.apply(b, &mut self.gb, &mut self.b_slot);
        }
    }

    fn to_host(&self, like: &HostLayer) -> HostLayer {
        let w = match &self.weights {
            Weights::Dense { w, .. } => transpose(w, self.fan_in, self.fan_out),
            Weights::Sparse(csr) => transpose(&csr.to_dense(), self.fan_in, self.fan_out),
        };
        HostLayer {
            shape: like.shape.clone(),
            weight: w,
            bias: self.b.clone(),
            conv: like.conv,
        }
    }
}

/// Every batch is cut into this many shards of consecutive rows, whatever the thread count:
/// the shards run the forward pass and the input gradients (and sparse layers' weight
/// gradients) in parallel (one hand-off per step); dense weight gradients are then one
/// product per layer over the whole batch (in fixed blocks, see [`gemm::BLOCKS`]) and
/// sparse ones are summed in shard order, so results are bit-identical with 1 or N threads.
pub const SHARDS: usize = 2;

/// One shard's rows of every layer's activations and output gradients.
struct ShardRows<'m> {
    /// `acts[l]`: input of layer `l` (`acts[0]` the shard's rows of the batch); the last is
    /// the output.
    acts: Vec<&'m mut [f32]>,
    /// `grads[l]`: gradient w.r.t. layer `l`'s output.
    grads: Vec<&'m mut [f32]>,
}

/// The first `bsz` rows of every buffer (`widths[l]` wide), cut into shards of `rows` rows:
/// `parts[k][l]` is shard `k`'s rows of buffer `l`.
fn shard_rows<'m>(
    bufs: &'m mut [Vec<f32>],
    widths: &[usize],
    bsz: usize,
    rows: usize,
) -> Vec<Vec<&'m mut [f32]>> {
    let mut parts: Vec<Vec<&'m mut [f32]>> = (0..bsz.div_ceil(rows)).map(|_| Vec::new()).collect();
    for (buf, &w) in bufs.iter_mut().zip(widths) {
        for (part, chunk) in parts.iter_mut().zip(buf[..bsz * w].chunks_mut(rows * w)) {
            part.push(chunk);
        }
    }
    parts
}

/// One shard's scratch space and sparse-layer weight gradients (allocated once per
/// training) and loss.
struct Shard {
    scratch: SparseScratch,
    /// Per layer: the shard's weight gradient on a sparse layer's kept entries (empty for
    /// dense layers).
    sparse_gw: Vec<Vec<f32>>,
    /// Sum (not mean) of the shard's per-example losses.
    loss: f32,
}

impl Shard {
    /// Forward, loss and input gradients of the rows `idx` (this shard's part of a batch of
    /// `total` examples; gradients are of the batch's mean loss).
    fn run(
        &mut self,
        layers: &[NativeLayer],
        data: &HostSplit<'_>,
        idx: &[usize],
        total: usize,
        mut m: ShardRows<'_>,
    ) {
        let rows = idx.len();
        let last = layers.len() - 1;
        for (l, layer) in layers.iter().enumerate() {
            let (input, rest) = m.acts.split_at_mut(l + 1);
            layer.forward(input[l], rest[0], rows, l == last, &mut self.scratch);
        }
        self.loss = output_gradient(data, m.acts[last + 1], m.grads[last], idx, total);
        if !self.loss.is_finite() {
            return;
        }
        for (l, layer) in layers.iter().enumerate().rev() {
            let (below, this) = m.grads.split_at_mut(l);
            // The data needs no gradient: ∂a only below the first layer.
            let gi = below.last_mut().map(|gi| &mut **gi);
            let a = &*m.acts[l];
            layer.backward_shard(
                a,
                this[0],
                gi,
                &mut self.sparse_gw[l],
                rows,
                &mut self.scratch,
            );
            if l > 0 {
                // Through the ReLU that produced the layer's input.
                below[l - 1].iter_mut().zip(a).for_each(|(g, a)| {
                    if *a <= 0.0 {
                        *g = 0.0;
                    }
                });
            }
        }
    }
}

/// The summed loss of the rows `idx` with outputs `z` (`out` wide), and the gradient of the
/// batch's mean loss (over `total` examples) w.r.t. those outputs into `g`.
fn output_gradient(
    data: &HostSplit<'_>,
    z: &[f32],
    g: &mut [f32],
    idx: &[usize],
    total: usize,
) -> f32 {
    let out = data.out;
    let mut sum = 0.0f32;
    match &data.targets {
        Targets::Classes(y) => {
            let scale = 1.0 / total as f32;
            for ((z, g), &i) in z.chunks_exact(out).zip(g.chunks_exact_mut(out)).zip(idx) {
                let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let log_sum = z.iter().map(|v| (v - max).exp()).sum::<f32>().ln() + max;
                let y = y[i] as usize;
                sum += log_sum - z[y];
                for (g, v) in g.iter_mut().zip(z) {
                    *g = (v - log_sum).exp() * scale;
                }
                g[y] -= scale;
            }
        }
        Targets::Values { values: y, .. } => {
            let scale = 2.0 / (total * out) as f32;
            for ((z, g), &i) in z.chunks_exact(out).zip(g.chunks_exact_mut(out)).zip(idx) {
                for ((g, v), t) in g.iter_mut().zip(z).zip(&y[i * out..(i + 1) * out]) {
                    let d = v - t;
                    sum += d * d;
                    *g = d * scale;
                }
            }
        }
    }
    sum
}

/// The model, the batch's activations and gradients, and the shards.
struct NativeMlp {
    layers: Vec<NativeLayer>,
    widths: Vec<usize>,
    /// `acts[l]`: the batch's input of layer `l`, `[B, widths[l]]` (`acts[0]` the gathered
    /// batch, the last the output).
    acts: Vec<Vec<f32>>,
    /// `grads[l]`: the batch's gradient w.r.t. layer `l`'s output, `[B, widths[l + 1]]`.
    grads: Vec<Vec<f32>>,
    shards: Vec<Shard>,
    output: OutputKind,
}

impl NativeMlp {
    fn new(
        net: &Network,
        mask: &Mask,
        recipe: &TrainRecipe,
        batch: usize,
        output: OutputKind,
        kernel: Kernel,
    ) -> Self {
        let widths = net.widths();
        let layers: Vec<NativeLayer> = net
            .layers
            .iter()
            .zip(mask.layers())
            .map(|(l, keep)| NativeLayer::new(l, keep, recipe, kernel))
            .collect();
        let rows = batch.div_ceil(SHARDS);
        let widest = widths.iter().copied().max().unwrap_or(0);
        let sparse = layers
            .iter()
            .any(|l| matches!(l.weights, Weights::Sparse(_)));
        NativeMlp {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    scratch: SparseScratch::new(if sparse { rows } else { 0 }, widest),
                    sparse_gw: layers
                        .iter()
                        .map(|l| match &l.weights {
                            Weights::Sparse(csr) => vec![0.0; csr.vals.len()],
                            Weights::Dense { .. } => Vec::new(),
                        })
                        .collect(),
                    loss: 0.0,
                })
                .collect(),
            acts: widths.iter().map(|w| vec![0.0; batch * w]).collect(),
            grads: widths[1..].iter().map(|w| vec![0.0; batch * w]).collect(),
            widths,
            layers,
            output,
        }
    }

    /// Forward, loss, backward and optimiser step on the rows `idx` of `data`; returns the
    /// batch's mean loss (before the step). A non-finite loss skips the update, as the burn
    /// loop stops there.
    fn step(&mut self, data: &HostSplit<'_>, idx: &[usize], rule: StepRule) -> f32 {
        let bsz = idx.len();
        data.gather(idx, &mut self.acts[0][..bsz * data.dim]);
        let rows = bsz.div_ceil(SHARDS);
        let used = bsz.div_ceil(rows);
        let acts = shard_rows(&mut self.acts, &self.widths, bsz, rows);
        let grads = shard_rows(&mut self.grads, &self.widths[1..], bsz, rows);
        let parts: Vec<ShardRows<'_>> = acts
            .into_iter()
            .zip(grads)
            .map(|(acts, grads)| ShardRows { acts, grads })
            .collect();
        let layers = &self.layers;
        self.shards[..used]
            .par_iter_mut()
            .zip(parts)
            .zip(idx.par_chunks(rows))
            .for_each(|((shard, m), part)| shard.run(layers, data, part, bsz, m));
        let loss =
            self.shards[..used].iter().map(|s| s.loss).sum::<f32>() / self.output_divisor(bsz);
        if !loss.is_finite() {
            return loss;
        }
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let a = &self.acts[l][..bsz * layer.fan_in];
            let g = &self.grads[l][..bsz * layer.fan_out];
            layer.weight_gradient(a, g, bsz, &self.shards[..used], l);
            layer.update(rule);
        }
        loss
    }

    fn output_divisor(&self, bsz: usize) -> f32 {
        match self.output {
            OutputKind::Classes(_) => bsz as f32,
            OutputKind::Regression(d) => (bsz * d) as f32,
        }
    }

    fn to_host(&self, like: &Network) -> Network {
        Network {
            layers: self
                .layers
                .iter()
                .zip(&like.layers)
                .map(|(l, host)| l.to_host(host))
                .collect(),
        }
    }
}

/// Trains `net` under the fixed `mask` with `recipe` on `data`'s training split (what
/// [`Engine::train`](crate::engine::Engine::train) does, natively on the CPU).
pub(crate) fn train(
    net: &Network,
    mask: &Mask,
    data: &DeviceData,
    recipe: &TrainRecipe,
    streams: &Streams,
    on_epoch: &mut dyn FnMut(EpochReport),
    kernel: Kernel,
) -> Result<TrainOutcome, EngineError> {
    let split = HostSplit::new(&data.train, data.input_dim, data.output.dim());
    let n = data.train.len;
    let mut model = NativeMlp::new(
        net,
        mask,
        recipe,
        recipe.batch_size.min(n),
        data.output,
        kernel,
    );
    let mut order_rng = streams.stream("train/shuffle");
    let mut order: Vec<usize> = (0..n).collect();
    let (mut step, mut epoch_losses, mut diverged) = (0usize, Vec::new(), None);
    'epochs: for epoch in 0..recipe.epochs {
        shuffle_order(&mut order, &mut order_rng);
        let mut loss_sum = 0.0f64;
        for chunk in order.chunks(recipe.batch_size) {
            let rule = StepRule::new(recipe, step as i32 + 1);
            let value = model.step(&split, chunk, rule) as f64;
            if !value.is_finite() {
                diverged = Some(Divergence {
                    step,
                    epoch,
                    loss: value,
                });
                break 'epochs;
            }
            loss_sum += value * chunk.len() as f64;
            step += 1;
        }
        let train_loss = loss_sum / n.max(1) as f64;
        epoch_losses.push(train_loss);
        on_epoch(EpochReport {
            epoch: epoch + 1,
            epochs: recipe.epochs,
            train_loss,
        });
    }
    Ok(TrainOutcome {
        net: model.to_host(net),
        mask: mask.clone(),
        epoch_losses,
        steps: step,
        diverged,
    })
}
