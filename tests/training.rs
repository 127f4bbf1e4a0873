//! Masked training on every CPU backend: pruned weights stay exactly zero through every
//! optimiser step, unpruned weights change, gradients are right, divergence is caught.

use ticketbench::device::DeviceSpec;
use ticketbench::engine::{Engine, Kernel};
use ticketbench::train::{Optimizer, TrainRecipe};
use ticketbench_baselines::random_ticket;
use ticketbench_core::{InitScheme, Mask, Network, Streams};
use ticketbench_planted::{Dataset, OutputKind, Targets, tasks};

fn devices() -> Vec<DeviceSpec> {
    let mut d = vec![DeviceSpec::Cpu];
    if cfg!(feature = "ndarray") {
        d.push(DeviceSpec::NdArray);
    }
    d
}

fn circle(samples: usize) -> ticketbench_planted::TaskData {
    let p = serde_json::json!({"samples": samples});
    tasks::build("circle", p.as_object().unwrap())
        .unwrap()
        .generate(&Streams::new(0))
}

#[test]
fn masked_weights_stay_zero_and_unmasked_weights_change() {
    let data = circle(1000);
    let streams = Streams::new(4);
    let net = Network::mlp(&[2, 32, 32, 4], true, InitScheme::KaimingUniform, &streams).unwrap();
    let shapes = net.shapes();
    let mask = random_ticket(&shapes, &[19, 307, 38], &streams, "test");
    let recipes = [
        TrainRecipe {
            optimizer: Optimizer::Sgd,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 1e-3,
            epochs: 2,
            batch_size: 16,
        },
        TrainRecipe {
            optimizer: Optimizer::Adam,
            lr: 1e-2,
            momentum: 0.0,
            weight_decay: 1e-3,
            epochs: 2,
            batch_size: 16,
        },
    ];
    for device in devices() {
        let engine = Engine::new(device).unwrap();
        let uploaded = engine.upload(data.clone());
        for recipe in &recipes {
            let out = engine
                .train(&net, &mask, &uploaded, recipe, &streams, &mut |_| {})
                .unwrap();
            assert!(out.diverged.is_none());
            assert_eq!(out.steps, 2 * 900usize.div_ceil(16));
            let (mut kept, mut changed) = (0, 0);
            for ((before, after), keep) in net.layers.iter().zip(&out.net.layers).zip(mask.layers())
            {
                for ((&w0, &w1), &k) in before.weight.iter().zip(&after.weight).zip(keep) {
                    if k {
                        kept += 1;
                        changed += (w0 != w1) as usize;
                    } else {
                        assert_eq!(
                            w1, 0.0,
                            "{device} {:?}: a pruned weight moved to {w1}",
                            recipe.optimizer
                        );
                    }
                }
                assert_ne!(before.bias, after.bias, "biases train");
            }
            assert!(
                changed as f64 > 0.8 * kept as f64,
                "{device} {:?}: only {changed} of {kept} kept weights changed",
                recipe.optimizer
            );
        }
    }
}

#[test]
fn training_learns_circle_and_is_deterministic() {
    let data = circle(3000);
    let streams = Streams::new(1);
    let net = Network::mlp(&[2, 64, 64, 4], true, InitScheme::KaimingNormal, &streams).unwrap();
    let mask = Mask::dense(&net.shapes());
    let recipe = TrainRecipe {
        epochs: 5,
        lr: 3e-3,
        ..TrainRecipe::default()
    };
    for device in devices() {
        let engine = Engine::new(device).unwrap();
        let uploaded = engine.upload(data.clone());
        let before = engine.evaluate(&net, &mask, &uploaded).unwrap();
        let a = engine
            .train(&net, &mask, &uploaded, &recipe, &streams, &mut |_| {})
            .unwrap();
        let b = engine
            .train(&net, &mask, &uploaded, &recipe, &streams, &mut |_| {})
            .unwrap();
        assert_eq!(a.net, b.net, "{device}: same seed, same bytes");
        let after = engine.evaluate(&a.net, &mask, &uploaded).unwrap();
        assert!(
            after.accuracy.unwrap() > 0.8 && after.accuracy > before.accuracy,
            "{device}: {before:?} -> {after:?}"
        );
        assert!(a.epoch_losses.first() > a.epoch_losses.last());
    }
}

/// Mean-squared-error of the host forward pass in f64 (the reference for gradients).
fn host_mse(net: &Network, x: &[f32], y: &[f32], n: usize) -> f64 {
    let (din, dout) = (net.widths()[0], *net.widths().last().unwrap());
    (0..n)
        .map(|i| {
            let input: Vec<f64> = x[i * din..(i + 1) * din]
                .iter()
                .map(|&v| v as f64)
                .collect();
            let out = net.forward_f64(&input);
            out.iter()
                .zip(&y[i * dout..(i + 1) * dout])
                .map(|(o, &t)| (o - t as f64).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / (n * dout) as f64
}

#[test]
fn loss_gradients_match_finite_differences() {
    let streams = Streams::new(7);
    let net = Network::mlp(&[3, 5, 2], true, InitScheme::KaimingUniform, &streams).unwrap();
    let x: Vec<f32> = vec![
        0.5, -1.0, 0.25, 1.0, 0.3, -0.7, -0.2, 0.8, 0.9, 0.1, -0.4, 0.6,
    ];
    let y: Vec<f32> = vec![0.3, -0.2, 1.0, 0.5, -0.5, 0.1, 0.2, 0.2];
    let batch = Dataset {
        inputs: x.clone(),
        input_dim: 3,
        targets: Targets::Values {
            values: y.clone(),
            dim: 2,
        },
    };
    let mask = Mask::dense(&net.shapes());
    for device in devices() {
        let grads = Engine::new(device)
            .unwrap()
            .loss_gradients(&net, &mask, &batch, OutputKind::Regression(2))
            .unwrap();
        for (l, layer) in net.layers.iter().enumerate() {
            assert_eq!(grads[l].len(), layer.weight.len(), "{device} layer {l}");
            for (i, &grad) in grads[l].iter().enumerate() {
                let h = 1e-3f32;
                let (mut plus, mut minus) = (net.clone(), net.clone());
                plus.layers[l].weight[i] += h;
                minus.layers[l].weight[i] -= h;
                let fd =
                    (host_mse(&plus, &x, &y, 4) - host_mse(&minus, &x, &y, 4)) / (2.0 * h as f64);
                let g = grad as f64;
                assert!(
                    (g - fd).abs() < 1e-3 + 1e-2 * fd.abs(),
                    "{device} layer {l} weight {i}: {g} vs {fd}"
                );
            }
        }
    }
}

#[test]
fn pruned_weights_get_zero_gradient() {
    let streams = Streams::new(3);
    let net = Network::mlp(&[2, 8, 4], true, InitScheme::KaimingNormal, &streams).unwrap();
    let mask = random_ticket(&net.shapes(), &[5, 9], &streams, "m");
    let data = circle(200);
    let grads = Engine::new(DeviceSpec::Cpu)
        .unwrap()
        .loss_gradients(&net, &mask, &data.train, data.output)
        .unwrap();
    for (g, keep) in grads.iter().zip(mask.layers()) {
        assert!(g.iter().zip(keep).all(|(&g, &k)| k || g == 0.0));
    }
}

#[test]
fn a_nan_loss_is_reported_as_divergence() {
    let p = serde_json::json!({"samples": 500});
    let data = tasks::build("relu", p.as_object().unwrap())
        .unwrap()
        .generate(&Streams::new(0));
    let streams = Streams::new(0);
    let net = Network::mlp(&[1, 16, 1], true, InitScheme::KaimingNormal, &streams).unwrap();
    let engine = Engine::new(DeviceSpec::Cpu).unwrap();
    let recipe = TrainRecipe {
        optimizer: Optimizer::Sgd,
        lr: 1e12,
        epochs: 3,
        ..TrainRecipe::default()
    };
    let out = engine
        .train(
            &net,
            &Mask::dense(&net.shapes()),
            &engine.upload(data.clone()),
            &recipe,
            &streams,
            &mut |_| {},
        )
        .unwrap();
    let d = out.diverged.expect("lr 1e12 must diverge");
    assert!(!d.loss.is_finite());
    assert_eq!(out.steps, d.step);
}

/// A hook that does nothing: sends `--device cpu` training through the burn loop instead of
/// the native step, so the two can be compared.
struct BurnLoop;
impl ticketbench::train::TrainHook for BurnLoop {}

#[test]
fn native_cpu_step_matches_the_burn_loop() {
    let relu = tasks::build(
        "relu",
        serde_json::json!({"samples": 600}).as_object().unwrap(),
    )
    .unwrap()
    .generate(&Streams::new(0));
    let engine = Engine::new(DeviceSpec::Cpu).unwrap();
    let streams = Streams::new(3);
    let sgd = TrainRecipe {
        optimizer: Optimizer::Sgd,
        lr: 0.05,
        momentum: 0.0,
        weight_decay: 0.0,
        epochs: 2,
        batch_size: 16,
    };
    let recipes = [
        sgd.clone(),
        TrainRecipe {
            momentum: 0.9,
            weight_decay: 1e-3,
            ..sgd.clone()
        },
        TrainRecipe {
            optimizer: Optimizer::Adam,
            lr: 1e-2,
            weight_decay: 1e-3,
            ..sgd
        },
    ];
    // Cross-entropy (Circle, 4 classes) and MSE (ReLU regression); a ragged last batch.
    for (data, widths) in [(circle(1000), [2, 32, 32, 4]), (relu, [1, 32, 32, 1])] {
        let net = Network::mlp(&widths, true, InitScheme::KaimingUniform, &streams).unwrap();
        let shapes = net.shapes();
        let counts: Vec<usize> = shapes.iter().map(|s| s.len() * 3 / 10).collect();
        let mask = random_ticket(&shapes, &counts, &streams, "test");
        let uploaded = engine.upload(data.clone());
        for recipe in &recipes {
            let native = engine
                .train(&net, &mask, &uploaded, recipe, &streams, &mut |_| {})
                .unwrap();
            let burn = engine
                .train_with_hook(
                    &net,
                    &mask,
                    &uploaded,
                    recipe,
                    &streams,
                    &mut |_| {},
                    &mut BurnLoop,
                )
                .unwrap();
            assert_eq!(native.steps, burn.steps);
            for (a, b) in native.epoch_losses.iter().zip(&burn.epoch_losses) {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1e-3),
                    "{recipe:?}: loss {a} vs {b}"
                );
            }
            for (a, b) in native.net.layers.iter().zip(&burn.net.layers) {
                for (x, y) in a.weight.iter().zip(&b.weight) {
                    assert!((x - y).abs() <= 1e-4, "{recipe:?}: weight {x} vs {y}");
                }
                for (x, y) in a.bias.iter().flatten().zip(b.bias.iter().flatten()) {
                    assert!((x - y).abs() <= 1e-4, "{recipe:?}: bias {x} vs {y}");
                }
            }
        }
    }
}

#[test]
fn native_cpu_training_is_bit_identical_for_any_thread_count() {
    // Wide enough that the GEMMs are cut into blocks (column blocks in the shards' products,
    // row blocks in the 512 → 256 layer's weight gradient) and the updates into chunks.
    let data = tasks::build(
        "gaussian",
        serde_json::json!({"inputs": 256, "classes": 10, "samples": 512})
            .as_object()
            .unwrap(),
    )
    .unwrap()
    .generate(&Streams::new(0));
    let streams = Streams::new(5);
    let net = Network::mlp(
        &[256, 512, 256, 10],
        true,
        InitScheme::KaimingNormal,
        &streams,
    )
    .unwrap();
    let mask = Mask::dense(&net.shapes());
    let recipe = TrainRecipe {
        batch_size: 128,
        epochs: 1,
        ..TrainRecipe::default()
    };
    let sparse_mask = random_ticket(&net.shapes(), &[2621, 2621, 51], &streams, "test");
    for (kernel, mask) in [(Kernel::Dense, &mask), (Kernel::Sparse, &sparse_mask)] {
        let engine = Engine::new(DeviceSpec::Cpu).unwrap().with_kernel(kernel);
        let uploaded = engine.upload(data.clone());
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    engine
                        .train(&net, mask, &uploaded, &recipe, &streams, &mut |_| {})
                        .unwrap()
                        .net
                })
        };
        let one = run(1);
        assert_eq!(run(2), one, "{kernel:?}");
        assert_eq!(run(3), one, "{kernel:?}");
    }
}

#[test]
fn sparse_and_dense_kernels_train_the_same_ticket() {
    let data = circle(1000);
    let streams = Streams::new(6);
    let net = Network::mlp(&[2, 64, 64, 4], true, InitScheme::KaimingUniform, &streams).unwrap();
    let mask = random_ticket(&net.shapes(), &[64, 205, 128], &streams, "test");
    let recipe = TrainRecipe {
        epochs: 2,
        lr: 1e-2,
        ..TrainRecipe::default()
    };
    let trained = |kernel| {
        let engine = Engine::new(DeviceSpec::Cpu).unwrap().with_kernel(kernel);
        let uploaded = engine.upload(data.clone());
        engine
            .train(&net, &mask, &uploaded, &recipe, &streams, &mut |_| {})
            .unwrap()
    };
    let (dense, sparse) = (trained(Kernel::Dense), trained(Kernel::Sparse));
    for (a, b) in dense.epoch_losses.iter().zip(&sparse.epoch_losses) {
        assert!((a - b).abs() <= 1e-5 * b.abs(), "loss {a} vs {b}");
    }
    for ((a, b), keep) in dense
        .net
        .layers
        .iter()
        .zip(&sparse.net.layers)
        .zip(mask.layers())
    {
        for ((x, y), &k) in a.weight.iter().zip(&b.weight).zip(keep) {
            assert!((x - y).abs() <= 1e-5, "weight {x} vs {y}");
            if !k {
                assert_eq!((*x, *y), (0.0, 0.0), "a pruned weight moved");
            }
        }
        assert_eq!(a.bias.is_some(), b.bias.is_some());
        for (x, y) in a.bias.iter().flatten().zip(b.bias.iter().flatten()) {
            assert!((x - y).abs() <= 1e-5, "bias {x} vs {y}");
        }
    }
}
