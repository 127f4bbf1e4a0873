//! Training and evaluation loops for masked networks.
//!
//! Mini-batch SGD (optionally with momentum and weight decay) or Adam, cross-entropy or MSE,
//! data order from the named stream `train/shuffle` (shared by every method at one seed, so
//! comparisons are paired). Every step checks that every parameter got a gradient and that
//! the loss is finite; a NaN/inf loss stops training and is reported as a divergence.

use crate::device::DeviceSpec;
use crate::engine::{DeviceData, DeviceSplit, DeviceTargets, Engine, EngineError, loss};
use crate::model::{MaskedMlp, weight_grads};
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, SgdConfig};
use burn::prelude::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use ticketbench_core::{Mask, Network, StreamRng, Streams, sample_index};
use ticketbench_planted::OutputKind;

/// Optimiser family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// SGD, optional heavy-ball momentum (PyTorch semantics: no dampening) and L2 weight decay.
    Sgd,
    /// Adam (Kingma & Ba 2015) with PyTorch's defaults β = (0.9, 0.999), ε = 1e-8.
    Adam,
}

/// How a ticket is trained. Defaults are Plant 'n' Seek's (planting.md §4.5): Adam,
/// lr 1e-3, batch 32, 10 epochs, no weight decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainRecipe {
    pub optimizer: Optimizer,
    pub lr: f64,
    /// SGD momentum (0 = plain SGD). Rejected for Adam.
    pub momentum: f64,
    pub weight_decay: f64,
    pub epochs: usize,
    pub batch_size: usize,
}

impl Default for TrainRecipe {
    fn default() -> Self {
        TrainRecipe {
            optimizer: Optimizer::Adam,
            lr: 1e-3,
            momentum: 0.0,
            weight_decay: 0.0,
            epochs: 10,
            batch_size: 32,
        }
    }
}

impl TrainRecipe {
    /// Checks ranges; the message names the field and the valid range.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("lr {} must be a positive number", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(format!("momentum {} must be in [0, 1)", self.momentum));
        }
        if self.optimizer == Optimizer::Adam && self.momentum != 0.0 {
            return Err("momentum applies to optimizer sgd only; Adam uses its own β".into());
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!("weight_decay {} must be ≥ 0", self.weight_decay));
        }
        if self.batch_size == 0 {
            return Err("batch_size must be at least 1".into());
        }
        Ok(())
    }

    fn optimizer(&self) -> burn::optim::ModuleOptimizer {
        let decay =
            (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay as f32));
        match self.optimizer {
            Optimizer::Sgd => SgdConfig::new()
                .with_momentum((self.momentum > 0.0).then(|| {
                    MomentumConfig::new()
                        .with_momentum(self.momentum)
                        .with_dampening(0.0)
                }))
                .with_weight_decay(decay)
                .init(),
            Optimizer::Adam => AdamConfig::new()
                .with_epsilon(1e-8)
                .with_weight_decay(decay)
                .init(),
        }
    }
}

/// Where a run blew up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// Optimiser step (0-based, counted over all epochs) whose loss was not finite.
    pub step: usize,
    pub epoch: usize,
    /// The non-finite loss, written as `"NaN"`, `"inf"` or `"-inf"` (JSON has no such numbers).
    #[serde(with = "nonfinite")]
    pub loss: f64,
}

/// Serde for an f64 that may be NaN or infinite: finite values as numbers, the others as
/// strings, so a record always reads back (serde_json would write `null`).
pub mod nonfinite {
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        match *v {
            v if v.is_finite() => s.serialize_f64(v),
            v if v.is_nan() => s.serialize_str("NaN"),
            v if v > 0.0 => s.serialize_str("inf"),
            _ => s.serialize_str("-inf"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Number(f64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Number(v) => Ok(v),
            Repr::Text(t) => match t.as_str() {
                "NaN" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                other => Err(de::Error::custom(format!("`{other}` is not a number"))),
            },
        }
    }
}

/// Result of [`Engine::train`].
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// Trained weights (pruned entries exactly 0.0).
    pub net: Network,
    /// The mask at the end of training (a [`TrainHook`] may have changed it).
    pub mask: Mask,
    /// Mean training loss of each finished epoch.
    pub epoch_losses: Vec<f64>,
    pub steps: usize,
    pub diverged: Option<Divergence>,
}

/// Test-split metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean loss (cross-entropy or MSE).
    pub loss: f64,
    /// Fraction correct (classification only).
    pub accuracy: Option<f64>,
}

/// Progress of a training run, reported after every epoch.
#[derive(Debug, Clone, Copy)]
pub struct EpochReport {
    pub epoch: usize,
    pub epochs: usize,
    pub train_loss: f64,
}

/// Watches a training run and may change its mask: dynamic sparse training updates the mask
/// every ΔT steps, Early-Bird draws a mask after every epoch, IMP's rewinding run stops after
/// k steps. Plain training uses no hook.
pub trait TrainHook {
    /// [`TrainHook::after_step`] runs after every `n`-th optimiser step; `None`: never.
    fn step_interval(&self) -> Option<usize> {
        None
    }

    fn after_step(&mut self, _view: &TrainView<'_>) -> Result<HookAction, EngineError> {
        Ok(HookAction::Continue)
    }

    /// Runs before the first epoch (`view.epoch == 0`) and after every finished epoch.
    fn at_epoch(&mut self, _view: &TrainView<'_>) -> Result<HookAction, EngineError> {
        Ok(HookAction::Continue)
    }
}

/// What a [`TrainHook`] asks the training loop to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum HookAction {
    Continue,
    /// End training now (the outcome holds the weights reached so far).
    Stop,
    /// Train under `mask` from now on. Weights outside it, and the entries of `zeroed`
    /// (newly grown connections, which start at 0 even when they were just dropped), are set
    /// to exactly 0; weights are re-masked after every later step, so optimiser state
    /// (momentum, Adam moments) cannot revive a dropped weight.
    SetMask {
        mask: Mask,
        zeroed: Option<Mask>,
    },
}

/// The hook's view of a running training: counters, the current mask, and on demand the
/// current weights and the dense gradient on the current batch.
pub struct TrainView<'a> {
    /// Optimiser steps done so far.
    pub step: usize,
    /// Epochs finished so far.
    pub epoch: usize,
    /// Steps the whole recipe takes (`epochs · ⌈n / batch⌉`).
    pub total_steps: usize,
    pub mask: &'a Mask,
    model: &'a MaskedMlp,
    like: &'a Network,
    batch: Option<(&'a Tensor<2>, &'a DeviceTargets)>,
    output: OutputKind,
}

impl TrainView<'_> {
    /// The current weights on the host (pruned entries exactly 0).
    pub fn network(&self) -> Network {
        self.model.to_host(self.like)
    }

    /// `∂L/∂W` of the current batch at the current effective weights, for **every** entry
    /// (pruned ones included), as RigL and GraNet grow by it. `None` in epoch hooks.
    pub fn dense_gradients(&self) -> Result<Option<Vec<Vec<f32>>>, EngineError> {
        let Some((x, y)) = self.batch else {
            return Ok(None);
        };
        let dense = self.model.unmasked_copy();
        let grads = loss(self.output, dense.forward(x.clone()), y).backward();
        weight_grads(&dense, &grads, self.like)
            .map(Some)
            .ok_or(EngineError::MissingGradients {
                step: self.step,
                expected: dense.layers.len(),
                got: 0,
            })
    }
}

/// What every [`TrainView`] of one run shares.
struct ViewParts<'n> {
    like: &'n Network,
    total_steps: usize,
    output: OutputKind,
}

impl<'n> ViewParts<'n> {
    fn view<'a>(
        &'a self,
        model: &'a MaskedMlp,
        mask: &'a Mask,
        step: usize,
        epoch: usize,
        batch: Option<(&'a Tensor<2>, &'a DeviceTargets)>,
    ) -> TrainView<'a> {
        TrainView {
            step,
            epoch,
            total_steps: self.total_steps,
            mask,
            model,
            like: self.like,
            batch,
            output: self.output,
        }
    }
}

/// The hook of plain training.
struct NoHook;
impl TrainHook for NoHook {}

impl Engine {
    /// Trains `net` under `mask` with `recipe` on `data`'s training split. On `--device cpu`
    /// this is the native step of `src/native/` (same computation, no autodiff graph).
    pub fn train(
        &self,
        net: &Network,
        mask: &Mask,
        data: &DeviceData,
        recipe: &TrainRecipe,
        streams: &Streams,
        on_epoch: &mut dyn FnMut(EpochReport),
    ) -> Result<TrainOutcome, EngineError> {
        // The native step covers dense layers; convolutional nets train through burn.
        if self.spec() == DeviceSpec::Cpu && !net.has_conv() {
            recipe.validate().map_err(EngineError::Recipe)?;
            Engine::check_shapes(net, data.input_dim, data.output)?;
            mask.check_shapes(&net.shapes())?;
            return crate::native::train(net, mask, data, recipe, streams, on_epoch, self.kernel());
        }
        self.train_with_hook(net, mask, data, recipe, streams, on_epoch, &mut NoHook)
    }

    /// [`Engine::train`] with a [`TrainHook`] that may stop the run or change the mask.
    #[allow(clippy::too_many_arguments)]
    pub fn train_with_hook(
        &self,
        net: &Network,
        mask: &Mask,
        data: &DeviceData,
        recipe: &TrainRecipe,
        streams: &Streams,
        on_epoch: &mut dyn FnMut(EpochReport),
        hook: &mut dyn TrainHook,
    ) -> Result<TrainOutcome, EngineError> {
        recipe.validate().map_err(EngineError::Recipe)?;
        Engine::check_shapes(net, data.input_dim, data.output)?;
        let mut model = MaskedMlp::from_host(net, mask, self.device())?;
        let mut mask = mask.clone();
        // Set once a hook changes the mask: from then on stored weights are re-masked after
        // every step (a fixed mask needs no re-masking: pruned entries never get a gradient).
        let mut remask = false;
        let expected = model.num_params();
        let mut optim = recipe.optimizer();
        let mut order_rng = streams.stream("train/shuffle");
        let n = data.train.len;
        let total_steps = recipe.epochs * n.div_ceil(recipe.batch_size);
        let interval = hook.step_interval().filter(|&k| k > 0);
        let mut order: Vec<usize> = (0..n).collect();
        let (mut step, mut epoch_losses, mut diverged) = (0usize, Vec::new(), None);
        let views = ViewParts {
            like: net,
            total_steps,
            output: data.output,
        };
        let apply = |action: HookAction,
                     model: MaskedMlp,
                     mask: &mut Mask,
                     remask: &mut bool|
         -> Result<(MaskedMlp, bool), EngineError> {
            match action {
                HookAction::Continue => Ok((model, false)),
                HookAction::Stop => Ok((model, true)),
                HookAction::SetMask { mask: new, zeroed } => {
                    new.check_shapes(&net.shapes())?;
                    if let Some(z) = &zeroed {
                        z.check_shapes(&net.shapes())?;
                    }
                    *mask = new;
                    *remask = true;
                    Ok((model.with_mask(mask, zeroed.as_ref(), self.device()), false))
                }
            }
        };
        let action = hook.at_epoch(&views.view(&model, &mask, 0, 0, None))?;
        let (next, mut stop) = apply(action, model, &mut mask, &mut remask)?;
        model = next;
        'epochs: for epoch in 0..recipe.epochs {
            if stop {
                break;
            }
            shuffle_order(&mut order, &mut order_rng);
            let mut loss_sum = 0.0f64;
            for chunk in order.chunks(recipe.batch_size) {
                let idx: Vec<i64> = chunk.iter().map(|&i| i as i64).collect();
                let idx: Tensor<1, Int> =
                    Tensor::from_data(TensorData::new(idx, [chunk.len()]), self.device());
                let (x, y) = batch(&data.train, idx);
                let batch_loss = loss(data.output, model.forward(x.clone()), &y);
                let value = batch_loss.clone().into_scalar::<f32>() as f64;
                if !value.is_finite() {
                    diverged = Some(Divergence {
                        step,
                        epoch,
                        loss: value,
                    });
                    break 'epochs;
                }
                loss_sum += value * chunk.len() as f64;
                let grads = GradientsParams::from_grads(batch_loss.backward(), &model);
                if grads.len() != expected {
                    return Err(EngineError::MissingGradients {
                        step,
                        expected,
                        got: grads.len(),
                    });
                }
                model = optim.step(recipe.lr, model, grads);
                if remask {
                    model = model.remasked();
                }
                step += 1;
                if interval.is_some_and(|k| step % k == 0) {
                    let action =
                        hook.after_step(&views.view(&model, &mask, step, epoch, Some((&x, &y))))?;
                    let (next, s) = apply(action, model, &mut mask, &mut remask)?;
                    model = next;
                    if s {
                        break 'epochs;
                    }
                }
            }
            let train_loss = loss_sum / n.max(1) as f64;
            epoch_losses.push(train_loss);
            on_epoch(EpochReport {
                epoch: epoch + 1,
                epochs: recipe.epochs,
                train_loss,
            });
            let action = hook.at_epoch(&views.view(&model, &mask, step, epoch + 1, None))?;
            let (next, s) = apply(action, model, &mut mask, &mut remask)?;
            model = next;
            stop = s;
        }
        Ok(TrainOutcome {
            net: model.to_host(net),
            mask,
            epoch_losses,
            steps: step,
            diverged,
        })
    }

    /// Loss and accuracy of the masked network on the test split.
    pub fn evaluate(
        &self,
        net: &Network,
        mask: &Mask,
        data: &DeviceData,
    ) -> Result<Evaluation, EngineError> {
        Engine::check_shapes(net, data.input_dim, data.output)?;
        let model = MaskedMlp::from_host(net, mask, self.device())?;
        Ok(evaluate_split(&model, &data.test, data.output))
    }
}

/// Fisher–Yates shuffle of one epoch's example order from the `train/shuffle` stream.
pub(crate) fn shuffle_order(order: &mut [usize], rng: &mut StreamRng) {
    for i in (1..order.len()).rev() {
        order.swap(i, sample_index(rng, i + 1));
    }
}

/// The rows `idx` of a split.
pub(crate) fn batch(split: &DeviceSplit, idx: Tensor<1, Int>) -> (Tensor<2>, DeviceTargets) {
    let x = split.x.clone().select(0, idx.clone());
    let y = match &split.y {
        DeviceTargets::Classes(y) => DeviceTargets::Classes(y.clone().select(0, idx)),
        DeviceTargets::Values(y) => DeviceTargets::Values(y.clone().select(0, idx)),
    };
    (x, y)
}

/// Test rows evaluated (or read to the host) at a time, so a large test set never builds one
/// huge activation or host copy.
pub(crate) const EVAL_CHUNK: usize = 4096;

fn evaluate_split(model: &MaskedMlp, split: &DeviceSplit, output: OutputKind) -> Evaluation {
    let model = model.valid();
    let split = &split.without_autodiff();
    let (mut loss_sum, mut correct) = (0.0f64, 0i64);
    let device = split.x.device();
    for start in (0..split.len).step_by(EVAL_CHUNK) {
        let end = (start + EVAL_CHUNK).min(split.len);
        let idx: Vec<i64> = (start as i64..end as i64).collect();
        let idx: Tensor<1, Int> = Tensor::from_data(TensorData::new(idx, [end - start]), &device);
        let (x, y) = batch(split, idx);
        let pred = model.forward(x);
        if let DeviceTargets::Classes(labels) = &y {
            let hits = pred
                .clone()
                .argmax(1)
                .squeeze_dim::<1>(1)
                .equal(labels.clone())
                .int()
                .sum();
            correct += hits.into_scalar::<i64>();
        }
        loss_sum += loss(output, pred, &y).into_scalar::<f32>() as f64 * (end - start) as f64;
    }
    let n = split.len.max(1) as f64;
    Evaluation {
        loss: loss_sum / n,
        accuracy: matches!(output, OutputKind::Classes(_)).then(|| correct as f64 / n),
    }
}
