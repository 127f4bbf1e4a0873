use super::{
    DataNeeds, Family, MethodError, MethodInfo, PruneContext, PruneOutcome, Pruner, Schedule,
    parse_params,
};
use serde::{Deserialize, Serialize};
use ticketbench_core::{Density, Mask};

/// The unpruned network: `m = 1`. The reference every ticket is compared with; the runner
/// schedules it at density 1 only.
pub struct Dense;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

pub(super) const INFO: MethodInfo = MethodInfo {
    name: "dense",
    family: Family::Reference,
    data: DataNeeds::None,
    summary: "no pruning: the dense reference network (density 1)",
    citation: "—",
    build: |p| {
        parse_params::<NoParams>(INFO.name, p)?;
        Ok(Box::new(Dense))
    },
};

impl Pruner for Dense {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }
    fn params(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    fn ratio_rule(&self) -> Option<String> {
        None
    }
    fn schedule(&self) -> Schedule {
        Schedule::DenseOnly
    }
    fn prune(
        &self,
        ctx: &mut PruneContext<'_>,
        density: Density,
    ) -> Result<PruneOutcome, MethodError> {
        if !density.is_dense() {
            return Err(MethodError::InvalidParams {
                method: INFO.name,
                message: format!("dense runs at density 1, not {density}"),
            });
        }
        Ok(PruneOutcome::new(Mask::dense(&ctx.net.shapes())))
    }
}
