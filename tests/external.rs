//! External methods end to end (docs/external-methods.md): a plugin on the bare protocol
//! (tests/plugins/raw_plugin.py, standard library only) in every way a plugin can fail, the
//! settings hash following the plugin's file, and the numpy plugins of python/examples/
//! agreeing with the built-in methods (suites/agreement.yaml).
//!
//! The plugins need `python3` on PATH; the agreement tests also numpy and safetensors. Where
//! they are missing the tests say so and pass, unless `TICKETBENCH_REQUIRE_PYTHON=1` (set by
//! `.ci/run`, which installs them), where a missing module fails the test.

mod common;

use common::{ok, records, records_by_hash};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const RAW_PLUGIN: &str = include_str!("plugins/raw_plugin.py");

/// Whether `python3` imports `modules`; `false` (with a note) lets a test skip.
fn python_has(modules: &str) -> bool {
    let probe = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output();
    let found = probe.is_ok_and(|o| o.status.success());
    if !found {
        let why = format!(
            "python3 with `{modules}` is not on PATH (pip install ./python numpy safetensors)"
        );
        assert!(
            std::env::var_os("TICKETBENCH_REQUIRE_PYTHON").is_none(),
            "{why}, and TICKETBENCH_REQUIRE_PYTHON is set"
        );
        eprintln!("skipped: {why}");
    }
    found
}

fn run(suite: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ticketbench"))
        .args([
            "run",
            suite.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap()
}

/// A suite in `dir` on a tiny task: `random` plus one external entry per raw-plugin mode.
fn raw_suite(dir: &Path, modes: &[&str], extra: &str) -> PathBuf {
    std::fs::write(dir.join("raw_plugin.py"), RAW_PLUGIN).unwrap();
    let mut methods = String::from("  - random\n");
    for mode in modes {
        methods.push_str(&format!(
            "  - {{name: external, label: raw-{mode}, command: \"python3 raw_plugin.py {mode}\", data: scoring-batch, timeout_s: 3}}\n"
        ));
    }
    let text = format!(
        "name: raw\ntasks: [circle]\nmodels:\n  - {{hidden: [8, 8]}}\nmethods:\n{methods}densities: [0.5, 0.1]\nseeds: 1\n{extra}train: {{epochs: 1, batch_size: 64}}\n"
    );
    let path = dir.join("suite.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn count_by_label(dir: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    if dir.join("results.jsonl").exists() {
        for r in records(dir) {
            *counts
                .entry(r["method_label"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    counts
}

#[test]
fn every_broken_plugin_fails_its_own_jobs_with_its_message_and_the_run_goes_on() {
    if !python_has("json") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // (mode, what the failure must say)
    let cases: &[(&str, &[&str])] = &[
        ("exit", &["refusing to start"]),
        ("crash", &["exited before answering", "about to crash on"]),
        (
            "hang",
            &["no answer within timeout_s = 3 s", "thinking forever"],
        ),
        (
            "orphan",
            &["no answer within timeout_s = 3 s", "child pid "],
        ),
        (
            "garbage",
            &["`hello from the plugin`", "write logs to stderr"],
        ),
        (
            "error",
            &["the plugin failed: this method does not like the request"],
        ),
        (
            "shape",
            &["layers.0.mask has shape [2, 8]; the layer's weights have shape [8, 2]"],
        ),
        (
            "count",
            &["mask.safetensors keeps 57 weights", "exactly 56"],
        ),
        (
            "nonbinary",
            &["layers.0.mask[0] is 2; a mask holds 0 (pruned) or 1 (kept)"],
        ),
        ("nan", &["layers.1.scores[3] is NaN; scores must be finite"]),
        (
            "missing",
            &["wrote neither mask.safetensors nor scores.safetensors"],
        ),
        ("badlog", &["log.json:1:2"]),
    ];
    // `twice` answers every request twice: its stray line must not become the next job's
    // answer; the worker is replaced and every job succeeds.
    let mut modes: Vec<&str> = vec!["ok", "scores", "twice"];
    modes.extend(cases.iter().map(|(m, _)| *m));
    let suite = raw_suite(dir.path(), &modes, "");
    let out = dir.path().join("results");
    let first = run(&suite, &out);
    let stderr = String::from_utf8_lossy(&first.stderr).to_string();
    assert!(
        !first.status.success(),
        "failed jobs fail the run:\n{stderr}"
    );

    // The good plugins and the built-in method ran all their jobs.
    let counts = count_by_label(&out);
    for label in ["random", "raw-ok", "raw-scores", "raw-twice"] {
        assert_eq!(counts.get(label), Some(&2), "{label}: {counts:?}\n{stderr}");
    }
    assert_eq!(
        counts.len(),
        4,
        "only good plugins have results: {counts:?}"
    );
    let recs = records(&out);
    let mask_of = |label: &str| -> Vec<String> {
        recs.iter()
            .filter(|r| r["method_label"] == label)
            .map(|r| r["mask_digest"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        mask_of("raw-ok"),
        mask_of("raw-scores"),
        "scores answered alone are ranked by ticketbench (keep lowest = the first weights)"
    );
    let ok_rec = recs.iter().find(|r| r["method_label"] == "raw-ok").unwrap();
    assert!(
        ok_rec["method_log"]["events"]["seen_seed"].is_number(),
        "the plugin's log is recorded"
    );
    assert_eq!(ok_rec["method"], "external");
    assert!(ok_rec["method_params"]["files"]["raw_plugin.py"].is_string());

    for (mode, needles) in cases {
        let label = format!("raw-{mode}");
        let failure: String = stderr
            .split("FAILED: ")
            .filter(|chunk| chunk.starts_with(&format!("external method `{label}`")))
            .collect();
        assert!(
            !failure.is_empty(),
            "no failure reported for {label}:\n{stderr}"
        );
        for needle in *needles {
            assert!(
                failure.contains(needle),
                "{label}: missing `{needle}` in\n{failure}"
            );
        }
        // The request directory is kept for debugging.
        let kept = failure
            .lines()
            .find_map(|l| l.trim().strip_prefix("request kept in "))
            .unwrap_or_else(|| panic!("{label}: no request directory named:\n{failure}"));
        assert!(Path::new(kept).join("request.json").is_file(), "{kept}");
        assert!(
            Path::new(kept).join("theta0.safetensors").is_file(),
            "{kept}"
        );
        assert!(
            Path::new(kept).join("scoring.safetensors").is_file(),
            "{kept}"
        );
        // A timeout kills what the plugin started too (its process group).
        for pid in failure.split("child pid ").skip(1) {
            let pid: String = pid.chars().take_while(char::is_ascii_digit).collect();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit(')').next().unwrap_or("").trim().chars().next();
            assert!(
                matches!(state, None | Some('Z' | 'X')),
                "{label}: the plugin's child {pid} still runs: {stat}"
            );
        }
    }

    // A rerun retries the failed jobs only.
    let again = run(&suite, &out);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains(&format!(
            "8 of {} jobs already recorded",
            2 * modes.len() + 2
        )),
        "{stderr}"
    );
    assert_eq!(count_by_label(&out), counts, "no job ran twice");
}

#[test]
fn editing_the_plugin_reruns_its_jobs_and_nothing_else() {
    if !python_has("json") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let suite = raw_suite(dir.path(), &["ok"], "");
    let out = dir.path().join("results");
    ok(run(&suite, &out));
    let before = count_by_label(&out);
    assert_eq!(before.get("raw-ok"), Some(&2));
    // Moving the checkout does not change the settings: the suite's directory is not hashed.
    let moved = tempfile::tempdir().unwrap();
    let moved_suite = raw_suite(moved.path(), &["ok"], "");
    ok(run(&moved_suite, &out));
    assert_eq!(
        count_by_label(&out),
        before,
        "a moved plugin reruns nothing"
    );

    let plugin = dir.path().join("raw_plugin.py");
    let mut text = std::fs::read_to_string(&plugin).unwrap();
    text.push_str("# edited\n");
    std::fs::write(&plugin, text).unwrap();
    let rerun = run(&suite, &out);
    let stderr = String::from_utf8_lossy(&rerun.stderr).to_string();
    ok(rerun);
    assert!(stderr.contains("2 of 4 jobs already recorded"), "{stderr}");
    let after = count_by_label(&out);
    assert_eq!(after.get("random"), Some(&2), "the built-in jobs stay");
    assert_eq!(
        after.get("raw-ok"),
        Some(&4),
        "the edited plugin's jobs ran again"
    );
}

#[test]
fn data_checks_hand_the_plugin_the_corrupted_batch() {
    if !python_has("json") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A plugin that logs a fingerprint of its batch (the sum of its inputs): random_labels
    // picks other rows for the class-balanced batch.
    let plugin = r#"
import json, struct, sys
for line in sys.stdin:
    d = json.loads(line)["request"]
    req = json.load(open(d + "/request.json"))
    raw = open(req["files"]["scoring"], "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    a, b = header["scoring.x"]["data_offsets"]
    body = raw[8 + n:]
    inputs = struct.unpack(f"<{(b - a) // 4}f", body[a:b])
    scores, offset, header_out, blobs = {}, 0, {}, []
    for l, layer in enumerate(req["layers"]):
        size = layer["shape"][0] * layer["shape"][1]
        data = struct.pack(f"<{size}d", *[float(offset + i) for i in range(size)])
        header_out[f"layers.{l}.scores"] = {"dtype": "F64", "shape": layer["shape"], "data_offsets": [offset * 8, (offset + size) * 8]}
        blobs.append(data)
        offset += size
    text = json.dumps(header_out).encode()
    with open(d + "/scores.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    json.dump({"events": {"input_sum": sum(inputs), "check": 0 if req["job"]["check"] is None else 1}}, open(d + "/log.json", "w"))
    print(json.dumps({"status": "ok"}), flush=True)
"#;
    std::fs::write(dir.path().join("batch.py"), plugin).unwrap();
    let suite = dir.path().join("suite.yaml");
    std::fs::write(
        &suite,
        "tasks: [circle]\nmodels: [{hidden: [8, 8]}]\nmethods:\n  - {name: external, label: batch, command: \"python3 batch.py\", data: scoring-batch, scores: true}\ndensities: [0.5]\nseeds: 1\nchecks: [random_labels, invert]\ntrain: {epochs: 1, batch_size: 64}\n",
    )
    .unwrap();
    let out = dir.path().join("results");
    ok(run(&suite, &out));
    let recs = records(&out);
    let by_check = |c: Value| {
        recs.iter()
            .find(|r| r["check"] == c)
            .unwrap_or_else(|| panic!("no job with check {c}"))
    };
    let clean = by_check(Value::Null);
    let labels = by_check("random_labels".into());
    let inverted = by_check("invert".into());
    let sum = |r: &Value| r["method_log"]["events"]["input_sum"].as_f64().unwrap();
    assert_eq!(labels["method_log"]["events"]["check"], 1.0);
    assert_ne!(
        sum(clean),
        sum(labels),
        "random_labels reaches the plugin's batch"
    );
    assert_ne!(
        clean["mask_digest"], inverted["mask_digest"],
        "invert keeps the other end of the plugin's scores"
    );
}

/// The pairs of suites/agreement.yaml: built-in label → plugin label.
const PAIRS: [(&str, &str); 4] = [
    ("magnitude[when=init]", "numpy-magnitude"),
    ("snip", "numpy-snip"),
    ("grasp", "numpy-grasp"),
    ("synflow", "numpy-synflow"),
];

#[test]
fn numpy_plugins_agree_with_the_built_in_methods() {
    if !python_has("numpy, safetensors") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/agreement.yaml");
    ok(run(&suite, dir.path()));
    let recs = records(dir.path());
    let key = |r: &Value, label: &str| {
        format!(
            "{} {label} d={} seed={} check={}",
            r["task_label"], r["density"], r["seed"], r["check"]
        )
    };
    let index: BTreeMap<String, &Value> = recs
        .iter()
        .map(|r| (key(r, r["method_label"].as_str().unwrap()), r))
        .collect();
    let mut compared = 0;
    for r in &recs {
        let label = r["method_label"].as_str().unwrap();
        let Some((_, plugin)) = PAIRS.iter().find(|(b, _)| *b == label) else {
            continue;
        };
        let k = key(r, plugin);
        let other = index.get(&k).unwrap_or_else(|| panic!("no job {k}"));
        assert_eq!(
            r["mask_digest"], other["mask_digest"],
            "{k}: the masks differ"
        );
        assert_eq!(
            r["metrics"], other["metrics"],
            "{k}: same mask, same training"
        );
        if let Some(planted) = r.get("planted") {
            let (mut a, mut b) = (planted.clone(), other["planted"].clone());
            // The AUROC ranks every score: last-digit float differences between the two
            // implementations may reorder near-equal scores (docs/external-methods.md).
            let auroc = |v: &mut Value| {
                v["recovery"]
                    .as_object_mut()
                    .unwrap()
                    .remove("score_auroc")
                    .and_then(|x| x.as_f64())
            };
            match (auroc(&mut a), auroc(&mut b)) {
                (Some(x), Some(y)) => assert!((x - y).abs() < 1e-4, "{k}: score AUROC {x} vs {y}"),
                (x, y) => assert_eq!(x, y, "{k}: score AUROC"),
            }
            assert_eq!(a, b, "{k}: recovery");
        }
        compared += 1;
    }
    // 2 tasks × 3 densities × 2 seeds × (4 methods + the 2 that read data (SNIP, GraSP) under
    // random_labels + 4 under invert).
    assert_eq!(compared, 2 * 3 * 2 * (4 + 2 + 4), "every pair compared");
    assert!(
        !dir.path().join(".external").exists(),
        "successful requests leave no files behind"
    );
}

#[test]
fn the_python_package_and_examples_pass_their_own_tests() {
    if !python_has("numpy, safetensors") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s"])
        .arg(root.join("python/tests"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_exported_ticket_carries_the_scoring_batch_its_snip_mask_was_computed_on() {
    if !python_has("numpy, safetensors") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("ticket");
    ok(common::ticketbench(&[
        "prune",
        "--method",
        "snip",
        "--widths",
        "2,16,16,4",
        "--task",
        "circle",
        "--density",
        "0.1",
        "--seed",
        "3",
        "--export",
        export.to_str().unwrap(),
    ]));
    // The numpy SNIP of python/examples on the exported θ_0 and batch gives the exported mask.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/examples");
    let script = r#"
import sys, numpy as np
from safetensors.numpy import load_file
import snip
t = load_file(sys.argv[1])
w = [t[f"layers.{l}.weight"] for l in range(3)]
b = [t[f"layers.{l}.bias"] for l in range(3)]
s = snip.snip_scores(w, b, t["scoring.x"], t["scoring.y"])
flat = np.concatenate([x.ravel() for x in s])
k = int(sum(t[f"layers.{l}.mask"].sum() for l in range(3)))
keep = np.zeros(flat.size, bool); keep[np.argsort(-flat, kind="stable")[:k]] = True
mask = np.concatenate([t[f"layers.{l}.mask"].ravel() for l in range(3)]).astype(bool)
assert t["scoring.x"].shape == (40, 2) and t["scoring.y"].dtype == np.int64, t["scoring.x"].shape
assert (keep == mask).all(), f"{(keep != mask).sum()} weights differ"
print("agree", k)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(export.join("ticket.safetensors"))
        .current_dir(&examples)
        .env("PYTHONPATH", &examples)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("agree"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_external_method_takes_every_axis_of_a_suite() {
    if !python_has("json") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("raw_plugin.py"), RAW_PLUGIN).unwrap();
    let suite = dir.join("suite.yaml");
    std::fs::write(
        &suite,
        r#"name: axes
tasks:
  - {name: circle, samples: 400}
  - {name: circle, samples: 400, label_noise: 0.2}
models:
  - {name: host, hidden: [24, 24, 24], init: he-scaled, plant: pns}
methods:
  - dense
  - random
  - {name: external, label: raw-scores, command: "python3 raw_plugin.py scores", data: scoring-batch, scores: true}
  - {name: external, label: raw-ok, command: "python3 raw_plugin.py ok", data: none, family: strong}
  - {name: external, label: raw-train, command: "python3 raw_plugin.py ok", data: full-training}
densities: [0.5]
seeds: 2
checks: [random_labels, invert]
transfer: true
matched_random: true
train: {optimizer: adam, lr: 0.01, epochs: 10, batch_size: 32}
"#,
    )
    .unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let full = dir.join("full");
    ok(run(&suite, &full));
    let all = records(&full);
    let jobs = |label: &str, check: Option<&str>| {
        all.iter()
            .filter(|r| r["method_label"] == label && r["check"].as_str() == check)
            .collect::<Vec<_>>()
    };
    // 2 tasks × 2 seeds per row; checks: random_labels where the plugin reads data, invert
    // where it returns scores.
    for (label, check, want) in [
        ("raw-scores", None, 4),
        ("raw-scores", Some("random_labels"), 4),
        ("raw-scores", Some("invert"), 4),
        ("raw-ok", None, 4),
        ("raw-ok", Some("random_labels"), 0),
        ("raw-ok", Some("invert"), 0),
        ("raw-train", None, 4),
        ("raw-train", Some("random_labels"), 4),
    ] {
        let found = jobs(label, check);
        assert_eq!(found.len(), want, "{label} {check:?}");
        for r in found {
            assert_eq!(r["status"], "ok", "{r}");
            // The entry's own family, recorded where it is not the registry's (at-init).
            let family = (label == "raw-ok").then_some("strong");
            assert_eq!(r["method_family"].as_str(), family, "{label}");
            assert!(r.get("matched_random").is_some(), "{label}: matched random");
            assert!(!r["transfer"].is_null(), "{label}: transfer");
            let recovery = &r["planted"]["recovery"];
            assert!(recovery["jaccard"].as_f64().is_some(), "{label}: recovery");
            // What the plugin was handed: the scoring batch (10 per class × 4 classes) where
            // it reads data, and the whole training split (90 % of 400) for full-training.
            let events = &r["method_log"]["events"];
            if label != "raw-scores" {
                // The plugin's thread pools get the job's share of the cores.
                let threads = events["threads"].as_f64().unwrap();
                assert!(threads >= 1.0, "{events}");
                assert_eq!(events["omp_threads"].as_f64(), Some(threads), "{events}");
                let (scoring, train) = match label {
                    "raw-ok" => (None, None),
                    _ => (Some(40.0), Some(360.0)),
                };
                assert_eq!(
                    events["scoring_rows"].as_f64(),
                    scoring,
                    "{label}: {events}"
                );
                assert_eq!(events["train_rows"].as_f64(), train, "{label}: {events}");
            }
            if check.is_none() {
                assert_eq!(
                    recovery["score_auroc"].as_f64().is_some(),
                    label == "raw-scores",
                    "{label}: AUROC exactly where scores come back"
                );
            }
        }
    }

    // Reports in every format and the leaderboard (10 epochs open a dense–random gap on
    // Circle, so its cells count) carry the plugin's rows.
    let report = dir.join("report");
    ok(common::ticketbench(&[
        "report",
        &s(&full),
        "--out",
        &s(&report),
        "--format",
        "all",
    ]));
    for file in [
        "report.md",
        "report.tex",
        "results.csv",
        "index.html",
        "leaderboard.json",
    ] {
        let text = std::fs::read_to_string(report.join(file)).unwrap();
        assert!(
            text.contains("raw-scores") && text.contains("raw-ok"),
            "{file} lacks the external rows"
        );
    }

    // Shards and merge give the single run's records.
    let mut merge = vec!["merge".to_string()];
    for i in 1..=2 {
        let shard = dir.join(format!("shard-{i}"));
        let out = Command::new(env!("CARGO_BIN_EXE_ticketbench"))
            .args(["run", &s(&suite), "--out", &s(&shard), "--quiet"])
            .args(["--shard", &format!("{i}/2")])
            .output()
            .unwrap();
        ok(out);
        merge.push(s(&shard));
    }
    let merged = dir.join("merged");
    merge.extend(["--out".to_string(), s(&merged)]);
    ok(common::ticketbench(
        &merge.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert_eq!(
        records_by_hash(&merged),
        records_by_hash(&full),
        "merged shards differ"
    );

    // `repro` reruns the plugin's jobs and finds them identical.
    let stdout = ok(common::ticketbench(&[
        "repro",
        &s(&suite),
        "--devices",
        "cpu,cpu",
        "--json",
    ]));
    let repro: Value = serde_json::from_str(&stdout).unwrap();
    let rows = repro["rows"].as_array().unwrap();
    let external: Vec<&Value> = rows
        .iter()
        .filter(|r| r["method"].as_str().unwrap_or("").starts_with("raw-"))
        .collect();
    assert!(!external.is_empty(), "{stdout}");
    for row in &external {
        assert!(row["error"].is_null(), "{row}");
        assert_eq!(row["identical_mask"], true, "{row}");
    }
}
