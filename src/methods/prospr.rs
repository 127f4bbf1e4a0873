use super::hessian::{Batch, Hidden, Loss, Objective, Params};
use super::{
    DataNeeds, Family, MethodError, MethodInfo, PruneContext, PruneOutcome, Pruner, at_least_one,
    parse_params, to_value,
};
use crate::engine::Engine;
use serde::{Deserialize, Serialize};
use ticketbench_core::select::Keep;
use ticketbench_core::{Density, Scores, Streams, sample_index};

/// ProsPr, prospect pruning (methods.md §1.7): gates `c = 1` on every weight,
/// `θ'_0 = θ_0 ⊙ c`; unroll `M = steps` SGD steps
/// `θ'_{t+1} = θ'_t − η buf_t`, `buf_t = μ buf_{t−1} + ∇L(θ'_t; B_t)` (`buf_{−1} = 0`; biases
/// are parameters and are updated too); score `S = |∂L(θ'_M; B_M)/∂c| = |θ_0 ⊙ v_0|` where
/// `v` is back-propagated through the unrolled steps (meta-gradient):
/// `v_M = ∇L(θ'_M)`, `u_M = 0`, then for `t = M−1 … 0`: `u_t = −η v_{t+1} + μ u_{t+1}`,
/// `v_t = v_{t+1} + H_t u_t` — with μ = 0, `v_t = v_{t+1} − η H_t v_{t+1}` — where `H_t` is the
/// Hessian of `L(·; B_t)` at `θ'_t` over all parameters, biases included; the gate gradient
/// is the weight part of `v_0` times `θ_0`. `H_t u` is the exact Hessian–vector product
/// (R-operator, host f64; burn has no double backward). `first_order = true` drops the
/// second-order terms: `S = |θ_0 ⊙ ∇_W L(θ'_M)|`. Keep the global top-k over all weights
/// (biases never pruned), train the same θ_0.
///
/// Defaults (reference CLI): `steps` M = 3, `lr` η = 0.1, `momentum` μ = 0, `batch_size`
/// 128 training examples drawn from stream `prospr/batch` (a shuffled pass over the training
/// split), and one batch reused for every inner step and the meta-loss
/// (`new_data_per_step = false`, the CLI's `new_data_in_inner = False`); `true` draws
/// `M + 1` consecutive batches from the same stream (step `t` on `B_t`, the meta-loss on
/// `B_M`), as the library default does. Losses are the engine's (cross-entropy, MSE for
/// regression tasks).
///
/// Deviation: scores are normalised `S ← S / Σ S` like SNIP's (the reference returns raw
/// `|∂L/∂c|`; the ranking is unchanged), so with `M = 0` (or `η = 0`) ProsPr's scores are
/// SNIP's `|g ⊙ θ| / Σ |g ⊙ θ|` on the same batch. Convolution layers take part like dense
/// ones: the inner steps, `∇L` and `H_t u` run through the im2col products of
/// [`super::hessian`], and every kernel entry has its own gate. The structured (channel)
/// variant is not implemented. Alizadeh, Tailor, Zintgraf, van Amersfoort, Farquhar, Lane &
/// Gal 2022, arXiv 2202.08132; code mil-ad/prospr.
pub struct Prospr {
    params: ProsprParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ProsprParams {
    steps: usize,
    lr: f64,
    momentum: f64,
    batch_size: usize,
    new_data_per_step: bool,
    first_order: bool,
}

impl Default for ProsprParams {
    fn default() -> Self {
        ProsprParams {
            steps: 3,
            lr: 0.1,
            momentum: 0.0,
            batch_size: 128,
            new_data_per_step: false,
            first_order: false,
        }
    }
}

pub(super) const INFO: MethodInfo = MethodInfo {
    name: "prospr",
    family: Family::AtInit,
    data: DataNeeds::ScoringBatch,
    summary: "meta-gradient |∂L(θ_M)/∂c| through 3 unrolled SGD steps (exact HVPs) on one batch of 128, global top-k",
    citation: "Alizadeh et al. 2022, arXiv 2202.08132",
    build: |p| {
        let params: ProsprParams = parse_params(INFO.name, p)?;
        at_least_one(INFO.name, "batch_size", params.batch_size)?;
        let invalid = |message: String| MethodError::InvalidParams {
            method: INFO.name,
            message,
        };
        if !(params.lr.is_finite() && params.lr >= 0.0) {
            return Err(invalid(format!(
                "lr {} must be a non-negative number",
                params.lr
            )));
        }
        if !(0.0..1.0).contains(&params.momentum) {
            return Err(invalid(format!(
                "momentum {} must be in [0, 1)",
                params.momentum
            )));
        }
        Ok(Box::new(Prospr { params }))
    },
};

/// The inner SGD loop `θ'_0 … θ'_M`; `objective(t)` is `L(·; B_t)` (reports each step's
/// inner loss through `progress`).
fn unroll<'a>(
    theta0: &Params,
    objective: &dyn Fn(usize) -> Objective<'a>,
    params: &ProsprParams,
    progress: &mut dyn FnMut(String),
) -> Vec<Params> {
    let mut thetas = vec![theta0.clone()];
    let mut buf: Option<Params> = None;
    for t in 0..params.steps {
        let (loss, g) = objective(t).gradient(&thetas[t]);
        let step = match buf.take() {
            Some(mut b) if params.momentum != 0.0 => {
                b.scale(params.momentum);
                b.add_scaled(1.0, &g);
                b
            }
            _ => g,
        };
        let mut next = thetas[t].clone();
        next.add_scaled(-params.lr, &step);
        buf = Some(step);
        thetas.push(next);
        progress(format!(
            "prospr inner step {}/{} loss {loss:.4}",
            t + 1,
            params.steps
        ));
    }
    thetas
}

/// Signed gate gradient `∂L(θ'_M; B_M)/∂c` (weights layout), the meta-gradient of §1.7.
fn gate_gradient(
    theta0: &Params,
    hidden: Hidden,
    loss: Loss,
    batches: &[Batch],
    params: &ProsprParams,
    progress: &mut dyn FnMut(String),
) -> Vec<Vec<f64>> {
    let objective = |t: usize| Objective {
        batch: &batches[t.min(batches.len() - 1)],
        loss,
        hidden,
    };
    let m = params.steps;
    let thetas = unroll(theta0, &objective, params, progress);
    let (_, mut v) = objective(m).gradient(&thetas[m]);
    if !params.first_order {
        let mut u = theta0.zeros_like();
        for t in (0..m).rev() {
            // u_t = −η v_{t+1} + μ u_{t+1};  v_t = v_{t+1} + H_t u_t.
            u.scale(params.momentum);
            u.add_scaled(-params.lr, &v);
            v.add_scaled(1.0, &objective(t).hvp(&thetas[t], &u).hv);
            progress(format!("prospr meta-gradient step {}/{m}", m - t));
        }
    }
    // θ'_0 = θ_0 ⊙ c: ∂/∂c = θ_0 ⊙ v_0 (weights).
    theta0
        .layers
        .iter()
        .zip(v.into_weights())
        .map(|(l, v)| l.w.iter().zip(v).map(|(w, v)| w * v).collect())
        .collect()
}

/// Normalised scores `|∂L/∂c| / Σ |∂L/∂c|`.
fn prospr_scores(gate: Vec<Vec<f64>>) -> Scores {
    let mut layers: Vec<Vec<f64>> = gate
        .into_iter()
        .map(|l| l.into_iter().map(f64::abs).collect())
        .collect();
    let total: f64 = layers.iter().flatten().sum();
    if total > 0.0 {
        layers.iter_mut().flatten().for_each(|s| *s /= total);
    }
    Scores { layers }
}

/// `count` batches of `min(size, N)` training row indices from stream `prospr/batch`:
/// consecutive slices of a shuffled order, reshuffled (same stream) when the pass runs out.
fn draw_batches(n: usize, size: usize, count: usize, streams: &Streams) -> Vec<Vec<usize>> {
    let mut rng = streams.stream("prospr/batch");
    let size = size.min(n);
    let mut order: Vec<usize> = (0..n).collect();
    let mut pos = n;
    (0..count)
        .map(|_| {
            if pos + size > n {
                for i in (1..n).rev() {
                    let j = sample_index(&mut rng, i + 1);
                    order.swap(i, j);
                }
                pos = 0;
            }
            let rows = order[pos..pos + size].to_vec();
            pos += size;
            rows
        })
        .collect()
}

impl Pruner for Prospr {
    fn work(
        &self,
        _density: ticketbench_core::Density,
        _recipe: &crate::train::TrainRecipe,
        _train_examples: usize,
    ) -> super::Work {
        // `steps` meta-gradient steps (each a forward, backward and Hessian-vector product).
        let steps = self.params.steps as f64;
        super::Work {
            example_passes: 2.0 * steps * self.params.batch_size as f64,
            steps,
            host_passes: 0.0,
        }
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
        let data = ctx.data;
        Engine::check_shapes(ctx.net, data.input_dim(), data.output())?;
        if data.train_len() == 0 {
            return Err(MethodError::InvalidParams {
                method: INFO.name,
                message: "the training split is empty".into(),
            });
        }
        let count = if self.params.new_data_per_step {
            self.params.steps + 1
        } else {
            1
        };
        let batches: Vec<Batch> =
            draw_batches(data.train_len(), self.params.batch_size, count, ctx.streams)
                .iter()
                .map(|rows| Batch::from_dataset(&data.train_rows(rows)))
                .collect();
        let gate = gate_gradient(
            &Params::from_network(ctx.net),
            Hidden::Relu,
            Loss::for_output(data.output(), 1.0),
            &batches,
            &self.params,
            &mut *ctx.progress,
        );
        PruneOutcome::global_top_k(prospr_scores(gate), density, Keep::Highest)
    }
}

#[cfg(test)]
mod tests {
    use super::super::hessian::tests::{random_dataset, small_conv_net, small_net};
    use super::super::hessian::{BatchTargets, Loss};
    use super::super::snip::snip_scores;
    use super::*;
    use crate::device::DeviceSpec;
    use ticketbench_core::select::top_k_global;
    use ticketbench_core::{Mask, Network};
    use ticketbench_planted::OutputKind;

    fn settings(steps: usize, lr: f64, momentum: f64, first_order: bool) -> ProsprParams {
        ProsprParams {
            steps,
            lr,
            momentum,
            first_order,
            ..ProsprParams::default()
        }
    }

    fn gate(net: &Network, loss: Loss, batches: &[Batch], params: &ProsprParams) -> Vec<Vec<f64>> {
        gate_gradient(
            &Params::from_network(net),
            Hidden::Relu,
            loss,
            batches,
            params,
            &mut |_| {},
        )
    }

    /// `L(θ'_M(c); B_M)` with `θ'_0 = θ_0 ⊙ c`, by running the inner loop.
    fn unrolled_loss(
        theta0: &Params,
        gates: &[f64],
        loss: Loss,
        batches: &[Batch],
        params: &ProsprParams,
    ) -> f64 {
        let mut theta = theta0.clone();
        let mut c = gates.iter();
        for l in &mut theta.layers {
            l.w.iter_mut().for_each(|w| *w *= c.next().unwrap());
        }
        let objective = |t: usize| Objective {
            batch: &batches[t.min(batches.len() - 1)],
            loss,
            hidden: Hidden::Relu,
        };
        let thetas = unroll(&theta, &objective, params, &mut |_| {});
        objective(params.steps).loss(&thetas[params.steps])
    }

    fn check_against_finite_differences(
        net: &Network,
        loss: Loss,
        batches: &[Batch],
        params: &ProsprParams,
    ) {
        let theta0 = Params::from_network(net);
        let got: Vec<f64> = gate(net, loss, batches, params)
            .into_iter()
            .flatten()
            .collect();
        let h = 1e-5;
        let fd: Vec<f64> = (0..got.len())
            .map(|i| {
                let mut c = vec![1.0; got.len()];
                c[i] = 1.0 + h;
                let plus = unrolled_loss(&theta0, &c, loss, batches, params);
                c[i] = 1.0 - h;
                let minus = unrolled_loss(&theta0, &c, loss, batches, params);
                (plus - minus) / (2.0 * h)
            })
            .collect();
        let diff: f64 = got.iter().zip(&fd).map(|(a, b)| (a - b) * (a - b)).sum();
        let norm: f64 = fd.iter().map(|b| b * b).sum();
        let err = (diff / norm).sqrt();
        assert!(
            err < 1e-6,
            "{loss:?} {params:?}: rel. err {err:e}\n{got:?}\n{fd:?}"
        );
    }

    #[test]
    fn meta_gradient_matches_finite_differences() {
        // methods.md §1.7(e): ∂L(θ'_M)/∂c against central differences of the unrolled loss
        // in f64, 3-5-4-k ReLU net with biases, M = 3.
        for (output, seed) in [(OutputKind::Classes(3), 1), (OutputKind::Regression(2), 2)] {
            let net = small_net(output.dim(), seed);
            let loss = Loss::for_output(output, 1.0);
            let data = random_dataset(16, 3, output, seed);
            let one = [Batch::from_dataset(&data)];
            let fresh: Vec<Batch> = (0..4)
                .map(|s| Batch::from_dataset(&random_dataset(8, 3, output, 10 + s)))
                .collect();
            for params in [
                settings(3, 0.1, 0.0, false),
                settings(3, 0.5, 0.9, false),
                settings(1, 0.1, 0.0, false),
            ] {
                check_against_finite_differences(&net, loss, &one, &params);
                check_against_finite_differences(&net, loss, &fresh, &params);
            }
        }
    }

    #[test]
    fn conv_meta_gradient_matches_finite_differences() {
        // The same check on a small convolutional net (1×6×6, conv 3 s1, conv 4 s2, 5, k).
        for (output, seed) in [(OutputKind::Classes(3), 1), (OutputKind::Regression(2), 2)] {
            let net = small_conv_net(output.dim(), seed);
            let loss = Loss::for_output(output, 1.0);
            let one = [Batch::from_dataset(&random_dataset(8, 36, output, seed))];
            let fresh: Vec<Batch> = (0..3)
                .map(|s| Batch::from_dataset(&random_dataset(6, 36, output, 10 + s)))
                .collect();
            for params in [settings(2, 0.1, 0.0, false), settings(2, 0.5, 0.9, false)] {
                check_against_finite_differences(&net, loss, &one, &params);
                check_against_finite_differences(&net, loss, &fresh, &params);
            }
        }
    }

    #[test]
    fn meta_gradient_on_the_shared_net() {
        // The shared worked net of methods.md §1 (ReLU between layers, as in `Network`),
        // MSE on three examples (every hidden pre-activation away from ReLU's kink), M = 3
        // with a step small enough for its large weights.
        let net = Network::methods_md_worked_example();
        let batch = Batch {
            len: 3,
            input_dim: 2,
            x: vec![1.0, 3.0, 0.5, -0.25, 2.0, 0.5],
            targets: BatchTargets::Values(vec![1.0, -0.5, 2.0]),
        };
        for params in [settings(3, 1e-3, 0.0, false), settings(3, 1e-3, 0.9, false)] {
            check_against_finite_differences(
                &net,
                Loss::Mse,
                std::slice::from_ref(&batch),
                &params,
            );
        }
    }

    #[test]
    fn zero_steps_equal_snip_exactly() {
        // methods.md §1.4(e)/§1.7(e): with M = 0 the scores are SNIP's |g ⊙ θ| / Σ|g ⊙ θ| on
        // the same batch. Exact (bit for bit) against SNIP's formula on the f64 host gradient;
        // against snip.rs `snip_scores` on the engine's f32 gradient to f32 precision, with
        // the same mask.
        let output = OutputKind::Classes(3);
        let net = small_net(3, 3);
        let data = random_dataset(24, 3, output, 5);
        let batch = [Batch::from_dataset(&data)];
        let loss = Loss::for_output(output, 1.0);
        let theta = Params::from_network(&net);
        let got = prospr_scores(gate(&net, loss, &batch, &settings(0, 0.1, 0.0, false)));

        let g = Objective {
            batch: &batch[0],
            loss,
            hidden: Hidden::Relu,
        }
        .gradient(&theta)
        .1
        .into_weights();
        let mut want: Vec<Vec<f64>> = theta
            .layers
            .iter()
            .zip(&g)
            .map(|(l, g)| l.w.iter().zip(g).map(|(w, g)| (w * g).abs()).collect())
            .collect();
        let total: f64 = want.iter().flatten().sum();
        want.iter_mut().flatten().for_each(|s| *s /= total);
        assert_eq!(got.layers, want);

        let engine = Engine::new(DeviceSpec::Cpu).unwrap();
        let grads = engine
            .loss_gradients(&net, &Mask::dense(&net.shapes()), &data, output)
            .unwrap();
        let snip = snip_scores(&net, &grads);
        let max = snip.layers.iter().flatten().fold(0.0f64, |m, &v| m.max(v));
        for (a, b) in got
            .layers
            .iter()
            .flatten()
            .zip(snip.layers.iter().flatten())
        {
            assert!((a - b).abs() <= 1e-5 * max, "{a} vs {b}");
        }
        for k in [10, 20, 30] {
            assert_eq!(
                top_k_global(&got, k, None, Keep::Highest).unwrap(),
                top_k_global(&snip, k, None, Keep::Highest).unwrap()
            );
        }
    }

    #[test]
    fn one_step_with_zero_lr_equals_zero_steps() {
        // methods.md §1.7(e): M = 1 with η = 0 is SNIP too (bit for bit), full and
        // first-order, with and without momentum.
        let net = small_net(3, 4);
        let data = random_dataset(16, 3, OutputKind::Classes(3), 6);
        let batch = [Batch::from_dataset(&data)];
        let loss = Loss::CrossEntropy { temperature: 1.0 };
        let snip = gate(&net, loss, &batch, &settings(0, 0.1, 0.0, false));
        for first_order in [false, true] {
            for momentum in [0.0, 0.9] {
                let params = settings(1, 0.0, momentum, first_order);
                assert_eq!(gate(&net, loss, &batch, &params), snip);
            }
        }
        // With η > 0 the unrolled steps change the scores.
        assert_ne!(
            gate(&net, loss, &batch, &settings(1, 0.1, 0.0, false)),
            snip
        );
    }

    #[test]
    fn first_order_uses_the_last_gradient_only() {
        let net = small_net(3, 7);
        let data = random_dataset(16, 3, OutputKind::Classes(3), 8);
        let batch = [Batch::from_dataset(&data)];
        let loss = Loss::CrossEntropy { temperature: 1.0 };
        let params = settings(3, 0.1, 0.0, true);
        let theta0 = Params::from_network(&net);
        let objective = |_t: usize| Objective {
            batch: &batch[0],
            loss,
            hidden: Hidden::Relu,
        };
        let thetas = unroll(&theta0, &objective, &params, &mut |_| {});
        let g = objective(3).gradient(&thetas[3]).1.into_weights();
        let want: Vec<Vec<f64>> = theta0
            .layers
            .iter()
            .zip(&g)
            .map(|(l, g)| l.w.iter().zip(g).map(|(w, g)| w * g).collect())
            .collect();
        assert_eq!(gate(&net, loss, &batch, &params), want);
        assert_ne!(
            gate(&net, loss, &batch, &settings(3, 0.1, 0.0, false)),
            want
        );
    }

    #[test]
    fn batches_come_from_the_named_stream() {
        let streams = Streams::new(4);
        let a = draw_batches(300, 128, 4, &streams);
        assert_eq!(a.len(), 4);
        assert!(
            a.iter()
                .all(|b| b.len() == 128 && b.iter().all(|&i| i < 300))
        );
        // Rows within a batch are distinct (a permutation is consumed in order).
        let mut first = a[0].clone();
        first.sort_unstable();
        first.dedup();
        assert_eq!(first.len(), 128);
        assert_eq!(a, draw_batches(300, 128, 4, &streams));
        // The first batch is the same whether or not more are drawn (new_data_per_step).
        assert_eq!(a[0], draw_batches(300, 128, 1, &streams)[0]);
        assert_ne!(a[0], a[1]);
        assert_ne!(a[0], draw_batches(300, 128, 1, &Streams::new(5))[0]);
        // Fewer rows than the batch size: the whole split.
        assert!(
            draw_batches(50, 128, 2, &streams)
                .iter()
                .all(|b| b.len() == 50)
        );
    }

    #[test]
    fn prunes_through_the_trait() {
        use crate::train::TrainRecipe;
        use ticketbench_planted::TaskData;
        let output = OutputKind::Classes(3);
        let task = TaskData {
            output,
            train: random_dataset(200, 3, output, 1),
            test: random_dataset(20, 3, output, 2),
        };
        let net = small_net(3, 9);
        let engine = Engine::new(DeviceSpec::Cpu).unwrap();
        let data = engine.upload(task.clone());
        let streams = Streams::new(0);
        let recipe = TrainRecipe::default();
        let mut trained = None;
        let mut messages = Vec::new();
        for params in [
            serde_json::json!({}),
            serde_json::json!({"new_data_per_step": true, "momentum": 0.9}),
            serde_json::json!({"first_order": true, "steps": 0}),
        ] {
            let pruner = (INFO.build)(params.as_object().unwrap()).unwrap();
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
            let out = pruner.prune(&mut ctx, Density::new(0.3).unwrap()).unwrap();
            assert_eq!(out.mask.kept(), 14); // round_half_up(0.3 · 47)
            assert_eq!(out.keep, Keep::Highest);
            let s = out.scores.unwrap();
            assert!((s.layers.iter().flatten().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("prospr inner step 3/3"))
        );
    }

    #[test]
    #[ignore = "timing on LeNet-300-100; run with --ignored --nocapture"]
    fn lenet_scoring_time() {
        use ticketbench_core::InitScheme;
        let output = OutputKind::Classes(10);
        let net = Network::mlp(
            &[784, 300, 100, 10],
            true,
            InitScheme::KaimingNormal,
            &Streams::new(0),
        )
        .unwrap();
        let batch = [Batch::from_dataset(&random_dataset(100, 784, output, 0))];
        let loss = Loss::for_output(output, 1.0);
        for params in [
            ProsprParams::default(),
            settings(3, 0.1, 0.0, true),
            settings(0, 0.1, 0.0, false),
        ] {
            let start = std::time::Instant::now();
            let s = prospr_scores(gate(&net, loss, &batch, &params));
            eprintln!(
                "prospr {params:?} on LeNet-300-100, batch 100: {:.3} s",
                start.elapsed().as_secs_f64()
            );
            assert_eq!(s.total(), 266_200);
        }
    }

    #[test]
    fn params_are_validated_and_recorded() {
        let bad = |v: serde_json::Value| (INFO.build)(v.as_object().unwrap()).is_err();
        assert!(bad(serde_json::json!({"batch_size": 0})));
        assert!(bad(serde_json::json!({"lr": -0.1})));
        assert!(bad(serde_json::json!({"momentum": 1.0})));
        assert!(bad(serde_json::json!({"inner_steps": 3})));
        let p = (INFO.build)(&Default::default()).unwrap();
        assert_eq!(
            p.params(),
            serde_json::json!({
                "steps": 3, "lr": 0.1, "momentum": 0.0, "batch_size": 128,
                "new_data_per_step": false, "first_order": false
            })
        );
    }
}
