use super::magnitude::magnitude_scores;
use super::{
    DataNeeds, Family, MethodError, MethodInfo, PruneContext, PruneOutcome, Pruner, RoundResult,
    parse_params, to_value,
};
use crate::engine::EngineError;
use crate::train::{HookAction, TrainHook, TrainOutcome, TrainView};
use serde::{Deserialize, Serialize};
use ticketbench_core::select::{Keep, top_k_global};
use ticketbench_core::{Density, Mask, Network, target_count};

/// Iterative magnitude pruning, the lottery-ticket procedure (methods.md §1.3).
///
/// θ_k: θ_0 trained `rewind_steps` = k steps (k = 0: θ_0 itself; k > 0 is late rewinding).
/// Level 0 trains the dense net from θ_k. Level j ≥ 1 removes, globally by `|θ|` of the
/// level-(j−1) trained weights, `⌈p·R_{j−1}⌉` of the `R_{j−1}` remaining weights
/// (`R_j = R_{j−1} − ⌈p R_{j−1}⌉`, p = `rate` = 0.2), resets the survivors to θ_k and trains
/// again; the last level is clamped to land exactly on `round_half_up(D·N)` (documented
/// deviation: OpenLTH stops after `--levels`). The ticket is `(m_n, θ_k)`; the runner trains
/// it, which is level n's training. `one_shot: true` goes from level 0 straight to D.
/// `exclude_last: true` keeps the output layer dense (OpenLTH's LeNet/VGG default).
/// Every level trains the suite recipe in full from θ_k (OpenLTH trains T − k steps; the
/// runner's final training is T steps, so all levels match it). Masks are nested and the
/// survivors restart bit-identical to θ_k. Levels are shared by every target density of the
/// same seed (they do not depend on D until the clamped last level).
/// Frankle & Carbin 2019, arXiv 1803.03635; Frankle et al. 2020 (rewinding), arXiv 1912.05671.
pub struct Imp {
    params: ImpParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ImpParams {
    /// Fraction of the remaining weights removed per level.
    rate: f64,
    /// Rewind point k in optimiser steps (0 = reset to θ_0).
    rewind_steps: usize,
    /// One pruning step from the trained dense net to D.
    one_shot: bool,
    /// Keep the output layer dense and prune the others.
    exclude_last: bool,
}

impl Default for ImpParams {
    fn default() -> Self {
        ImpParams {
            rate: 0.2,
            rewind_steps: 0,
            one_shot: false,
            exclude_last: false,
        }
    }
}

pub(super) const INFO: MethodInfo = MethodInfo {
    name: "imp",
    family: Family::Iterative,
    data: DataNeeds::FullTraining,
    summary: "iterative magnitude pruning: train, drop 20% of remaining by global |θ|, rewind to θ_k, repeat",
    citation: "Frankle & Carbin 2019, arXiv 1803.03635; Frankle et al. 2020, arXiv 1912.05671",
    build: |p| {
        let params: ImpParams = parse_params(INFO.name, p)?;
        if !(params.rate > 0.0 && params.rate < 1.0) {
            return Err(MethodError::InvalidParams {
                method: INFO.name,
                message: format!("rate {} must be in (0, 1)", params.rate),
            });
        }
        Ok(Box::new(Imp { params }))
    },
};

/// Remaining prunable counts `R_0 = prunable, R_j = R_{j−1} − ⌈p R_{j−1}⌉`, the last level
/// clamped to `target` (one-shot: `[prunable, target]`).
fn level_counts(prunable: usize, target: usize, rate: f64, one_shot: bool) -> Vec<usize> {
    let mut counts = vec![prunable];
    if one_shot {
        if target < prunable {
            counts.push(target);
        }
        return counts;
    }
    let mut r = prunable;
    while r > target {
        r = (r - (rate * r as f64).ceil() as usize).max(target);
        counts.push(r);
    }
    counts
}

/// One trained level, cached for the other densities of the same group.
struct Level {
    mask: Mask,
    trained: Network,
    result: RoundResult,
}

/// IMP's shared state per group and parameter set.
struct ImpState {
    theta_k: Network,
    levels: Vec<Level>,
}

/// Stops a training run after `k` steps (the rewind point θ_k).
struct StopAfter(usize);

impl TrainHook for StopAfter {
    fn step_interval(&self) -> Option<usize> {
        Some(self.0)
    }
    fn after_step(&mut self, _: &TrainView<'_>) -> Result<HookAction, EngineError> {
        Ok(HookAction::Stop)
    }
}

impl Imp {
    fn cache_key(&self) -> String {
        format!("{}/{}", INFO.name, to_value(&self.params))
    }

    /// Trains `mask` from `start`, failing loudly on divergence (a level cannot be skipped).
    fn train_level(
        ctx: &mut PruneContext<'_>,
        start: &Network,
        mask: &Mask,
        label: &str,
        hook: &mut dyn TrainHook,
    ) -> Result<TrainOutcome, MethodError> {
        let progress = &mut *ctx.progress;
        let outcome = ctx.engine.train_with_hook(
            start,
            mask,
            ctx.data,
            ctx.recipe,
            ctx.streams,
            &mut |e| {
                progress(format!(
                    "{label} epoch {}/{} loss {:.4}",
                    e.epoch, e.epochs, e.train_loss
                ))
            },
            hook,
        )?;
        if let Some(d) = &outcome.diverged {
            return Err(MethodError::Engine(EngineError::Recipe(format!(
                "imp {label} diverged at step {} (loss {}); lower the learning rate",
                d.step, d.loss
            ))));
        }
        Ok(outcome)
    }

    fn state(&self, ctx: &mut PruneContext<'_>) -> Result<ImpState, MethodError> {
        if let Some(state) = ctx
            .cache
            .remove(&self.cache_key())
            .and_then(|b| b.downcast::<ImpState>().ok())
        {
            return Ok(*state);
        }
        let dense = Mask::dense(&ctx.net.shapes());
        let (theta_k, trained) = if self.params.rewind_steps == 0 {
            (ctx.net.clone(), ctx.dense_trained()?)
        } else {
            let k = self.params.rewind_steps;
            let theta_0 = ctx.net.clone();
            let rewind = Self::train_level(
                ctx,
                &theta_0,
                &dense,
                &format!("imp rewind point ({k} steps)"),
                &mut StopAfter(k),
            )?;
            if rewind.steps < k {
                return Err(MethodError::InvalidParams {
                    method: INFO.name,
                    message: format!(
                        "rewind_steps {k} exceeds the {} steps of the training recipe",
                        rewind.steps
                    ),
                });
            }
            let level0 = Self::train_level(ctx, &rewind.net, &dense, "imp level 0", &mut NoStop)?;
            (rewind.net, level0.net)
        };
        let eval = ctx.engine.evaluate(&trained, &dense, ctx.data)?;
        Ok(ImpState {
            theta_k,
            levels: vec![Level {
                mask: dense,
                trained,
                result: RoundResult {
                    round: 0,
                    density: 1.0,
                    test_acc: eval.accuracy,
                    test_loss: eval.loss,
                },
            }],
        })
    }

    /// The next level's mask: the `kept` largest `|θ|` of `trained` among `prev`'s survivors
    /// (the output layer always kept when `exclude_last`).
    fn next_mask(&self, trained: &Network, prev: &Mask, kept: usize) -> Result<Mask, MethodError> {
        let mut scores = magnitude_scores(trained);
        let mut k = kept;
        if self.params.exclude_last {
            let last = scores.layers.last_mut().expect("a network has layers");
            last.iter_mut().for_each(|s| *s = f64::INFINITY);
            k += last.len();
        }
        Ok(top_k_global(&scores, k, Some(prev), Keep::Highest)?)
    }
}

/// A training run without early stop.
struct NoStop;
impl TrainHook for NoStop {}

impl Pruner for Imp {
    fn work(
        &self,
        density: ticketbench_core::Density,
        recipe: &crate::train::TrainRecipe,
        train_examples: usize,
    ) -> super::Work {
        // One training per level: ⌈ln d / ln(1 − rate)⌉ pruning levels after the dense one.
        let levels = if self.params.one_shot {
            1.0
        } else {
            (density.get().ln() / (1.0 - self.params.rate).ln())
                .ceil()
                .max(0.0)
        };
        super::Work::training(recipe, train_examples) * (levels + 1.0)
    }
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
        let total = ctx.net.num_prunable();
        let fixed = if self.params.exclude_last {
            ctx.net.shapes().last().map_or(0, |s| s.len())
        } else {
            0
        };
        let k = target_count(density, total)?;
        if k < fixed {
            return Err(MethodError::InvalidParams {
                method: INFO.name,
                message: format!(
                    "density {} keeps {k} weights, fewer than the {fixed} of the output layer that `exclude_last` keeps dense",
                    density.get()
                ),
            });
        }
        let counts = level_counts(
            total - fixed,
            k - fixed,
            self.params.rate,
            self.params.one_shot,
        );
        let mut state = self.state(ctx)?;
        let n = counts.len() - 1;
        let mut outcome = None;
        for (j, &kept) in counts.iter().enumerate().skip(1) {
            if j < state.levels.len() && j < n {
                continue; // trained for an earlier density of this group
            }
            let prev = &state.levels[j - 1];
            let mask = self.next_mask(&prev.trained, &prev.mask, kept)?;
            if j == n {
                outcome = Some(PruneOutcome {
                    scores: Some(magnitude_scores(&prev.trained)),
                    start: (self.params.rewind_steps > 0).then(|| state.theta_k.clone()),
                    ..PruneOutcome::new(mask)
                });
                break;
            }
            let label = format!("imp level {j}/{n} (density {:.4})", mask.density());
            let theta_k = state.theta_k.clone();
            let trained = Self::train_level(ctx, &theta_k, &mask, &label, &mut NoStop)?.net;
            let eval = ctx.engine.evaluate(&trained, &mask, ctx.data)?;
            state.levels.truncate(j);
            state.levels.push(Level {
                result: RoundResult {
                    round: j,
                    density: mask.density(),
                    test_acc: eval.accuracy,
                    test_loss: eval.loss,
                },
                mask,
                trained,
            });
        }
        let mut outcome = match outcome {
            Some(o) => o,
            // D = 1: the dense network from θ_k.
            None => PruneOutcome {
                start: (self.params.rewind_steps > 0).then(|| state.theta_k.clone()),
                ..PruneOutcome::new(state.levels[0].mask.clone())
            },
        };
        outcome.log.rounds = state.levels[..n.max(1)]
            .iter()
            .map(|l| l.result.clone())
            .collect();
        ctx.cache.insert(self.cache_key(), Box::new(state));
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openlth_lenet_level_counts() {
        // methods.md §1.3(e)(1): 265,200 prunable (output ignored), R_j = R_{j−1} − ⌈0.2 R_{j−1}⌉.
        let c = level_counts(265_200, 1, 0.2, false);
        assert_eq!(c[1], 212_160);
        assert_eq!(c[3], 135_782);
        assert_eq!(c[12], 18_223);
        assert_eq!(c[15], 9_329);
        // Levels to D: ceil(ln D / ln 0.8) = 11 (D = 0.10) and 18 (D = 0.02) on LeNet's 266,200.
        for (d, levels) in [(0.10, 11), (0.02, 18)] {
            let k = target_count(Density::new(d).unwrap(), 266_200).unwrap();
            let c = level_counts(266_200, k, 0.2, false);
            assert_eq!(c.len() - 1, levels, "D = {d}");
            assert_eq!(*c.last().unwrap(), k);
            assert!(c.windows(2).all(|w| w[1] < w[0]));
        }
        // Density after r full rounds is 0.8^r up to the per-round ceiling.
        let c = level_counts(1_000_000, 1, 0.2, false);
        for (r, &kept) in c.iter().enumerate().take(10) {
            let want = 0.8f64.powi(r as i32) * 1e6;
            assert!(
                (kept as f64 - want).abs() <= r as f64,
                "round {r}: {kept} vs {want}"
            );
        }
        assert_eq!(level_counts(100, 10, 0.2, true), vec![100, 10]);
        assert_eq!(level_counts(100, 100, 0.2, false), vec![100]);
    }

    #[test]
    fn next_mask_is_nested_and_keeps_the_output_layer() {
        let net = Network::methods_md_worked_example();
        let imp = Imp {
            params: ImpParams {
                exclude_last: true,
                ..ImpParams::default()
            },
        };
        let dense = Mask::dense(&net.shapes());
        // |W1| = (1, 2, 3, 0.25): keep 2 of layer 0 plus both output weights.
        let m1 = imp.next_mask(&net, &dense, 2).unwrap();
        assert_eq!(
            m1.layers(),
            &[vec![false, true, true, false], vec![true, true]]
        );
        let m2 = imp.next_mask(&net, &m1, 1).unwrap();
        assert_eq!(
            m2.layers(),
            &[vec![false, false, true, false], vec![true, true]]
        );
        assert_eq!(m2.intersect(&m1), m2);
    }
}
