use super::edge_popup::uniform_counts;
use super::{
    DataNeeds, Family, MethodError, MethodInfo, PruneContext, PruneOutcome, Pruner, parse_params,
    to_value,
};
use crate::score_train::{FrozenWeights, Rule, ScoreInit, ScoreRecipe, ScoreRun, StrongInputs};
use serde::{Deserialize, Serialize};
use ticketbench_core::select::Keep;
use ticketbench_core::{Density, Layer, Mask, Network};

/// biprop / multi-prize tickets, MPT-1/32 (methods.md §1.11): edge-popup's per-layer top-`k_l`
/// of trained scores `|s|` on frozen random weights, but the subnetwork's weights are
/// binarised with one gain per layer, `W_eff = α_l·sign(W) ⊙ m`,
/// `α_l = ‖m ⊙ W‖₁ / ‖m‖₀` (mean `|w|` of the kept weights, recomputed every step). The
/// straight-through gradient sends `∂L/∂(α m)` to `|s|` scaled by `|W|` (α itself is not
/// differentiated). The ticket's `start` is the binarised network `α_l·sign(W)` (α of the
/// final mask), biases θ_0 (the reference has none; ours stay frozen).
///
/// Layerwise uniform budgets (§2.9, as edge-popup). Weights (`weights`): `init` (default: θ_0
/// binarised, as the paper's Kaiming-normal init; with a signed constant `|W| = σ_l` is
/// constant, α_l = σ_l and biprop reduces to edge-popup), `signed-constant`,
/// `scaled-signed-constant`. Scores `U(−1/√fan_in, 1/√fan_in)` (stream `strong/scores/<l>`).
/// SGD lr 0.1 cosine, momentum 0.9, weight decay 1e-4 on the scores, batch 128, 100 epochs.
/// Activations are not binarised (that is MPT-1/1).
/// Diffenderfer & Kailkhura 2021, arXiv 2103.09377.
pub struct Biprop {
    params: BipropParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct BipropParams {
    epochs: usize,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    batch_size: usize,
    weights: FrozenWeights,
}

impl Default for BipropParams {
    fn default() -> Self {
        BipropParams {
            epochs: 100,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            batch_size: 128,
            weights: FrozenWeights::Init,
        }
    }
}

impl BipropParams {
    fn recipe(&self) -> ScoreRecipe {
        ScoreRecipe {
            epochs: self.epochs,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            batch_size: self.batch_size,
        }
    }
}

pub(super) const INFO: MethodInfo = MethodInfo {
    name: "biprop",
    family: Family::Strong,
    data: DataNeeds::FullTraining,
    summary: "per-layer top-k of trained scores on frozen weights binarised to α_l·sign(W) (multi-prize tickets), uniform layer budgets",
    citation: "Diffenderfer & Kailkhura 2021, arXiv 2103.09377",
    build: |p| {
        let params: BipropParams = parse_params(INFO.name, p)?;
        params.recipe().validate(INFO.name)?;
        Ok(Box::new(Biprop { params }))
    },
};

/// `α_l = Σ_{kept} |w| / k_l` per layer (0 for an empty layer), in f64.
pub(crate) fn gains(weights: &Network, mask: &Mask) -> Vec<f64> {
    weights
        .layers
        .iter()
        .zip(mask.layers())
        .map(|(layer, keep)| {
            let (sum, n) = layer
                .weight
                .iter()
                .zip(keep)
                .filter(|(_, k)| **k)
                .fold((0.0f64, 0usize), |(s, n), (&w, _)| {
                    (s + (w as f64).abs(), n + 1)
                });
            if n == 0 { 0.0 } else { sum / n as f64 }
        })
        .collect()
}

/// The binarised network `α_l·sign(W)` (every entry; the mask removes the pruned ones),
/// biases unchanged. `sign(0) = 0`.
pub(crate) fn binarised(weights: &Network, alphas: &[f64]) -> Network {
    let layers = weights
        .layers
        .iter()
        .zip(alphas)
        .map(|(layer, &alpha)| Layer {
            weight: layer
                .weight
                .iter()
                .map(|&w| {
                    if w == 0.0 {
                        0.0
                    } else {
                        (alpha as f32).copysign(w)
                    }
                })
                .collect(),
            ..layer.clone()
        })
        .collect();
    Network { layers }
}

impl Biprop {
    fn mine(
        &self,
        inputs: StrongInputs<'_>,
        density: Density,
    ) -> Result<PruneOutcome, MethodError> {
        let counts = uniform_counts(inputs.net, density)?;
        let weights = self.params.weights.apply(inputs.net, density.get());
        let out = ScoreRun {
            method: INFO.name,
            engine: inputs.engine,
            data: inputs.data,
            streams: inputs.streams,
            weights: &weights,
            scores: ScoreInit::KaimingUniform.draw(inputs.net, inputs.streams),
            rule: Rule::BinaryTopK { counts },
            recipe: self.params.recipe(),
        }
        .train(inputs.progress)?;
        let alphas = gains(&weights, &out.mask);
        let mut log = out.log();
        for (l, a) in alphas.iter().enumerate() {
            log.events.insert(format!("alpha/{l}"), *a);
        }
        Ok(PruneOutcome {
            start: Some(binarised(&weights, &alphas)),
            scores: Some(out.scores),
            keep: Keep::Highest,
            log,
            ..PruneOutcome::new(out.mask)
        })
    }
}

impl Pruner for Biprop {
    fn work(
        &self,
        _density: ticketbench_core::Density,
        _recipe: &crate::train::TrainRecipe,
        train_examples: usize,
    ) -> super::Work {
        self.params.recipe().work(train_examples)
    }
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }
    fn params(&self) -> serde_json::Value {
        to_value(&self.params)
    }
    fn start_depends_on_mask(&self) -> bool {
        true
    }

    fn returns_scores(&self) -> bool {
        true
    }
    fn ratio_rule(&self) -> Option<String> {
        Some("uniform".into())
    }
    fn prune(
        &self,
        ctx: &mut PruneContext<'_>,
        density: Density,
    ) -> Result<PruneOutcome, MethodError> {
        self.mine(StrongInputs::from_ctx(ctx), density)
    }
}

#[cfg(test)]
mod tests {
    use super::super::edge_popup::tests::Circle;
    use super::*;
    use ticketbench_core::LayerShape;

    #[test]
    fn alpha_is_the_mean_of_kept_magnitudes() {
        // methods.md §1.11(e): kept |w| = (0.5, 1.5) → α = 1.0, effective ±1.0; the pruned
        // weight (9.0) does not enter α.
        let net = Network {
            layers: vec![Layer {
                shape: LayerShape::dense(3, 1),
                weight: vec![0.5, -1.5, 9.0],
                bias: None,
                conv: None,
            }],
        };
        let mask = Mask::from_layers(vec![vec![true, true, false]]);
        let alphas = gains(&net, &mask);
        assert_eq!(alphas, vec![1.0]);
        let b = binarised(&net, &alphas);
        assert_eq!(b.layers[0].weight[..2], [1.0, -1.0]);
        let mut effective = b.clone();
        mask.apply(&mut effective).unwrap();
        assert_eq!(effective.layers[0].weight, vec![1.0, -1.0, 0.0]);
    }

    #[test]
    fn end_to_end_loss_decreases_and_ticket_beats_chance() {
        let c = Circle::new(2000, 0);
        let bp = Biprop {
            params: serde_json::from_value(serde_json::json!({"epochs": 60})).unwrap(),
        };
        let d = Density::new(0.5).unwrap();
        let out = bp.mine(c.inputs(&mut |_| {}), d).unwrap();
        assert_eq!(out.mask.layer_kept(), uniform_counts(&c.net, d).unwrap());
        // The start is binarised: one magnitude per layer, the mean |θ_0| of the kept weights.
        let start = out.start.as_ref().unwrap();
        let alphas = gains(&c.net, &out.mask);
        for (l, layer) in start.layers.iter().enumerate() {
            assert!(layer.weight.iter().all(|w| w.abs() == alphas[l] as f32));
            assert_eq!(out.log.events[&format!("alpha/{l}")], alphas[l]);
        }
        let (first, last) = (
            out.log.events["first_epoch_loss"],
            out.log.events["final_loss"],
        );
        let acc = c.accuracy(&out);
        eprintln!(
            "biprop: loss {first:.4} → {last:.4}, untrained ticket accuracy {acc:.3}, majority {:.3}",
            c.majority()
        );
        assert!(last < first, "{first} → {last}");
        assert!(acc > c.majority() + 0.05, "accuracy {acc}");
    }
}
