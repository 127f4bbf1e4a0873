//! Report generation from 10⁴ results (`cargo bench --bench report`): loading a results
//! file, computing every table and the leaderboard, and writing Markdown, LaTeX and CSV.
//! Throughput is in results per second.
//!
//! The 10,000 records are built from tests/data/records.jsonl: 25 tasks × 25 seeds ×
//! (dense + random at the uniform and ERK rules + magnitude, each at 5 densities), with
//! deterministic metric jitter so every cell has a spread.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use ticketbench::report::{self, Format, ReportOptions};

const TEMPLATES: &str = include_str!("../tests/data/records.jsonl");
const DENSITIES: [f64; 5] = [0.5, 0.2, 0.1, 0.05, 0.02];

/// A jitter in [−0.05, 0.05) from the record's coordinates (blake3, so it is reproducible).
fn jitter(key: &str) -> f64 {
    let h = blake3::hash(key.as_bytes());
    let v = u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap());
    (v as f64 / u64::MAX as f64 - 0.5) * 0.1
}

fn records() -> Vec<Value> {
    let templates: Vec<Value> = TEMPLATES
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let dense = &templates[0];
    let mut magnitude = templates[1].clone();
    magnitude["method"] = json!("magnitude");
    magnitude["method_label"] = json!("magnitude");
    magnitude["ratio_rule"] = Value::Null;
    let pruned = [&templates[1], &templates[3], &magnitude];
    let mut out = Vec::with_capacity(10_000);
    for task in 0..25 {
        for seed in 0..25u64 {
            let cells = std::iter::once((dense, 1.0))
                .chain(pruned.iter().flat_map(|t| DENSITIES.map(|d| (*t, d))));
            for (template, density) in cells {
                let mut r = template.clone();
                let label = format!("circle[t={task}]");
                let key = format!("{label}/{}/{density}/{seed}", r["method_label"]);
                r["task_label"] = json!(label);
                r["density"] = json!(density);
                r["seed"] = json!(seed);
                r["settings_hash"] = json!(blake3::hash(key.as_bytes()).to_hex()[..16]);
                r["provenance"]["grid_index"] = json!(out.len());
                let acc = r["metrics"]["test_acc"].as_f64().unwrap() + jitter(&key);
                r["metrics"]["test_acc"] = json!(acc.clamp(0.0, 1.0));
                out.push(r);
            }
        }
    }
    out
}

fn report_generation(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    let mut file = std::fs::File::create(results.join("results.jsonl")).unwrap();
    let records = records();
    for r in &records {
        writeln!(file, "{r}").unwrap();
    }
    drop(file);
    let dirs: Vec<PathBuf> = vec![results];
    let out = dir.path().join("report");

    let mut group = c.benchmark_group("report/1e4");
    group.sample_size(10);
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("load+markdown", |b| {
        b.iter(|| black_box(report::write_report(&dirs, &out).unwrap()))
    });
    let opts = ReportOptions {
        formats: vec![Format::Md, Format::Tex, Format::Csv],
        history: None,
        record_history: false,
        commit: None,
        date: None,
    };
    group.bench_function("load+md,tex,csv", |b| {
        b.iter(|| black_box(report::write_reports(&dirs, &out, &opts).unwrap().files))
    });
    group.finish();
}

criterion_group!(benches, report_generation);
criterion_main!(benches);
