//! Training throughput (`cargo bench`): one epoch of masked training, reported as optimiser
//! steps per second (criterion `Throughput::Elements` = steps), and exact-k selection.
//! Compare runs with `cargo bench -- --save-baseline main` then `--baseline main`.
//! Built with `--features cuda` on a machine with a GPU, the training step is also measured
//! on `cuda:0`. (SynFlow has no CUDA variant: it is computed on the host in f64 by design.)

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use ticketbench::bench::{sgd_epoch, uniform_ticket};
use ticketbench::device::DeviceSpec;
use ticketbench::engine::Engine;
use ticketbench_core::select::{Keep, top_k_global};
use ticketbench_core::{Density, InitScheme, Network, Scores, Streams, sample_uniform};
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
            "planted-host-2-100-100-100-4",
            vec![2, 100, 100, 100, 4],
            32usize,
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
                let uploaded = engine.upload(&data);
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

fn exact_k(c: &mut Criterion) {
    let mut rng = Streams::new(0).stream("bench");
    let n = 1_000_000;
    let scores = Scores {
        layers: vec![(0..n).map(|_| sample_uniform(&mut rng, 0.0, 1.0)).collect()],
    };
    let mut group = c.benchmark_group("select");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("top_k_global/1e6/d0.1", |b| {
        b.iter(|| black_box(top_k_global(&scores, n / 10, None, Keep::Highest).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, train_epoch, exact_k);
criterion_main!(benches);
