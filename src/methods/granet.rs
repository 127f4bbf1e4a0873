use super::dynamic::{
    Grow, all_finite, drop_and_grow, recipe_steps, require_gradients, train_counting_updates,
};
use super::magnitude::magnitude_scores;
use super::rigl::{check_dynamic, initial_mask};
use super::{
    DataNeeds, Family, MethodError, MethodInfo, PruneContext, PruneOutcome, Pruner, parse_params,
    to_value,
};
use crate::engine::EngineError;
use crate::train::{HookAction, TrainHook, TrainView};
use serde::{Deserialize, Serialize};
use ticketbench_core::select::{Keep, top_k_global};
use ticketbench_core::{Density, Mask, target_count};

/// GraNet: gradual magnitude pruning with zero-cost neuroregeneration (methods.md §1.12).
///
/// Every ΔT = `update_every` steps: (1) while `t < t_f` prune globally by `|θ|` to
/// `d_t = d_f + (d_i − d_f)(1 − t/t_f)³` (Zhu & Gupta's cubic schedule, t_0 = 0; from t_f on
/// `d_t = d_f = D`, so the first update at or after t_f lands exactly on D); (2) in every
/// sparse layer drop the `⌈r_t · nnz_l⌉` smallest-`|θ|` active weights and grow as many with
/// the largest dense `|∂L/∂θ|` on the current batch (grown weights start at 0), with
/// `r_t` cosine-annealed from 0.5 to 0.005 over all T steps. Dense layers are not
/// regenerated (there is nothing inactive to grow). Start dense (`initial_density` d_i = 1,
/// dense-to-sparse) or from a random ERK mask at d_i < 1. Defaults: ΔT = 1000, t_f = 0.5 T
/// (80 of 160 epochs). Trains with the suite recipe; the trained ticket is the result.
/// Liu et al. 2021, arXiv 2106.10404; Zhu & Gupta 2017, arXiv 1710.01878.
pub struct Granet {
    params: GranetParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct GranetParams {
    initial_density: f64,
    update_every: usize,
    /// t_f as a fraction of the training steps.
    prune_end_fraction: f64,
    regen_rate: f64,
    regen_final: f64,
}

impl Default for GranetParams {
    fn default() -> Self {
        GranetParams {
            initial_density: 1.0,
            update_every: 1000,
            prune_end_fraction: 0.5,
            regen_rate: 0.5,
            regen_final: 0.005,
        }
    }
}

pub(super) const INFO: MethodInfo = MethodInfo {
    name: "granet",
    family: Family::Dynamic,
    data: DataNeeds::FullTraining,
    summary: "gradual global magnitude pruning (cubic) plus per-layer drop-and-regrow by gradient",
    citation: "Liu et al. 2021, arXiv 2106.10404; Zhu & Gupta 2017, arXiv 1710.01878",
    build: |p| {
        let params: GranetParams = parse_params(INFO.name, p)?;
        check_dynamic(
            INFO.name,
            params.regen_rate,
            params.update_every,
            params.prune_end_fraction,
            "erk",
        )?;
        if !(0.0..=params.regen_rate).contains(&params.regen_final) {
            return Err(MethodError::InvalidParams {
                method: INFO.name,
                message: format!(
                    "regen_final {} must be in [0, regen_rate = {}]",
                    params.regen_final, params.regen_rate
                ),
            });
        }
        if !(params.initial_density > 0.0 && params.initial_density <= 1.0) {
            return Err(MethodError::InvalidParams {
                method: INFO.name,
                message: format!(
                    "initial_density {} must be in (0, 1]",
                    params.initial_density
                ),
            });
        }
        Ok(Box::new(Granet { params }))
    },
};

/// Zhu & Gupta's cubic density schedule at progress `q = t / t_f ∈ [0, 1]`.
fn cubic_density(initial: f64, target: f64, q: f64) -> f64 {
    target + (initial - target) * (1.0 - q.clamp(0.0, 1.0)).powi(3)
}

/// Cosine annealing from `start` to `end` over `total` steps.
fn cosine_anneal(start: f64, end: f64, t: usize, total: usize) -> f64 {
    let q = (t as f64 / total.max(1) as f64).min(1.0);
    end + (start - end) / 2.0 * (1.0 + (std::f64::consts::PI * q).cos())
}

struct GranetHook<'p> {
    params: &'p GranetParams,
    density: Density,
    total_steps: usize,
    t_f: usize,
}

impl TrainHook for GranetHook<'_> {
    fn step_interval(&self) -> Option<usize> {
        Some(self.params.update_every)
    }
    fn after_step(&mut self, view: &TrainView<'_>) -> Result<HookAction, EngineError> {
        let net = view.network();
        if !all_finite(&net) {
            return Ok(HookAction::Continue);
        }
        let d_t = if view.step >= self.t_f {
            self.density.get()
        } else {
            cubic_density(
                self.params.initial_density,
                self.density.get(),
                view.step as f64 / self.t_f as f64,
            )
        };
        let keep = target_count(Density::new(d_t)?, view.mask.total())?;
        let pruned = if keep < view.mask.kept() {
            top_k_global(
                &magnitude_scores(&net),
                keep,
                Some(view.mask),
                Keep::Highest,
            )?
        } else {
            view.mask.clone()
        };
        // After the last optimiser step only prune: a regrown weight would never train.
        if view.step >= self.total_steps {
            return Ok(HookAction::SetMask {
                mask: pruned,
                zeroed: None,
            });
        }
        let r_t = cosine_anneal(
            self.params.regen_rate,
            self.params.regen_final,
            view.step,
            self.total_steps,
        );
        let n_drop: Vec<usize> = pruned
            .layers()
            .iter()
            .map(|layer| {
                let kept = layer.iter().filter(|&&k| k).count();
                if kept == layer.len() {
                    0
                } else {
                    (r_t * kept as f64).ceil() as usize
                }
            })
            .collect();
        let grads = require_gradients(view.dense_gradients()?)?;
        let (mask, grown) = drop_and_grow(&net, &pruned, &n_drop, None, Grow::Gradient(&grads));
        Ok(HookAction::SetMask {
            mask,
            zeroed: Some(grown),
        })
    }
}

impl Pruner for Granet {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }
    fn params(&self) -> serde_json::Value {
        to_value(&self.params)
    }
    fn trains_ticket(&self) -> bool {
        true
    }
    fn prune(
        &self,
        ctx: &mut PruneContext<'_>,
        density: Density,
    ) -> Result<PruneOutcome, MethodError> {
        let p = &self.params;
        if p.initial_density < density.get() {
            return Err(MethodError::InvalidParams {
                method: INFO.name,
                message: format!(
                    "initial_density {} is below the target density {}",
                    p.initial_density,
                    density.get()
                ),
            });
        }
        let total_steps = recipe_steps(ctx);
        let t_f = (p.prune_end_fraction * total_steps as f64) as usize;
        let first_final_update = t_f.div_ceil(p.update_every).max(1) * p.update_every;
        if first_final_update > total_steps {
            return Err(MethodError::InvalidParams {
                method: INFO.name,
                message: format!(
                    "update_every {} leaves no mask update between step {t_f} (end of pruning) and the end of training ({total_steps} steps), so the target density is never reached; choose an update_every with a multiple in [{t_f}, {total_steps}], e.g. {}",
                    p.update_every,
                    (total_steps - t_f).max(1)
                ),
            });
        }
        let mask = if p.initial_density < 1.0 {
            initial_mask(ctx, "erk", Density::new(p.initial_density)?, "granet/init")?
        } else {
            Mask::dense(&ctx.net.shapes())
        };
        let mut hook = GranetHook {
            params: p,
            density,
            total_steps,
            t_f,
        };
        let outcome = train_counting_updates(ctx, INFO.name, &mask, &mut hook)?;
        // A run that blew up before the end of pruning has no ticket at the target density.
        if let Some(d) = outcome.trained.as_ref().and_then(|t| t.diverged.as_ref())
            && outcome.mask.kept() != target_count(density, outcome.mask.total())?
        {
            return Err(MethodError::Engine(EngineError::Recipe(format!(
                "granet training diverged at step {} (loss {}) before reaching density {}; lower the learning rate",
                d.step,
                d.loss,
                density.get()
            ))));
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_schedule_worked_values() {
        // methods.md §1.12(e): d_i = 0.5, d_f = 0.1 at progress 0, .25, .5, .75, 1.
        let want = [0.5, 0.26875, 0.15, 0.10625, 0.1];
        for (q, w) in [0.0, 0.25, 0.5, 0.75, 1.0].iter().zip(want) {
            assert!((cubic_density(0.5, 0.1, *q) - w).abs() < 1e-12);
        }
        assert!((cosine_anneal(0.5, 0.005, 0, 100) - 0.5).abs() < 1e-12);
        assert!((cosine_anneal(0.5, 0.005, 100, 100) - 0.005).abs() < 1e-12);
    }
}
