//! Scale-out and crash safety, end to end through the binary: shards partition the grid and
//! merge back to the uninterrupted run, killed runs resume to identical results and report,
//! a second writer of one results directory is refused, merge detects conflicts and mixed
//! versions, and malformed results files give clear errors.

mod common;

use common::{ok, ticketbench};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Records of `dir` by settings hash, without timing and provenance; panics on a duplicate.
fn by_hash(dir: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for record in common::records(dir) {
        let hash = record["settings_hash"].as_str().unwrap().to_string();
        assert!(
            out.insert(hash.clone(), record).is_none(),
            "job {hash} recorded twice in {}",
            dir.display()
        );
    }
    out
}

/// `report.md` of `dir`, with the directory's name (which the report cites) masked.
fn report_text(dir: &Path) -> String {
    let out = tempfile::tempdir().unwrap();
    ok(ticketbench(&["report", s(dir), "--out", s(out.path())]));
    std::fs::read_to_string(out.path().join("report.md"))
        .unwrap()
        .replace(s(dir), "DIR")
}

fn run_into(suite: &str, dir: &Path, extra: &[&str]) {
    let mut args = vec!["run", suite, "--out", s(dir), "--quiet"];
    args.extend(extra);
    ok(ticketbench(&args));
}

#[test]
fn shards_partition_the_grid_and_merge_back_to_the_full_run() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    run_into(&data("tiny.yaml"), &full, &["--jobs", "2"]);
    let reference = by_hash(&full);

    let mut shards: Vec<PathBuf> = Vec::new();
    let mut seen = BTreeSet::new();
    for i in 1..=3 {
        let dir = tmp.path().join(format!("shard-{i}"));
        run_into(&data("tiny.yaml"), &dir, &["--shard", &format!("{i}/3")]);
        let part = by_hash(&dir);
        assert!(!part.is_empty(), "shard {i}/3 is empty");
        for hash in part.keys() {
            assert!(seen.insert(hash.clone()), "job {hash} in two shards");
        }
        let raw = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
        let first: Value = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
        assert_eq!(first["provenance"]["shard"], format!("{i}/3"));
        shards.push(dir);
    }
    assert_eq!(seen, reference.keys().cloned().collect());

    let merged = tmp.path().join("merged");
    let mut args = vec!["merge"];
    args.extend(shards.iter().map(|p| s(p)));
    args.extend(["--out", s(&merged)]);
    ok(ticketbench(&args));
    assert_eq!(
        by_hash(&merged),
        reference,
        "merged shards differ from the full run"
    );
    let bytes = std::fs::read(merged.join("results.jsonl")).unwrap();
    // Idempotent, also when the output directory is one of the inputs.
    ok(ticketbench(&args));
    args.insert(1, s(&merged));
    ok(ticketbench(&args));
    assert_eq!(bytes, std::fs::read(merged.join("results.jsonl")).unwrap());
    // The report does not depend on which process or order produced the lines.
    assert_eq!(report_text(&merged), report_text(&full));
}

#[test]
fn results_record_their_provenance() {
    let tmp = tempfile::tempdir().unwrap();
    run_into(&data("tiny.yaml"), tmp.path(), &[]);
    let raw = std::fs::read_to_string(tmp.path().join("results.jsonl")).unwrap();
    for line in raw.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        let p = &r["provenance"];
        assert_eq!(p["host"].as_str().unwrap().len(), 12, "{p}");
        assert!(p["finished_unix"].as_f64() >= p["started_unix"].as_f64());
        let streams: Vec<&str> = p["seed_streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        // Every job draws its data and θ_0 from the seed's named streams.
        assert!(
            streams.iter().any(|s| s.starts_with("task/")),
            "{streams:?}"
        );
        assert!(
            streams.iter().any(|s| s.starts_with("init/")),
            "{streams:?}"
        );
        if r["method"] == "random" {
            assert!(
                streams.iter().any(|s| s.starts_with("random/")),
                "{streams:?}"
            );
        }
        // Built from this repository's checkout (absent only where git cannot tell).
        match p["git_commit"].as_str() {
            Some(commit) => assert!(commit.len() >= 40, "{p}"),
            None => assert!(
                Command::new("git")
                    .args(["rev-parse", "HEAD"])
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .output()
                    .map_or(true, |o| !o.status.success()),
                "a git checkout, but no commit recorded: {p}"
            ),
        }
        assert!(r["version"].is_string() && r["device"].is_string());
    }
}

/// Small deterministic generator for the kill points (the test must be reproducible).
fn kill_points(n: usize, max_ms: u64) -> Vec<u64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            20 + x % max_ms
        })
        .collect()
}

#[test]
fn runs_killed_at_random_points_resume_to_identical_results_and_report() {
    let suite = data("resume.yaml");
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    let start = std::time::Instant::now();
    run_into(&suite, &reference, &[]);
    // Kill points scale with this machine's speed: 8 kills of at most a sixth of a whole
    // run each leave work for the final resume.
    let whole_ms = start.elapsed().as_millis() as u64;
    let expected = by_hash(&reference);

    let dir = tmp.path().join("killed");
    let results = dir.join("results.jsonl");
    let lines = || {
        std::fs::read_to_string(&results)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let mut interrupted = 0;
    for (k, delay) in kill_points(8, (whole_ms / 6).max(50))
        .into_iter()
        .enumerate()
    {
        let jobs = if k % 2 == 0 { "1" } else { "2" };
        let mut child = Command::new(env!("CARGO_BIN_EXE_ticketbench"))
            .args(["run", &suite, "--quiet", "--jobs", jobs, "--out", s(&dir)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        child.kill().ok(); // SIGKILL: no chance to clean up
        child.wait().unwrap();
    }
    assert!(
        interrupted >= 5,
        "only {interrupted} of 8 kills hit a running suite ({} lines written, whole run {whole_ms} ms)",
        lines()
    );
    run_into(&suite, &dir, &[]);
    assert_eq!(by_hash(&dir), expected, "resumed results differ");
    assert_eq!(report_text(&dir), report_text(&reference));
}

#[test]
fn a_second_writer_of_one_results_dir_is_refused_and_nothing_is_corrupted() {
    let suite = data("resume.yaml");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut first = Command::new(env!("CARGO_BIN_EXE_ticketbench"))
        .args(["run", &suite, "--quiet", "--out", s(dir)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The lock is taken before the first result is written.
    while !dir.join("results.jsonl").exists() {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = ticketbench(&["run", &suite, "--quiet", "--out", s(dir)]);
    let merge = ticketbench(&["merge", s(dir), "--out", s(dir)]);
    let finished_first = first.wait_with_output().unwrap();
    assert!(finished_first.status.success());
    for (what, out) in [("run", second), ("merge", merge)] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains("is being written by another ticketbench process (pid")
                && stderr.contains("ticketbench merge"),
            "{what}: {stderr}"
        );
    }
    let reference = tempfile::tempdir().unwrap();
    run_into(&suite, reference.path(), &[]);
    assert_eq!(by_hash(dir), by_hash(reference.path()));
}

/// A copy of `from`'s results with `edit` applied to every record.
fn edited_copy(from: &Path, to: &Path, edit: impl Fn(&mut Value)) {
    std::fs::create_dir_all(to).unwrap();
    let text: String = std::fs::read_to_string(from.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            edit(&mut v);
            format!("{v}\n")
        })
        .collect();
    std::fs::write(to.join("results.jsonl"), text).unwrap();
}

#[test]
fn merge_reports_conflicts_and_refuses_mixed_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    run_into(&data("tiny.yaml"), &a, &[]);
    let target = by_hash(&a).keys().next().unwrap().clone();

    let b = tmp.path().join("b");
    edited_copy(&a, &b, |v| {
        if v["settings_hash"] == target.as_str() {
            v["metrics"]["test_loss"] = Value::from(123.0);
        }
        v["timing"]["total_s"] = Value::from(9.0); // timings never conflict
    });
    let out = tmp.path().join("m");
    let merged = ticketbench(&["merge", s(&a), s(&b), "--out", s(&out)]);
    let stderr = String::from_utf8_lossy(&merged.stderr);
    assert_eq!(merged.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("1 jobs have conflicting results")
            && stderr.contains(&format!("job {target}:"))
            && stderr.contains("differ in metrics")
            && stderr.contains("--keep-first"),
        "{stderr}"
    );
    assert!(!out.join("results.jsonl").exists(), "a refused merge wrote");
    let kept = ticketbench(&["merge", s(&a), s(&b), "--out", s(&out), "--keep-first"]);
    assert!(String::from_utf8_lossy(&kept.stderr).contains("kept the first"));
    assert_eq!(by_hash(&out), by_hash(&a));

    // Records written before `mask_digest` existed do not conflict with newer ones.
    let undigested = tmp.path().join("undigested");
    edited_copy(&a, &undigested, |v| {
        v.as_object_mut().unwrap().remove("mask_digest");
    });
    let both = tmp.path().join("both");
    ok(ticketbench(&[
        "merge",
        s(&a),
        s(&undigested),
        "--out",
        s(&both),
    ]));
    assert_eq!(by_hash(&both), by_hash(&a));

    let old = tmp.path().join("old");
    edited_copy(&a, &old, |v| v["version"] = Value::from("0.0.1"));
    let mixed = ticketbench(&["merge", s(&a), s(&old), "--out", s(&tmp.path().join("x"))]);
    let stderr = String::from_utf8_lossy(&mixed.stderr);
    assert_eq!(mixed.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("different ticketbench versions") && stderr.contains("0.0.1 in"),
        "{stderr}"
    );
}

#[test]
fn malformed_results_files_give_clear_errors() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad-results");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 4, "the corpus shrank");
    let mut failures = Vec::new();
    for file in &files {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(file.file_stem().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(file, dir.join("results.jsonl")).unwrap();
        let before = std::fs::read(dir.join("results.jsonl")).unwrap();
        let tiny = data("tiny.yaml");
        let merged = tmp.path().join("merged");
        for args in [
            vec!["report", s(&dir), "--out", s(tmp.path())],
            vec!["merge", s(&dir), "--out", s(&merged)],
            vec!["run", &tiny, "--quiet", "--out", s(&dir)],
        ] {
            let out = ticketbench(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let named = stderr.contains(&format!("{}", dir.join("results.jsonl").display()));
            if out.status.code() != Some(2)
                || !named
                || !stderr.contains("is a ticketbench result")
                || stderr.contains("panicked")
            {
                failures.push(format!(
                    "{} with {}: exit {:?}\n{stderr}",
                    file.display(),
                    args[0],
                    out.status.code()
                ));
            }
        }
        assert_eq!(
            before,
            std::fs::read(dir.join("results.jsonl")).unwrap(),
            "{} was modified",
            file.display()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}
