//! Conformance of every registered method, and the invariants methods.md states for each.

mod common;

use ticketbench::device::DeviceSpec;
use ticketbench::engine::Engine;
use ticketbench::methods::{self, PruneOutcome, Pruner, Schedule};
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

    fn setup(&self) -> common::PruneSetup<'_> {
        common::PruneSetup {
            engine: &self.engine,
            net: &self.net,
            task: &self.task,
            recipe: &self.recipe,
            streams: &self.streams,
            planted: self.planted.as_ref(),
        }
    }

    fn prune(&self, method: &dyn Pruner, density: f64) -> PruneOutcome {
        self.setup().prune(method, density).unwrap()
    }
}

fn method(name: &str, params: serde_json::Value) -> Box<dyn Pruner> {
    methods::build(name, params.as_object().unwrap()).unwrap()
}

/// Parameters that fit a method's schedule into the fixture's one short epoch (defaults
/// otherwise): GraNet's ΔT = 1000 steps would never reach the target density.
/// The registry's methods that run inside this process. `external` runs a plugin process and
/// needs a suite entry (label, command, data); tests/external.rs covers it with real plugins.
fn in_process_methods() -> impl Iterator<Item = &'static methods::MethodInfo> {
    methods::METHODS
        .iter()
        .filter(|info| info.name != "external")
}

fn small_run_params(name: &str) -> serde_json::Value {
    match name {
        "granet" | "rigl" => serde_json::json!({"update_every": 2}),
        _ => serde_json::json!({}),
    }
}

#[test]
fn every_method_keeps_exactly_the_requested_density() {
    // On a planted host, so the `planted` reference runs too.
    let f = Fixture::planted_circle(0);
    let total = f.net.num_prunable();
    let planted_density = f.planted.as_ref().unwrap().density();
    for info in in_process_methods() {
        let pruner = (info.build)(small_run_params(info.name).as_object().unwrap()).unwrap();
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
            .counts(
                ticketbench_baselines::RuleInput::Network(&f.net),
                Density::new(0.2).unwrap(),
            )
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
fn random_after_training_masks_trained_weights_and_fine_tunes_them() {
    let f = Fixture::circle(0);
    let at_init = f.prune(method("random", serde_json::json!({})).as_ref(), 0.3);
    assert!(
        at_init.start.is_none(),
        "the default random ticket keeps θ_0"
    );
    let after = method("random", serde_json::json!({"when": "trained"}));
    assert_eq!(after.params()["when"], "trained");
    assert!(
        method("random", serde_json::json!({}))
            .params()
            .get("when")
            .is_none(),
        "the default leaves the hashed parameters of older results unchanged"
    );
    let out = f.prune(after.as_ref(), 0.3);
    let start = out.start.expect("Random (After) fine-tunes from θ_T");
    let trained = f.prune(method("magnitude", serde_json::json!({})).as_ref(), 0.3);
    assert_eq!(Some(start), trained.start, "both start from the same θ_T");
    // The same random stream chooses the positions: the mask is the at-init one.
    assert_eq!(out.mask, at_init.mask);
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

/// Every pruned weight of `net` is exactly zero.
fn zero_outside(net: &Network, mask: &ticketbench_core::Mask) -> bool {
    net.layers
        .iter()
        .zip(mask.layers())
        .all(|(l, keep)| l.weight.iter().zip(keep).all(|(&w, &k)| k || w == 0.0))
}

#[test]
fn imp_levels_follow_the_rate_and_rewind() {
    let mut f = Fixture::circle(3);
    f.recipe.epochs = 2;
    let imp = method("imp", serde_json::json!({}));
    let total = f.net.num_prunable();
    let out = f.prune(imp.as_ref(), 0.3);
    assert!(out.start.is_none(), "k = 0 rewinds to θ_0");
    // Levels 0..n−1 are logged: density 1, then R_j = R_{j−1} − ⌈0.2 R_{j−1}⌉.
    let mut r = total;
    for (j, round) in out.log.rounds.iter().enumerate() {
        assert_eq!(round.round, j);
        assert!(
            (round.density - r as f64 / total as f64).abs() < 1e-12,
            "level {j}"
        );
        assert!(round.test_acc.is_some());
        r -= (0.2 * r as f64).ceil() as usize;
    }
    // ⌈ln 0.3 / ln 0.8⌉ = 6 levels: levels 0..5 logged, level 6 is the returned ticket.
    assert_eq!(out.log.rounds.len(), 6);
    assert_eq!(
        out.mask.kept(),
        target_count(Density::new(0.3).unwrap(), total).unwrap()
    );
    // Late rewinding starts the ticket from θ_k ≠ θ_0.
    let late = f.prune(
        method("imp", serde_json::json!({"rewind_steps": 3})).as_ref(),
        0.5,
    );
    let theta_k = late.start.expect("θ_k");
    assert_ne!(theta_k, f.net);
    let one_shot = f.prune(
        method("imp", serde_json::json!({"one_shot": true})).as_ref(),
        0.3,
    );
    assert_eq!(one_shot.log.rounds.len(), 1);
    // One-shot IMP is magnitude pruning after training with rewinding.
    let magnitude = f.prune(
        method("magnitude", serde_json::json!({"rewind": true})).as_ref(),
        0.3,
    );
    assert_eq!(one_shot.mask, magnitude.mask);
}

#[test]
fn dynamic_methods_keep_layer_counts_and_change_the_mask() {
    let mut f = Fixture::circle(4);
    f.recipe.epochs = 3;
    for (name, rule, params) in [
        ("rigl", "erk", serde_json::json!({"update_every": 5})),
        ("set", "er", serde_json::json!({})),
    ] {
        let out = f.prune(method(name, params).as_ref(), 0.2);
        let want = ticketbench_baselines::ratios::rule(rule)
            .unwrap()
            .counts(
                ticketbench_baselines::RuleInput::Network(&f.net),
                Density::new(0.2).unwrap(),
            )
            .unwrap();
        assert_eq!(
            out.mask.layer_kept(),
            want,
            "{name}: per-layer counts are invariant"
        );
        let trained = out.trained.expect("dynamic methods train their ticket");
        assert_eq!(trained.mask, out.mask);
        assert!(
            zero_outside(&trained.net, &out.mask),
            "{name}: pruned weights stay 0"
        );
        assert!(out.log.events["mask_updates"] >= 1.0, "{name}");
        // The final mask is not the initial random one.
        let initial = f.prune(
            method("random", serde_json::json!({"rule": rule})).as_ref(),
            0.2,
        );
        assert_ne!(initial.mask, out.mask, "{name}: the mask evolved");
    }
    let granet = f.prune(
        method("granet", serde_json::json!({"update_every": 5})).as_ref(),
        0.1,
    );
    let trained = granet.trained.expect("trained");
    assert_eq!(
        granet.mask.kept(),
        target_count(Density::new(0.1).unwrap(), f.net.num_prunable()).unwrap()
    );
    assert!(zero_outside(&trained.net, &granet.mask));
    // GraNet with too coarse an update interval can never reach the target: a clear error.
    let granet = method("granet", serde_json::json!({}));
    let err = f
        .setup()
        .prune(granet.as_ref(), 0.1)
        .expect_err("ΔT = 1000 exceeds a 3-epoch run")
        .to_string();
    assert!(err.contains("update_every"), "{err}");
}

#[test]
fn early_bird_draws_a_stable_magnitude_ticket_and_keeps_training_it() {
    let mut f = Fixture::circle(5);
    f.recipe.epochs = 12;
    let out = f.prune(
        method("early-bird", serde_json::json!({"epsilon": 0.5})).as_ref(),
        0.3,
    );
    assert_eq!(out.log.events["eb_found"], 1.0, "ε = 0.5 is reached");
    let epoch = out.log.events["eb_epoch"];
    assert!(
        (4.0..12.0).contains(&epoch),
        "EB epoch {epoch}: not before the window fills"
    );
    let trained = out.trained.expect("trained after the EB epoch");
    assert!(zero_outside(&trained.net, &out.mask));
    // ε = 0 cannot be met by a changing mask: the ticket falls back to the final epoch's mask.
    let strict = f.prune(
        method("early-bird", serde_json::json!({"epsilon": 0.0})).as_ref(),
        0.3,
    );
    if strict.log.events["eb_found"] == 0.0 {
        assert!(strict.trained.is_none() && strict.start.is_some());
    }
}

#[test]
fn every_method_runs_from_a_suite_beside_its_matched_random_ticket() {
    let suite = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/zoo.yaml");
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_ticketbench"))
        .args(["run", suite.to_str().unwrap(), "--out"])
        .arg(out.path())
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let text = std::fs::read_to_string(out.path().join("results.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Circle on the planted host: dense + planted + 17 entries; ReLU on the plain MLP: no
    // planted row (its model is restricted to ReLU, the host to Circle).
    assert_eq!(records.len(), 19 + 18);
    assert!(
        records
            .iter()
            .all(|r| (r["task"] == "circle") == (r["model"] == "host"))
    );
    for info in in_process_methods() {
        assert!(
            records.iter().any(|r| r["method"] == info.name),
            "{} missing",
            info.name
        );
    }
    for r in &records {
        let method = r["method"].as_str().unwrap();
        let matched = r.get("matched_random").is_some();
        assert_eq!(
            matched,
            !matches!(method, "dense" | "random"),
            "{method}: matched random ticket"
        );
    }
    let imp = records.iter().find(|r| r["method"] == "imp").unwrap();
    assert_eq!(imp["method_log"]["rounds"].as_array().unwrap().len(), 2); // 1 → 0.5 → 0.3
    let eb = records
        .iter()
        .find(|r| r["method"] == "early-bird")
        .unwrap();
    assert!(eb["method_log"]["events"]["eb_found"].is_number());
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap_or_else(|_| {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_ticketbench"))
            .args(["report"])
            .arg(out.path())
            .arg("--out")
            .arg(out.path())
            .output()
            .unwrap();
        assert!(status.status.success());
        std::fs::read_to_string(out.path().join("report.md")).unwrap()
    });
    assert!(
        report.contains("grasp · random at its layer counts"),
        "{report}"
    );
    assert!(report.contains("vs. random ticket at the method's own layer counts"));
}

#[test]
fn a_killed_zoo_run_resumes_without_duplicates() {
    // Training-based methods are recorded only when their job finishes: killing the run
    // mid-job and rerunning records every job exactly once.
    let suite = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/zoo.yaml");
    let out = tempfile::tempdir().unwrap();
    let results = out.path().join("results.jsonl");
    let run = |hang: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ticketbench"));
        cmd.args(["run", suite.to_str().unwrap(), "--quiet", "--out"])
            .arg(out.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(at) = hang {
            // Test-only hook (src/crash_point.rs): hold the run after its 8th record; its
            // stderr says when.
            cmd.env("TICKETBENCH_TEST_HANG_AFTER", at)
                .stderr(std::process::Stdio::piped());
        }
        cmd.spawn().unwrap()
    };
    let mut child = run(Some("record:8"));
    let lines = || {
        std::fs::read_to_string(&results)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    common::wait_for_hang(&mut child);
    assert!(child.try_wait().unwrap().is_none(), "the run ended early");
    child.kill().unwrap(); // SIGKILL, with the 9th job unrecorded
    child.wait().unwrap();
    let before = lines();
    assert_eq!(before, 8);
    assert!(run(None).wait().unwrap().success());
    let text = std::fs::read_to_string(&results).unwrap();
    let mut hashes: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["settings_hash"].to_string())
        .collect();
    assert_eq!(hashes.len(), 37, "killed after {before} jobs");
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), 37, "a job was recorded twice");
}

#[test]
fn methods_that_claim_scores_return_them() {
    let f = Fixture::planted_circle(1);
    for info in in_process_methods() {
        let pruner = (info.build)(small_run_params(info.name).as_object().unwrap()).unwrap();
        if pruner.schedule() != Schedule::Grid {
            continue;
        }
        let out = f.prune(pruner.as_ref(), 0.2);
        assert_eq!(
            out.scores.is_some(),
            pruner.returns_scores(),
            "{}: returns_scores() must match the outcome",
            info.name
        );
    }
}

#[test]
fn data_free_methods_ignore_corrupted_scoring_data() {
    // methods.md §3.1: for data-free methods the data checks must leave the mask
    // bit-identical; this is asserted here instead of being run as a check job.
    let f = Fixture::planted_circle(2);
    use ticketbench_baselines::checks::{random_labels, random_pixels};
    let (train, output) = (&f.task.train, f.task.output);
    let labels = ticketbench_planted::Dataset {
        targets: random_labels(&train.targets, output, &f.streams).unwrap(),
        ..train.clone()
    };
    let pixels = random_pixels(train.clone(), output, &f.streams).unwrap();
    let corrupted = [labels, pixels].map(|train| ticketbench_planted::TaskData {
        train,
        ..f.task.clone()
    });
    for info in in_process_methods() {
        let pruner = (info.build)(small_run_params(info.name).as_object().unwrap()).unwrap();
        if pruner.data_needs() != methods::DataNeeds::None || pruner.schedule() != Schedule::Grid {
            continue;
        }
        let clean = f.prune(pruner.as_ref(), 0.2).mask;
        for task in &corrupted {
            let g = Fixture {
                engine: Engine::new(DeviceSpec::Cpu).unwrap(),
                net: f.net.clone(),
                task: task.clone(),
                streams: f.streams.clone(),
                recipe: f.recipe.clone(),
                planted: None,
            };
            assert_eq!(g.prune(pruner.as_ref(), 0.2).mask, clean, "{}", info.name);
        }
    }
}
