//! End to end through the binary: run, resume, determinism, report, list, ratios, prune.

mod common;

use common::{ok, records, ticketbench};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn tiny() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tiny.yaml")
        .display()
        .to_string()
}

fn run_tiny(out: &Path) -> String {
    ok(ticketbench(&[
        "run",
        &tiny(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]))
}

/// 2 tasks × 2 seeds × (dense once + 5 methods × 2 densities).
const TINY_JOBS: usize = 2 * 2 * (1 + 5 * 2);

#[test]
fn run_is_deterministic_resumable_and_reported() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let stdout = run_tiny(a.path());
    run_tiny(b.path());

    let ra = records(a.path());
    assert_eq!(ra.len(), TINY_JOBS);
    assert_eq!(
        ra,
        records(b.path()),
        "same suite and seeds must give identical results"
    );

    // Result fields the issue names.
    let first = &ra[0];
    for key in [
        "suite",
        "task",
        "model",
        "method",
        "ratio_rule",
        "density",
        "seed",
        "device",
        "settings_hash",
        "metrics",
        "layer_densities",
        "version",
    ] {
        assert!(first.get(key).is_some(), "missing field {key}");
    }
    for r in &ra {
        let kept = r["kept"].as_f64().unwrap();
        let total = r["total"].as_f64().unwrap();
        let d = r["density"].as_f64().unwrap();
        assert_eq!(kept, (d * total + 0.5).floor(), "{r}");
        assert_eq!(r["status"], "ok");
        let m = &r["metrics"];
        match r["task"].as_str().unwrap() {
            "circle" => assert!(m["test_acc"].as_f64().unwrap() > 0.0),
            _ => assert!(m["test_loss"].as_f64().unwrap().is_finite()),
        }
    }
    let hashes: std::collections::HashSet<&str> = ra
        .iter()
        .map(|r| r["settings_hash"].as_str().unwrap())
        .collect();
    assert_eq!(
        hashes.len(),
        TINY_JOBS,
        "settings hashes must be unique per job"
    );

    // The report: printed and written, one table per task, best per column in bold.
    let report = std::fs::read_to_string(a.path().join("report.md")).unwrap();
    assert_eq!(stdout.trim(), report.trim());
    assert!(
        report.contains("## circle[samples=600] · mlp-16x16 · cpu")
            && report.contains("## relu[samples=600] · mlp-16x16 · cpu"),
        "{report}"
    );
    assert!(
        report.contains("| method ")
            && report.contains("**")
            && report.contains("synflow[rounds=20]"),
        "{report}"
    );

    // Rerunning skips every recorded job and appends nothing.
    let before = std::fs::read_to_string(a.path().join("results.jsonl")).unwrap();
    let out = ticketbench(&["run", &tiny(), "--out", a.path().to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!(
        "{TINY_JOBS} jobs, 0 run, {TINY_JOBS} already recorded"
    )));
    assert_eq!(
        before,
        std::fs::read_to_string(a.path().join("results.jsonl")).unwrap()
    );
}

#[test]
fn a_truncated_last_line_is_skipped_and_its_job_rerun() {
    let dir = tempfile::tempdir().unwrap();
    run_tiny(dir.path());
    let path = dir.path().join("results.jsonl");
    let full = std::fs::read_to_string(&path).unwrap();
    // Simulate a kill in the middle of writing the last record.
    let cut = full.trim_end().rfind('\n').unwrap() + 1 + 40;
    std::fs::write(&path, &full[..cut]).unwrap();

    let out = ticketbench(&[
        "run",
        &tiny(),
        "--out",
        dir.path().to_str().unwrap(),
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipped unreadable result line"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{TINY_JOBS} jobs, 1 run")),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let good = text
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok())
        .count();
    assert_eq!(good, TINY_JOBS);
    assert_eq!(
        text.lines().count(),
        TINY_JOBS + 1,
        "the fragment stays on its own line"
    );
}

#[test]
fn report_merges_directories() {
    let dir = tempfile::tempdir().unwrap();
    run_tiny(dir.path());
    let out = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // The same directory twice: records are deduplicated by settings hash.
    let text = ok(ticketbench(&[
        "report",
        d,
        d,
        "--out",
        out.path().to_str().unwrap(),
    ]));
    assert!(text.contains(&format!("{TINY_JOBS} results")), "{text}");
    assert!(out.path().join("report.md").exists());
}

#[test]
fn list_json_names_every_method_with_a_citation() {
    let v: Value = serde_json::from_str(&ok(ticketbench(&["list", "--json"]))).unwrap();
    let names: Vec<&str> = v["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    // The names, plus the two references.
    let mut want = vec![
        "imp",
        "magnitude",
        "random",
        "snip",
        "grasp",
        "synflow",
        "prospr",
        "phew",
        "edge-popup",
        "gem-miner",
        "biprop",
        "ga",
        "early-bird",
        "set",
        "rigl",
        "granet",
        "dense",
        "planted",
        "external",
    ];
    let mut sorted = names.clone();
    sorted.sort();
    want.sort();
    assert_eq!(sorted, want);
    let families = [
        "reference",
        "at-init",
        "after-training",
        "iterative",
        "strong",
        "dynamic",
    ];
    for m in v["methods"].as_array().unwrap() {
        assert!(
            !m["citation"].as_str().unwrap().is_empty()
                && families.contains(&m["family"].as_str().unwrap())
                && m["data"].is_string(),
            "{m}"
        );
    }
    let rules: Vec<&str> = v["ratio_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        vec![
            "uniform",
            "uniform-plus",
            "er",
            "erk",
            "smart-ratio",
            "igq",
            "lamp"
        ]
    );
    assert!(
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "circle" && t["inputs"] == 2)
    );
    assert!(!ok(ticketbench(&["list"])).is_empty());
}

#[test]
fn ratios_json_matches_the_worked_numbers() {
    let v: Value = serde_json::from_str(&ok(ticketbench(&[
        "ratios",
        "--rule",
        "erk",
        "--widths",
        "784,300,100,10",
        "--density",
        "0.1",
        "--json",
    ])))
    .unwrap();
    let counts: Vec<u64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![18714, 6906, 1000]);
    assert!((v[0]["density"].as_f64().unwrap() - 0.079568).abs() < 1e-6);
}

fn load_ticket(dir: &Path) -> (Vec<u8>, PathBuf) {
    let path = dir.join("ticket.safetensors");
    (std::fs::read(&path).unwrap(), path)
}

/// `prune` SynFlow on LeNet-300-100 at density 0.01, seed 3, into `dir`.
fn prune_lenet_synflow(dir: &Path) {
    let args = [
        "prune",
        "--method",
        "synflow",
        "--widths",
        "784,300,100,10",
        "--density",
        "0.01",
        "--seed",
        "3",
    ];
    ok(ticketbench(
        &[&args[..], &["--export", dir.to_str().unwrap()]].concat(),
    ));
}

#[test]
fn prune_exports_safetensors_a_numpy_user_can_read() {
    let dir = tempfile::tempdir().unwrap();
    prune_lenet_synflow(dir.path());
    let (bytes, _) = load_ticket(dir.path());
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut kept = 0usize;
    for l in 0..3 {
        let mask = st.tensor(&format!("layers.{l}.mask")).unwrap();
        let weight = st.tensor(&format!("layers.{l}.weight")).unwrap();
        assert_eq!(mask.shape(), weight.shape());
        assert_eq!(weight.dtype(), safetensors::Dtype::F32);
        let layer_kept = mask.data().iter().filter(|&&b| b == 1).count();
        assert!(layer_kept > 0, "SynFlow emptied layer {l}");
        kept += layer_kept;
        assert!(st.tensor(&format!("layers.{l}.scores")).is_ok());
    }
    assert_eq!(st.tensor("layers.0.weight").unwrap().shape(), &[300, 784]);
    assert_eq!(kept, 2662); // round_half_up(0.01 · 266200)
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("ticket.json")).unwrap())
            .unwrap();
    assert_eq!(summary["kept"], 2662);
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta: Value =
        serde_json::from_str(&header.metadata().as_ref().unwrap()["ticketbench"]).unwrap();
    assert_eq!(meta["method"], "synflow");

    // Same seed, same bytes; a data-dependent method runs on the default Gaussian data.
    let again = tempfile::tempdir().unwrap();
    prune_lenet_synflow(again.path());
    assert!(
        bytes == load_ticket(again.path()).0,
        "same seed must give the same bytes"
    );
    let snip = tempfile::tempdir().unwrap();
    ok(ticketbench(&[
        "prune",
        "--method",
        "snip",
        "--widths",
        "20,8,3",
        "--density",
        "0.3",
        "--export",
        snip.path().to_str().unwrap(),
    ]));
    let rnd = tempfile::tempdir().unwrap();
    ok(ticketbench(&[
        "prune",
        "--method",
        "random",
        "--param",
        "rule=erk",
        "--widths",
        "20,8,3",
        "--density",
        "0.3",
        "--export",
        rnd.path().to_str().unwrap(),
    ]));
}

#[test]
fn diverged_jobs_are_recorded_reported_and_not_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/diverge.yaml");
    let (suite, d) = (suite.to_str().unwrap(), dir.path().to_str().unwrap());
    let report = ok(ticketbench(&["run", suite, "--out", d]));
    let recs = records(dir.path());
    assert_eq!(recs.len(), 4);
    for r in &recs {
        assert_eq!(r["status"], "diverged", "{r}");
        assert!(r["metrics"]["diverged"]["step"].is_u64());
    }
    assert!(report.contains("diverged (2)"), "{report}");
    let out = ticketbench(&["run", suite, "--out", d]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("4 jobs, 0 run, 4 already recorded"));
}

#[test]
fn bench_step_reports_steps_per_second() {
    let out = ok(ticketbench(&[
        "bench-step",
        "--widths",
        "20,16,4",
        "--batch",
        "8",
        "--density",
        "0.5",
        "--steps",
        "5",
        "--warmup",
        "2",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["steps"], 5);
    assert_eq!(v["widths"], serde_json::json!([20, 16, 4]));
    // Exact-k: half of the 20·16 + 16·4 = 384 weights.
    assert_eq!(
        (v["kept"].as_u64(), v["total"].as_u64()),
        (Some(192), Some(384))
    );
    let rate = v["steps_per_s"].as_f64().unwrap();
    assert!(rate.is_finite() && rate > 0.0, "{v}");
    let seconds = v["seconds"].as_f64().unwrap();
    assert!((rate * seconds - 5.0).abs() < 1e-6, "{v}");
    // 2·8·(2·(20·16 + 16·4) + 16·4) flops per step.
    let gflops = v["gemm_gflops"].as_f64().unwrap();
    assert!((gflops * seconds / 5.0 - 13_312e-9).abs() < 1e-12, "{v}");
    for bad in [["--steps", "0"], ["--widths", "20,16,1"]] {
        let out = ticketbench(&["bench-step", bad[0], bad[1]]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}
