use super::dynamic::{
    Grow, all_finite, cosine_fraction, drop_and_grow, recipe_steps, require_gradients,
    train_counting_updates,
};
use super::{
    DataNeeds, Family, MethodError, MethodInfo, PruneContext, PruneOutcome, Pruner, parse_params,
    to_value,
};
use crate::engine::EngineError;
use crate::train::{HookAction, TrainHook, TrainView};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use ticketbench_baselines::{RuleInput, random_ticket, ratios};
use ticketbench_core::{Density, Mask};

/// RigL, rigged-lottery dynamic sparse training (methods.md §1.13).
///
/// Start from a random mask at the layerwise densities of `rule` (ERK). Every ΔT =
/// `update_every` steps while `t < T_end = end_fraction · T`, in each layer drop
/// `⌊α_t · nnz_l⌋` active weights with the smallest `|θ| + N(0, noise_sd²)` and grow as many
/// among the entries not kept after the drop, by the largest `|∂L/∂θ|` of the dense gradient
/// on the current batch; grown weights start at 0; `α_t = (α/2)(1 + cos(π t / T_end))`.
/// Per-layer counts never change. Trains with the suite recipe (the paper's SGD schedule is
/// not imposed); the trained ticket is the result. Defaults α = 0.3, ΔT = 100, T_end = 0.75 T.
/// Evci, Gale, Menick, Castro & Elsen 2020, arXiv 1911.11134.
pub struct Rigl {
    params: RiglParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RiglParams {
    alpha: f64,
    update_every: usize,
    end_fraction: f64,
    rule: String,
    noise_sd: f64,
}

impl Default for RiglParams {
    fn default() -> Self {
        RiglParams {
            alpha: 0.3,
            update_every: 100,
            end_fraction: 0.75,
            rule: "erk".into(),
            noise_sd: 1e-5,
        }
    }
}

pub(super) const INFO: MethodInfo = MethodInfo {
    name: "rigl",
    family: Family::Dynamic,
    data: DataNeeds::FullTraining,
    summary: "dynamic sparse training at ERK ratios: drop smallest |θ|, grow largest dense |∇|, cosine drop fraction 0.3",
    citation: "Evci et al. 2020, arXiv 1911.11134",
    build: |p| {
        let params: RiglParams = parse_params(INFO.name, p)?;
        check_dynamic(
            INFO.name,
            params.alpha,
            params.update_every,
            params.end_fraction,
            &params.rule,
        )?;
        if !(params.noise_sd.is_finite() && params.noise_sd >= 0.0) {
            return Err(MethodError::InvalidParams {
                method: INFO.name,
                message: format!("noise_sd {} must be a finite number ≥ 0", params.noise_sd),
            });
        }
        Ok(Box::new(Rigl { params }))
    },
};

/// Shared parameter checks of the dynamic methods.
pub(super) fn check_dynamic(
    method: &'static str,
    fraction: f64,
    update_every: usize,
    end_fraction: f64,
    rule: &str,
) -> Result<(), MethodError> {
    let bad = |message: String| Err(MethodError::InvalidParams { method, message });
    if !(0.0..=1.0).contains(&fraction) {
        return bad(format!("drop fraction {fraction} must be in [0, 1]"));
    }
    if update_every == 0 {
        return bad("update_every must be at least 1".into());
    }
    if !(end_fraction > 0.0 && end_fraction <= 1.0) {
        return bad(format!("end_fraction {end_fraction} must be in (0, 1]"));
    }
    ratios::rule(rule)?;
    Ok(())
}

/// The random starting mask of a dynamic method at a ratio rule.
pub(super) fn initial_mask(
    ctx: &PruneContext<'_>,
    rule: &str,
    density: Density,
    purpose: &str,
) -> Result<Mask, MethodError> {
    let counts = ratios::rule(rule)?.counts(RuleInput::Network(ctx.net), density)?;
    Ok(random_ticket(
        &ctx.net.shapes(),
        &counts,
        ctx.streams,
        purpose,
    ))
}

struct RiglHook<'p> {
    params: &'p RiglParams,
    t_end: usize,
    noise: ChaCha8Rng,
}

impl TrainHook for RiglHook<'_> {
    fn step_interval(&self) -> Option<usize> {
        Some(self.params.update_every)
    }
    fn after_step(&mut self, view: &TrainView<'_>) -> Result<HookAction, EngineError> {
        let alpha = cosine_fraction(self.params.alpha, view.step, self.t_end);
        if alpha == 0.0 {
            return Ok(HookAction::Continue);
        }
        let n_drop: Vec<usize> = view
            .mask
            .layer_kept()
            .iter()
            .map(|&k| (alpha * k as f64).floor() as usize)
            .collect();
        let net = view.network();
        if !all_finite(&net) {
            return Ok(HookAction::Continue);
        }
        let grads = require_gradients(view.dense_gradients()?)?;
        let (mask, grown) = drop_and_grow(
            &net,
            view.mask,
            &n_drop,
            Some((&mut self.noise, self.params.noise_sd)),
            Grow::Gradient(&grads),
        );
        Ok(HookAction::SetMask {
            mask,
            zeroed: Some(grown),
        })
    }
}

impl Pruner for Rigl {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }
    fn params(&self) -> serde_json::Value {
        to_value(&self.params)
    }
    fn trains_ticket(&self) -> bool {
        true
    }
    fn ratio_rule(&self) -> Option<String> {
        Some(self.params.rule.clone())
    }
    fn prune(
        &self,
        ctx: &mut PruneContext<'_>,
        density: Density,
    ) -> Result<PruneOutcome, MethodError> {
        let mask = initial_mask(ctx, &self.params.rule, density, "rigl/init")?;
        let t_end = (self.params.end_fraction * recipe_steps(ctx) as f64) as usize;
        let mut hook = RiglHook {
            params: &self.params,
            t_end,
            noise: ctx.streams.stream("rigl/noise"),
        };
        train_counting_updates(ctx, INFO.name, &mask, &mut hook)
    }
}
