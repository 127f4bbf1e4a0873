use super::magnitude::magnitude_scores;
use super::{
    DataNeeds, Family, MethodError, MethodInfo, PruneContext, PruneOutcome, Pruner, parse_params,
    to_value,
};
use crate::engine::EngineError;
use crate::train::{HookAction, TrainHook, TrainView};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use ticketbench_core::select::{Keep, top_k_global};
use ticketbench_core::{Density, Mask, Network, target_count};

/// Early-Bird tickets: draw the ticket as soon as the pruning mask stops changing
/// (methods.md §1.14).
///
/// Before training and after every epoch e, `m_e` = global magnitude mask of the current
/// weights at the target density (the MLP adaptation of the reference's BN-channel mask;
/// documented deviation). A FIFO keeps the last W = `window` masks; once full, the EB ticket
/// is drawn at the first epoch where the normalised Hamming distance
/// `d(m_a, m_b) = Hamming(m_a, m_b)/N` between the newest mask and each of the W − 1 older
/// ones is ≤ ε (the code's 4 distances in a 5-mask window). Training then continues under
/// `m_e` for the rest of the recipe (the pruned net is retrained from its EB weights) and that
/// trained ticket is the result; `log.events.eb_epoch` records e. If no EB ticket appears
/// before the last epoch, the ticket is the final epoch's mask, fine-tuned by the runner from
/// the final weights (`eb_found = 0`). You et al. 2020, arXiv 1909.11957.
pub struct EarlyBird {
    params: EarlyBirdParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct EarlyBirdParams {
    epsilon: f64,
    window: usize,
}

impl Default for EarlyBirdParams {
    fn default() -> Self {
        EarlyBirdParams {
            epsilon: 0.1,
            window: 5,
        }
    }
}

pub(super) const INFO: MethodInfo = MethodInfo {
    name: "early-bird",
    family: Family::Iterative,
    data: DataNeeds::FullTraining,
    summary: "draw the magnitude ticket once the last 5 per-epoch masks are within Hamming distance 0.1, then keep training it",
    citation: "You et al. 2020, arXiv 1909.11957",
    build: |p| {
        let params: EarlyBirdParams = parse_params(INFO.name, p)?;
        if params.window < 2 {
            return Err(MethodError::InvalidParams {
                method: INFO.name,
                message: "window must be at least 2".into(),
            });
        }
        if !(0.0..=1.0).contains(&params.epsilon) {
            return Err(MethodError::InvalidParams {
                method: INFO.name,
                message: format!("epsilon {} must be in [0, 1]", params.epsilon),
            });
        }
        Ok(Box::new(EarlyBird { params }))
    },
};

/// The mask-distance detector: feed one mask per epoch, get `true` at the EB epoch.
struct Detector {
    epsilon: f64,
    window: usize,
    masks: VecDeque<Mask>,
}

impl Detector {
    fn push(&mut self, mask: Mask) -> bool {
        self.masks.push_back(mask);
        if self.masks.len() > self.window {
            self.masks.pop_front();
        }
        if self.masks.len() < self.window {
            return false;
        }
        let newest = self.masks.back().expect("window is full");
        self.masks
            .iter()
            .take(self.window - 1)
            .all(|m| m.hamming(newest) as f64 / newest.total() as f64 <= self.epsilon)
    }
}

struct EarlyBirdHook {
    detector: Detector,
    keep: usize,
    epochs: usize,
    found: Option<usize>,
    last: Option<(Mask, Network)>,
}

impl TrainHook for EarlyBirdHook {
    fn at_epoch(&mut self, view: &TrainView<'_>) -> Result<HookAction, EngineError> {
        if self.found.is_some() {
            return Ok(HookAction::Continue);
        }
        let net = view.network();
        if !super::dynamic::all_finite(&net) {
            return Ok(HookAction::Continue);
        }
        let mask = top_k_global(&magnitude_scores(&net), self.keep, None, Keep::Highest)?;
        if self.detector.push(mask.clone()) && view.epoch < self.epochs {
            self.found = Some(view.epoch);
            return Ok(HookAction::SetMask { mask, zeroed: None });
        }
        if view.epoch == self.epochs {
            self.last = Some((mask, net));
        }
        Ok(HookAction::Continue)
    }
}

impl Pruner for EarlyBird {
    fn work(
        &self,
        _density: ticketbench_core::Density,
        recipe: &crate::train::TrainRecipe,
        train_examples: usize,
    ) -> super::Work {
        // At most one dense training until the mask settles, then the ticket's own training.
        super::Work::training(recipe, train_examples)
    }
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
        let mut hook = EarlyBirdHook {
            detector: Detector {
                epsilon: self.params.epsilon,
                window: self.params.window,
                masks: VecDeque::new(),
            },
            keep: target_count(density, ctx.net.num_prunable())?,
            epochs: ctx.recipe.epochs,
            found: None,
            last: None,
        };
        let dense = Mask::dense(&ctx.net.shapes());
        let mut outcome = super::dynamic::train_dynamic(ctx, INFO.name, &dense, &mut hook)?;
        if let Some(d) = outcome.trained.as_ref().and_then(|t| t.diverged.as_ref()) {
            return Err(MethodError::Engine(EngineError::Recipe(format!(
                "early-bird training diverged at step {} (loss {}); lower the learning rate",
                d.step, d.loss
            ))));
        }
        match hook.found {
            Some(epoch) => {
                outcome.log.events.insert("eb_epoch".into(), epoch as f64);
                outcome.log.events.insert("eb_found".into(), 1.0);
            }
            None => {
                let (mask, net) = hook.last.expect("the last epoch was observed");
                outcome = PruneOutcome {
                    start: Some(net),
                    ..PruneOutcome::new(mask)
                };
                outcome.log.events.insert("eb_found".into(), 0.0);
            }
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(bits: &[bool]) -> Mask {
        Mask::from_layers(vec![bits.to_vec()])
    }

    #[test]
    fn hamming_distance_and_window() {
        // methods.md §1.14(e): d(1100, 1010) = 0.5.
        let a = mask(&[true, true, false, false]);
        let b = mask(&[true, false, true, false]);
        assert_eq!(a.hamming(&b) as f64 / a.total() as f64, 0.5);
        // Identical masks from epoch 0 on: EB at epoch 4 (the 5th mask), never earlier.
        let mut det = Detector {
            epsilon: 0.1,
            window: 5,
            masks: VecDeque::new(),
        };
        let hits: Vec<bool> = (0..6).map(|_| det.push(a.clone())).collect();
        assert_eq!(hits, [false, false, false, false, true, true]);
        // One far mask inside the window blocks the draw until it leaves the window.
        let mut det = Detector {
            epsilon: 0.1,
            window: 3,
            masks: VecDeque::new(),
        };
        let seq = [b.clone(), a.clone(), a.clone(), a.clone()];
        let hits: Vec<bool> = seq.into_iter().map(|m| det.push(m)).collect();
        assert_eq!(hits, [false, false, false, true]);
    }
}
