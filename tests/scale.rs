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

/// Records of `dir` by settings hash, without timing and provenance; panics on a duplicate
/// or an unreadable line.
fn by_hash(dir: &Path) -> BTreeMap<String, Value> {
    let (records, fragments) = by_hash_with_fragments(dir);
    assert_eq!(fragments, 0, "unreadable lines in {}", dir.display());
    records
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

/// Records of `dir` by settings hash (as [`by_hash`]) and the number of unreadable lines
/// (fragments of writes a kill interrupted).
fn by_hash_with_fragments(dir: &Path) -> (BTreeMap<String, Value>, usize) {
    let text = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
    let mut out = BTreeMap::new();
    let mut fragments = 0;
    for line in text.lines() {
        let Ok(mut record) = serde_json::from_str::<Value>(line) else {
            fragments += 1;
            continue;
        };
        let o = record.as_object_mut().unwrap();
        o.remove("timing");
        o.remove("provenance");
        let hash = record["settings_hash"].as_str().unwrap().to_string();
        assert!(
            out.insert(hash.clone(), record).is_none(),
            "job {hash} recorded twice in {}",
            dir.display()
        );
    }
    (out, fragments)
}

fn result_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("results.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// `ticketbench ARGS` with one test crash hook set (`TICKETBENCH_TEST_<VAR>=VALUE`).
fn hooked(var: &str, value: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticketbench"));
    cmd.args(args)
        .env(format!("TICKETBENCH_TEST_{var}"), value)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` to its end and checks that the test hook aborted it (SIGABRT: no unwinding).
fn assert_aborted(mut cmd: Command, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(6),
        "{what}: not aborted ({:?})\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `cmd` (a run hooked to hang after its n-th record), waits until the hook holds it
/// and checks that `lines` result lines are on disk.
fn held_at_line_count(mut cmd: Command, dir: &Path, lines: usize) -> std::process::Child {
    let mut child = cmd.spawn().unwrap();
    common::wait_for_hang(&mut child);
    assert_eq!(result_lines(dir), lines, "held at the wrong record");
    child
}

/// SIGKILLs `child` (no chance to clean up) and checks that it wrote no more than `lines`.
fn sigkill(mut child: std::process::Child, dir: &Path, lines: usize) {
    use std::os::unix::process::ExitStatusExt;
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status}");
    assert_eq!(result_lines(dir), lines, "a held run went on writing");
}

fn sigkill_at_line_count(cmd: Command, dir: &Path, lines: usize) {
    sigkill(held_at_line_count(cmd, dir, lines), dir, lines);
}

#[test]
fn runs_killed_at_reported_events_resume_to_identical_results_and_report() {
    let suite = data("resume.yaml");
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    run_into(&suite, &reference, &[]);
    let expected = by_hash(&reference);
    let total = expected.len();

    let dir = tmp.path().join("killed");
    let run1 = ["run", &suite, "--quiet", "--jobs", "1", "--out", s(&dir)];
    let run2 = ["run", &suite, "--quiet", "--jobs", "2", "--out", s(&dir)];

    // 1. Aborted right after the 3rd record: exactly 3 whole lines.
    assert_aborted(hooked("ABORT_AFTER", "record:3", &run1), "record:3");
    assert_eq!(result_lines(&dir), 3);
    // 2. Aborted half-way through writing its 2nd record (2 parallel jobs): a fragment.
    assert_aborted(
        hooked("ABORT_AFTER", "record-write:2", &run2),
        "record-write:2",
    );
    let text = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
    assert!(!text.ends_with('\n'), "no partial line was left");
    let (records, fragments) = by_hash_with_fragments(&dir);
    assert_eq!((records.len(), fragments), (4, 1));
    // 3. Real SIGKILLs once the run has written 5 more lines (1 and 2 parallel jobs); the
    //    resumed run first closes the fragment's line.
    sigkill_at_line_count(hooked("HANG_AFTER", "record:5", &run2), &dir, 5 + 5);
    sigkill_at_line_count(hooked("HANG_AFTER", "record:5", &run1), &dir, 10 + 5);
    // 4. Every job done, aborted while writing the report: no report is left half-written.
    assert_aborted(hooked("ABORT_AFTER", "report:1", &run1), "report:1");
    let (records, fragments) = by_hash_with_fragments(&dir);
    assert_eq!((records.len(), fragments), (total, 1));
    assert!(!dir.join("report.md").exists(), "a half-written report.md");

    // The last resume runs nothing and writes the report.
    run_into(&suite, &dir, &[]);
    assert_eq!(
        by_hash_with_fragments(&dir),
        (expected, 1),
        "resumed results differ"
    );
    // The report is the uninterrupted run's, plus the note on the skipped fragment.
    let note = "1 unreadable result lines were skipped (truncated by a killed run?).\n\n";
    let resumed = report_text(&dir);
    assert!(resumed.contains(note), "{resumed}");
    assert_eq!(resumed.replacen(note, "", 1), report_text(&reference));
}

#[test]
fn a_merge_killed_before_its_rename_leaves_the_old_results_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    run_into(&data("tiny.yaml"), &full, &[]);
    let shards: Vec<PathBuf> = (1..=2)
        .map(|i| {
            let dir = tmp.path().join(format!("shard-{i}"));
            run_into(&data("tiny.yaml"), &dir, &["--shard", &format!("{i}/2")]);
            dir
        })
        .collect();
    let out = tmp.path().join("merged");
    ok(ticketbench(&["merge", s(&shards[0]), "--out", s(&out)]));
    let before = std::fs::read(out.join("results.jsonl")).unwrap();
    let args = ["merge", s(&shards[0]), s(&shards[1]), "--out", s(&out)];
    assert_aborted(hooked("ABORT_AFTER", "merge:1", &args), "merge:1");
    assert_eq!(before, std::fs::read(out.join("results.jsonl")).unwrap());
    ok(ticketbench(&args));
    assert_eq!(by_hash(&out), by_hash(&full));
}

#[test]
fn a_malformed_crash_hook_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = hooked(
        "ABORT_AFTER",
        "record",
        &["run", &data("tiny.yaml"), "--quiet", "--out", s(tmp.path())],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("TICKETBENCH_TEST_ABORT_AFTER=\"record\" is not <event>:<n>"),
        "{stderr}"
    );
}

#[test]
fn a_second_writer_of_one_results_dir_is_refused_and_nothing_is_corrupted() {
    let suite = data("resume.yaml");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The first run holds after its 2nd record, with the lock taken.
    let args = ["run", &suite, "--quiet", "--out", s(dir)];
    let first = held_at_line_count(hooked("HANG_AFTER", "record:2", &args), dir, 2);
    let second = ticketbench(&args);
    let merge = ticketbench(&["merge", s(dir), "--out", s(dir)]);
    sigkill(first, dir, 2);
    for (what, out) in [("run", second), ("merge", merge)] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains("is being written by another ticketbench process (pid")
                && stderr.contains("ticketbench merge"),
            "{what}: {stderr}"
        );
    }
    // Neither touched the file; the resumed run completes it.
    run_into(&suite, dir, &[]);
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

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop; `None` (with a note)
/// where this process may not mount (not root, no tmpfs), and the test then skips.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(SmallDisk { dir })
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount failed");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_run_that_fills_the_disk_keeps_its_results_and_the_next_run_starts_cleanly() {
    let Some(disk) = SmallDisk::mount("48k") else {
        return;
    };
    let out = disk.dir.path().join("out");
    // 44 jobs of about 1.9 kB each do not fit in 48 kB: the run fails on a write.
    let full = ticketbench(&["run", &data("tiny.yaml"), "--out", s(&out), "--quiet"]);
    let stderr = String::from_utf8_lossy(&full.stderr).to_string();
    assert!(!full.status.success(), "the run fit: {stderr}");
    assert!(
        stderr.contains("results.jsonl: No space left on device")
            && stderr.matches("No space left").count() == 1
            && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(
        out.join(".ticketbench.lock").exists(),
        "the lock file stays"
    );
    let (kept, fragments) = by_hash_with_fragments(&out);
    assert!(
        !kept.is_empty() && fragments <= 1,
        "{} kept, {fragments} fragments",
        kept.len()
    );

    // Space freed: the next run takes the leftover lock and finishes the grid.
    disk.grow("4m");
    let resumed = ticketbench(&["run", &data("tiny.yaml"), "--out", s(&out), "--quiet"]);
    ok(resumed);
    let reference = tempfile::tempdir().unwrap();
    run_into(&data("tiny.yaml"), reference.path(), &[]);
    let (after, _) = by_hash_with_fragments(&out);
    assert_eq!(after, by_hash(reference.path()), "resumed results differ");
    for (hash, record) in &kept {
        assert_eq!(
            &after[hash], record,
            "a result written before the disk filled changed"
        );
    }
}
