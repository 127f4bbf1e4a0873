//! Convolutional networks: the device forward is the textbook convolution, masked conv
//! weights stay exactly zero through training, layerwise ratio rules see conv fan-ins, and
//! suites check conv models against tasks, every method runs on them, and channel-structured
//! masks keep whole channels.

mod common;

use common::{ok, records, ticketbench};
use std::path::Path;
use ticketbench::device::DeviceSpec;
use ticketbench::engine::Engine;
use ticketbench::runner::suite::Suite;
use ticketbench::train::{Optimizer, TrainRecipe};
use ticketbench_baselines::ratios::rule;
use ticketbench_baselines::{RuleInput, random_ticket};
use ticketbench_core::{ConvNetSpec, ConvSpec, Density, InitScheme, Network, Streams};
use ticketbench_planted::{Dataset, OutputKind, TaskData, tasks};

/// The digits task, its first `n` training rows as both splits (fast tests).
fn digits(n: usize) -> TaskData {
    let data = tasks::build("digits", &Default::default())
        .unwrap()
        .generate(&Streams::new(0));
    let rows: Vec<usize> = (0..n).collect();
    TaskData {
        output: data.output,
        train: data.train.rows(&rows),
        test: data.train.rows(&rows),
    }
}

fn digits_net(seed: u64) -> Network {
    let spec = ConvNetSpec {
        input: [1, 8, 8],
        convs: vec![ConvSpec::k3(4, 1), ConvSpec::k3(8, 2)],
        hidden: vec![16],
        outputs: 10,
    };
    Network::conv_net(&spec, true, InitScheme::KaimingUniform, &Streams::new(seed)).unwrap()
}

fn devices() -> Vec<DeviceSpec> {
    let mut d = vec![DeviceSpec::Cpu];
    if cfg!(feature = "ndarray") {
        d.push(DeviceSpec::NdArray);
    }
    d
}

/// Mean cross-entropy of the host f64 reference forward (core's im2col convolution).
fn host_cross_entropy(net: &Network, split: &Dataset) -> f64 {
    let ticketbench_planted::Targets::Classes(y) = &split.targets else {
        unreachable!()
    };
    let d = split.input_dim;
    let total: f64 = (0..split.len())
        .map(|r| {
            let x: Vec<f64> = split.inputs[r * d..(r + 1) * d]
                .iter()
                .map(|&v| v as f64)
                .collect();
            let z = net.forward_f64(&x);
            let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            lse - z[y[r] as usize]
        })
        .sum();
    total / split.len() as f64
}

#[test]
fn device_conv_forward_matches_the_host_reference() {
    let data = digits(64);
    let net = digits_net(1);
    let mask = random_ticket(&net.shapes(), &[20, 150, 1500, 100], &Streams::new(2), "t");
    let masked = {
        let mut n = net.clone();
        mask.apply(&mut n).unwrap();
        n
    };
    let want = host_cross_entropy(&masked, &data.test);
    for device in devices() {
        let engine = Engine::new(device).unwrap();
        let eval = engine
            .evaluate(&net, &mask, &engine.upload(data.clone()))
            .unwrap();
        assert!(
            (eval.loss - want).abs() < 1e-4,
            "{device}: device loss {} vs host {want}",
            eval.loss
        );
    }
}

#[test]
fn masked_conv_weights_stay_zero_and_unmasked_weights_change() {
    let data = digits(256);
    let net = digits_net(3);
    let mask = random_ticket(&net.shapes(), &[12, 100, 1000, 80], &Streams::new(4), "t");
    let recipes = [
        TrainRecipe {
            optimizer: Optimizer::Sgd,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 1e-3,
            epochs: 2,
            batch_size: 32,
        },
        TrainRecipe {
            optimizer: Optimizer::Adam,
            lr: 1e-2,
            momentum: 0.0,
            weight_decay: 1e-3,
            epochs: 2,
            batch_size: 32,
        },
    ];
    for device in devices() {
        let engine = Engine::new(device).unwrap();
        let uploaded = engine.upload(data.clone());
        for recipe in &recipes {
            let out = engine
                .train(
                    &net,
                    &mask,
                    &uploaded,
                    recipe,
                    &Streams::new(5),
                    &mut |_| {},
                )
                .unwrap();
            assert!(out.diverged.is_none());
            for (l, (after, before)) in out.net.layers.iter().zip(&net.layers).enumerate() {
                assert_eq!(after.conv, before.conv, "geometry is kept");
                let keep = mask.layer(l);
                let mut changed = 0;
                for ((a, b), &k) in after.weight.iter().zip(&before.weight).zip(keep) {
                    if k {
                        changed += usize::from(a != b);
                    } else {
                        assert_eq!(*a, 0.0, "{device} layer {l}: a pruned weight moved");
                    }
                }
                assert!(
                    changed * 10 > mask.layer_kept()[l] * 9,
                    "{device} layer {l}: only {changed} kept weights changed"
                );
            }
        }
    }
}

#[test]
fn erk_and_er_on_a_conv_net_match_the_worked_example() {
    // methods.md §2.4: shapes (8,1,3,3), (16,8,3,3), dense (10, 784) — a 1×14×14 input, a
    // stride-1 and a stride-2 convolution, flattened 16·7·7 = 784 into the classifier.
    let spec = ConvNetSpec {
        input: [1, 14, 14],
        convs: vec![ConvSpec::k3(8, 1), ConvSpec::k3(16, 2)],
        hidden: vec![],
        outputs: 10,
    };
    let net = Network::conv_net(&spec, false, InitScheme::KaimingNormal, &Streams::new(0)).unwrap();
    let dims: Vec<Vec<usize>> = net.shapes().into_iter().map(|s| s.dims).collect();
    assert_eq!(
        dims,
        vec![vec![8, 1, 3, 3], vec![16, 8, 3, 3], vec![10, 784]]
    );
    let cases = [
        ("erk", 0.5, [1.0, 0.140954, 0.548166]),
        ("er", 0.5, [1.0, 0.827970, 0.447217]),
        ("erk", 0.1, [0.225070, 0.028134, 0.109411]),
        ("er", 0.1, [0.934647, 0.155775, 0.084139]),
    ];
    for (name, d, want) in cases {
        let got = rule(name)
            .unwrap()
            .densities(RuleInput::Network(&net), Density::new(d).unwrap())
            .unwrap();
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{name} at {d}: {got:?} vs {want:?}");
        }
    }
}

#[test]
fn suites_check_conv_models_against_tasks_and_methods() {
    let parse = |text: &str| Suite::parse(text, Path::new("conv.yaml"));
    let ok = parse(
        "tasks: [digits]\nmodels: [{conv: [8, {channels: 16, stride: 2}], hidden: [32]}]\nmethods: [dense, magnitude, snip, edge-popup]\ndensities: [0.2]\nseeds: 1\n",
    )
    .unwrap();
    assert_eq!(ok.models[0].label(), "cnn-8x16s2-32");
    let task = ok.tasks[0].task.as_ref();
    assert_eq!(ok.models[0].widths(task), vec![64, 512, 256, 32, 10]);
    let shapes: Vec<Vec<usize>> = ok.models[0]
        .shapes(task)
        .unwrap()
        .into_iter()
        .map(|s| s.dims)
        .collect();
    assert_eq!(shapes[..2], [vec![8, 1, 3, 3], vec![16, 8, 3, 3]]);

    let e = parse(
        "tasks: [circle]\nmodels: [{conv: [8], hidden: [32]}]\nmethods: [dense]\ndensities: [0.2]\nseeds: 1\n",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.starts_with("conv.yaml:2:") && e.contains("no image shape"),
        "{e}"
    );
    let e = parse(
        "tasks: [digits]\nmodels: [{conv: [8, {channels: 8, kernel: 11, padding: 0}], hidden: []}]\nmethods: [dense]\ndensities: [0.2]\nseeds: 1\n",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("does not fit"), "{e}");
    // Every method runs on convolutional models, the host-side ones included.
    let all = parse(
        "tasks: [digits]\nmodels: [{conv: [8], hidden: [32]}]\nmethods: [dense, synflow, grasp, prospr, ga, phew]\ndensities: [0.2]\nseeds: 1\n",
    )
    .unwrap();
    assert_eq!(all.methods.len(), 6);
    let e = parse(
        "tasks: [digits]\nmodels: [{conv: [8], hidden: [32], plant: pns}]\nmethods: [dense]\ndensities: [0.2]\nseeds: 1\n",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("planting needs an MLP"), "{e}");
    // The output layer's width comes from the task; the classes are checked.
    assert_eq!(digits(10).output, OutputKind::Classes(10));
}

#[test]
fn every_method_runs_on_a_conv_net_from_a_suite() {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/zoo-conv.yaml");
    let out = tempfile::tempdir().unwrap();
    ok(ticketbench(&[
        "run",
        suite.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
        "--quiet",
    ]));
    let records = records(out.path());
    assert_eq!(records.len(), 21);
    for info in ticketbench::methods::METHODS {
        assert_eq!(
            records.iter().any(|r| r["method"] == info.name),
            // No planted ticket on a conv net; external methods need a plugin entry.
            !matches!(info.name, "planted" | "external"),
            "{}",
            info.name
        );
    }
    let kept: u64 = 4 * 9 + 8 * 4 * 9 + 16 * 128 + 10 * 16;
    for r in &records {
        let want = if r["method"] == "dense" {
            kept
        } else {
            (0.3 * kept as f64).round() as u64
        };
        let label = &r["method_label"];
        assert_eq!(r["status"], "ok", "{label}");
        assert_eq!(r["kept"], want, "{label}");
        let acc = r["metrics"]["test_acc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{label}: {acc}");
    }
    assert!(
        records
            .iter()
            .any(|r| r["method_label"] == "magnitude[structure=channel]")
    );
}

#[test]
fn channel_structured_methods_keep_whole_channels_at_the_method_layer_counts() {
    let task = digits(64);
    let net = digits_net(3);
    let engine = Engine::new(DeviceSpec::Cpu).unwrap();
    let recipe = TrainRecipe {
        epochs: 1,
        ..TrainRecipe::default()
    };
    let streams = Streams::new(3);
    let setup = common::PruneSetup {
        engine: &engine,
        net: &net,
        task: &task,
        recipe: &recipe,
        streams: &streams,
        planted: None,
    };
    let build = |name: &str, structure: Option<&str>| {
        let mut params = ticketbench::methods::Params::new();
        if let Some(s) = structure {
            params.insert("structure".into(), s.into());
        }
        ticketbench::methods::build(name, &params).unwrap()
    };
    for name in ["magnitude", "snip", "synflow", "random", "grasp"] {
        let element = setup.prune(build(name, None).as_ref(), 0.3).unwrap();
        let channel = setup
            .prune(build(name, Some("channel")).as_ref(), 0.3)
            .unwrap();
        assert_eq!(
            channel.mask.layer_kept(),
            element.mask.layer_kept(),
            "{name}"
        );
        assert_ne!(
            channel.mask, element.mask,
            "{name}: the conv layers changed"
        );
        for (l, shape) in net.shapes().iter().enumerate() {
            if shape.dims.len() == 4 {
                let partial = channel
                    .mask
                    .layer(l)
                    .chunks(shape.fan_in())
                    .filter(|c| c.iter().any(|&b| b) && !c.iter().all(|&b| b))
                    .count();
                assert!(partial <= 1, "{name} layer {l}: {partial} partial channels");
            } else {
                assert_eq!(
                    channel.mask.layer(l),
                    element.mask.layer(l),
                    "{name} layer {l}"
                );
            }
        }
    }
    let parse = |name: &str, structure: &str| {
        let params = serde_json::json!({ "structure": structure });
        ticketbench::methods::build(name, params.as_object().unwrap())
            .err()
            .map(|e| e.to_string())
    };
    assert!(
        parse("rigl", "channel")
            .unwrap()
            .contains("trains its own ticket")
    );
    assert!(
        parse("dense", "channel")
            .unwrap()
            .contains("does not prune")
    );
    assert!(
        parse("biprop", "channel")
            .unwrap()
            .contains("computed from its own mask")
    );
    assert!(
        parse("snip", "rows")
            .unwrap()
            .contains("`element` (the default) or `channel`")
    );
    assert!(parse("snip", "element").is_none());
}
