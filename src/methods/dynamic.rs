//! Shared pieces of the methods that change the mask while training (SET, RigL, GraNet):
//! the drop-and-grow update, the cosine drop-fraction schedule, and the glue that runs a
//! [`TrainHook`] over the suite recipe and returns the trained ticket.

use super::{MethodError, PruneContext, PruneOutcome};
use crate::engine::EngineError;
use crate::train::{HookAction, TrainHook, TrainView};
use rand_chacha::ChaCha8Rng;
use ticketbench_core::{Mask, Network, sample_index, sample_standard_normal};

/// How the grow step picks new connections.
pub(super) enum Grow<'a> {
    /// Largest `|∂L/∂θ|` of the dense gradient (RigL, GraNet); ties to the lower index.
    Gradient(&'a [Vec<f32>]),
    /// Uniformly at random (SET).
    Random(&'a mut ChaCha8Rng),
}

/// One drop-and-grow update (methods.md §1.12, §1.13). In layer `l`, drop the `n_drop[l]`
/// active weights with the smallest `|θ|` (plus `N(0, noise_sd²)` tie-break noise when given,
/// as RigL does), then grow the same number among the entries not kept after the drop (a
/// just-dropped connection may be regrown). Per-layer counts are unchanged. Returns the new
/// mask and the newly activated entries (which must restart at 0).
pub(super) fn drop_and_grow(
    net: &Network,
    mask: &Mask,
    n_drop: &[usize],
    mut noise: Option<(&mut ChaCha8Rng, f64)>,
    mut grow: Grow<'_>,
) -> (Mask, Mask) {
    let mut layers = Vec::with_capacity(mask.layers().len());
    let mut grown_layers = Vec::with_capacity(mask.layers().len());
    for (l, keep) in mask.layers().iter().enumerate() {
        let weight = &net.layers[l].weight;
        let mut active: Vec<(f64, usize)> = keep
            .iter()
            .enumerate()
            .filter(|(_, k)| **k)
            .map(|(i, _)| {
                let jitter = noise
                    .as_mut()
                    .map_or(0.0, |(rng, sd)| *sd * sample_standard_normal(*rng));
                ((weight[i] as f64).abs() + jitter, i)
            })
            .collect();
        let n = n_drop[l].min(active.len());
        active.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut next = keep.clone();
        for &(_, i) in &active[..n] {
            next[i] = false;
        }
        let mut candidates: Vec<usize> = (0..keep.len()).filter(|&i| !next[i]).collect();
        let chosen: Vec<usize> = match &mut grow {
            Grow::Gradient(grads) => {
                let g = &grads[l];
                candidates.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()).then(a.cmp(&b)));
                candidates.truncate(n);
                candidates
            }
            Grow::Random(rng) => {
                for i in 0..n {
                    let j = i + sample_index(*rng, candidates.len() - i);
                    candidates.swap(i, j);
                }
                candidates.truncate(n);
                candidates
            }
        };
        // Only connections that were not active before are new and start at 0; a dropped
        // and regrown one keeps its value (RigL's `reinit_when_same = False`).
        let mut grown = vec![false; keep.len()];
        for i in chosen {
            next[i] = true;
            grown[i] = !keep[i];
        }
        layers.push(next);
        grown_layers.push(grown);
    }
    (Mask::from_layers(layers), Mask::from_layers(grown_layers))
}

/// Whether every weight is finite. A hook that meets NaN/inf weights leaves the mask alone:
/// the next step's loss check records the divergence.
pub(super) fn all_finite(net: &Network) -> bool {
    net.layers
        .iter()
        .all(|l| l.weight.iter().all(|w| w.is_finite()))
}

/// RigL's cosine drop fraction `α_t = (α/2)(1 + cos(π t / T_end))`, 0 from `T_end` on.
pub(super) fn cosine_fraction(alpha: f64, t: usize, t_end: usize) -> f64 {
    if t >= t_end || t_end == 0 {
        return 0.0;
    }
    alpha / 2.0 * (1.0 + (std::f64::consts::PI * t as f64 / t_end as f64).cos())
}

/// Optimiser steps of the suite recipe on this task.
pub(super) fn recipe_steps(ctx: &PruneContext<'_>) -> usize {
    ctx.recipe.epochs * ctx.data.train.len.div_ceil(ctx.recipe.batch_size)
}

/// Trains `start` under `mask` with the suite recipe while `hook` edits the mask; the
/// outcome carries the trained ticket (the runner does not train it again).
pub(super) fn train_dynamic(
    ctx: &mut PruneContext<'_>,
    method: &str,
    mask: &Mask,
    hook: &mut dyn TrainHook,
) -> Result<PruneOutcome, MethodError> {
    let progress = &mut *ctx.progress;
    let trained = ctx.engine.train_with_hook(
        ctx.net,
        mask,
        ctx.data,
        ctx.recipe,
        ctx.streams,
        &mut |e| {
            progress(format!(
                "{method} epoch {}/{} loss {:.4}",
                e.epoch, e.epochs, e.train_loss
            ))
        },
        hook,
    )?;
    let mask = trained.mask.clone();
    Ok(PruneOutcome {
        trained: Some(trained),
        ..PruneOutcome::new(mask)
    })
}

/// [`train_dynamic`] for methods whose hook only edits the mask (SET, RigL, GraNet): counts
/// the hook's `SetMask` actions and records them as the event `mask_updates`.
pub(super) fn train_counting_updates(
    ctx: &mut PruneContext<'_>,
    method: &str,
    mask: &Mask,
    hook: &mut dyn TrainHook,
) -> Result<PruneOutcome, MethodError> {
    let mut counting = CountingHook {
        inner: hook,
        updates: 0,
    };
    let mut outcome = train_dynamic(ctx, method, mask, &mut counting)?;
    outcome
        .log
        .events
        .insert("mask_updates".into(), counting.updates as f64);
    Ok(outcome)
}

/// Forwards to a hook and counts the mask changes it asks for.
struct CountingHook<'h> {
    inner: &'h mut dyn TrainHook,
    updates: usize,
}

impl CountingHook<'_> {
    fn count(&mut self, action: HookAction) -> HookAction {
        if matches!(action, HookAction::SetMask { .. }) {
            self.updates += 1;
        }
        action
    }
}

impl TrainHook for CountingHook<'_> {
    fn step_interval(&self) -> Option<usize> {
        self.inner.step_interval()
    }
    fn after_step(&mut self, view: &TrainView<'_>) -> Result<HookAction, EngineError> {
        let action = self.inner.after_step(view)?;
        Ok(self.count(action))
    }
    fn at_epoch(&mut self, view: &TrainView<'_>) -> Result<HookAction, EngineError> {
        let action = self.inner.at_epoch(view)?;
        Ok(self.count(action))
    }
}

/// The dense gradient a gradient-growing hook needs (always present in step hooks).
pub(super) fn require_gradients(
    grads: Option<Vec<Vec<f32>>>,
) -> Result<Vec<Vec<f32>>, EngineError> {
    grads.ok_or_else(|| EngineError::Recipe("dense gradient requested outside a step".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketbench_core::Streams;

    #[test]
    fn drop_and_grow_keeps_layer_counts_and_drops_smallest() {
        let net = Network::methods_md_worked_example(); // |W1| = (1, 2, 3, 0.25), |W2| = (1, 4)
        let mask = Mask::from_layers(vec![vec![true, true, true, false], vec![true, false]]);
        let grads = vec![vec![0.0, 0.0, 0.0, 5.0], vec![0.0, 1.0]];
        let (next, grown) = drop_and_grow(&net, &mask, &[1, 1], None, Grow::Gradient(&grads));
        // Layer 0 drops |w| = 1 (index 0) and grows index 3 (largest |g|); layer 1 drops its
        // only weight and regrows index 1.
        assert_eq!(
            next.layers(),
            &[vec![false, true, true, true], vec![false, true]]
        );
        assert_eq!(
            grown.layers(),
            &[vec![false, false, false, true], vec![false, true]]
        );
        assert_eq!(next.layer_kept(), mask.layer_kept());
        // Random growth: counts kept, dropped ∩ kept-after-drop = ∅.
        let mut rng = Streams::new(1).stream("t");
        let (next, grown) = drop_and_grow(&net, &mask, &[2, 0], None, Grow::Random(&mut rng));
        assert_eq!(next.layer_kept(), mask.layer_kept());
        assert!(next.layer(0)[2], "the largest weight survives the drop");
        // Only connections absent from the old mask count as new (they restart at 0).
        for (l, g) in grown.layers().iter().enumerate() {
            for (i, &g) in g.iter().enumerate() {
                assert!(!g || (next.layer(l)[i] && !mask.layer(l)[i]));
            }
        }
        // A dense layer can only regrow what it dropped: nothing is new, nothing is zeroed.
        let dense = Mask::dense(&net.shapes());
        let (next, grown) = drop_and_grow(&net, &dense, &[2, 1], None, Grow::Gradient(&grads));
        assert_eq!(next, dense);
        assert_eq!(grown.kept(), 0);
    }

    #[test]
    fn rigl_cosine_schedule() {
        // methods.md §1.13(e): t/T_end = 0, .25, .5, .75, 1 → 0.3, 0.2561, 0.15, 0.0439, 0.
        let want = [0.3, 0.25607, 0.15, 0.04393, 0.0];
        for (q, w) in [0usize, 25, 50, 75, 100].iter().zip(want) {
            assert!((cosine_fraction(0.3, *q, 100) - w).abs() < 1e-5, "{q}");
        }
    }
}
