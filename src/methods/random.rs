use super::{
    DataNeeds, Family, MethodError, MethodInfo, PruneContext, PruneOutcome, Pruner, parse_params,
    to_value,
};
use serde::{Deserialize, Serialize};
use ticketbench_baselines::{random_ticket, ratios};
use ticketbench_core::select::Keep;
use ticketbench_core::{Density, Scores, sample_standard_normal};

/// Random pruning, the "weak random ticket" (methods.md §1.1).
///
/// Layerwise (default): per-layer budgets `k_l` from a ratio rule (§2, rounded per §2.9),
/// then `k_l` positions chosen uniformly without replacement in each layer (partial
/// Fisher–Yates, stream `random/layer/<l>`). `rule: global`: i.i.d. `N(0, 1)` scores and global
/// exact-k (the SynFlow repository's baseline), so per-layer densities are random around D.
/// Weights keep θ_0; data-free. `when: trained`: the same random mask applied to θ_T (the
/// dense network trained with the suite's recipe), which then fine-tunes from θ_T — SMC-Bench's
/// "Random (After)" (Liu et al. 2023, arXiv 2303.02141; planting.md §6.2).
/// Frankle & Carbin 2019 (arXiv 1803.03635); Su et al. 2020 (arXiv 2009.11094).
pub struct Random {
    params: RandomParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RandomParams {
    /// A ratio rule name (`uniform`, `erk`, …) or `global`.
    rule: String,
    /// Which weights the ticket starts from. Left out of the parameters when `init`, so the
    /// hashes of random tickets recorded before the option existed stay valid.
    #[serde(skip_serializing_if = "When::is_init")]
    when: When,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum When {
    #[default]
    Init,
    Trained,
}

impl When {
    fn is_init(&self) -> bool {
        *self == When::Init
    }
}

impl Default for RandomParams {
    fn default() -> Self {
        RandomParams {
            rule: "uniform".into(),
            when: When::Init,
        }
    }
}

const GLOBAL: &str = "global";

pub(super) const INFO: MethodInfo = MethodInfo {
    name: "random",
    family: Family::AtInit,
    data: DataNeeds::None,
    summary: "uniformly random ticket at a layerwise ratio rule (param `rule`, default uniform; `global` for i.i.d. scores)",
    citation: "Frankle & Carbin 2019, arXiv 1803.03635; Su et al. 2020, arXiv 2009.11094",
    build: |p| {
        let params: RandomParams = parse_params(INFO.name, p)?;
        if params.rule != GLOBAL {
            ratios::rule(&params.rule).map_err(|e| MethodError::InvalidParams {
                method: INFO.name,
                message: format!("{e}, or `{GLOBAL}`"),
            })?;
        }
        Ok(Box::new(Random { params }))
    },
};

impl Pruner for Random {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }
    fn params(&self) -> serde_json::Value {
        to_value(&self.params)
    }
    fn ratio_rule(&self) -> Option<String> {
        Some(self.params.rule.clone())
    }
    fn returns_scores(&self) -> bool {
        self.params.rule == GLOBAL
    }
    fn prune(
        &self,
        ctx: &mut PruneContext<'_>,
        density: Density,
    ) -> Result<PruneOutcome, MethodError> {
        let start = match self.params.when {
            When::Init => None,
            When::Trained => Some(ctx.dense_trained()?),
        };
        let net = start.as_ref().unwrap_or(ctx.net);
        let shapes = net.shapes();
        if self.params.rule == GLOBAL {
            let mut rng = ctx.streams.stream("random/global");
            let scores = Scores {
                layers: shapes
                    .iter()
                    .map(|s| {
                        (0..s.len())
                            .map(|_| sample_standard_normal(&mut rng))
                            .collect()
                    })
                    .collect(),
            };
            let mut outcome = PruneOutcome::global_top_k(scores, density, Keep::Highest)?;
            outcome.start = start;
            return Ok(outcome);
        }
        // A random ticket at a weight-dependent rule (LAMP) uses the densities of the weights
        // it starts from.
        let counts =
            ratios::rule(&self.params.rule)?.counts(ratios::RuleInput::Network(net), density)?;
        let mask = random_ticket(&shapes, &counts, ctx.streams, "random");
        Ok(PruneOutcome {
            start,
            ..PruneOutcome::new(mask)
        })
    }
}
