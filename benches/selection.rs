//! Selection costs on 10⁷ weights (`cargo bench --bench selection`): every layerwise ratio
//! rule's keep counts, and exact-k selection (global and per layer) of 10⁷ scores.
//! Throughput is in weights (scores) per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use ticketbench_baselines::ratios::{RULES, RuleInput};
use ticketbench_core::select::{Keep, top_k_global, top_k_per_layer};
use ticketbench_core::{Density, InitScheme, Network, Scores, Streams, sample_uniform};

/// 1000-5000-1000-10: 10,010,000 prunable weights in three layers.
const WIDTHS: [usize; 4] = [1000, 5000, 1000, 10];

fn selection(c: &mut Criterion) {
    let streams = Streams::new(0);
    let net = Network::mlp(&WIDTHS, true, InitScheme::KaimingNormal, &streams).unwrap();
    let n = net.num_prunable();
    let density = Density::new(0.1).unwrap();

    let mut group = c.benchmark_group("ratio_rule/1e7");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    for info in RULES {
        let rule = (info.build)();
        group.bench_function(format!("{}/d0.1", info.name), |b| {
            b.iter(|| black_box(rule.counts(RuleInput::Network(&net), density).unwrap()))
        });
    }
    group.finish();

    let mut rng = streams.stream("bench/scores");
    let scores = Scores {
        layers: net
            .shapes()
            .iter()
            .map(|s| {
                (0..s.len())
                    .map(|_| sample_uniform(&mut rng, 0.0, 1.0))
                    .collect()
            })
            .collect(),
    };
    let counts: Vec<usize> = net.shapes().iter().map(|s| s.len() / 10).collect();
    let mut group = c.benchmark_group("select/1e7");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("top_k_global/d0.1", |b| {
        b.iter(|| black_box(top_k_global(&scores, n / 10, None, Keep::Highest).unwrap()))
    });
    group.bench_function("top_k_per_layer/d0.1", |b| {
        b.iter(|| black_box(top_k_per_layer(&scores, &counts, Keep::Highest).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, selection);
criterion_main!(benches);
