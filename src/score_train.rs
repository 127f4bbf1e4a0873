//! Score training for strong lottery tickets: edge-popup, biprop and Gem-Miner
//! (methods.md §1.9–§1.11) share this loop.
//!
//! The weights `W` stay frozen; every prunable weight gets a real-valued score `s` (a burn
//! `Param`, the only trainable tensors of [`ScoreMlp`]) and the forward pass uses a mask
//! derived from the scores by a [`Rule`]:
//!
//! * [`Rule::TopK`] (edge-popup): per layer the exact top-`k_l` of `|s|`, `W_eff = W ⊙ m`;
//! * [`Rule::BinaryTopK`] (biprop): the same selection, `W_eff = α_l·sign(W) ⊙ m` with
//!   `α_l = ‖m ⊙ W‖₁ / ‖m‖₀`;
//! * [`Rule::Threshold`] (Gem-Miner): `m = 1[p > 0.5] ⊙ f` with permanent flags `f`, an L2
//!   penalty `λ Σ p²`, `p` clamped into `[0, 1]` after every step and periodic global pruning
//!   of the flags.
//!
//! The mask is a step function, so the gradient is straight-through: the effective weight is
//! written `W_eff = B ⊙ (a − a.detach() + V)` where `V` is the forward value (`m`, `α_l m`)
//! and `a` the tracked surrogate, giving
//!
//! * edge-popup: `∂L/∂s = ∂L/∂W_eff ⊙ W ⊙ sign(s)` (for **every** entry, pruned ones too);
//! * biprop: `∂L/∂s = (∂L/∂W_eff ⊙ sign(W)) ⊙ |W| ⊙ sign(s)` — the reference passes the
//!   gradient of `α m` to `|s|` scaled by `|W|` (α itself is not differentiated);
//! * Gem-Miner: `∂L/∂p = ∂L/∂W_eff ⊙ W ⊙ f + 2λp` (as if the mask were `p ⊙ f`).
//!
//! In the forward pass `a − a.detach()` is exactly 0, so the effective weights are exactly
//! `W ⊙ m` (density 1 reproduces the dense network bit for bit).
//!
//! Optimiser: SGD with heavy-ball momentum (PyTorch semantics, no dampening) and L2 weight
//! decay on the scores, learning rate on a per-step cosine schedule from `lr` to 0, data order
//! from the named stream `strong/shuffle`, scores initialised from `strong/scores/<l>`. Every
//! step checks that every score tensor received a gradient (the silent burn trap,
//! burn-probe.md) and that the loss is finite.
//!
//! Per-step selection ([`Selection`]): on the CPU backends, and on a GPU for nets with at
//! most [`HOST_SELECTION_MAX`] prunable weights, the top-k is selected on the host with the
//! exact-k rule (the same function that picks the final mask; on burn-flex this was twice as
//! fast as a device sort even at 181k weights). Larger nets on a GPU use a per-layer threshold
//! found by a device sort, avoiding a read-back per step (`|s| ≥ k_l-th largest`, exact unless
//! scores tie). The returned mask is always the exact-k host selection from the final scores.
//!
//! Biases (the reference networks have none) stay frozen at their θ_0 values.

use crate::device::DeviceSpec;
use crate::engine::{DeviceData, DeviceTargets, Engine, EngineError, loss};
use crate::methods::{MethodError, MethodLog, PruneContext};
use crate::model::{ConvLayout, layer_forward, read_f32, transpose};
use crate::train::batch;
use burn::module::{Module, Param};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::{Device, Int, Tensor, TensorData};
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};
use ticketbench_core::select::{Keep, top_k_global, top_k_per_layer};
use ticketbench_core::{
    CoreError, Layer, Mask, Network, Scores, Streams, sample_index, sample_uniform,
};
use ticketbench_planted::OutputKind;

/// On a GPU, nets up to this many prunable weights select the per-step top-k on the host
/// (exact-k, ties by flat index); larger ones use a device-side threshold per layer.
pub const HOST_SELECTION_MAX: usize = 50_000;

/// Where the per-step top-k of the top-k rules is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Read the scores back and select exactly on the host.
    Host,
    /// Per-layer threshold from a device sort (no read-back).
    Device,
}

impl Selection {
    /// Host selection on CPU backends and for small nets; device thresholds on a GPU above
    /// [`HOST_SELECTION_MAX`] weights.
    pub fn for_run(device: DeviceSpec, weights: usize) -> Selection {
        match device {
            DeviceSpec::Cuda(_) if weights > HOST_SELECTION_MAX => Selection::Device,
            _ => Selection::Host,
        }
    }
}

/// The frozen weights the scores select from (suite parameter `weights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FrozenWeights {
    /// Signed Kaiming constant (Ramanujan et al. 2020): `W = sign(θ_0)·σ_l`,
    /// `σ_l = √(2/fan_in)`; a zero θ_0 entry gets `+σ_l`.
    SignedConstant,
    /// The scaled variant: `σ_l = √(2/(fan_in·D))` with `D` the target density.
    ScaledSignedConstant,
    /// θ_0 unchanged.
    Init,
}

impl FrozenWeights {
    /// `σ_l` of the signed-constant schemes (`None` for [`FrozenWeights::Init`]).
    pub fn sigma(self, fan_in: usize, density: f64) -> Option<f64> {
        match self {
            FrozenWeights::SignedConstant => Some((2.0 / fan_in as f64).sqrt()),
            FrozenWeights::ScaledSignedConstant => Some((2.0 / (fan_in as f64 * density)).sqrt()),
            FrozenWeights::Init => None,
        }
    }

    /// The frozen network: weights per the scheme, biases θ_0.
    pub fn apply(self, net: &Network, density: f64) -> Network {
        let layers = net
            .layers
            .iter()
            .map(|layer| match self.sigma(layer.shape.fan_in(), density) {
                None => layer.clone(),
                Some(sigma) => {
                    let c = sigma as f32;
                    Layer {
                        weight: layer
                            .weight
                            .iter()
                            .map(|&w| if w < 0.0 { -c } else { c })
                            .collect(),
                        ..layer.clone()
                    }
                }
            })
            .collect();
        Network { layers }
    }
}

/// How scores are initialised (host layout `[out, in]`, stream `strong/scores/<l>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreInit {
    /// PyTorch's `kaiming_uniform_(a = √5)`: `U(−1/√fan_in, 1/√fan_in)` (edge-popup, biprop).
    KaimingUniform,
    /// `U(0, 1)` (Gem-Miner).
    Unit,
}

impl ScoreInit {
    pub fn draw(self, net: &Network, streams: &Streams) -> Vec<Vec<f32>> {
        net.layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let mut rng = streams.stream(&format!("strong/scores/{l}"));
                let (lo, hi) = match self {
                    ScoreInit::KaimingUniform => {
                        let b = 1.0 / (layer.shape.fan_in() as f64).sqrt();
                        (-b, b)
                    }
                    ScoreInit::Unit => (0.0, 1.0),
                };
                (0..layer.shape.len())
                    .map(|_| sample_uniform(&mut rng, lo, hi) as f32)
                    .collect()
            })
            .collect()
    }
}

/// A Gem-Miner pruning round: at the start of epoch `epoch` (0-based, `epoch mod T = 0`),
/// keep the `keep` flagged weights with the largest `p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneStep {
    pub epoch: usize,
    pub keep: usize,
}

/// How the forward mask comes from the scores.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// edge-popup: per-layer top-`counts[l]` of `|s|`, `W_eff = W ⊙ m`.
    TopK { counts: Vec<usize> },
    /// biprop: per-layer top-`counts[l]` of `|s|`, `W_eff = α_l·sign(W) ⊙ m`.
    BinaryTopK { counts: Vec<usize> },
    /// Gem-Miner: `m = 1[p > 0.5] ⊙ f`, L2 penalty `λ Σ p²`, flags pruned per `prunes`.
    Threshold { lambda: f64, prunes: Vec<PruneStep> },
}

/// Optimiser settings of a score-training run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRecipe {
    pub epochs: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
}

impl ScoreRecipe {
    /// Score training's compute for the time guard: its own epochs over the training split.
    pub fn work(&self, train_examples: usize) -> crate::methods::Work {
        crate::methods::Work::epochs(self.epochs, self.batch_size, train_examples)
    }

    /// Checks ranges; the error names the method and the field.
    pub fn validate(&self, method: &'static str) -> Result<(), MethodError> {
        let bad = |message: String| Err(MethodError::InvalidParams { method, message });
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr {} must be a positive number", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(format!("momentum {} must be in [0, 1)", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!("weight_decay {} must be ≥ 0", self.weight_decay));
        }
        Ok(())
    }

    fn optimizer(&self) -> burn::optim::ModuleOptimizer {
        SgdConfig::new()
            .with_momentum((self.momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(self.momentum)
                    .with_dampening(0.0)
            }))
            .with_weight_decay(
                (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay as f32)),
            )
            .init()
    }

    /// Cosine learning rate of step `t` out of `total`: `½·lr·(1 + cos(π t / total))`.
    pub fn lr_at(&self, t: usize, total: usize) -> f64 {
        0.5 * self.lr * (1.0 + (std::f64::consts::PI * t as f64 / total.max(1) as f64).cos())
    }
}

/// One layer: frozen weight and bias, trainable scores.
#[derive(Module, Debug)]
pub struct ScoreLayer {
    /// `[in, out]`, the only trainable tensor.
    scores: Param<Tensor<2>>,
    /// `[in, out]`, frozen.
    weight: Tensor<2>,
    /// `[out]`, frozen at θ_0.
    bias: Option<Tensor<1>>,
    /// Gem-Miner's flags `f` (`[in, out]`, 0/1); `None` for the top-k rules.
    flags: Option<Tensor<2>>,
    /// A convolution's layout; `None` for a dense layer.
    #[module(skip)]
    conv: Option<ConvLayout>,
}

impl ScoreLayer {
    fn dims(&self) -> [usize; 2] {
        self.weight.dims()
    }
}

/// ReLU MLP with frozen weights and trainable scores (layout `[in, out]` on the device).
#[derive(Module, Debug)]
pub struct ScoreMlp {
    layers: Vec<ScoreLayer>,
}

/// Host `[out, in]` values → device `[in, out]` tensor.
fn upload(values: &[f32], fan_out: usize, fan_in: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(transpose(values, fan_out, fan_in), [fan_in, fan_out]),
        device,
    )
}

fn upload_mask(keep: &[bool], fan_out: usize, fan_in: usize, device: &Device) -> Tensor<2> {
    let m: Vec<f32> = keep.iter().map(|&k| if k { 1.0 } else { 0.0 }).collect();
    upload(&m, fan_out, fan_in, device)
}

impl ScoreMlp {
    /// Frozen `weights` (host network) with initial `scores` (host layout); `flags` adds
    /// all-ones Gem-Miner flags.
    pub fn new(weights: &Network, scores: &[Vec<f32>], flags: bool, device: &Device) -> Self {
        let layers = weights
            .layers
            .iter()
            .zip(scores)
            .map(|(layer, s)| {
                let (fan_out, fan_in) = (layer.shape.fan_out(), layer.shape.fan_in());
                ScoreLayer {
                    scores: Param::from_tensor(upload(s, fan_out, fan_in, device).require_grad()),
                    weight: upload(&layer.weight, fan_out, fan_in, device),
                    bias: layer
                        .bias
                        .as_ref()
                        .map(|b| Tensor::from_data(TensorData::new(b.clone(), [fan_out]), device)),
                    flags: flags.then(|| Tensor::ones([fan_in, fan_out], device)),
                    conv: ConvLayout::of(layer),
                }
            })
            .collect();
        ScoreMlp { layers }
    }

    /// The current scores in host layout `[out, in]`.
    pub fn host_scores(&self) -> Vec<Vec<f32>> {
        self.layers
            .iter()
            .map(|l| {
                let [fan_in, fan_out] = l.dims();
                transpose(&read_f32(&l.scores.val()), fan_in, fan_out)
            })
            .collect()
    }

    /// The 0/1 forward masks (`[in, out]`, no gradient) of `rule` at the current scores.
    pub fn masks(&self, rule: &Rule, select: Selection) -> Result<Vec<Tensor<2>>, MethodError> {
        match rule {
            Rule::TopK { counts } | Rule::BinaryTopK { counts } => match select {
                Selection::Host => self.host_top_k(counts),
                Selection::Device => Ok(self.device_top_k(counts)),
            },
            Rule::Threshold { .. } => Ok(self
                .layers
                .iter()
                .map(|l| {
                    let on = l.scores.val().detach().greater_elem(0.5).float();
                    match &l.flags {
                        Some(f) => on * f.clone(),
                        None => on,
                    }
                })
                .collect()),
        }
    }

    /// Exact-k top-`counts[l]` of `|s|` per layer, selected on the host.
    pub fn host_top_k(&self, counts: &[usize]) -> Result<Vec<Tensor<2>>, MethodError> {
        let mask = top_k_per_layer(&abs_scores(&self.host_scores()), counts, Keep::Highest)?;
        Ok(self
            .layers
            .iter()
            .zip(mask.layers())
            .map(|(l, keep)| {
                let [fan_in, fan_out] = l.dims();
                upload_mask(keep, fan_out, fan_in, &l.weight.device())
            })
            .collect())
    }

    /// `|s| ≥ (k_l-th largest |s|)` per layer, found by a device sort (exact unless scores tie).
    pub fn device_top_k(&self, counts: &[usize]) -> Vec<Tensor<2>> {
        self.layers
            .iter()
            .zip(counts)
            .map(|(l, &k)| {
                let [fan_in, fan_out] = l.dims();
                let n = fan_in * fan_out;
                let device = l.weight.device();
                if k >= n {
                    return Tensor::ones([fan_in, fan_out], &device);
                }
                if k == 0 {
                    return Tensor::zeros([fan_in, fan_out], &device);
                }
                let a = l.scores.val().detach().abs();
                let sorted = a.clone().reshape([n]).sort_descending(0);
                let threshold = sorted
                    .slice(k - 1..k)
                    .reshape([1, 1])
                    .expand([fan_in, fan_out]);
                a.greater_equal(threshold).float()
            })
            .collect()
    }

    /// Effective weights under `rule` with the straight-through surrogate (module docs).
    fn effective(&self, rule: &Rule, masks: Vec<Tensor<2>>) -> Vec<Tensor<2>> {
        self.layers
            .iter()
            .zip(masks)
            .enumerate()
            .map(|(l, (layer, m))| {
                let s = layer.scores.val();
                let w = layer.weight.clone();
                match rule {
                    Rule::TopK { .. } => {
                        let a = s.abs();
                        w * (a.clone() - a.detach() + m)
                    }
                    Rule::BinaryTopK { counts } => {
                        let w_abs = w.clone().abs();
                        // α_l = mean |w| over the kept entries (0 for an empty layer).
                        let alpha = (w_abs.clone() * m.clone())
                            .sum()
                            .div_scalar(counts[l].max(1) as f32)
                            .reshape([1, 1]);
                        let a = s.abs() * w_abs;
                        w.sign() * (a.clone() - a.detach() + m * alpha)
                    }
                    Rule::Threshold { .. } => {
                        let w = match &layer.flags {
                            Some(f) => w * f.clone(),
                            None => w,
                        };
                        w * (s.clone() - s.detach() + m)
                    }
                }
            })
            .collect()
    }

    /// The network under explicit effective weights (ReLU between layers, linear output).
    fn forward_with(&self, x: Tensor<2>, weights: Vec<Tensor<2>>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        self.layers
            .iter()
            .zip(weights)
            .enumerate()
            .fold(x, |h, (l, (layer, w))| {
                let z = layer_forward(h, w, layer.bias.clone(), layer.conv.as_ref());
                if l == last { z } else { relu(z) }
            })
    }

    /// Forward pass under `rule` at the current scores (straight-through gradient to them).
    pub fn forward(
        &self,
        x: Tensor<2>,
        rule: &Rule,
        select: Selection,
    ) -> Result<Tensor<2>, MethodError> {
        let masks = self.masks(rule, select)?;
        Ok(self.forward_with(x, self.effective(rule, masks)))
    }

    /// The task loss and the minimised objective (task loss, plus `λ Σ p²` for Gem-Miner).
    fn objective(
        &self,
        x: Tensor<2>,
        y: &DeviceTargets,
        output: OutputKind,
        rule: &Rule,
        select: Selection,
    ) -> Result<(Tensor<1>, Tensor<1>), MethodError> {
        let task_loss = loss(output, self.forward(x, rule, select)?, y);
        let objective = match rule {
            Rule::Threshold { lambda, .. } if *lambda > 0.0 => {
                task_loss.clone() + self.penalty(*lambda)
            }
            _ => task_loss.clone(),
        };
        Ok((task_loss, objective))
    }

    /// `λ Σ p²` over every score.
    fn penalty(&self, lambda: f64) -> Tensor<1> {
        self.layers
            .iter()
            .map(|l| l.scores.val().square().sum())
            .reduce(|a, b| a + b)
            .expect("a network has layers")
            .mul_scalar(lambda as f32)
    }

    /// Scores clamped into `[0, 1]`, kept trainable leaves with their parameter ids.
    fn clamped(self) -> Self {
        let layers = self
            .layers
            .into_iter()
            .map(|l| ScoreLayer {
                scores: l.scores.map(|p| p.clamp(0.0, 1.0).detach().require_grad()),
                ..l
            })
            .collect();
        ScoreMlp { layers }
    }

    /// The same model with new Gem-Miner flags.
    fn with_flags(self, flags: &Mask) -> Self {
        let layers = self
            .layers
            .into_iter()
            .zip(flags.layers())
            .map(|(l, keep)| {
                let [fan_in, fan_out] = l.dims();
                let f = upload_mask(keep, fan_out, fan_in, &l.weight.device());
                ScoreLayer {
                    flags: Some(f),
                    ..l
                }
            })
            .collect();
        ScoreMlp { layers }
    }

    fn num_params(&self) -> usize {
        self.layers.len()
    }
}

/// `|s|` as f64 scores.
pub fn abs_scores(scores: &[Vec<f32>]) -> Scores {
    Scores {
        layers: scores
            .iter()
            .map(|l| l.iter().map(|&v| (v as f64).abs()).collect())
            .collect(),
    }
}

/// What a score-training run produces.
#[derive(Debug, Clone)]
pub struct ScoreOutcome {
    /// The ticket: exact per-layer top-k of the final `|s|` (top-k rules) or the final flags
    /// (Gem-Miner).
    pub mask: Mask,
    /// Scores whose exact-k ranking gives `mask`: `|s|` (top-k rules; per layer), or for
    /// Gem-Miner `r + p/2` with `r` the pruning rounds an entry survived and `p` its score
    /// when removed (survivors: the final `p`), so the global top-k is exactly the flag set.
    pub scores: Scores,
    /// Final raw scores `s` (or `p`), host layout.
    pub raw: Vec<Vec<f32>>,
    /// Mean task loss of every epoch.
    pub epoch_losses: Vec<f64>,
    /// Gem-Miner: flagged weights after each pruning round.
    pub flag_counts: Vec<usize>,
    /// Gem-Miner: `1[p > 0.5] ⊙ f` at the end.
    pub active: Option<Mask>,
}

impl ScoreOutcome {
    /// `first_epoch_loss` and `final_loss` (mean training loss of the first and last epoch).
    pub fn log(&self) -> MethodLog {
        let mut log = MethodLog::default();
        if let (Some(first), Some(last)) = (self.epoch_losses.first(), self.epoch_losses.last()) {
            log.events.insert("first_epoch_loss".into(), *first);
            log.events.insert("final_loss".into(), *last);
        }
        log
    }
}

/// What the strong-ticket methods read from a [`PruneContext`] (tests build it directly).
pub struct StrongInputs<'a> {
    pub engine: &'a Engine,
    /// θ_0.
    pub net: &'a Network,
    pub data: &'a DeviceData,
    pub streams: &'a Streams,
    pub progress: &'a mut dyn FnMut(String),
}

impl<'a> StrongInputs<'a> {
    pub fn from_ctx(ctx: &'a mut PruneContext<'_>) -> Self {
        StrongInputs {
            engine: ctx.engine,
            net: ctx.net,
            data: ctx.data,
            streams: ctx.streams,
            progress: &mut *ctx.progress,
        }
    }
}

/// Everything a score-training run reads.
pub struct ScoreRun<'a> {
    pub method: &'static str,
    pub engine: &'a Engine,
    pub data: &'a DeviceData,
    pub streams: &'a Streams,
    /// Frozen weights `W` and biases.
    pub weights: &'a Network,
    /// Initial scores, host layout.
    pub scores: Vec<Vec<f32>>,
    pub rule: Rule,
    pub recipe: ScoreRecipe,
}

impl ScoreRun<'_> {
    /// Trains the scores and returns the mask (see [`ScoreOutcome`]).
    pub fn train(self, progress: &mut dyn FnMut(String)) -> Result<ScoreOutcome, MethodError> {
        let ScoreRun {
            method,
            engine,
            data,
            streams,
            weights,
            scores,
            rule,
            recipe,
        } = self;
        recipe.validate(method)?;
        Engine::check_shapes(weights, data.input_dim, data.output)?;
        let device = engine.device();
        let gem = matches!(rule, Rule::Threshold { .. });
        let mut model = ScoreMlp::new(weights, &scores, gem, device);
        let select = Selection::for_run(engine.spec(), weights.num_prunable());
        let shapes = weights.shapes();
        let mut flags = Mask::dense(&shapes);
        // Gem-Miner's exported score: rounds survived + p/2 at removal.
        let mut removed: Vec<Vec<f64>> = shapes.iter().map(|s| vec![0.0; s.len()]).collect();
        let mut flag_counts = Vec::new();
        let expected = model.num_params();
        let mut optim = recipe.optimizer();
        let mut order_rng = streams.stream("strong/shuffle");
        let n = data.train.len;
        let total_steps = recipe.epochs * n.div_ceil(recipe.batch_size);
        let mut order: Vec<usize> = (0..n).collect();
        let mut step = 0usize;
        let mut epoch_losses = Vec::with_capacity(recipe.epochs);
        let diverged = |epoch: usize, step: usize, what: String| MethodError::InvalidParams {
            method,
            message: format!(
                "score training diverged in epoch {}/{} (step {step}, {what}); lower `lr`",
                epoch + 1,
                recipe.epochs
            ),
        };
        // A NaN score (found by the host selection) is a divergence too.
        let nan_scores = |e: MethodError, epoch: usize, step: usize| match e {
            MethodError::Core(CoreError::NanScore { .. }) => {
                diverged(epoch, step, "NaN score".into())
            }
            e => e,
        };
        for epoch in 0..recipe.epochs {
            if let Rule::Threshold { prunes, .. } = &rule
                && let Some(round) = prunes.iter().position(|p| p.epoch == epoch)
            {
                let p = model.host_scores();
                let ranked = Scores {
                    layers: p
                        .iter()
                        .map(|l| l.iter().map(|&v| v as f64).collect())
                        .collect(),
                };
                let next = top_k_global(&ranked, prunes[round].keep, Some(&flags), Keep::Highest)
                    .map_err(|e| nan_scores(e.into(), epoch, step))?;
                for (l, (old, new)) in flags.layers().iter().zip(next.layers()).enumerate() {
                    for (i, (&was, &is)) in old.iter().zip(new).enumerate() {
                        if was && !is {
                            removed[l][i] = round as f64 + ranked.layers[l][i] / 2.0;
                        }
                    }
                }
                flags = next;
                flag_counts.push(flags.kept());
                model = model.with_flags(&flags);
            }
            for i in (1..n).rev() {
                order.swap(i, sample_index(&mut order_rng, i + 1));
            }
            let mut loss_sum = 0.0f64;
            for chunk in order.chunks(recipe.batch_size) {
                let idx: Vec<i64> = chunk.iter().map(|&i| i as i64).collect();
                let idx: Tensor<1, Int> =
                    Tensor::from_data(TensorData::new(idx, [chunk.len()]), device);
                let (x, y) = batch(&data.train, idx);
                let (task_loss, objective) = model
                    .objective(x, &y, data.output, &rule, select)
                    .map_err(|e| nan_scores(e, epoch, step))?;
                let value = task_loss.into_scalar::<f32>() as f64;
                if !value.is_finite() {
                    return Err(diverged(epoch, step, format!("loss {value}")));
                }
                loss_sum += value * chunk.len() as f64;
                let grads = GradientsParams::from_grads(objective.backward(), &model);
                if grads.len() != expected {
                    return Err(EngineError::MissingGradients {
                        step,
                        expected,
                        got: grads.len(),
                    }
                    .into());
                }
                model = optim.step(recipe.lr_at(step, total_steps), model, grads);
                if gem {
                    model = model.clamped();
                }
                step += 1;
            }
            let train_loss = loss_sum / n.max(1) as f64;
            epoch_losses.push(train_loss);
            progress(format!(
                "{method} epoch {}/{} loss {train_loss:.4}",
                epoch + 1,
                recipe.epochs
            ));
        }
        let raw = model.host_scores();
        let (mask, scores, active) = match &rule {
            Rule::TopK { counts } | Rule::BinaryTopK { counts } => {
                let scores = abs_scores(&raw);
                let mask = top_k_per_layer(&scores, counts, Keep::Highest)
                    .map_err(|e| nan_scores(e.into(), recipe.epochs - 1, step))?;
                (mask, scores, None)
            }
            Rule::Threshold { prunes, .. } => {
                let survived = prunes.len() as f64;
                let mut layers = removed;
                for (l, keep) in flags.layers().iter().enumerate() {
                    for (i, &k) in keep.iter().enumerate() {
                        if k {
                            layers[l][i] = survived + raw[l][i] as f64 / 2.0;
                        }
                    }
                }
                let active = Mask::from_layers(
                    raw.iter()
                        .zip(flags.layers())
                        .map(|(p, f)| p.iter().zip(f).map(|(&p, &f)| f && p > 0.5).collect())
                        .collect(),
                );
                (flags, Scores { layers }, Some(active))
            }
        };
        Ok(ScoreOutcome {
            mask,
            scores,
            raw,
            epoch_losses,
            flag_counts,
            active,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceSpec;
    use crate::model::MaskedMlp;
    use ticketbench_core::{InitScheme, LayerShape};

    fn device() -> Device {
        DeviceSpec::Cpu.open().unwrap()
    }

    /// A 3-4-2 net with biases and non-trivial weights, scores with mixed signs.
    fn tiny() -> (Network, Vec<Vec<f32>>) {
        let net = Network {
            layers: vec![
                Layer {
                    shape: LayerShape::dense(3, 4),
                    weight: vec![
                        0.5, -1.0, 0.25, 1.5, 0.75, -0.5, -0.25, 2.0, 1.0, 0.3, -1.2, 0.6,
                    ],
                    bias: Some(vec![0.1, -0.2, 0.3, 0.05]),
                    conv: None,
                },
                Layer {
                    shape: LayerShape::dense(4, 2),
                    weight: vec![1.0, -2.0, 0.5, 0.8, -0.7, 1.1, -0.4, 0.9],
                    bias: Some(vec![0.2, -0.1]),
                    conv: None,
                },
            ],
        };
        let scores = vec![
            vec![
                0.3, -0.9, 0.1, 0.7, -0.2, 0.5, -0.6, 0.05, 0.8, -0.4, 0.35, 0.65,
            ],
            vec![0.2, -0.7, 0.9, -0.1, 0.45, 0.6, -0.3, 0.55],
        ];
        (net, scores)
    }

    /// Host f64 forward/backward of the MSE loss `mean((ŷ − y)²)` of a ReLU MLP with
    /// effective weights `w_eff` (host layout): returns `∂L/∂W_eff` per layer.
    fn host_grad(
        net: &Network,
        w_eff: &[Vec<f64>],
        x: &[[f64; 3]],
        y: &[[f64; 2]],
    ) -> Vec<Vec<f64>> {
        let mut grads: Vec<Vec<f64>> = w_eff.iter().map(|w| vec![0.0; w.len()]).collect();
        let scale = 2.0 / (x.len() * 2) as f64;
        for (xi, yi) in x.iter().zip(y) {
            // Forward, keeping pre-activations.
            let mut acts = vec![xi.to_vec()];
            let mut pre = Vec::new();
            for (l, layer) in net.layers.iter().enumerate() {
                let (out, inp) = (layer.shape.fan_out(), layer.shape.fan_in());
                let h = acts.last().unwrap();
                let z: Vec<f64> = (0..out)
                    .map(|o| {
                        (0..inp).map(|i| w_eff[l][o * inp + i] * h[i]).sum::<f64>()
                            + layer.bias.as_ref().unwrap()[o] as f64
                    })
                    .collect();
                let last = l + 1 == net.layers.len();
                acts.push(if last {
                    z.clone()
                } else {
                    z.iter().map(|v| v.max(0.0)).collect()
                });
                pre.push(z);
            }
            // Backward.
            let out = acts.last().unwrap();
            let mut delta: Vec<f64> = out.iter().zip(yi).map(|(o, t)| scale * (o - t)).collect();
            for l in (0..net.layers.len()).rev() {
                let layer = &net.layers[l];
                let (n_out, n_in) = (layer.shape.fan_out(), layer.shape.fan_in());
                for o in 0..n_out {
                    for i in 0..n_in {
                        grads[l][o * n_in + i] += delta[o] * acts[l][i];
                    }
                }
                if l > 0 {
                    delta = (0..n_in)
                        .map(|i| {
                            let back: f64 =
                                (0..n_out).map(|o| w_eff[l][o * n_in + i] * delta[o]).sum();
                            if pre[l - 1][i] > 0.0 { back } else { 0.0 }
                        })
                        .collect();
                }
            }
        }
        grads
    }

    /// burn's score gradient under `rule` against the straight-through formula.
    fn check_gradient(rule: Rule, lambda: f64) {
        let dev = device();
        let (net, scores) = tiny();
        let mut model = ScoreMlp::new(&net, &scores, matches!(rule, Rule::Threshold { .. }), &dev);
        // Gem-Miner: one flag removed, so the f factor shows.
        let flags = Mask::from_layers(vec![(0..12).map(|i| i != 2).collect(), vec![true; 8]]);
        if matches!(rule, Rule::Threshold { .. }) {
            model = model.with_flags(&flags);
        }
        let x = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]];
        let y = [[1.0, -0.5], [0.0, 2.0]];
        let xt = Tensor::<2>::from_data(
            TensorData::new(
                x.iter().flatten().map(|&v| v as f32).collect::<Vec<_>>(),
                [2, 3],
            ),
            &dev,
        );
        let yt = DeviceTargets::Values(Tensor::from_data(
            TensorData::new(
                y.iter().flatten().map(|&v| v as f32).collect::<Vec<_>>(),
                [2, 2],
            ),
            &dev,
        ));
        let (_, objective) = model
            .objective(xt, &yt, OutputKind::Regression(2), &rule, Selection::Host)
            .unwrap();
        let grads = objective.backward();
        let burn: Vec<Vec<f32>> = model
            .layers
            .iter()
            .map(|l| {
                let [fan_in, fan_out] = l.dims();
                transpose(
                    &read_f32(&l.scores.val().grad(&grads).unwrap()),
                    fan_in,
                    fan_out,
                )
            })
            .collect();

        // Host: the forward mask and effective weights, then the formula.
        let mask = match &rule {
            Rule::TopK { counts } | Rule::BinaryTopK { counts } => {
                top_k_per_layer(&abs_scores(&scores), counts, Keep::Highest).unwrap()
            }
            Rule::Threshold { .. } => Mask::from_layers(
                scores
                    .iter()
                    .zip(flags.layers())
                    .map(|(s, f)| s.iter().zip(f).map(|(&p, &f)| f && p > 0.5).collect())
                    .collect(),
            ),
        };
        let w_eff: Vec<Vec<f64>> = net
            .layers
            .iter()
            .zip(mask.layers())
            .map(|(layer, m)| {
                let kept: Vec<f64> = layer
                    .weight
                    .iter()
                    .zip(m)
                    .filter(|(_, k)| **k)
                    .map(|(&w, _)| (w as f64).abs())
                    .collect();
                let alpha = kept.iter().sum::<f64>() / kept.len() as f64;
                layer
                    .weight
                    .iter()
                    .zip(m)
                    .map(|(&w, &k)| match (&rule, k) {
                        (_, false) => 0.0,
                        (Rule::BinaryTopK { .. }, true) => alpha * (w as f64).signum(),
                        (_, true) => w as f64,
                    })
                    .collect()
            })
            .collect();
        let g = host_grad(&net, &w_eff, &x, &y);
        let mut pruned_with_gradient = 0;
        for l in 0..net.layers.len() {
            for i in 0..g[l].len() {
                let w = net.layers[l].weight[i] as f64;
                let s = scores[l][i] as f64;
                let want = match &rule {
                    // biprop: (g ⊙ sign(W)) ⊙ |W| ⊙ sign(s) = g ⊙ W ⊙ sign(s).
                    Rule::TopK { .. } | Rule::BinaryTopK { .. } => {
                        g[l][i] * w.signum() * w.abs() * s.signum()
                    }
                    Rule::Threshold { .. } => {
                        let f = if flags.layer(l)[i] { 1.0 } else { 0.0 };
                        g[l][i] * w * f + 2.0 * lambda * s
                    }
                };
                let got = burn[l][i] as f64;
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{rule:?} layer {l} entry {i}: burn {got}, formula {want}"
                );
                if !mask.layer(l)[i] && want.abs() > 1e-6 {
                    pruned_with_gradient += 1;
                }
            }
        }
        assert!(pruned_with_gradient > 0, "pruned entries get gradients too");
    }

    #[test]
    fn edge_popup_gradient_is_the_straight_through_formula() {
        check_gradient(Rule::TopK { counts: vec![6, 3] }, 0.0);
    }

    #[test]
    fn biprop_gradient_is_the_straight_through_formula() {
        check_gradient(Rule::BinaryTopK { counts: vec![6, 3] }, 0.0);
    }

    #[test]
    fn gem_miner_gradient_is_the_straight_through_formula() {
        let prunes = vec![];
        check_gradient(
            Rule::Threshold {
                lambda: 0.0,
                prunes,
            },
            0.0,
        );
        check_gradient(
            Rule::Threshold {
                lambda: 0.01,
                prunes: vec![],
            },
            0.01,
        );
    }

    #[test]
    fn density_one_reproduces_the_dense_network_bit_exactly() {
        let dev = device();
        let streams = Streams::new(4);
        let net = Network::mlp(&[2, 32, 32, 4], true, InitScheme::KaimingNormal, &streams).unwrap();
        let x: Vec<f32> = (0..2 * 100)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let x = Tensor::<2>::from_data(TensorData::new(x, [100, 2]), &dev);
        let counts: Vec<usize> = net.layers.iter().map(|l| l.shape.len()).collect();
        let modes = [FrozenWeights::SignedConstant, FrozenWeights::Init]
            .into_iter()
            .flat_map(|w| [(w, Selection::Host), (w, Selection::Device)]);
        for (weights, select) in modes {
            let w = weights.apply(&net, 1.0);
            let scores = ScoreInit::KaimingUniform.draw(&net, &streams);
            let model = ScoreMlp::new(&w, &scores, false, &dev);
            let rule = Rule::TopK {
                counts: counts.clone(),
            };
            let got = read_f32(&model.forward(x.clone(), &rule, select).unwrap());
            let dense = MaskedMlp::from_host(&w, &Mask::dense(&w.shapes()), &dev).unwrap();
            let want = read_f32(&dense.forward(x.clone()));
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{weights:?} {select:?}"
            );
        }
    }

    #[test]
    fn per_step_top_k_is_exact_on_host_and_matches_the_device_threshold() {
        let dev = device();
        let streams = Streams::new(9);
        let net = Network::mlp(&[5, 40, 30, 3], true, InitScheme::KaimingNormal, &streams).unwrap();
        let scores = ScoreInit::KaimingUniform.draw(&net, &streams);
        let model = ScoreMlp::new(&net, &scores, false, &dev);
        let counts = vec![17, 1, 90];
        let host_layout = |masks: Vec<Tensor<2>>| -> Vec<Vec<f32>> {
            masks
                .iter()
                .zip(&net.layers)
                .map(|(m, l)| transpose(&read_f32(m), l.shape.fan_in(), l.shape.fan_out()))
                .collect()
        };
        let host = host_layout(model.host_top_k(&counts).unwrap());
        let on_device = host_layout(model.device_top_k(&counts));
        assert_eq!(host, on_device);
        for (l, (m, s)) in host.iter().zip(&scores).enumerate() {
            assert_eq!(m.iter().filter(|&&v| v == 1.0).count(), counts[l]);
            let min_kept = m
                .iter()
                .zip(s)
                .filter(|(k, _)| **k == 1.0)
                .map(|(_, v)| v.abs());
            let max_pruned = m
                .iter()
                .zip(s)
                .filter(|(k, _)| **k == 0.0)
                .map(|(_, v)| v.abs());
            assert!(max_pruned.fold(0.0, f32::max) < min_kept.fold(f32::INFINITY, f32::min));
        }
        // Host selection everywhere but on a GPU with a large net.
        assert_eq!(
            Selection::for_run(DeviceSpec::Cpu, 10_000_000),
            Selection::Host
        );
        assert_eq!(
            Selection::for_run(DeviceSpec::Cuda(0), 50_000),
            Selection::Host
        );
        assert_eq!(
            Selection::for_run(DeviceSpec::Cuda(0), 50_001),
            Selection::Device
        );
        // Empty and full layers.
        let edge = host_layout(model.device_top_k(&[0, 1200, 90]));
        assert!(edge[0].iter().all(|&v| v == 0.0) && edge[1].iter().all(|&v| v == 1.0));
    }

    #[test]
    fn cosine_schedule_and_signed_constant_weights() {
        let r = ScoreRecipe {
            epochs: 1,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            batch_size: 1,
        };
        assert_eq!(r.lr_at(0, 100), 0.1);
        assert!((r.lr_at(50, 100) - 0.05).abs() < 1e-15);
        assert!(r.lr_at(100, 100).abs() < 1e-15);
        let (net, _) = tiny();
        let w = FrozenWeights::SignedConstant.apply(&net, 0.5);
        let sigma = (2.0f64 / 3.0).sqrt() as f32;
        assert_eq!(w.layers[0].weight[..3], [sigma, -sigma, sigma]);
        assert_eq!(w.layers[0].bias, net.layers[0].bias);
        assert_eq!(FrozenWeights::Init.apply(&net, 0.5), net);
        // Score init: Kaiming-uniform bounds per layer, U(0, 1) for Gem-Miner.
        let s = ScoreInit::KaimingUniform.draw(&net, &Streams::new(0));
        let b = 1.0 / 3.0f32.sqrt();
        assert!(s[0].iter().all(|v| v.abs() < b) && s[1].iter().all(|v| v.abs() < 0.5));
        let p = ScoreInit::Unit.draw(&net, &Streams::new(0));
        assert!(p.iter().flatten().all(|v| (0.0..1.0).contains(v)));
    }
}
