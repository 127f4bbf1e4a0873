//! Conformance of every registered method, and the invariants methods.md states for each.

use ticketbench::device::DeviceSpec;
use ticketbench::engine::Engine;
use ticketbench::methods::{self, PruneContext, PruneOutcome, Pruner, Schedule};
use ticketbench::train::TrainRecipe;
use ticketbench_core::{Density, InitScheme, Network, Streams, target_count};
use ticketbench_planted::{PlantedTicket, plant_pns, tasks};

/// θ_0, task data and engine for one seed.
struct Fixture {
    engine: Engine,
    net: Network,
    task: ticketbench_planted::TaskData,
    streams: Streams,
    recipe: TrainRecipe,
    planted: Option<PlantedTicket>,
}

impl Fixture {
    fn new(widths: &[usize], task: &str, task_params: serde_json::Value, seed: u64) -> Fixture {
        let streams = Streams::new(seed);
        let params = task_params.as_object().cloned().unwrap_or_default();
        let task = tasks::build(task, &params).unwrap();
        Fixture {
            engine: Engine::new(DeviceSpec::Cpu).unwrap(),
            net: Network::mlp(widths, true, InitScheme::KaimingNormal, &streams).unwrap(),
            task: task.generate(&streams),
            streams,
            recipe: TrainRecipe {
                epochs: 1,
                ..TrainRecipe::default()
            },
            planted: None,
        }
    }

    /// Circle with its depth-5 target planted (pns) in a 2-32-32-32-4 He-scaled host.
    fn planted_circle(seed: u64) -> Fixture {
        let mut f = Fixture::new(
            &[2, 32, 32, 32, 4],
            "circle",
            serde_json::json!({"samples": 400}),
            seed,
        );
        let host =
            Network::mlp(&[2, 32, 32, 32, 4], true, InitScheme::HeScaled, &f.streams).unwrap();
        let target = tasks::build("circle", &Default::default())
            .unwrap()
            .target(5)
            .unwrap();
        let planted = plant_pns(&target, host).unwrap();
        f.net = planted.host.clone();
        f.planted = Some(planted);
        f
    }

    fn circle(seed: u64) -> Fixture {
        Fixture::new(
            &[2, 32, 32, 4],
            "circle",
            serde_json::json!({"samples": 400}),
            seed,
        )
    }

    fn prune(&self, method: &dyn Pruner, density: f64) -> PruneOutcome {
        let data = self.engine.upload(&self.task);
        let mut trained = None;
        let mut ctx = PruneContext {
            engine: &self.engine,
            net: &self.net,
            task: &self.task,
            data: &data,
            recipe: &self.recipe,
            streams: &self.streams,
            trained_dense: &mut trained,
            progress: &mut |_| {},
            planted: self.planted.as_ref(),
        };
        method
            .prune(&mut ctx, Density::new(density).unwrap())
            .unwrap()
    }
}

fn method(name: &str, params: serde_json::Value) -> Box<dyn Pruner> {
    methods::build(name, params.as_object().unwrap()).unwrap()
}

#[test]
fn every_method_keeps_exactly_the_requested_density() {
    // On a planted host, so the `planted` reference runs too.
    let f = Fixture::planted_circle(0);
    let total = f.net.num_prunable();
    let planted_density = f.planted.as_ref().unwrap().density();
    for info in methods::METHODS {
        let pruner = (info.build)(&Default::default()).unwrap();
        let densities: Vec<f64> = match pruner.schedule() {
            Schedule::Grid => vec![0.5, 0.1, 0.013],
            Schedule::DenseOnly => vec![1.0],
            Schedule::PlantedDensity => vec![planted_density],
        };
        for d in densities {
            let outcome = f.prune(pruner.as_ref(), d);
            let want = target_count(Density::new(d).unwrap(), total).unwrap();
            assert_eq!(outcome.mask.kept(), want, "{} at density {d}", info.name);
            outcome.mask.check_shapes(&f.net.shapes()).unwrap();
        }
    }
}

#[test]
fn random_tickets_follow_their_rule_and_seed() {
    let f = Fixture::circle(0);
    for rule in ["uniform", "erk"] {
        let m = method("random", serde_json::json!({"rule": rule}));
        let a = f.prune(m.as_ref(), 0.2).mask;
        let want = ticketbench_baselines::ratios::rule(rule)
            .unwrap()
            .counts(&f.net.shapes(), Density::new(0.2).unwrap())
            .unwrap();
        assert_eq!(a.layer_kept(), want, "{rule}");
        assert_eq!(a, f.prune(m.as_ref(), 0.2).mask, "same seed, same mask");
        assert_ne!(
            a,
            Fixture::circle(1).prune(m.as_ref(), 0.2).mask,
            "another seed, another mask"
        );
    }
    let global = method("random", serde_json::json!({"rule": "global"}));
    assert_ne!(
        f.prune(global.as_ref(), 0.2).mask,
        Fixture::circle(1).prune(global.as_ref(), 0.2).mask
    );
}

#[test]
fn synflow_is_data_free_and_avoids_layer_collapse_on_lenet() {
    // methods.md §1.6(e): data independence (bit-exact), positivity, no empty layer at
    // D = 0.01 and D = 1e-3 on LeNet-300-100.
    let widths = [784, 300, 100, 10];
    let gaussian = |s: u64| {
        let mut f = Fixture::new(&widths, "gaussian", serde_json::json!({"samples": 64}), 0);
        f.task = tasks::build("gaussian", &serde_json::Map::new())
            .unwrap()
            .generate(&Streams::new(s));
        f
    };
    let (a, b) = (gaussian(1), gaussian(2));
    assert_ne!(a.task.train.inputs[..8], b.task.train.inputs[..8]);
    let synflow = method("synflow", serde_json::json!({}));
    let ma = a.prune(synflow.as_ref(), 0.01);
    assert_eq!(
        ma.mask,
        b.prune(synflow.as_ref(), 0.01).mask,
        "SynFlow must not read data"
    );
    assert!(
        ma.mask.layer_kept().iter().all(|&k| k > 0),
        "{:?}",
        ma.mask.layer_kept()
    );
    // Every kept weight of the final mask scores > 0 except at most a few dangling ones.
    let scores = ma.scores.unwrap();
    let zero_kept = scores
        .layers
        .iter()
        .flatten()
        .zip(ma.mask.layers().iter().flatten())
        .filter(|&(&s, &k)| k && s <= 0.0)
        .count();
    assert!(zero_kept <= 2, "{zero_kept} kept weights with zero flow");
    let tiny = a.prune(synflow.as_ref(), 1e-3).mask;
    assert!(
        tiny.layer_kept().iter().all(|&k| k >= 1),
        "{:?}",
        tiny.layer_kept()
    );
}

#[test]
fn synflow_scores_are_positive_on_a_dense_net() {
    let f = Fixture::circle(0);
    let one_round = method("synflow", serde_json::json!({"rounds": 1}));
    let scores = f.prune(one_round.as_ref(), 0.5).scores.unwrap();
    assert!(scores.layers.iter().flatten().all(|&s| s > 0.0));
}

#[test]
fn magnitude_after_training_prunes_trained_weights_and_fine_tunes_them() {
    let f = Fixture::circle(0);
    let out = f.prune(method("magnitude", serde_json::json!({})).as_ref(), 0.2);
    let start = out.start.expect("fine-tuning starts from θ_T");
    assert_ne!(start, f.net, "θ_T differs from θ_0");
    // The kept weights are the largest |θ_T|.
    let (mut min_kept, mut max_pruned) = (f32::MAX, 0f32);
    for (layer, keep) in start.layers.iter().zip(out.mask.layers()) {
        for (&w, &k) in layer.weight.iter().zip(keep) {
            if k {
                min_kept = min_kept.min(w.abs())
            } else {
                max_pruned = max_pruned.max(w.abs())
            }
        }
    }
    assert!(min_kept >= max_pruned);
    let rewind = f.prune(
        method("magnitude", serde_json::json!({"rewind": true})).as_ref(),
        0.2,
    );
    assert!(rewind.start.is_none(), "rewinding restarts from θ_0");
    assert_eq!(rewind.mask, out.mask);
    assert!(
        methods::build(
            "magnitude",
            serde_json::json!({"when": "init", "rewind": true})
                .as_object()
                .unwrap()
        )
        .is_err()
    );
}

#[test]
fn snip_uses_gradient_times_weight() {
    // S = |g ⊙ θ| normalised: check against gradients computed independently.
    let f = Fixture::circle(2);
    let out = f.prune(method("snip", serde_json::json!({})).as_ref(), 0.3);
    let scores = out.scores.unwrap();
    let sum: f64 = scores.layers.iter().flatten().sum();
    assert!((sum - 1.0).abs() < 1e-9, "normalised scores sum to {sum}");
    let batch = f.task.scoring_batch(10, &f.streams, "scoring/batch");
    let dense = ticketbench_core::Mask::dense(&f.net.shapes());
    let grads = f
        .engine
        .loss_gradients(&f.net, &dense, &batch, f.task.output)
        .unwrap();
    let raw: Vec<f64> = f
        .net
        .layers
        .iter()
        .zip(&grads)
        .flat_map(|(l, g)| {
            l.weight
                .iter()
                .zip(g)
                .map(|(&w, &g)| (w as f64 * g as f64).abs())
        })
        .collect();
    let total: f64 = raw.iter().sum();
    for (s, r) in scores.layers.iter().flatten().zip(&raw) {
        assert!((s - r / total).abs() < 1e-12);
    }
}
