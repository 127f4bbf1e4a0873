//! Host-side f64 reverse mode for the ReLU network (dense and convolution layers), with exact
//! Hessian–vector products.
//!
//! burn has no double backward, so the second-order methods (GraSP §1.5, ProsPr §1.7) compute
//! on the host in f64. For `θ = (W_1, b_1, …, W_L, b_L)` (layers as in [`Network`]: `W_l`
//! row-major `[out, in]`, ReLU between layers, linear output) and a loss `L(θ; B)` on a batch:
//!
//! * [`Objective::gradient`]: `L` and `∇_θ L` by ordinary reverse mode;
//! * [`Objective::hvp`]: `∇_θ L` and `H v = ∇_θ (vᵀ ∇_θ L)` by Pearlmutter's R-operator
//!   (forward-over-reverse, Pearlmutter 1994): the forward pass carries the directional
//!   derivatives `Rz_l = V_l a_{l−1} + W_l Ra_{l−1} + c_l`, `Ra_l = σ'(z_l) ⊙ Rz_l`, and the
//!   backward pass their adjoints `Rδ_{l−1} = σ'(z_{l−1}) ⊙ (V_lᵀ δ_l + W_lᵀ Rδ_l)`,
//!   `R∇W_l = Rδ_l a_{l−1}ᵀ + δ_l Ra_{l−1}ᵀ`, `R∇b_l = Σ_n Rδ_l`. ReLU's second derivative is 0
//!   almost everywhere, so the only curvature outside the loss comes from the products.
//!   Cost: about three gradients, memory O(batch · Σ widths) — never a Hessian.
//!
//! A convolution layer (`W_l` `[c_out, c_in·k_h·k_w]`, flat CHW activations) is the same
//! bilinear product over its im2col rows: with `X = im2col(a_{l−1})` (one row per example and
//! output position, zero in the padding), `z[o, p] = Σ_t W[o, t] X[p, t] + b[o]`; the weight
//! gradient is `Σ_{n,p} δ[o, p] X[p, t]`, the bias gradient `Σ_{n,p} δ[o, p]` (one per
//! channel), and the input gradient `dX[p, t] = Σ_o δ[o, p] W[o, t]` scattered back through
//! the adjoint of im2col. The R-pass uses the same three products (`Rz = V X + W RX + c`,
//! `R∇W = Rδ Xᵀ + δ RXᵀ`, `RdX = Vᵀδ + WᵀRδ`), so every formula above holds with the
//! `n·positions` im2col rows in place of the `n` examples; dense layers use the products on
//! the activations directly.
//!
//! Losses ([`Loss`]) equal the engine's training losses: cross-entropy mean over the batch on
//! `logits / T` (burn `CrossEntropyLoss`, `T = 1`; GraSP uses `T = 200`) and MSE mean over
//! batch × outputs (burn `MseLoss`, `Reduction::Mean`); plus `½ Σ (ŷ − y)²` for the worked
//! examples of methods.md §1. The matrix products are row-major and cache-friendly
//! (dot products of contiguous rows, `axpy` over contiguous rows), split over rayon's pool
//! for large layers; every output entry is summed in a fixed order, so results do not depend
//! on the number of threads.

use rayon::prelude::*;
use std::borrow::Cow;
use std::sync::Arc;
use ticketbench_core::{Im2col, Network};
use ticketbench_planted::{Dataset, OutputKind, Targets};

/// The convolution of a layer: its im2col map (shared between copies of the parameters),
/// the length of its flat CHW input and its kernel area `k_h·k_w`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ConvMap {
    pub im2col: Arc<Im2col>,
    pub in_len: usize,
    pub kernel_area: usize,
}

/// One layer's parameters (or a gradient / direction of the same shape), f64.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LayerParams {
    /// Inputs per output unit (`c_in·k_h·k_w` taps for a convolution).
    pub fan_in: usize,
    /// Output units (channels of a convolution).
    pub fan_out: usize,
    /// Output positions per unit: 1 (dense), `out_h·out_w` (convolution).
    pub positions: usize,
    /// The convolution's geometry; `None` for a dense layer.
    pub conv: Option<ConvMap>,
    /// Row-major `[fan_out, fan_in]` (a convolution's `[c_out, c_in, k_h, k_w]`).
    pub w: Vec<f64>,
    /// One per output unit (per channel of a convolution).
    pub b: Option<Vec<f64>>,
}

impl LayerParams {
    /// Length of one example's flat input.
    pub fn in_len(&self) -> usize {
        self.conv.as_ref().map_or(self.fan_in, |c| c.in_len)
    }
}

/// All parameters of an MLP, or a vector (gradient, direction) in the same layout.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Params {
    pub layers: Vec<LayerParams>,
}

impl Params {
    /// `θ` of `net` in f64 (biases where the network has them).
    pub fn from_network(net: &Network) -> Params {
        Params {
            layers: net
                .layers
                .iter()
                .map(|l| LayerParams {
                    fan_in: l.shape.fan_in(),
                    fan_out: l.shape.fan_out(),
                    positions: l.positions(),
                    conv: l.im2col().map(|map| ConvMap {
                        im2col: Arc::new(map),
                        in_len: l.in_len(),
                        kernel_area: l.shape.dims[2..].iter().product(),
                    }),
                    w: l.weight.iter().map(|&v| v as f64).collect(),
                    b: l.bias
                        .as_ref()
                        .map(|b| b.iter().map(|&v| v as f64).collect()),
                })
                .collect(),
        }
    }

    /// A zero vector of the same layout.
    pub fn zeros_like(&self) -> Params {
        Params {
            layers: self
                .layers
                .iter()
                .map(|l| LayerParams {
                    fan_in: l.fan_in,
                    fan_out: l.fan_out,
                    positions: l.positions,
                    conv: l.conv.clone(),
                    w: vec![0.0; l.w.len()],
                    b: l.b.as_ref().map(|b| vec![0.0; b.len()]),
                })
                .collect(),
        }
    }

    /// `self ← self + alpha · other`.
    pub fn add_scaled(&mut self, alpha: f64, other: &Params) {
        for (a, b) in self.layers.iter_mut().zip(&other.layers) {
            axpy(&mut a.w, alpha, &b.w);
            if let (Some(x), Some(y)) = (&mut a.b, &b.b) {
                axpy(x, alpha, y);
            }
        }
    }

    /// `self ← alpha · self`.
    pub fn scale(&mut self, alpha: f64) {
        for l in &mut self.layers {
            l.w.iter_mut().for_each(|v| *v *= alpha);
            if let Some(b) = &mut l.b {
                b.iter_mut().for_each(|v| *v *= alpha);
            }
        }
    }

    /// The same vector with every bias entry set to 0 (a direction over the weights only).
    pub fn without_biases(mut self) -> Params {
        for l in &mut self.layers {
            if let Some(b) = &mut l.b {
                b.iter_mut().for_each(|v| *v = 0.0);
            }
        }
        self
    }

    /// The weight part, one vector per layer (the layout of `Scores` and `Mask`).
    pub fn into_weights(self) -> Vec<Vec<f64>> {
        self.layers.into_iter().map(|l| l.w).collect()
    }

    /// Every entry, layer by layer: `W_1, b_1, W_2, b_2, …`.
    #[cfg(test)]
    pub fn flat(&self) -> Vec<f64> {
        let mut out = Vec::new();
        for l in &self.layers {
            out.extend_from_slice(&l.w);
            if let Some(b) = &l.b {
                out.extend_from_slice(b);
            }
        }
        out
    }

    /// Mutable references to every entry, in [`Params::flat`] order.
    #[cfg(test)]
    pub fn flat_mut(&mut self) -> Vec<&mut f64> {
        let mut out = Vec::new();
        for l in &mut self.layers {
            out.extend(l.w.iter_mut());
            if let Some(b) = &mut l.b {
                out.extend(b.iter_mut());
            }
        }
        out
    }
}

/// Activation between layers (the output layer is always linear).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hidden {
    /// ReLU, as in [`Network`] and the engine.
    Relu,
    /// No nonlinearity: the worked examples of methods.md §1 use a linear net.
    #[cfg_attr(not(test), allow(dead_code))]
    Identity,
}

/// A batch loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Loss {
    /// `mean_n −log softmax(z_n / T)[y_n]` (burn `CrossEntropyLoss` at `T = 1`).
    CrossEntropy { temperature: f64 },
    /// `mean over batch × outputs of (z − y)²` (burn `MseLoss`, `Reduction::Mean`).
    Mse,
    /// `½ Σ_n Σ_k (z − y)²`, the loss of the worked examples in methods.md §1.
    #[cfg_attr(not(test), allow(dead_code))]
    HalfSquaredSum,
}

impl Loss {
    /// The engine's training loss for `output` (cross-entropy at `temperature`, or MSE).
    pub fn for_output(output: OutputKind, temperature: f64) -> Loss {
        match output {
            OutputKind::Classes(_) => Loss::CrossEntropy { temperature },
            OutputKind::Regression(_) => Loss::Mse,
        }
    }
}

/// Targets of a host batch.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum BatchTargets {
    Classes(Vec<usize>),
    /// Row-major `len × outputs`.
    Values(Vec<f64>),
}

/// A batch in f64: inputs row-major `len × input_dim`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Batch {
    pub len: usize,
    pub input_dim: usize,
    pub x: Vec<f64>,
    pub targets: BatchTargets,
}

impl Batch {
    pub fn from_dataset(d: &Dataset) -> Batch {
        Batch {
            len: d.len(),
            input_dim: d.input_dim,
            x: d.inputs.iter().map(|&v| v as f64).collect(),
            targets: match &d.targets {
                Targets::Classes(y) => {
                    BatchTargets::Classes(y.iter().map(|&c| c as usize).collect())
                }
                Targets::Values { values, .. } => {
                    BatchTargets::Values(values.iter().map(|&v| v as f64).collect())
                }
            },
        }
    }

    /// Rows `[0, mid)` and `[mid, len)`.
    pub fn split_at(&self, mid: usize) -> (Batch, Batch) {
        let d = self.input_dim;
        let part = |lo: usize, hi: usize| Batch {
            len: hi - lo,
            input_dim: d,
            x: self.x[lo * d..hi * d].to_vec(),
            targets: match &self.targets {
                BatchTargets::Classes(y) => BatchTargets::Classes(y[lo..hi].to_vec()),
                BatchTargets::Values(v) => {
                    let k = v.len() / self.len.max(1);
                    BatchTargets::Values(v[lo * k..hi * k].to_vec())
                }
            },
        };
        (part(0, mid), part(mid, self.len))
    }
}

/// `L(θ; batch)` with its derivatives.
#[derive(Debug, Clone, Copy)]
pub(super) struct Objective<'a> {
    pub batch: &'a Batch,
    pub loss: Loss,
    pub hidden: Hidden,
}

/// Result of [`Objective::hvp`].
#[derive(Debug, Clone)]
pub(super) struct Hvp {
    /// `L(θ)` and `∇_θ L`, computed on the way (the methods use `hv` only).
    #[cfg_attr(not(test), allow(dead_code))]
    pub loss: f64,
    #[cfg_attr(not(test), allow(dead_code))]
    pub grad: Params,
    pub hv: Params,
}

/// Forward-pass state: `acts[0] = x`, `acts[l + 1]` = output of layer `l` after its activation
/// (the last one holds the logits); `racts` the same for the R-pass.
struct Forward {
    acts: Vec<Vec<f64>>,
    racts: Option<Vec<Vec<f64>>>,
}

impl Objective<'_> {
    /// `L(θ)`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn loss(&self, theta: &Params) -> f64 {
        let fwd = self.forward(theta, None);
        self.output_delta(fwd.acts.last().expect("layers"), None).0
    }

    /// `L(θ)` and `∇_θ L` (weights and biases).
    pub fn gradient(&self, theta: &Params) -> (f64, Params) {
        let fwd = self.forward(theta, None);
        let (loss, delta, _) = self.output_delta(fwd.acts.last().expect("layers"), None);
        let (grad, _) = self.backward(theta, None, &fwd, delta, None);
        (loss, grad)
    }

    /// `L(θ)`, `∇_θ L` and the exact Hessian–vector product `H v` (R-operator).
    pub fn hvp(&self, theta: &Params, v: &Params) -> Hvp {
        let fwd = self.forward(theta, Some(v));
        let racts = fwd.racts.as_ref().expect("R-pass requested");
        let (loss, delta, rdelta) = self.output_delta(
            fwd.acts.last().expect("layers"),
            Some(racts.last().expect("layers")),
        );
        let (grad, hv) = self.backward(theta, Some(v), &fwd, delta, rdelta);
        Hvp {
            loss,
            grad,
            hv: hv.expect("R-pass requested"),
        }
    }

    fn forward(&self, theta: &Params, v: Option<&Params>) -> Forward {
        let n = self.batch.len;
        let last = theta.layers.len() - 1;
        assert_eq!(
            self.batch.input_dim,
            theta.layers[0].in_len(),
            "batch and network input widths differ"
        );
        let mut acts = vec![self.batch.x.clone()];
        // Ra_0 = 0: the input does not depend on θ.
        let mut racts = v.map(|_| vec![vec![0.0; n * self.batch.input_dim]]);
        for (l, layer) in theta.layers.iter().enumerate() {
            // A convolution is the dense product over the n·positions im2col rows.
            let (k, m, rows) = (layer.fan_in, layer.fan_out, n * layer.positions);
            let a = im2col_rows(layer, &acts[l], n);
            let mut z = vec![0.0; rows * m];
            matmul_nt(&a, rows, k, &layer.w, m, &mut z);
            add_bias(&mut z, m, layer.b.as_deref());
            let mut z = chw_from_rows(layer, z, n);
            if let (Some(v), Some(racts)) = (v, racts.as_mut()) {
                let dir = &v.layers[l];
                let mut rz = vec![0.0; rows * m];
                matmul_nt(&a, rows, k, &dir.w, m, &mut rz);
                if l > 0 {
                    let ra = im2col_rows(layer, &racts[l], n);
                    matmul_nt(&ra, rows, k, &layer.w, m, &mut rz);
                }
                add_bias(&mut rz, m, dir.b.as_deref());
                let mut rz = chw_from_rows(layer, rz, n);
                if l != last && self.hidden == Hidden::Relu {
                    for (r, &zz) in rz.iter_mut().zip(&z) {
                        if zz <= 0.0 {
                            *r = 0.0;
                        }
                    }
                }
                racts.push(rz);
            }
            if l != last && self.hidden == Hidden::Relu {
                z.iter_mut().for_each(|x| *x = x.max(0.0));
            }
            acts.push(z);
        }
        Forward { acts, racts }
    }

    /// Loss, `δ = ∂L/∂z_L` and (with `rlogits`) `Rδ = (∂²L/∂z_L²) Rz_L`.
    fn output_delta(
        &self,
        logits: &[f64],
        rlogits: Option<&[f64]>,
    ) -> (f64, Vec<f64>, Option<Vec<f64>>) {
        let n = self.batch.len;
        let k = logits.len() / n.max(1);
        let mut delta = vec![0.0; logits.len()];
        let mut rdelta = rlogits.map(|_| vec![0.0; logits.len()]);
        let mut loss = 0.0;
        match (self.loss, &self.batch.targets) {
            (Loss::CrossEntropy { temperature: t }, BatchTargets::Classes(y)) => {
                let scale = 1.0 / (t * n as f64);
                let mut p = vec![0.0; k];
                for row in 0..n {
                    let z = &logits[row * k..(row + 1) * k];
                    let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v / t));
                    let mut sum = 0.0;
                    for (p, &z) in p.iter_mut().zip(z) {
                        *p = (z / t - max).exp();
                        sum += *p;
                    }
                    let lse = max + sum.ln();
                    loss += lse - z[y[row]] / t;
                    p.iter_mut().for_each(|p| *p /= sum);
                    let d = &mut delta[row * k..(row + 1) * k];
                    for (d, &p) in d.iter_mut().zip(&p) {
                        *d = p * scale;
                    }
                    d[y[row]] -= scale;
                    if let (Some(rz), Some(rd)) = (rlogits, rdelta.as_mut()) {
                        // R(∂ℓ/∂z) = (1/T)(p ⊙ Ru − p (pᵀ Ru)), Ru = Rz / T.
                        let rz = &rz[row * k..(row + 1) * k];
                        let s: f64 = p.iter().zip(rz).map(|(p, r)| p * r / t).sum();
                        for ((rd, &p), &r) in rd[row * k..(row + 1) * k].iter_mut().zip(&p).zip(rz)
                        {
                            *rd = p * (r / t - s) * scale;
                        }
                    }
                }
                loss /= n as f64;
            }
            (Loss::Mse | Loss::HalfSquaredSum, BatchTargets::Values(y)) => {
                let scale = match self.loss {
                    Loss::Mse => 2.0 / (n * k) as f64,
                    _ => 1.0,
                };
                for ((d, &z), &y) in delta.iter_mut().zip(logits).zip(y) {
                    loss += (z - y) * (z - y);
                    *d = scale * (z - y);
                }
                loss *= scale / 2.0;
                if let (Some(rz), Some(rd)) = (rlogits, rdelta.as_mut()) {
                    for (rd, &r) in rd.iter_mut().zip(rz) {
                        *rd = scale * r;
                    }
                }
            }
            (loss, _) => panic!("loss {loss:?} does not match the batch's targets"),
        }
        (loss, delta, rdelta)
    }

    /// Back-propagates `δ` (and `Rδ`) from the output: `(∇_θ L, H v)`.
    fn backward(
        &self,
        theta: &Params,
        v: Option<&Params>,
        fwd: &Forward,
        mut delta: Vec<f64>,
        mut rdelta: Option<Vec<f64>>,
    ) -> (Params, Option<Params>) {
        let n = self.batch.len;
        let mut grad = theta.zeros_like();
        let mut hv = v.map(|_| theta.zeros_like());
        for l in (0..theta.layers.len()).rev() {
            let layer = &theta.layers[l];
            // A convolution is the dense product over the n·positions im2col rows: δ and Rδ
            // go from CHW to one row per (example, position), inputs through im2col.
            let (k, m, rows) = (layer.fan_in, layer.fan_out, n * layer.positions);
            let delta_rows = rows_from_chw(layer, &delta, n);
            let rdelta_rows = rdelta.as_ref().map(|rd| rows_from_chw(layer, rd, n));
            let a = im2col_rows(layer, &fwd.acts[l], n);
            let g = &mut grad.layers[l];
            matmul_tn(&delta_rows, rows, m, &a, k, &mut g.w);
            if let Some(b) = &mut g.b {
                column_sums(&delta_rows, m, b);
            }
            if let (Some(hv), Some(rd), Some(racts)) =
                (hv.as_mut(), rdelta_rows.as_deref(), &fwd.racts)
            {
                let h = &mut hv.layers[l];
                matmul_tn(rd, rows, m, &a, k, &mut h.w);
                if l > 0 {
                    let ra = im2col_rows(layer, &racts[l], n);
                    matmul_tn(&delta_rows, rows, m, &ra, k, &mut h.w);
                }
                if let Some(b) = &mut h.b {
                    column_sums(rd, m, b);
                }
            }
            if l == 0 {
                break;
            }
            // δ_{l−1} = σ'(z_{l−1}) ⊙ (W_lᵀ δ_l); Rδ_{l−1} = σ'(z_{l−1}) ⊙ (V_lᵀ δ_l + W_lᵀ Rδ_l).
            let mut e = vec![0.0; rows * k];
            matmul_nn(&delta_rows, rows, m, &layer.w, k, &mut e);
            let mut e = scatter_rows(layer, e, n);
            let mut re = None;
            if let (Some(v), Some(rd)) = (v, rdelta_rows.as_deref()) {
                let mut r = vec![0.0; rows * k];
                matmul_nn(&delta_rows, rows, m, &v.layers[l].w, k, &mut r);
                matmul_nn(rd, rows, m, &layer.w, k, &mut r);
                re = Some(scatter_rows(layer, r, n));
            }
            if self.hidden == Hidden::Relu {
                let act = &fwd.acts[l];
                for (i, &av) in act.iter().enumerate() {
                    if av <= 0.0 {
                        e[i] = 0.0;
                        if let Some(r) = re.as_mut() {
                            r[i] = 0.0;
                        }
                    }
                }
            }
            delta = e;
            rdelta = re;
        }
        (grad, hv)
    }
}

/// A layer's inputs as the rows of its product: the `n × fan_in` activations of a dense
/// layer as they are, a convolution's `n·positions × taps` im2col rows (example-major).
fn im2col_rows<'a>(layer: &LayerParams, x: &'a [f64], n: usize) -> Cow<'a, [f64]> {
    let Some(conv) = &layer.conv else {
        return Cow::Borrowed(x);
    };
    let block = layer.positions * layer.fan_in;
    let mut cols = vec![0.0; n * block];
    cols.par_chunks_mut(block.max(1))
        .zip(x.par_chunks(conv.in_len.max(1)))
        .for_each(|(cols, x)| conv.im2col.gather(x, cols));
    Cow::Owned(cols)
}

/// The adjoint of [`im2col_rows`]: `n·positions × taps` row gradients summed into each
/// example's `in_len` inputs (dense layers: unchanged).
fn scatter_rows(layer: &LayerParams, rows: Vec<f64>, n: usize) -> Vec<f64> {
    let Some(conv) = &layer.conv else {
        return rows;
    };
    let block = layer.positions * layer.fan_in;
    let mut x = vec![0.0; n * conv.in_len];
    x.par_chunks_mut(conv.in_len.max(1))
        .zip(rows.par_chunks(block.max(1)))
        .for_each(|(x, rows)| conv.im2col.scatter_add(rows, x));
    x
}

/// A convolution's product rows `[n, positions, c_out]` as CHW outputs `[n, c_out,
/// positions]` (dense layers: unchanged).
fn chw_from_rows(layer: &LayerParams, rows: Vec<f64>, n: usize) -> Vec<f64> {
    if layer.conv.is_none() {
        return rows;
    }
    let (c, p) = (layer.fan_out, layer.positions);
    let mut out = vec![0.0; rows.len()];
    for r in 0..n {
        let (src, dst) = (&rows[r * c * p..], &mut out[r * c * p..(r + 1) * c * p]);
        for (o, dst) in dst.chunks_mut(p).enumerate() {
            for (q, d) in dst.iter_mut().enumerate() {
                *d = src[q * c + o];
            }
        }
    }
    out
}

/// The inverse of [`chw_from_rows`] (dense layers: borrowed as they are).
fn rows_from_chw<'a>(layer: &LayerParams, chw: &'a [f64], n: usize) -> Cow<'a, [f64]> {
    if layer.conv.is_none() {
        return Cow::Borrowed(chw);
    }
    let (c, p) = (layer.fan_out, layer.positions);
    let mut out = vec![0.0; chw.len()];
    for r in 0..n {
        let (src, dst) = (&chw[r * c * p..], &mut out[r * c * p..(r + 1) * c * p]);
        for (q, dst) in dst.chunks_mut(c).enumerate() {
            for (o, d) in dst.iter_mut().enumerate() {
                *d = src[o * p + q];
            }
        }
    }
    Cow::Owned(out)
}

/// Work (multiply–adds) above which a product is split over rayon's pool.
const PARALLEL_WORK: usize = 1 << 16;

/// `y ← y + alpha · x`.
fn axpy(y: &mut [f64], alpha: f64, x: &[f64]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// `Σ a_i b_i` with four accumulators (vectorisable; fixed summation order).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for j in 0..4 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `out[n × m] += a[n × k] · w[m × k]ᵀ` (rows of `a` against rows of `w`).
fn matmul_nt(a: &[f64], n: usize, k: usize, w: &[f64], m: usize, out: &mut [f64]) {
    let row = |(r, out): (usize, &mut [f64])| {
        let a = &a[r * k..(r + 1) * k];
        for (o, out) in out.iter_mut().enumerate() {
            *out += dot(a, &w[o * k..(o + 1) * k]);
        }
    };
    if n * m * k >= PARALLEL_WORK {
        out.par_chunks_mut(m).enumerate().for_each(row);
    } else {
        out.chunks_mut(m).enumerate().for_each(row);
    }
}

/// `g[m × k] += d[n × m]ᵀ · a[n × k]`: row `o` of `g` accumulates `d[r, o] · a[r, :]`.
fn matmul_tn(d: &[f64], n: usize, m: usize, a: &[f64], k: usize, g: &mut [f64]) {
    // dᵀ so that each output row reads its coefficients contiguously.
    let mut dt = vec![0.0; m * n];
    for r in 0..n {
        for o in 0..m {
            dt[o * n + r] = d[r * m + o];
        }
    }
    let row = |(o, g): (usize, &mut [f64])| {
        for (r, &c) in dt[o * n..(o + 1) * n].iter().enumerate() {
            if c != 0.0 {
                axpy(g, c, &a[r * k..(r + 1) * k]);
            }
        }
    };
    if n * m * k >= PARALLEL_WORK {
        g.par_chunks_mut(k).enumerate().for_each(row);
    } else {
        g.chunks_mut(k).enumerate().for_each(row);
    }
}

/// `e[n × k] += d[n × m] · w[m × k]`: row `r` of `e` accumulates `d[r, o] · w[o, :]`.
fn matmul_nn(d: &[f64], n: usize, m: usize, w: &[f64], k: usize, e: &mut [f64]) {
    let row = |(r, e): (usize, &mut [f64])| {
        for (o, &c) in d[r * m..(r + 1) * m].iter().enumerate() {
            if c != 0.0 {
                axpy(e, c, &w[o * k..(o + 1) * k]);
            }
        }
    };
    if n * m * k >= PARALLEL_WORK {
        e.par_chunks_mut(k).enumerate().for_each(row);
    } else {
        e.chunks_mut(k).enumerate().for_each(row);
    }
}

fn add_bias(z: &mut [f64], m: usize, b: Option<&[f64]>) {
    if let Some(b) = b {
        for row in z.chunks_mut(m) {
            axpy(row, 1.0, b);
        }
    }
}

/// `out[o] += Σ_r d[r, o]`.
fn column_sums(d: &[f64], m: usize, out: &mut [f64]) {
    for row in d.chunks(m) {
        axpy(out, 1.0, row);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::device::DeviceSpec;
    use crate::engine::Engine;
    use ticketbench_core::{ConvNetSpec, ConvSpec, InitScheme, Mask, Streams, sample_uniform};

    /// A small random batch: `n` inputs uniform in [−1, 1), classes or values.
    pub(in crate::methods) fn random_dataset(
        n: usize,
        input_dim: usize,
        output: OutputKind,
        seed: u64,
    ) -> Dataset {
        let mut rng = Streams::new(seed).stream("test/hessian/data");
        let inputs = (0..n * input_dim)
            .map(|_| sample_uniform(&mut rng, -1.0, 1.0) as f32)
            .collect();
        let targets = match output {
            OutputKind::Classes(c) => {
                Targets::Classes((0..n).map(|i| ((i + (seed as usize)) % c) as u32).collect())
            }
            OutputKind::Regression(k) => Targets::Values {
                values: (0..n * k)
                    .map(|_| sample_uniform(&mut rng, -1.0, 1.0) as f32)
                    .collect(),
                dim: k,
            },
        };
        Dataset {
            inputs,
            input_dim,
            targets,
        }
    }

    /// A 3-5-4-k MLP with nonzero biases (kaiming-uniform).
    pub(in crate::methods) fn small_net(outputs: usize, seed: u64) -> Network {
        Network::mlp(
            &[3, 5, 4, outputs],
            true,
            InitScheme::KaimingUniform,
            &Streams::new(seed),
        )
        .unwrap()
    }

    /// A 1×6×6 image net: conv 3 channels (stride 1), conv 4 channels (stride 2), dense 5,
    /// `outputs`; 3×3 kernels, padding 1, nonzero biases (kaiming-uniform); 36 inputs.
    pub(in crate::methods) fn small_conv_net(outputs: usize, seed: u64) -> Network {
        let spec = ConvNetSpec {
            input: [1, 6, 6],
            convs: vec![ConvSpec::k3(3, 1), ConvSpec::k3(4, 2)],
            hidden: vec![5],
            outputs,
        };
        Network::conv_net(&spec, true, InitScheme::KaimingUniform, &Streams::new(seed)).unwrap()
    }

    /// The test networks: a builder `(outputs, seed) → net` and its input width.
    type NetBuilder = fn(usize, u64) -> Network;

    fn random_direction(like: &Params, seed: u64) -> Params {
        let mut rng = Streams::new(seed).stream("test/hessian/v");
        let mut v = like.clone();
        for x in v.flat_mut() {
            *x = sample_uniform(&mut rng, -1.0, 1.0);
        }
        v
    }

    fn rel_err(a: &[f64], b: &[f64]) -> f64 {
        let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        let norm: f64 = b.iter().map(|y| y * y).sum();
        (diff / norm).sqrt()
    }

    /// `(∇L(θ + h v) − ∇L(θ − h v)) / 2h`.
    fn fd_hvp(obj: &Objective, theta: &Params, v: &Params, h: f64) -> Vec<f64> {
        let mut plus = theta.clone();
        plus.add_scaled(h, v);
        let mut minus = theta.clone();
        minus.add_scaled(-h, v);
        let (gp, gm) = (obj.gradient(&plus).1.flat(), obj.gradient(&minus).1.flat());
        gp.iter()
            .zip(&gm)
            .map(|(p, m)| (p - m) / (2.0 * h))
            .collect()
    }

    /// methods.md §1.5(e): H v against central differences of ∇L, f64, rel. err < 1e-6, for
    /// cross-entropy (T = 1 and T = 200) and MSE; the gradient against central differences of
    /// the loss (step `h`).
    fn check_hvp_and_gradient(net: NetBuilder, input_dim: usize, h: f64) {
        for (output, loss) in [
            (
                OutputKind::Classes(3),
                Loss::CrossEntropy { temperature: 1.0 },
            ),
            (
                OutputKind::Classes(3),
                Loss::CrossEntropy { temperature: 200.0 },
            ),
            (OutputKind::Regression(2), Loss::Mse),
            (OutputKind::Regression(2), Loss::HalfSquaredSum),
        ] {
            let data = random_dataset(16, input_dim, output, 3);
            let batch = Batch::from_dataset(&data);
            let theta = Params::from_network(&net(output.dim(), 5));
            let obj = Objective {
                batch: &batch,
                loss,
                hidden: Hidden::Relu,
            };
            let v = random_direction(&theta, 9);
            let hvp = obj.hvp(&theta, &v);
            let fd = fd_hvp(&obj, &theta, &v, 1e-5);
            let err = rel_err(&hvp.hv.flat(), &fd);
            assert!(err < 1e-6, "{loss:?}: rel. err {err:e}");
            // The gradient from the R-pass equals the plain gradient bit for bit.
            let (l, g) = obj.gradient(&theta);
            assert_eq!(hvp.grad, g);
            assert_eq!(hvp.loss, l);
            // And the gradient itself matches central differences of the loss.
            let mut fd_g = Vec::new();
            for i in 0..g.flat().len() {
                let (mut p, mut m) = (theta.clone(), theta.clone());
                *p.flat_mut()[i] += h;
                *m.flat_mut()[i] -= h;
                fd_g.push((obj.loss(&p) - obj.loss(&m)) / (2.0 * h));
            }
            let err = rel_err(&g.flat(), &fd_g);
            assert!(err < 1e-6, "{loss:?} gradient: rel. err {err:e}");
        }
    }

    #[test]
    fn hvp_matches_central_differences_of_the_gradient() {
        // A 3-5-4-k ReLU net with biases.
        check_hvp_and_gradient(small_net, 3, 1e-6);
    }

    #[test]
    fn conv_hvp_matches_central_differences_of_the_gradient() {
        // A larger step for the loss differences: at T = 200 the 1e-6 step loses ~3e-6 of
        // the (small) gradient to rounding.
        check_hvp_and_gradient(small_conv_net, 36, 1e-5);
    }

    #[test]
    fn conv_loss_equals_the_reference_forward() {
        // The im2col forward of the objective against `Network::forward_f64`.
        let data = random_dataset(6, 36, OutputKind::Classes(3), 2);
        let batch = Batch::from_dataset(&data);
        let net = small_conv_net(3, 8);
        let obj = Objective {
            batch: &batch,
            loss: Loss::CrossEntropy { temperature: 1.0 },
            hidden: Hidden::Relu,
        };
        let BatchTargets::Classes(y) = &batch.targets else {
            unreachable!()
        };
        let want: f64 = (0..batch.len)
            .map(|r| {
                let z = net.forward_f64(&batch.x[r * 36..(r + 1) * 36]);
                let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln() - z[y[r]]
            })
            .sum::<f64>()
            / batch.len as f64;
        let got = obj.loss(&Params::from_network(&net));
        assert!((got - want).abs() <= 1e-12 * want.abs(), "{got} vs {want}");
    }

    /// `uᵀ H v = vᵀ H u`.
    fn check_symmetry(net: NetBuilder, input_dim: usize) {
        let data = random_dataset(8, input_dim, OutputKind::Classes(3), 1);
        let batch = Batch::from_dataset(&data);
        let theta = Params::from_network(&net(3, 2));
        let obj = Objective {
            batch: &batch,
            loss: Loss::CrossEntropy { temperature: 1.0 },
            hidden: Hidden::Relu,
        };
        let (u, v) = (random_direction(&theta, 1), random_direction(&theta, 2));
        let dot = |a: &Params, b: &Params| -> f64 {
            a.flat().iter().zip(b.flat()).map(|(x, y)| x * y).sum()
        };
        let (uhv, vhu) = (
            dot(&u, &obj.hvp(&theta, &v).hv),
            dot(&v, &obj.hvp(&theta, &u).hv),
        );
        assert!(
            (uhv - vhu).abs() <= 1e-12 * uhv.abs().max(1.0),
            "{uhv} vs {vhu}"
        );
    }

    #[test]
    fn hessian_is_symmetric() {
        check_symmetry(small_net, 3);
    }

    #[test]
    fn conv_hessian_is_symmetric() {
        check_symmetry(small_conv_net, 36);
    }

    /// Cross-entropy mean (T = 1) and MSE mean over batch × outputs, as the engine trains:
    /// the weight gradients equal burn's autodiff within `tol` of the largest.
    fn check_against_the_engine(net: NetBuilder, input_dim: usize, tol: f64) {
        let engine = Engine::new(DeviceSpec::Cpu).unwrap();
        for output in [OutputKind::Classes(3), OutputKind::Regression(2)] {
            let data = random_dataset(12, input_dim, output, 4);
            let net = net(output.dim(), 6);
            let want = engine
                .loss_gradients(&net, &Mask::dense(&net.shapes()), &data, output)
                .unwrap();
            let batch = Batch::from_dataset(&data);
            let obj = Objective {
                batch: &batch,
                loss: Loss::for_output(output, 1.0),
                hidden: Hidden::Relu,
            };
            let got = obj.gradient(&Params::from_network(&net)).1.into_weights();
            assert_eq!(got.len(), want.len());
            let max = want
                .iter()
                .flatten()
                .fold(0.0f64, |m, &v| m.max(v.abs() as f64));
            assert!(max > 0.0);
            for (l, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.len(), w.len(), "layer {l}");
                for (g, w) in g.iter().zip(w) {
                    assert!(
                        (g - *w as f64).abs() <= tol * max,
                        "{output:?} layer {l}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn losses_and_gradients_equal_the_engines() {
        check_against_the_engine(small_net, 3, 1e-5);
    }

    #[test]
    fn conv_losses_and_gradients_equal_the_engines() {
        check_against_the_engine(small_conv_net, 36, 1e-4);
    }

    #[test]
    fn shared_net_gradient_matches_methods_md() {
        // methods.md §1 (linear, ½(ŷ − y)², x = [1, 3], y = 1):
        // g = (−19, −57, 76, 228, −95, 71.25).
        let theta = Params::from_network(&Network::methods_md_worked_example());
        let batch = Batch {
            len: 1,
            input_dim: 2,
            x: vec![1.0, 3.0],
            targets: BatchTargets::Values(vec![1.0]),
        };
        let obj = Objective {
            batch: &batch,
            loss: Loss::HalfSquaredSum,
            hidden: Hidden::Identity,
        };
        let (loss, g) = obj.gradient(&theta);
        assert_eq!(loss, 0.5 * 19.0 * 19.0);
        assert_eq!(g.flat(), vec![-19.0, -57.0, 76.0, 228.0, -95.0, 71.25]);
    }

    #[test]
    fn halves_split_rows_and_targets() {
        let data = random_dataset(5, 3, OutputKind::Regression(2), 0);
        let batch = Batch::from_dataset(&data);
        let (a, b) = batch.split_at(2);
        assert_eq!((a.len, b.len), (2, 3));
        assert_eq!(a.x, batch.x[..6].to_vec());
        match (&a.targets, &b.targets, &batch.targets) {
            (BatchTargets::Values(ya), BatchTargets::Values(yb), BatchTargets::Values(y)) => {
                assert_eq!(ya[..], y[..4]);
                assert_eq!(yb[..], y[4..]);
            }
            _ => unreachable!(),
        }
    }
}
