//! Pruning costs (`cargo bench --bench pruning`): SynFlow (100 rounds), SNIP and GraSP
//! scoring on LeNet-300-100, one IMP round (dense training + prune + rewind) on a planted
//! task, the external-method protocol on LeNet-300-100 (a no-op plugin and numpy SNIP), and
//! Plant 'n' Seek planting of the largest host in suites/plant-n-seek.yaml.
//! Throughput is in prunable weights per second (criterion `Throughput::Elements`).
//! Compare runs with `--save-baseline NAME` then `--baseline NAME` (docs/performance.md).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use ticketbench::device::DeviceSpec;
use ticketbench::engine::Engine;
use ticketbench::methods::{self, MethodCache, PruneContext, PruneOutcome, Pruner};
use ticketbench::train::TrainRecipe;
use ticketbench_core::{Density, InitScheme, Network, Streams};
use ticketbench_planted::tasks::{self, Task};
use ticketbench_planted::{PlantedTicket, TaskData, plant_pns};

/// A task, θ_0 on its widths, and what every method's context borrows.
struct Fixture {
    engine: Engine,
    task: TaskData,
    net: Network,
    recipe: TrainRecipe,
    streams: Streams,
    planted: Option<PlantedTicket>,
}

impl Fixture {
    fn prune(&self, method: &dyn Pruner, density: f64) -> PruneOutcome {
        let data = self.engine.upload(self.task.clone());
        let (mut trained, mut cache) = (None, MethodCache::new());
        let mut ctx = PruneContext {
            engine: &self.engine,
            net: &self.net,
            data: &data,
            recipe: &self.recipe,
            streams: &self.streams,
            trained_dense: &mut trained,
            cache: &mut cache,
            progress: &mut |_| {},
            planted: self.planted.as_ref(),
            job: Default::default(),
        };
        method
            .prune(&mut ctx, Density::new(density).unwrap())
            .unwrap()
    }
}

fn task(name: &str, params: serde_json::Value) -> Box<dyn Task> {
    tasks::build(name, params.as_object().unwrap()).unwrap()
}

/// The largest host of suites/plant-n-seek.yaml (2/1-100-100-100-out, He-scaled) with the
/// `task`'s depth-5 target planted.
fn planted_host(task: &dyn Task, streams: &Streams) -> PlantedTicket {
    let widths = [task.input_dim(), 100, 100, 100, task.output().dim()];
    let host = Network::mlp(&widths, true, InitScheme::HeScaled, streams).unwrap();
    plant_pns(&task.target(widths.len()).unwrap(), host).unwrap()
}

fn scoring(c: &mut Criterion) {
    let streams = Streams::new(0);
    let lenet = task(
        "gaussian",
        serde_json::json!({"inputs": 784, "classes": 10, "samples": 2000}),
    );
    let fixture = Fixture {
        engine: Engine::new(DeviceSpec::Cpu).unwrap(),
        task: lenet.generate(&streams),
        net: Network::mlp(
            &[784, 300, 100, 10],
            true,
            InitScheme::KaimingNormal,
            &streams,
        )
        .unwrap(),
        recipe: TrainRecipe::default(),
        streams,
        planted: None,
    };
    let mut group = c.benchmark_group("score/lenet-300-100");
    group.sample_size(10);
    group.throughput(Throughput::Elements(fixture.net.num_prunable() as u64));
    for (name, params) in [
        ("synflow", serde_json::json!({"rounds": 100})),
        ("snip", serde_json::json!({})),
        ("grasp", serde_json::json!({})),
    ] {
        let method = methods::build(name, params.as_object().unwrap()).unwrap();
        group.bench_function(format!("{name}/d0.1"), |b| {
            b.iter(|| black_box(fixture.prune(method.as_ref(), 0.1)))
        });
    }
    group.finish();
    external_protocol(c, &fixture);
}

/// The external-method protocol on the LeNet-300-100 fixture (docs/external-methods.md,
/// "Overhead"): `floor` (python/examples/floor.py: a mask of the first k weights, no scoring)
/// is the protocol's own cost per job, `numpy-snip` the same SNIP as the built-in one through
/// the protocol. One persistent plugin process serves every iteration, as a worker thread's
/// does in a run; its start-up falls in criterion's warm-up. Needs python3 with numpy and
/// safetensors; without them the group is skipped with a note.
fn external_protocol(c: &mut Criterion, fixture: &Fixture) {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import numpy, safetensors"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("external/lenet-300-100 skipped: python3 with numpy and safetensors not on PATH");
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let mut group = c.benchmark_group("external/lenet-300-100");
    group.sample_size(20);
    group.throughput(Throughput::Elements(fixture.net.num_prunable() as u64));
    for (label, script, data) in [
        ("floor", "floor.py", "none"),
        ("numpy-snip", "snip.py", "scoring-batch"),
    ] {
        let params = serde_json::json!({
            "label": label,
            "command": format!("python3 python/examples/{script}"),
            "data": data,
            methods::EXTERNAL_SUITE_DIR_KEY: root,
        });
        let method = methods::build("external", params.as_object().unwrap()).unwrap();
        group.bench_function(format!("{label}/d0.1"), |b| {
            b.iter(|| black_box(fixture.prune(method.as_ref(), 0.1)))
        });
    }
    group.finish();
}

fn imp_round(c: &mut Criterion) {
    let streams = Streams::new(0);
    let circle = task("circle", serde_json::json!({}));
    let planted = planted_host(circle.as_ref(), &streams);
    let fixture = Fixture {
        engine: Engine::new(DeviceSpec::Cpu).unwrap(),
        task: circle.generate(&streams),
        net: planted.host.clone(),
        // One epoch of the Plant 'n' Seek recipe (Adam 1e-3, batch 32) per IMP level.
        recipe: TrainRecipe {
            epochs: 1,
            ..TrainRecipe::default()
        },
        streams,
        planted: Some(planted),
    };
    let imp = methods::build("imp", &Default::default()).unwrap();
    let mut group = c.benchmark_group("imp");
    group.sample_size(10);
    group.throughput(Throughput::Elements(fixture.net.num_prunable() as u64));
    // Density 0.8 = one level: train dense from θ_0, drop 20 % by |θ_T|, rewind to θ_0.
    group.bench_function("round/circle/pns-host-5x100/1-epoch", |b| {
        b.iter(|| black_box(fixture.prune(imp.as_ref(), 0.8)))
    });
    group.finish();
}

fn planting(c: &mut Criterion) {
    let mut group = c.benchmark_group("plant");
    for name in ["relu", "circle", "helix"] {
        let t = task(name, serde_json::json!({}));
        let streams = Streams::new(0);
        let prunable = planted_host(t.as_ref(), &streams).host.num_prunable();
        group.throughput(Throughput::Elements(prunable as u64));
        group.bench_function(format!("pns/{name}/pns-host-5x100"), |b| {
            b.iter(|| black_box(planted_host(t.as_ref(), &streams)))
        });
    }
    group.finish();
}

criterion_group!(benches, scoring, imp_round, planting);
criterion_main!(benches);
