use super::{
    DataNeeds, Family, MethodError, MethodInfo, PruneContext, PruneOutcome, Pruner, parse_params,
    to_value,
};
use crate::score_train::{FrozenWeights, Rule, ScoreInit, ScoreRecipe, ScoreRun, StrongInputs};
use serde::{Deserialize, Serialize};
use ticketbench_baselines::layer_counts;
use ticketbench_core::select::Keep;
use ticketbench_core::{Density, Network};

/// edge-popup (methods.md §1.9), a strong ticket: the weights `W` are never trained; every
/// weight has a score `s`, the forward pass uses `W ⊙ h(|s|)` with `h` keeping, per layer,
/// the top-`k_l` of `|s|`, and the scores are trained by SGD with the straight-through
/// gradient `∂L/∂s_i = (∂L/∂W_eff,i)·W_i·sign(s_i)` for every `i` (pruned ones included).
/// The ticket is the final per-layer top-`k_l` mask on `W` (its `start`).
///
/// Budgets are layerwise uniform, `k_l` from §2.9 (`layer_counts` at `d_l = D`), so the ticket
/// has exactly `round_half_up(D·N)` weights; the reference keeps `n_l − ⌊(1 − D)·n_l⌋` per
/// layer, which differs by at most one weight per layer. First and last layer are pruned.
/// Weights (`weights`): `signed-constant` (default) `W = sign(θ_0)·√(2/fan_in)`,
/// `scaled-signed-constant` `sign(θ_0)·√(2/(fan_in·D))`, or `init` (θ_0). Scores
/// `U(−1/√fan_in, 1/√fan_in)` (stream `strong/scores/<l>`). Biases (the reference has none)
/// stay frozen at θ_0. SGD lr 0.1 cosine to 0 per step, momentum 0.9, weight decay 1e-4 on the
/// scores, batch 128, 100 epochs, data order `strong/shuffle` (`crate::score_train`).
/// Ramanujan, Wortsman, Kembhavi, Farhadi & Rastegari 2020, arXiv 1911.13299.
pub struct EdgePopup {
    params: EdgePopupParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct EdgePopupParams {
    epochs: usize,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    batch_size: usize,
    weights: FrozenWeights,
}

impl Default for EdgePopupParams {
    fn default() -> Self {
        EdgePopupParams {
            epochs: 100,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            batch_size: 128,
            weights: FrozenWeights::SignedConstant,
        }
    }
}

impl EdgePopupParams {
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
    name: "edge-popup",
    family: Family::Strong,
    data: DataNeeds::FullTraining,
    summary: "frozen signed-constant weights, per-layer top-k of trained scores |s| (straight-through SGD), uniform layer budgets",
    citation: "Ramanujan et al. 2020, arXiv 1911.13299",
    build: |p| {
        let params: EdgePopupParams = parse_params(INFO.name, p)?;
        params.recipe().validate(INFO.name)?;
        Ok(Box::new(EdgePopup { params }))
    },
};

/// Per-layer budgets of the layerwise-uniform strong tickets (§2.9 rounding of `d_l = D`).
pub(super) fn uniform_counts(net: &Network, density: Density) -> Result<Vec<usize>, MethodError> {
    let shapes = net.shapes();
    Ok(layer_counts(
        &shapes,
        &vec![density.get(); shapes.len()],
        density,
    )?)
}

impl EdgePopup {
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
            rule: Rule::TopK { counts },
            recipe: self.params.recipe(),
        }
        .train(inputs.progress)?;
        let log = out.log();
        Ok(PruneOutcome {
            start: (self.params.weights != FrozenWeights::Init).then_some(weights),
            scores: Some(out.scores),
            keep: Keep::Highest,
            log,
            ..PruneOutcome::new(out.mask)
        })
    }
}

impl Pruner for EdgePopup {
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
pub(crate) mod tests {
    use super::*;
    use crate::device::DeviceSpec;
    use crate::engine::{DeviceData, Engine};
    use crate::score_train::abs_scores;
    use ticketbench_core::{InitScheme, Streams};
    use ticketbench_planted::{TaskData, tasks};

    /// Circle (4 rings, no label noise) with a 2-100-100-4 host drawn from the Plant 'n' Seek
    /// law (He-scaled weights, random biases: with zero biases the frozen-bias network would
    /// be positively homogeneous and could not separate rings). Strong tickets need the
    /// width: at 2-32-32-4 a few epochs do not beat the majority class.
    pub(crate) struct Circle {
        pub engine: Engine,
        pub net: Network,
        pub task: TaskData,
        pub data: DeviceData,
        pub streams: Streams,
    }

    impl Circle {
        pub(crate) fn new(samples: usize, seed: u64) -> Circle {
            let streams = Streams::new(seed);
            let params = serde_json::json!({"samples": samples, "label_noise": 0.0});
            let task = tasks::build("circle", params.as_object().unwrap())
                .unwrap()
                .generate(&streams);
            let engine = Engine::new(DeviceSpec::Cpu).unwrap();
            let data = engine.upload(task.clone());
            let net =
                Network::mlp(&[2, 100, 100, 4], true, InitScheme::HeScaled, &streams).unwrap();
            Circle {
                engine,
                net,
                task,
                data,
                streams,
            }
        }

        pub(crate) fn inputs<'a>(
            &'a self,
            progress: &'a mut dyn FnMut(String),
        ) -> StrongInputs<'a> {
            StrongInputs {
                engine: &self.engine,
                net: &self.net,
                data: &self.data,
                streams: &self.streams,
                progress,
            }
        }

        /// Test accuracy of the untrained ticket.
        pub(crate) fn accuracy(&self, out: &PruneOutcome) -> f64 {
            let start = out.start.as_ref().unwrap_or(&self.net);
            let eval = self.engine.evaluate(start, &out.mask, &self.data).unwrap();
            eval.accuracy.unwrap()
        }

        /// Fraction of the most frequent class in the test split.
        pub(crate) fn majority(&self) -> f64 {
            let ticketbench_planted::Targets::Classes(y) = &self.task.test.targets else {
                unreachable!()
            };
            let mut counts = [0usize; 4];
            y.iter().for_each(|&c| counts[c as usize] += 1);
            *counts.iter().max().unwrap() as f64 / y.len() as f64
        }
    }

    fn build(params: serde_json::Value) -> EdgePopup {
        EdgePopup {
            params: serde_json::from_value(params).unwrap(),
        }
    }

    #[test]
    fn keeps_exactly_the_per_layer_top_k_of_final_scores() {
        let c = Circle::new(600, 3);
        let ep = build(serde_json::json!({"epochs": 2}));
        let d = Density::new(0.3).unwrap();
        let out = ep.mine(c.inputs(&mut |_| {}), d).unwrap();
        let counts = uniform_counts(&c.net, d).unwrap();
        // 2·100 + 100·100 + 100·4 = 10600 weights, K = 3180.
        assert_eq!(counts, vec![60, 3000, 120]);
        assert_eq!(out.mask.layer_kept(), counts);
        let scores = out.scores.as_ref().unwrap();
        for (s, keep) in scores.layers.iter().zip(out.mask.layers()) {
            let min_kept = s.iter().zip(keep).filter(|(_, k)| **k).map(|(v, _)| *v);
            let max_pruned = s.iter().zip(keep).filter(|(_, k)| !**k).map(|(v, _)| *v);
            let min_kept = min_kept.fold(f64::INFINITY, f64::min);
            assert!(max_pruned.fold(0.0, f64::max) <= min_kept);
        }
        // The start is the signed-constant net, biases θ_0.
        let start = out.start.unwrap();
        for (l, layer) in start.layers.iter().enumerate() {
            let sigma = (2.0 / c.net.layers[l].shape.fan_in() as f64).sqrt() as f32;
            assert!(layer.weight.iter().all(|w| w.abs() == sigma));
            assert_eq!(layer.bias, c.net.layers[l].bias);
        }
        // Deterministic per seed.
        let again = ep.mine(c.inputs(&mut |_| {}), d).unwrap();
        assert_eq!(again.mask, out.mask);
        assert_eq!(again.scores, out.scores);
        assert_eq!(
            abs_scores(&[vec![-0.5, 0.25]]).layers,
            vec![vec![0.5, 0.25]]
        );
    }

    #[test]
    fn sigma_of_lenet_fan_ins() {
        // methods.md §1.9(e): fan_in 784/300/100 → 0.050508/0.081650/0.141421;
        // scaled, k = 0.5: 0.071429/0.115470/0.2.
        let plain = [0.050508, 0.081650, 0.141421];
        let scaled = [0.071429, 0.115470, 0.2];
        for (i, fan_in) in [784, 300, 100].into_iter().enumerate() {
            let s = FrozenWeights::SignedConstant.sigma(fan_in, 0.5).unwrap();
            let t = FrozenWeights::ScaledSignedConstant
                .sigma(fan_in, 0.5)
                .unwrap();
            assert!((s - plain[i]).abs() < 5e-7, "{s}");
            assert!((t - scaled[i]).abs() < 5e-7, "{t}");
        }
        assert_eq!(FrozenWeights::Init.sigma(784, 0.5), None);
        // LeNet-300-100 at k = 0.5 keeps (117600, 15000, 500).
        let lenet = Network::mlp(
            &[784, 300, 100, 10],
            false,
            InitScheme::KaimingNormal,
            &Streams::new(0),
        )
        .unwrap();
        assert_eq!(
            uniform_counts(&lenet, Density::new(0.5).unwrap()).unwrap(),
            vec![117_600, 15_000, 500]
        );
    }

    #[test]
    fn end_to_end_loss_decreases_and_ticket_beats_chance() {
        let c = Circle::new(2000, 0);
        let ep = build(serde_json::json!({"epochs": 30}));
        let mut lines = Vec::new();
        let out = ep
            .mine(c.inputs(&mut |l| lines.push(l)), Density::new(0.5).unwrap())
            .unwrap();
        assert_eq!(lines.len(), 30);
        assert!(
            lines[0].starts_with("edge-popup epoch 1/30 loss "),
            "{}",
            lines[0]
        );
        let (first, last) = (
            out.log.events["first_epoch_loss"],
            out.log.events["final_loss"],
        );
        let acc = c.accuracy(&out);
        eprintln!(
            "edge-popup: loss {first:.4} → {last:.4}, untrained ticket accuracy {acc:.3}, majority {:.3}",
            c.majority()
        );
        assert!(last < first, "{first} → {last}");
        assert!(acc > c.majority() + 0.05, "accuracy {acc}");
    }

    #[test]
    fn divergence_names_the_method_and_the_epoch() {
        let c = Circle::new(600, 0);
        // lr 1e300 is inf in f32: the first step makes the scores non-finite.
        let ep = build(serde_json::json!({"epochs": 3, "lr": 1e300}));
        let err = ep
            .mine(c.inputs(&mut |_| {}), Density::new(0.5).unwrap())
            .unwrap_err()
            .to_string();
        eprintln!("{err}");
        assert!(
            err.starts_with("method `edge-popup`: score training diverged in epoch 1/3"),
            "{err}"
        );
    }

    #[test]
    fn rejects_bad_params() {
        let bad = |v: serde_json::Value| (INFO.build)(v.as_object().unwrap()).is_err();
        assert!(bad(serde_json::json!({"epochs": 0})));
        assert!(bad(serde_json::json!({"lr": -1.0})));
        assert!(bad(serde_json::json!({"momentum": 1.0})));
        assert!(bad(serde_json::json!({"weights": "gaussian"})));
        assert!(bad(serde_json::json!({"prune_every": 3})));
        assert!(!bad(
            serde_json::json!({"weights": "scaled-signed-constant"})
        ));
    }
}
