use super::{
    DataNeeds, Family, MethodError, MethodInfo, PruneContext, PruneOutcome, Pruner, parse_params,
    to_value,
};
use serde::{Deserialize, Serialize};
use ticketbench_core::select::{Keep, top_k_global};
use ticketbench_core::{Density, Mask, Network, Scores, target_count};

/// SNIP, connection sensitivity (methods.md §1.4): with gates `c = 1` on every weight,
/// `S_i = |∂L/∂c_i| = |g_i · θ_i|`, `g = ∇_θ L` on one scoring batch at θ_0; normalised
/// `S_i ← S_i / Σ_j S_j`; keep the global top-k. Weights only (biases never pruned), the same
/// θ_0 is trained afterwards. Scoring batch: class-balanced, `per_class` examples per class
/// (default 10) from the training split (regression tasks: 4·`per_class` random examples).
/// Lee, Ajanthan & Torr 2019, arXiv 1810.02340.
pub struct Snip {
    params: SnipParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SnipParams {
    per_class: usize,
}

impl Default for SnipParams {
    fn default() -> Self {
        SnipParams { per_class: 10 }
    }
}

pub(super) const INFO: MethodInfo = MethodInfo {
    name: "snip",
    family: Family::AtInit,
    data: DataNeeds::ScoringBatch,
    summary: "|g ⊙ θ| on one class-balanced batch at init, normalised, global top-k",
    citation: "Lee, Ajanthan & Torr 2019, arXiv 1810.02340",
    build: |p| {
        let params: SnipParams = parse_params(INFO.name, p)?;
        if params.per_class == 0 {
            return Err(MethodError::InvalidParams {
                method: INFO.name,
                message: "per_class must be at least 1".into(),
            });
        }
        Ok(Box::new(Snip { params }))
    },
};

/// Normalised SNIP scores `|g ⊙ θ| / Σ |g ⊙ θ|` from weight gradients `g` (host layout).
pub(crate) fn snip_scores(net: &Network, grads: &[Vec<f32>]) -> Scores {
    let mut layers: Vec<Vec<f64>> = net
        .layers
        .iter()
        .zip(grads)
        .map(|(l, g)| {
            l.weight
                .iter()
                .zip(g)
                .map(|(&w, &g)| (w as f64 * g as f64).abs())
                .collect()
        })
        .collect();
    let total: f64 = layers.iter().flatten().sum();
    if total > 0.0 {
        layers.iter_mut().flatten().for_each(|s| *s /= total);
    }
    Scores { layers }
}

impl Pruner for Snip {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }
    fn params(&self) -> serde_json::Value {
        to_value(&self.params)
    }
    fn ratio_rule(&self) -> Option<String> {
        Some("global".into())
    }
    fn prune(
        &self,
        ctx: &mut PruneContext<'_>,
        density: Density,
    ) -> Result<PruneOutcome, MethodError> {
        let batch = ctx
            .task
            .scoring_batch(self.params.per_class, ctx.streams, "scoring/batch");
        let dense = Mask::dense(&ctx.net.shapes());
        let grads = ctx
            .engine
            .loss_gradients(ctx.net, &dense, &batch, ctx.task.output)?;
        let scores = snip_scores(ctx.net, &grads);
        let k = target_count(density, ctx.net.num_prunable())?;
        let mask = top_k_global(&scores, k, None, Keep::Highest)?;
        Ok(PruneOutcome {
            mask,
            start: None,
            scores: Some(scores),
        })
    }
}
