//! Training throughput (`cargo bench --bench train_step`): one epoch of masked training
//! (forward, loss, backward, SGD step; masks fixed), reported as optimiser steps per second
//! (criterion `Throughput::Elements` = steps), for LeNet-300-100 (batch 128) and a
//! planted-task host 2-1000-1000-4 (Circle, batch 64) at densities 1, 0.1 and 0.01.
//! Compare runs with `cargo bench -- --save-baseline main` then `--baseline main`.
//! Built with `--features cuda` on a machine with a GPU, the training step is also measured
//! on `cuda:0`. (SynFlow has no CUDA variant: it is computed on the host in f64 by design.)

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use ticketbench::bench::{sgd_epoch, uniform_ticket};
use ticketbench::device::DeviceSpec;
use ticketbench::engine::Engine;
use ticketbench_core::{Density, InitScheme, Network, Streams};
use ticketbench_planted::tasks;

/// The CPU backend, and with the `cuda` feature every CUDA device that opens.
fn engines() -> Vec<Engine> {
    let mut engines = vec![Engine::new(DeviceSpec::Cpu).unwrap()];
    if cfg!(feature = "cuda") {
        engines.extend((0..).map_while(|i| Engine::new(DeviceSpec::Cuda(i)).ok()));
    }
    engines
}

fn train_epoch(c: &mut Criterion) {
    // (name, widths, batch, task params)
    let nets = [
        (
            "planted-host-2-1000-1000-4",
            vec![2, 1000, 1000, 4],
            64usize,
            // 3,200 training examples: 50 steps per epoch.
            serde_json::json!({"samples": 3556}),
        ),
        (
            "lenet-300-100",
            vec![784, 300, 100, 10],
            128,
            serde_json::json!({"inputs": 784, "classes": 10, "samples": 12800}),
        ),
    ];
    let engines = engines();
    let mut group = c.benchmark_group("train_epoch");
    group.sample_size(10);
    for (name, widths, batch, params) in nets {
        let task = if widths[0] == 2 { "circle" } else { "gaussian" };
        let data = tasks::build(task, params.as_object().unwrap())
            .unwrap()
            .generate(&Streams::new(0));
        let streams = Streams::new(0);
        let net = Network::mlp(&widths, true, InitScheme::KaimingNormal, &streams).unwrap();
        let recipe = sgd_epoch(batch);
        let steps = data.train.len().div_ceil(batch) as u64;
        for density in [1.0, 0.1, 0.01] {
            let mask = uniform_ticket(&net, Density::new(density).unwrap(), &streams).unwrap();
            group.throughput(Throughput::Elements(steps));
            for engine in &engines {
                let uploaded = engine.upload(data.clone());
                let device = engine.spec();
                group.bench_function(format!("{name}/batch{batch}/d{density}/{device}"), |b| {
                    b.iter(|| {
                        black_box(
                            engine
                                .train(&net, &mask, &uploaded, &recipe, &streams, &mut |_| {})
                                .unwrap(),
                        )
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, train_epoch);
criterion_main!(benches);
