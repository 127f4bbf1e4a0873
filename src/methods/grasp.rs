use super::hessian::{Batch, Hidden, Loss, Objective, Params};
use super::{
    DataNeeds, Family, MethodError, MethodInfo, PruneContext, PruneOutcome, Pruner, at_least_one,
    parse_params, to_value,
};
use crate::engine::Engine;
use serde::{Deserialize, Serialize};
use ticketbench_core::select::Keep;
use ticketbench_core::{Density, Network, Scores, Streams, sample_standard_normal};

/// GraSP, gradient signal preservation (methods.md §1.5): with `g = ∇_θ L` held constant
/// (stop-gradient) and `H` the loss Hessian, `S = −θ ⊙ (H g)`; normalised
/// `S ← S / (|Σ S| + 1e-10)`; **keep the lowest** scores (remove the largest `S`), global
/// exact-k over all weights (first and last layer included, biases never pruned).
///
/// As the reference code does it, the class-balanced scoring batch (`per_class` examples per
/// class, default 10, classes in label order, stream `scoring/batch` like SNIP; regression
/// tasks: `4·per_class` random examples and MSE) is split into two halves `B_1 = [0, N/2)`,
/// `B_2 = [N/2, N)`; `g = Σ_h ∇_W L(B_h)` is accumulated first, then
/// `Hg = Σ_h ∇_W (gᵀ ∇_W L(B_h))` over the same halves. With equal halves this is
/// `4 · H_B g_B` of the full batch, a constant factor the normalisation removes. The direction
/// `g` covers the weights only (biases are not among GraSP's `weights`, their entries of the
/// direction are 0), while `H` is the Hessian of the loss of the whole network, biases in
/// place. Classification losses are cross-entropy on `logits / T`, `temperature` T = 200.
/// `Hg` is the exact Hessian–vector product computed on the host in f64 by the R-operator
/// (burn has no double backward), so masks are identical on every device.
///
/// Deviations and flags: `reinit = true` reproduces the reference's quirk of scoring a copy
/// whose weights are re-drawn Xavier-normal (stream `grasp/reinit/<l>`; biases kept) while
/// the mask applies to θ_0 — off by default. `num_iters` (reference default 1) is fixed at 1.
/// Convolution layers: `∇L` and `H g` run through the im2col products of [`super::hessian`]
/// (exact, host f64), and their kernel entries are scored and ranked with every other weight.
/// Wang, Zhang & Grosse 2020, arXiv 2002.07376; code alecwangcq/GraSP.
pub struct Grasp {
    params: GraspParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct GraspParams {
    per_class: usize,
    temperature: f64,
    reinit: bool,
}

impl Default for GraspParams {
    fn default() -> Self {
        GraspParams {
            per_class: 10,
            temperature: 200.0,
            reinit: false,
        }
    }
}

pub(super) const INFO: MethodInfo = MethodInfo {
    name: "grasp",
    family: Family::AtInit,
    data: DataNeeds::ScoringBatch,
    summary: "−θ ⊙ Hg (exact Hessian-gradient product, T = 200) on one class-balanced batch at init, keep the lowest",
    citation: "Wang, Zhang & Grosse 2020, arXiv 2002.07376",
    build: |p| {
        let params: GraspParams = parse_params(INFO.name, p)?;
        at_least_one(INFO.name, "per_class", params.per_class)?;
        if !(params.temperature.is_finite() && params.temperature > 0.0) {
            return Err(MethodError::InvalidParams {
                method: INFO.name,
                message: format!(
                    "temperature {} must be a positive number",
                    params.temperature
                ),
            });
        }
        Ok(Box::new(Grasp { params }))
    },
};

/// Raw GraSP quantities over `batches` (the halves): `(Hg, S = −θ ⊙ Hg)`, weights only,
/// with `g = Σ_b ∇_W L_b` and `Hg = Σ_b H_b g`. Empty batches are skipped.
pub(super) fn grasp_raw(
    theta: &Params,
    hidden: Hidden,
    loss: Loss,
    batches: &[Batch],
) -> (Vec<Vec<f64>>, Scores) {
    let objectives: Vec<Objective> = batches
        .iter()
        .filter(|b| b.len > 0)
        .map(|batch| Objective {
            batch,
            loss,
            hidden,
        })
        .collect();
    let mut g = theta.zeros_like();
    for obj in &objectives {
        g.add_scaled(1.0, &obj.gradient(theta).1);
    }
    let g = g.without_biases();
    let mut hg = theta.zeros_like();
    for obj in &objectives {
        hg.add_scaled(1.0, &obj.hvp(theta, &g).hv);
    }
    let hg = hg.into_weights();
    let layers = theta
        .layers
        .iter()
        .zip(&hg)
        .map(|(l, hg)| l.w.iter().zip(hg).map(|(w, h)| -w * h).collect())
        .collect();
    (hg, Scores { layers })
}

/// Normalised GraSP scores `S / (|Σ S| + 1e-10)`.
pub(super) fn grasp_scores(
    theta: &Params,
    hidden: Hidden,
    loss: Loss,
    batches: &[Batch],
) -> Scores {
    let mut s = grasp_raw(theta, hidden, loss, batches).1;
    let norm = s.layers.iter().flatten().sum::<f64>().abs() + 1e-10;
    s.layers.iter_mut().flatten().for_each(|v| *v /= norm);
    s
}

/// The reference's `reinit` quirk: every layer's weights re-drawn Xavier-normal,
/// `N(0, 2/(fan_in + fan_out))`, from stream `grasp/reinit/<l>`; biases kept. As in PyTorch,
/// a convolution's fans are `c_in·k_h·k_w` and `c_out·k_h·k_w`.
fn xavier_reinit(theta: &mut Params, streams: &Streams) {
    for (l, layer) in theta.layers.iter_mut().enumerate() {
        let kernel_area = layer.conv.as_ref().map_or(1, |c| c.kernel_area);
        let fan_out = layer.fan_out * kernel_area;
        let std = (2.0 / (layer.fan_in + fan_out) as f64).sqrt();
        let mut rng = streams.stream(&format!("grasp/reinit/{l}"));
        layer
            .w
            .iter_mut()
            .for_each(|w| *w = sample_standard_normal(&mut rng) * std);
    }
}

impl Grasp {
    /// Normalised scores of `net` on `batch` (split into halves), as `prune` ranks them.
    fn scores(
        &self,
        net: &Network,
        batch: &Batch,
        output: ticketbench_planted::OutputKind,
        streams: &Streams,
    ) -> Scores {
        let mut theta = Params::from_network(net);
        if self.params.reinit {
            xavier_reinit(&mut theta, streams);
        }
        let (first, second) = batch.split_at(batch.len / 2);
        let loss = Loss::for_output(output, self.params.temperature);
        grasp_scores(&theta, Hidden::Relu, loss, &[first, second])
    }
}

impl Pruner for Grasp {
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
        let data = ctx
            .data
            .scoring_batch(self.params.per_class, ctx.streams, "scoring/batch");
        Engine::check_shapes(ctx.net, data.input_dim, ctx.data.output())?;
        (ctx.progress)(format!(
            "grasp: Hessian-gradient product on {} examples",
            data.len()
        ));
        let batch = Batch::from_dataset(&data);
        let scores = self.scores(ctx.net, &batch, ctx.data.output(), ctx.streams);
        PruneOutcome::global_top_k(scores, density, Keep::Lowest)
    }
}

#[cfg(test)]
mod tests {
    use super::super::hessian::BatchTargets;
    use super::super::hessian::tests::random_dataset;
    use super::*;
    use ticketbench_core::select::top_k_global;
    use ticketbench_core::{InitScheme, Layer, LayerShape};
    use ticketbench_planted::OutputKind;

    fn close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= tol * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
    }

    fn one_example(x: Vec<f64>, y: f64) -> Batch {
        Batch {
            len: 1,
            input_dim: x.len(),
            x,
            targets: BatchTargets::Values(vec![y]),
        }
    }

    #[test]
    fn worked_example_linear_model() {
        // methods.md §1.5(e)(1): L = ½(wᵀx − y)², w = (1, −2, 0.25), x = (1, 1, 2), y = 1:
        // r = −1.5, Hg = x(xᵀg) = (−9, −9, −18), S = (9, −18, 4.5); keep 1 → w2,
        // keep 2 → {w2, w3}.
        let net = Network::from_layers(vec![Layer {
            shape: LayerShape::dense(3, 1),
            weight: vec![1.0, -2.0, 0.25],
            bias: None,
            conv: None,
        }])
        .unwrap();
        let theta = Params::from_network(&net);
        let batch = [one_example(vec![1.0, 1.0, 2.0], 1.0)];
        let (hg, s) = grasp_raw(&theta, Hidden::Relu, Loss::HalfSquaredSum, &batch);
        assert_eq!(hg, vec![vec![-9.0, -9.0, -18.0]]);
        assert_eq!(s.layers, vec![vec![9.0, -18.0, 4.5]]);
        let keep = |k| top_k_global(&s, k, None, Keep::Lowest).unwrap();
        assert_eq!(keep(1).layers(), &[vec![false, true, false]]);
        assert_eq!(keep(2).layers(), &[vec![false, true, true]]);
        // Through the method's own path: d = 1/3 → 1 kept, d = 2/3 → 2 kept, `keep` recorded.
        let norm = grasp_scores(&theta, Hidden::Relu, Loss::HalfSquaredSum, &batch);
        close(&norm.layers[0], &[9.0 / 4.5, -18.0 / 4.5, 1.0], 1e-9);
        let out = PruneOutcome::global_top_k(norm, Density::new(2.0 / 3.0).unwrap(), Keep::Lowest)
            .unwrap();
        assert_eq!(out.mask.layers(), &[vec![false, true, true]]);
        assert_eq!(out.keep, Keep::Lowest);
    }

    #[test]
    fn worked_example_shared_net() {
        // methods.md §1.5(e)(2): shared linear net, ½(ŷ − y)², x = [1, 3], y = 1, exact:
        // Hg = (−5777.1875, −17331.5625, 17242.5, 51727.5, −23470.9375, 29335.703125),
        // S = (5777.1875, −34663.125, −51727.5, −12931.875, −23470.9375, −117342.8125);
        // d = 0.5 keeps {b2, a21, a12}.
        let theta = Params::from_network(&Network::methods_md_worked_example());
        let batch = [one_example(vec![1.0, 3.0], 1.0)];
        let (hg, s) = grasp_raw(&theta, Hidden::Identity, Loss::HalfSquaredSum, &batch);
        let hg: Vec<f64> = hg.into_iter().flatten().collect();
        close(
            &hg,
            &[
                -5777.1875,
                -17331.5625,
                17242.5,
                51727.5,
                -23470.9375,
                29335.703125,
            ],
            1e-12,
        );
        let flat: Vec<f64> = s.layers.iter().flatten().copied().collect();
        close(
            &flat,
            &[
                5777.1875,
                -34663.125,
                -51727.5,
                -12931.875,
                -23470.9375,
                -117342.8125,
            ],
            1e-12,
        );
        let m = top_k_global(&s, 3, None, Keep::Lowest).unwrap();
        assert_eq!(
            m.layers(),
            &[vec![false, true, true, false], vec![false, true]]
        );
        // Normalisation by |Σ S| keeps signs and ranking.
        let norm = grasp_scores(&theta, Hidden::Identity, Loss::HalfSquaredSum, &batch);
        assert_eq!(top_k_global(&norm, 3, None, Keep::Lowest).unwrap(), m);
        let total: f64 = norm.layers.iter().flatten().sum();
        assert!((total + 1.0).abs() < 1e-12, "Σ S / |Σ S| = −1, got {total}");
    }

    #[test]
    fn removes_the_largest_scores() {
        // Sign convention: the pruned entries are exactly the (1 − d)·N largest S.
        let data = random_dataset(20, 3, OutputKind::Classes(3), 2);
        let net = super::super::hessian::tests::small_net(3, 4);
        let grasp = Grasp {
            params: GraspParams::default(),
        };
        let batch = Batch::from_dataset(&data);
        let s = grasp.scores(&net, &batch, OutputKind::Classes(3), &Streams::new(0));
        let out = PruneOutcome::global_top_k(s.clone(), Density::new(0.5).unwrap(), Keep::Lowest)
            .unwrap();
        let flat: Vec<f64> = s.layers.iter().flatten().copied().collect();
        let kept: Vec<bool> = out.mask.layers().iter().flatten().copied().collect();
        let max_kept = flat
            .iter()
            .zip(&kept)
            .filter(|(_, k)| **k)
            .fold(f64::NEG_INFINITY, |m, (v, _)| m.max(*v));
        let min_removed = flat
            .iter()
            .zip(&kept)
            .filter(|(_, k)| !**k)
            .fold(f64::INFINITY, |m, (v, _)| m.min(*v));
        assert!(max_kept <= min_removed);
        assert_eq!(kept.iter().filter(|k| **k).count(), flat.len().div_ceil(2));
        // The largest score is removed, the smallest kept.
        let argmax = (0..flat.len())
            .max_by(|&a, &b| flat[a].total_cmp(&flat[b]))
            .unwrap();
        let argmin = (0..flat.len())
            .min_by(|&a, &b| flat[a].total_cmp(&flat[b]))
            .unwrap();
        assert!(!kept[argmax] && kept[argmin]);
    }

    #[test]
    fn equal_halves_give_four_times_the_full_batch_product() {
        // Mean losses: g = g_1 + g_2 = 2 g_B and H_1 + H_2 = 2 H_B, so with equal halves
        // Σ_h H_h g = 4 H_B g_B; the normalised scores rank the same.
        let data = random_dataset(20, 3, OutputKind::Classes(3), 7);
        let net = super::super::hessian::tests::small_net(3, 8);
        let theta = Params::from_network(&net);
        let batch = Batch::from_dataset(&data);
        let (a, b) = batch.split_at(10);
        let loss = Loss::CrossEntropy { temperature: 200.0 };
        let (halves, _) = grasp_raw(&theta, Hidden::Relu, loss, &[a.clone(), b.clone()]);
        let (full, _) = grasp_raw(&theta, Hidden::Relu, loss, std::slice::from_ref(&batch));
        for (h, f) in halves.iter().flatten().zip(full.iter().flatten()) {
            assert!(
                (h - 4.0 * f).abs() <= 1e-9 * f.abs().max(1e-300),
                "{h} vs 4·{f}"
            );
        }
        // The 1e-10 in the normaliser makes the two differ by a positive constant factor only.
        let sh = grasp_scores(&theta, Hidden::Relu, loss, &[a, b]);
        let sf = grasp_scores(&theta, Hidden::Relu, loss, &[batch]);
        let keep = |s: &Scores| top_k_global(s, 20, None, Keep::Lowest).unwrap();
        assert_eq!(keep(&sh), keep(&sf));
    }

    #[test]
    fn reinit_changes_scores_not_the_counts() {
        let data = random_dataset(20, 3, OutputKind::Classes(3), 2);
        let net = Network::mlp(
            &[3, 5, 4, 3],
            true,
            InitScheme::KaimingNormal,
            &Streams::new(1),
        )
        .unwrap();
        let batch = Batch::from_dataset(&data);
        let plain = Grasp {
            params: GraspParams::default(),
        };
        let reinit = Grasp {
            params: GraspParams {
                reinit: true,
                ..GraspParams::default()
            },
        };
        let streams = Streams::new(0);
        let a = plain.scores(&net, &batch, OutputKind::Classes(3), &streams);
        let b = reinit.scores(&net, &batch, OutputKind::Classes(3), &streams);
        assert_ne!(a, b);
        assert_eq!(a.total(), b.total());
    }

    #[test]
    fn prunes_through_the_trait() {
        // Classification (class-balanced, halves, T = 200) and regression (MSE) tasks.
        use crate::device::DeviceSpec;
        use crate::train::TrainRecipe;
        use ticketbench_core::target_count;
        use ticketbench_planted::TaskData;
        let engine = Engine::new(DeviceSpec::Cpu).unwrap();
        let streams = Streams::new(0);
        let recipe = TrainRecipe::default();
        let mut messages = Vec::new();
        for output in [OutputKind::Classes(3), OutputKind::Regression(3)] {
            let task = TaskData {
                output,
                train: random_dataset(90, 3, output, 1),
                test: random_dataset(20, 3, output, 2),
            };
            let net = super::super::hessian::tests::small_net(3, 9);
            let data = engine.upload(task.clone());
            let mut trained = None;
            let pruner = (INFO.build)(&Default::default()).unwrap();
            let mut progress = |m: String| messages.push(m);
            let mut ctx = PruneContext {
                engine: &engine,
                net: &net,
                data: &data,
                recipe: &recipe,
                streams: &streams,
                trained_dense: &mut trained,
                cache: &mut super::super::MethodCache::new(),
                progress: &mut progress,
                planted: None,
                job: Default::default(),
            };
            for d in [0.5, 0.1] {
                let density = Density::new(d).unwrap();
                let out = pruner.prune(&mut ctx, density).unwrap();
                assert_eq!(out.mask.kept(), target_count(density, 47).unwrap());
                assert_eq!(out.keep, Keep::Lowest);
                let s = out.scores.unwrap();
                assert!(s.layers.iter().flatten().all(|v| v.is_finite()));
            }
        }
        assert!(messages.iter().all(|m| m.starts_with("grasp")));
        // 10 per class of 3 classes; regression: 4 · 10 random examples.
        assert!(messages[0].contains("30 examples") && messages[2].contains("40 examples"));
    }

    #[test]
    fn prunes_conv_nets_through_the_trait() {
        // A convolutional net (1×6×6, conv 3 s1, conv 4 s2, 5, 3): exact counts, finite
        // scores in every layer, with and without the Xavier re-draw.
        use crate::device::DeviceSpec;
        use crate::train::TrainRecipe;
        use ticketbench_core::target_count;
        use ticketbench_planted::TaskData;
        let engine = Engine::new(DeviceSpec::Cpu).unwrap();
        let streams = Streams::new(0);
        let recipe = TrainRecipe::default();
        let output = OutputKind::Classes(3);
        let task = TaskData {
            output,
            train: random_dataset(60, 36, output, 1),
            test: random_dataset(20, 36, output, 2),
        };
        let net = super::super::hessian::tests::small_conv_net(3, 9);
        let total = net.num_prunable();
        let data = engine.upload(task.clone());
        let mut masks = Vec::new();
        for reinit in [false, true] {
            let params = serde_json::json!({ "reinit": reinit });
            let pruner = (INFO.build)(params.as_object().unwrap()).unwrap();
            let mut trained = None;
            let mut ctx = PruneContext {
                engine: &engine,
                net: &net,
                data: &data,
                recipe: &recipe,
                streams: &streams,
                trained_dense: &mut trained,
                cache: &mut super::super::MethodCache::new(),
                progress: &mut |_| {},
                planted: None,
                job: Default::default(),
            };
            let density = Density::new(0.3).unwrap();
            let out = pruner.prune(&mut ctx, density).unwrap();
            assert_eq!(out.mask.kept(), target_count(density, total).unwrap());
            let s = out.scores.unwrap();
            assert!(s.layers.iter().flatten().all(|v| v.is_finite()));
            assert!(s.layers.iter().all(|l| l.iter().any(|&v| v != 0.0)));
            masks.push(out.mask);
        }
        assert_ne!(masks[0], masks[1]);
    }

    #[test]
    #[ignore = "timing on LeNet-300-100; run with --ignored --nocapture"]
    fn lenet_scoring_time() {
        let output = OutputKind::Classes(10);
        let net = Network::mlp(
            &[784, 300, 100, 10],
            true,
            InitScheme::KaimingNormal,
            &Streams::new(0),
        )
        .unwrap();
        let batch = Batch::from_dataset(&random_dataset(100, 784, output, 0));
        let grasp = Grasp {
            params: GraspParams::default(),
        };
        let start = std::time::Instant::now();
        let s = grasp.scores(&net, &batch, output, &Streams::new(0));
        eprintln!(
            "grasp on LeNet-300-100, batch 100: {:.3} s",
            start.elapsed().as_secs_f64()
        );
        assert_eq!(s.total(), 266_200);
    }

    #[test]
    fn params_are_validated() {
        let bad = |v: serde_json::Value| (INFO.build)(v.as_object().unwrap()).is_err();
        assert!(bad(serde_json::json!({"per_class": 0})));
        assert!(bad(serde_json::json!({"temperature": 0.0})));
        assert!(bad(serde_json::json!({"temprature": 1.0})));
        let ok = (INFO.build)(&Default::default()).unwrap();
        assert_eq!(
            ok.params(),
            serde_json::json!({"per_class": 10, "temperature": 200.0, "reinit": false})
        );
    }
}
