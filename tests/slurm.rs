//! scripts/slurm/shard.sbatch on a real single-node Slurm cluster
//! (scripts/slurm/local-cluster.sh: munged, slurmctld and slurmd on this machine): a job
//! array over a small suite, one array task held mid-run and cancelled with `scancel`, then
//! resubmitted alone; the merged shards equal a single-machine run and give the same report.
//!
//! Needs root and Debian's slurmctld, slurmd, slurm-client and munge (`.ci/run` installs
//! them); elsewhere the test says so and passes, unless `TICKETBENCH_REQUIRE_SLURM=1`.

mod common;

use common::{ok, records_by_hash, ticketbench};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

    /// Waits until `done` holds, checking every 100 ms; fails after `limit`. Used only for
    /// the line the held task writes into its Slurm output file (the program's own event;
    /// Slurm offers no pipe to it): the bound turns a broken cluster into a failure instead
    /// of a hung test, it is not a guess at how long the work takes.
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
    // `sbatch --wait` prints the job id at once and exits when every task has ended: the
    // test waits on that exit, not on the queue.
    let submit = |array: &str, shards: Option<&str>| -> (String, Child) {
        let mut c = cluster.client("sbatch", cwd);
        c.args([
            "--parsable",
            "--wait",
            "--array",
            array,
            "--cpus-per-task=1",
            "--mem=256M",
        ])
        .env("TICKETBENCH", &wrapper)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if let Some(n) = shards {
            c.arg(format!("--export=ALL,TICKETBENCH_SHARDS={n}"));
        }
        let mut child = c.arg(&sbatch).arg(&suite).spawn().unwrap();
        let mut id = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut id)
            .unwrap();
        assert!(!id.trim().is_empty(), "sbatch printed no job id");
        (id.trim().to_string(), child)
    };

    let (job, first) = submit("0-2", None);
    let held_log = cwd.join(format!("ticketbench-{job}_1.out"));
    cluster.wait_for("array task 1 to hold", Duration::from_secs(600), || {
        std::fs::read_to_string(&held_log).is_ok_and(|t| t.contains("test hang at record 2"))
    });
    cluster.text("scancel", &[&format!("{job}_1")], cwd);
    // A cancelled task makes `sbatch --wait` exit non-zero; the states are checked below.
    first.wait_with_output().unwrap();
    let shards = cwd.join("results/tiny-shards");
    assert_eq!(cluster.state(&format!("{job}_1"), cwd), "CANCELLED");
    for task in ["0", "2"] {
        assert_eq!(
            cluster.state(&format!("{job}_{task}"), cwd),
            "COMPLETED",
            "task {task}"
        );
    }
    let partial = records_by_hash(&shards.join("shard-2"));
    assert_eq!(
        partial.len(),
        2,
        "the cancelled shard kept its first two records"
    );

    // Resubmitted alone: it resumes, and nothing is lost or written twice.
    let (again, resubmitted) = submit("1", Some("3"));
    let done = resubmitted.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(cluster.state(&format!("{again}_1"), cwd), "COMPLETED");
    let resumed = records_by_hash(&shards.join("shard-2"));
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
    let (m, s) = (records_by_hash(&merged), records_by_hash(&single));
    assert_eq!(m.len(), s.len(), "every job exactly once");
    assert_eq!(m, s, "merged shards differ from the single-machine run");
    assert_eq!(report_text(&merged), report_text(&single));
}
