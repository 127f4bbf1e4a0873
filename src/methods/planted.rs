use super::{
    DataNeeds, Family, MethodError, MethodInfo, PruneContext, PruneOutcome, Pruner, Schedule,
    parse_params,
};
use serde::{Deserialize, Serialize};
use ticketbench_core::Density;

/// The planted ticket itself (ground truth of a planted model): the mask of the target's
/// nonzero edges inside the host, trained from the planted host weights. The reference row
/// of every planted table; the runner schedules it once per seed at the planted density.
pub struct Planted;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

pub(super) const INFO: MethodInfo = MethodInfo {
    name: "planted",
    family: Family::Reference,
    data: DataNeeds::None,
    summary: "the planted ticket (ground truth; needs a model with `plant:`), at its own density",
    citation: "Fischer & Burkholz 2022, Plant 'n' Seek, arXiv 2111.11153",
    build: |p| {
        parse_params::<NoParams>(INFO.name, p)?;
        Ok(Box::new(Planted))
    },
};

impl Pruner for Planted {
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
        Schedule::PlantedDensity
    }
    fn prune(
        &self,
        ctx: &mut PruneContext<'_>,
        density: Density,
    ) -> Result<PruneOutcome, MethodError> {
        let planted = ctx.planted.ok_or_else(|| MethodError::InvalidParams {
            method: INFO.name,
            message: "the model has no planted ticket; add `plant: pns` to the model".into(),
        })?;
        if (planted.density() - density.get()).abs() > 1e-12 {
            return Err(MethodError::InvalidParams {
                method: INFO.name,
                message: format!(
                    "runs at the planted density {}, not {density}",
                    planted.density()
                ),
            });
        }
        Ok(PruneOutcome::new(planted.mask.clone()))
    }
}
