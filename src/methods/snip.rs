use super::{
    DataNeeds, Family, MethodError, MethodInfo, PruneContext, PruneOutcome, Pruner, at_least_one,
    parse_params, to_value,
};
use serde::{Deserialize, Serialize};
use ticketbench_core::select::Keep;
use ticketbench_core::{Density, Mask, Network, Scores};

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
        at_least_one(INFO.name, "per_class", params.per_class)?;
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
    fn returns_scores(&self) -> bool {
        true
    }
    fn prune(
        &self,
        ctx: &mut PruneContext<'_>,
        density: Density,
    ) -> Result<PruneOutcome, MethodError> {
        let batch = ctx
            .data
            .scoring_batch(self.params.per_class, ctx.streams, "scoring/batch");
        let dense = Mask::dense(&ctx.net.shapes());
        let grads = ctx
            .engine
            .loss_gradients(ctx.net, &dense, &batch, ctx.data.output())?;
        PruneOutcome::global_top_k(snip_scores(ctx.net, &grads), density, Keep::Highest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketbench_core::select::{Keep, top_k_global};

    #[test]
    fn worked_example() {
        // methods.md §1.4(e), shared net: θ = (a11, a12, a21, a22, b1, b2) = (1, −2, 3, 0.25, −1, 4),
        // g = (−19, −57, 76, 228, −95, 71.25) → raw (19, 114, 228, 57, 95, 285), sum 798.
        let net = Network::methods_md_worked_example();
        let g = vec![vec![-19.0, -57.0, 76.0, 228.0], vec![-95.0, 71.25]];
        let s = snip_scores(&net, &g);
        let want = [19.0, 114.0, 228.0, 57.0, 95.0, 285.0].map(|v| v / 798.0);
        for (got, want) in s.layers.iter().flatten().zip(want) {
            assert!((got - want).abs() < 1e-12);
        }
        // d = 0.5 keeps {b2, a21, a12}.
        let m = top_k_global(&s, 3, None, Keep::Highest).unwrap();
        assert_eq!(
            m.layers(),
            &[vec![false, true, true, false], vec![false, true]]
        );
    }
}
