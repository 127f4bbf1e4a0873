use super::dynamic::{Grow, all_finite, drop_and_grow, train_counting_updates};
use super::rigl::{check_dynamic, initial_mask};
use super::{
    DataNeeds, Family, MethodError, MethodInfo, PruneContext, PruneOutcome, Pruner, parse_params,
    to_value,
};
use crate::engine::EngineError;
use crate::train::{HookAction, TrainHook, TrainView};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use ticketbench_core::Density;

/// Sparse Evolutionary Training (methods.md §1.13).
///
/// Start from a random mask at the Erdős–Rényi layerwise densities (`rule: er`). After every
/// epoch but the last, in each layer drop the `⌊ζ · nnz_l⌋` active weights with the smallest
/// `|θ|` and grow as many uniformly at random among the entries not kept after the drop
/// (stream `set/grow`); grown weights start at 0 (RigL's convention; the original SET draws
/// fresh random values). Per-layer counts never change; ζ = 0.3. Trains with the suite recipe;
/// the trained ticket is the result. Mocanu et al. 2018, arXiv 1707.04780.
pub struct Set {
    params: SetParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SetParams {
    zeta: f64,
    rule: String,
}

impl Default for SetParams {
    fn default() -> Self {
        SetParams {
            zeta: 0.3,
            rule: "er".into(),
        }
    }
}

pub(super) const INFO: MethodInfo = MethodInfo {
    name: "set",
    family: Family::Dynamic,
    data: DataNeeds::FullTraining,
    summary: "dynamic sparse training at ER ratios: each epoch drop ζ = 0.3 smallest |θ| per layer, regrow at random",
    citation: "Mocanu et al. 2018, arXiv 1707.04780",
    build: |p| {
        let params: SetParams = parse_params(INFO.name, p)?;
        check_dynamic(INFO.name, params.zeta, 1, 1.0, &params.rule)?;
        Ok(Box::new(Set { params }))
    },
};

struct SetHook {
    zeta: f64,
    epochs: usize,
    rng: ChaCha8Rng,
}

impl TrainHook for SetHook {
    fn at_epoch(&mut self, view: &TrainView<'_>) -> Result<HookAction, EngineError> {
        // Not before training and not after the last epoch (grown weights would stay 0).
        if view.epoch == 0 || view.epoch >= self.epochs {
            return Ok(HookAction::Continue);
        }
        let n_drop: Vec<usize> = view
            .mask
            .layer_kept()
            .iter()
            .map(|&k| (self.zeta * k as f64).floor() as usize)
            .collect();
        let net = view.network();
        if !all_finite(&net) {
            return Ok(HookAction::Continue);
        }
        let (mask, grown) =
            drop_and_grow(&net, view.mask, &n_drop, None, Grow::Random(&mut self.rng));
        Ok(HookAction::SetMask {
            mask,
            zeroed: Some(grown),
        })
    }
}

impl Pruner for Set {
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
        let mask = initial_mask(ctx, &self.params.rule, density, "set/init")?;
        let mut hook = SetHook {
            zeta: self.params.zeta,
            epochs: ctx.recipe.epochs,
            rng: ctx.streams.stream("set/grow"),
        };
        train_counting_updates(ctx, INFO.name, &mask, &mut hook)
    }
}
