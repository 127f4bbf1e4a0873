//! scripts/slurm/shard.sbatch on a real single-node Slurm cluster
//! (scripts/slurm/local-cluster.sh: munged, slurmctld and slurmd on this machine): a job
//! array over a small suite, one array task held mid-run and cancelled with `scancel`, then
//! resubmitted alone; the merged shards equal a single-machine run and give the same report.
//!
//! Needs root and Debian's slurmctld, slurmd, slurm-client and munge (`.ci/run` installs
//! them); elsewhere the test says so and passes, unless `TICKETBENCH_REQUIRE_SLURM=1`.

mod common;

use common::{ok, records, ticketbench};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The cluster, stopped on drop.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Option<Cluster> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(format!("{ROOT}/scripts/slurm/local-cluster.sh"))
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap();
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
            assert!(
                std::env::var_os("TICKETBENCH_REQUIRE_SLURM").is_none(),
                "no Slurm cluster, and TICKETBENCH_REQUIRE_SLURM is set: {why}"
            );
            eprintln!("skipped: no local Slurm cluster ({why})");
            return None;
        }
        Some(Cluster { dir })
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    /// A Slurm client command against this cluster, run in `cwd`.
    fn client(&self, program: &str, cwd: &Path) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", self.conf()).current_dir(cwd);
        c
    }

    fn text(&self, program: &str, args: &[&str], cwd: &Path) -> String {
        let out = self.client(program, cwd).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `done` holds, checking every 100 ms; fails after `limit` (a generous
    /// bound on a wait for an event, not a guess at how long the work takes).
    fn wait_for(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let until = Instant::now() + limit;
        while !done() {
            let logs = std::fs::read_to_string(self.dir.path().join("log/slurmctld.log"))
                .unwrap_or_default();
            assert!(
                Instant::now() < until,
                "timed out waiting for {what}\n{logs}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_until_gone(&self, job: &str, cwd: &Path) {
        self.wait_for(
            &format!("job {job} to leave the queue"),
            Duration::from_secs(600),
            || {
                self.text("squeue", &["-h", "-j", job], cwd)
                    .trim()
                    .is_empty()
            },
        );
    }

    fn state(&self, job: &str, cwd: &Path) -> String {
        let text = self.text("scontrol", &["show", "job", "-o", job], cwd);
        text.split_whitespace()
            .find_map(|w| w.strip_prefix("JobState="))
            .unwrap_or("?")
            .to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(format!("{ROOT}/scripts/slurm/local-cluster.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

fn by_hash(dir: &Path) -> BTreeMap<String, Value> {
    records(dir)
        .into_iter()
        .map(|r| (r["settings_hash"].as_str().unwrap().to_string(), r))
        .collect()
}

/// `report.md` written for `dir`, with the directory's name masked.
fn report_text(dir: &Path) -> String {
    let out = tempfile::tempdir().unwrap();
    let (d, o) = (dir.to_str().unwrap(), out.path().to_str().unwrap());
    ok(ticketbench(&["report", d, "--out", o, "--format", "md"]));
    std::fs::read_to_string(out.path().join("report.md"))
        .unwrap()
        .replace(d, "DIR")
}

#[test]
fn a_slurm_job_array_with_a_cancelled_and_resubmitted_shard_merges_to_the_single_machine_run() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let cwd = work.path();
    let suite = format!("{ROOT}/tests/data/tiny.yaml");
    let sbatch = format!("{ROOT}/scripts/slurm/shard.sbatch");
    // Array task 1 is held after its 2nd record on its first attempt only (the test-only
    // hook of src/crash_point.rs), so the test can cancel it mid-run.
    let wrapper = cwd.join("ticketbench-once-held");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$SLURM_ARRAY_TASK_ID\" = 1 ] && [ ! -e held-once ]; then\n  touch held-once\n  export TICKETBENCH_TEST_HANG_AFTER=record:2\nfi\nexec {} \"$@\"\n",
            env!("CARGO_BIN_EXE_ticketbench")
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .unwrap();
    let submit = |array: &str, shards: Option<&str>| -> String {
        let mut c = cluster.client("sbatch", cwd);
        c.args([
            "--parsable",
            "--array",
            array,
            "--cpus-per-task=1",
            "--mem=256M",
        ])
        .env("TICKETBENCH", &wrapper);
        if let Some(n) = shards {
            c.arg(format!("--export=ALL,TICKETBENCH_SHARDS={n}"));
        }
        let out = c.arg(&sbatch).arg(&suite).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };

    let job = submit("0-2", None);
    let held_log = cwd.join(format!("ticketbench-{job}_1.out"));
    cluster.wait_for("array task 1 to hold", Duration::from_secs(600), || {
        std::fs::read_to_string(&held_log).is_ok_and(|t| t.contains("test hang at record 2"))
    });
    cluster.text("scancel", &[&format!("{job}_1")], cwd);
    cluster.wait_until_gone(&job, cwd);
    let shards = cwd.join("results/tiny-shards");
    assert_eq!(cluster.state(&format!("{job}_1"), cwd), "CANCELLED");
    for task in ["0", "2"] {
        assert_eq!(
            cluster.state(&format!("{job}_{task}"), cwd),
            "COMPLETED",
            "task {task}"
        );
    }
    let partial = by_hash(&shards.join("shard-2"));
    assert_eq!(
        partial.len(),
        2,
        "the cancelled shard kept its first two records"
    );

    // Resubmitted alone: it resumes, and nothing is lost or written twice.
    let again = submit("1", Some("3"));
    cluster.wait_until_gone(&again, cwd);
    assert_eq!(cluster.state(&format!("{again}_1"), cwd), "COMPLETED");
    let resumed = by_hash(&shards.join("shard-2"));
    for (hash, record) in &partial {
        assert_eq!(
            &resumed[hash], record,
            "a record written before the cancel changed"
        );
    }

    let merged = cwd.join("merged");
    let mut args = vec!["merge".to_string()];
    for i in 1..=3 {
        args.push(
            shards
                .join(format!("shard-{i}"))
                .to_string_lossy()
                .into_owned(),
        );
    }
    args.extend(["--out".into(), merged.to_string_lossy().into_owned()]);
    ok(ticketbench(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let single = cwd.join("single");
    ok(ticketbench(&[
        "run",
        &suite,
        "--out",
        single.to_str().unwrap(),
        "--quiet",
    ]));
    let (m, s) = (by_hash(&merged), by_hash(&single));
    assert_eq!(m.len(), s.len(), "every job exactly once");
    assert_eq!(m, s, "merged shards differ from the single-machine run");
    assert_eq!(report_text(&merged), report_text(&single));
}
