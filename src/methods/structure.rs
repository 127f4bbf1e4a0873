//! `structure: channel` on any method entry: the method's ticket made channel-structured on
//! convolution layers ([`channel_structured`]: whole output channels, per-layer counts and so
//! the exact density kept, at most one partial channel per layer; dense layers unchanged).
//!
//! Structured tickets: Chen et al., "Coarsening the Granularity: Towards Structurally Sparse
//! Lottery Tickets", ICML 2022. The option wraps the method rather than living in each one,
//! so every method whose mask the runner trains has a structured variant. It structures the
//! method's final mask once; it is not Chen et al.'s IMP-Refill, which re-structures every
//! IMP round. What the method logs (IMP's rounds, events) and its scores describe its
//! element mask. The `layer_shuffle` and `global_shuffle` checks shuffle single weights, so
//! they test the structured ticket's layer ratios, not its channels. On a network without
//! convolutions the option changes nothing (the same ticket under another label).

use super::{MethodError, MethodInfo, Params, PruneContext, PruneOutcome, Pruner, Schedule};
use ticketbench_core::{Density, channel_structured};

/// A method whose element mask is turned into a channel mask.
struct ChannelStructured {
    inner: Box<dyn Pruner>,
}

impl Pruner for ChannelStructured {
    fn info(&self) -> &'static MethodInfo {
        self.inner.info()
    }

    fn params(&self) -> serde_json::Value {
        let mut params = self.inner.params();
        if let Some(map) = params.as_object_mut() {
            map.insert("structure".into(), "channel".into());
        }
        params
    }

    fn ratio_rule(&self) -> Option<String> {
        self.inner.ratio_rule()
    }

    fn data_needs(&self) -> super::DataNeeds {
        self.inner.data_needs()
    }

    fn family(&self) -> super::Family {
        self.inner.family()
    }

    fn work(
        &self,
        density: ticketbench_core::Density,
        recipe: &crate::train::TrainRecipe,
        train_examples: usize,
    ) -> super::Work {
        self.inner.work(density, recipe, train_examples)
    }

    fn label(&self) -> Option<String> {
        self.inner
            .label()
            .map(|l| format!("{l}[structure=channel]"))
    }

    /// The scores no longer rank the kept weights, so the `invert` check does not apply.
    fn returns_scores(&self) -> bool {
        false
    }

    fn prune(
        &self,
        ctx: &mut PruneContext<'_>,
        density: Density,
    ) -> Result<PruneOutcome, MethodError> {
        let outcome = self.inner.prune(ctx, density)?;
        let mask = channel_structured(
            &outcome.mask,
            outcome.scores.as_ref(),
            outcome.keep,
            &ctx.net.shapes(),
        )?;
        Ok(PruneOutcome { mask, ..outcome })
    }
}

/// Builds `info`'s method from `params`, wrapped when `params` asks for `structure: channel`.
pub(super) fn build(
    info: &'static MethodInfo,
    params: &Params,
) -> Result<Box<dyn Pruner>, MethodError> {
    let mut params = params.clone();
    let structure = params.remove("structure");
    let inner = (info.build)(&params)?;
    match structure.as_ref().map(|v| v.as_str()) {
        None | Some(Some("element")) => Ok(inner),
        Some(Some("channel")) => {
            let refuse = |why: &str| MethodError::InvalidParams {
                method: info.name,
                message: format!("`structure: channel` reshapes the mask the runner trains; {why}"),
            };
            if inner.trains_ticket() {
                return Err(refuse(
                    "this method trains its own ticket, remove `structure`",
                ));
            }
            if inner.start_depends_on_mask() {
                return Err(refuse(
                    "this method's starting weights are computed from its own mask, remove `structure`",
                ));
            }
            if inner.schedule() != Schedule::Grid {
                return Err(refuse("this method does not prune, remove `structure`"));
            }
            Ok(Box::new(ChannelStructured { inner }))
        }
        _ => Err(MethodError::InvalidParams {
            method: info.name,
            message: format!(
                "structure must be `element` (the default) or `channel`, found {}",
                structure.expect("matched above")
            ),
        }),
    }
}
