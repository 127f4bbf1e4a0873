//! Suite file → grid of jobs → execution → `results.jsonl`.
//!
//! * [`suite`]: parsing and validation (file/line/column errors).
//! * [`job`]: grid expansion, settings hash, running one job, the result record.
//! * [`store`]: appending and reading `results.jsonl` (resume = skip recorded hashes), the
//!   results directory's lock.
//! * [`merge`]: the union of shard directories.
//! * [`plan`]: job count, time and memory estimates, and the `--yes` guard.
//! * [`repro`]: the same jobs on two devices or backends, compared.

pub mod job;
pub mod merge;
pub mod plan;
pub mod repro;
pub mod store;
pub mod suite;

use crate::engine::Engine;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use job::{GroupState, Job, JobError, JobOutput, JobRecord, JobSite, Status};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use store::{DirLock, ResultsWriter, StoreError};
use suite::Suite;
use thiserror::Error;

/// The folder of a results directory that holds external methods' request directories.
pub const EXTERNAL_SCRATCH: &str = ".external";

/// How to run a suite.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Results directory (`results/<suite name>/` by default).
    pub out: PathBuf,
    /// Threads of each job's CPU backend pool.
    pub threads: usize,
    /// Jobs run at once (each with its own pool of `threads` threads).
    pub jobs: usize,
    /// Run only this part of the grid.
    pub shard: Option<Shard>,
    /// Print one line per finished job.
    pub verbose: bool,
}

/// `--shard I/N`: the jobs whose row hash ([`Job::shard_key`]) is `I − 1` modulo `N`.
///
/// Hash-based, not index-based: adding a task, method or density to a suite never moves an
/// existing job to another shard, so shards already run stay valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub fn contains(&self, job: &Job) -> bool {
        job.shard_key % self.count as u64 == (self.index - 1) as u64
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = || format!("`{s}` is not a shard; write I/N with 1 ≤ I ≤ N, e.g. 2/4");
        let (i, n) = s.split_once('/').ok_or_else(usage)?;
        let index: usize = i.trim().parse().map_err(|_| usage())?;
        let count: usize = n.trim().parse().map_err(|_| usage())?;
        if index == 0 || index > count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Jobs of the grid (of this shard, with `--shard`).
    pub total: usize,
    pub skipped: usize,
    pub ran: usize,
    pub diverged: usize,
    pub failed: Vec<String>,
    pub bad_lines: usize,
    pub wall_s: f64,
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot build a thread pool of {threads} threads: {message}")]
    Threads { threads: usize, message: String },
}

/// Short description of a job for progress lines and errors.
pub fn describe(suite: &Suite, job: &Job) -> String {
    format!(
        "{} {} {} d={} seed={}",
        suite.tasks[job.task].label,
        suite.models[job.model].label(),
        suite.methods[job.method].label,
        job.density,
        job.seed
    )
}

fn one_line(record: &JobRecord) -> String {
    let m = &record.metrics;
    let metric = match (record.status, m.test_acc, m.test_loss) {
        (Status::Diverged, _, _) => format!(
            "DIVERGED at step {}",
            m.diverged.as_ref().map_or(0, |d| d.step)
        ),
        (_, Some(acc), _) => format!("test_acc {:.4}", acc),
        (_, None, Some(loss)) => format!("test_loss {:.4e}", loss),
        _ => "no metric".into(),
    };
    format!("{metric} ({:.1} s)", record.timing.total_s)
}

/// The jobs of `suite` this run owns: the whole grid, or one shard of it.
pub fn planned_jobs(
    suite: &Suite,
    device: crate::device::DeviceSpec,
    shard: Option<Shard>,
) -> Vec<Job> {
    let jobs = job::expand(suite, device);
    match shard {
        Some(s) => jobs.into_iter().filter(|j| s.contains(j)).collect(),
        None => jobs,
    }
}

/// Runs every job of `suite` (of `opts.shard`) not yet recorded in `opts.out`, appending
/// each result as it finishes. A failing job is reported and skipped; the others still run.
///
/// With `opts.jobs > 1`, whole groups (jobs sharing task, model and seed, hence data, θ_0
/// and the trained dense network) are handed to worker threads, each with its own backend
/// pool; results are appended under one lock, so every line stays whole.
pub fn run_suite(
    suite: &Suite,
    engine: &Engine,
    opts: &RunOptions,
) -> Result<RunSummary, RunError> {
    let start = Instant::now();
    let jobs = planned_jobs(suite, engine.spec(), opts.shard);
    let _lock = DirLock::acquire(&opts.out)?;
    let loaded = store::load(&opts.out)?;
    let done = store::done_hashes(&loaded);
    let todo: Vec<&Job> = jobs
        .iter()
        .filter(|j| !done.contains(&j.settings_hash))
        .collect();
    let mut summary = RunSummary {
        total: jobs.len(),
        skipped: jobs.len() - todo.len(),
        bad_lines: loaded.bad_lines.len(),
        ..Default::default()
    };
    for bad in &loaded.bad_lines {
        eprintln!("warning: {bad}");
    }
    if todo.is_empty() {
        summary.wall_s = start.elapsed().as_secs_f64();
        return Ok(summary);
    }
    let writer = Mutex::new(ResultsWriter::open(&opts.out)?);
    // External methods' request directories; a failed request stays there for debugging.
    let scratch = opts.out.join(EXTERNAL_SCRATCH);

    let bar = ProgressBar::with_draw_target(Some(todo.len() as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} jobs (eta {eta}) {msg}",
        )
        .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let say = |line: String| {
        if bar.is_hidden() {
            eprintln!("{line}")
        } else {
            bar.println(line)
        }
    };
    if summary.skipped > 0 {
        say(format!(
            "{} of {} jobs already recorded in {}; running the other {}",
            summary.skipped,
            jobs.len(),
            opts.out.display(),
            todo.len()
        ));
    }

    let groups: Vec<&[&Job]> = todo
        .chunk_by(|a, b| a.group_key() == b.group_key())
        .collect();
    let next_group = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let tally = Mutex::new(RunSummary::default());
    let worker = || -> Result<(), RunError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|e| RunError::Threads {
                threads: opts.threads,
                message: e.to_string(),
            })?;
        pool.install(|| -> Result<(), RunError> {
            while !stop.load(Ordering::Relaxed) {
                let Some(&group_jobs) = groups.get(next_group.fetch_add(1, Ordering::Relaxed))
                else {
                    break;
                };
                let mut group: Option<GroupState> = None;
                for &job in group_jobs {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let name = describe(suite, job);
                    if opts.jobs == 1 {
                        bar.set_message(name.clone());
                    }
                    let result = run_in_group(
                        suite,
                        job,
                        engine,
                        &mut group,
                        JobSite {
                            threads: opts.threads,
                            shard: opts.shard,
                            scratch: &scratch,
                        },
                        &|phase| {
                            if opts.jobs == 1 {
                                bar.set_message(format!("{name} · {phase}"))
                            }
                        },
                    )
                    .map(|output| output.record);
                    let i = finished.fetch_add(1, Ordering::Relaxed) + 1;
                    match result {
                        Ok(record) => {
                            let appended = writer.lock().expect("writer lock").append(&record);
                            if let Err(e) = appended {
                                stop.store(true, Ordering::Relaxed);
                                return Err(e.into());
                            }
                            let mut t = tally.lock().expect("tally lock");
                            t.ran += 1;
                            t.diverged += (record.status == Status::Diverged) as usize;
                            if opts.verbose {
                                say(format!(
                                    "[{i}/{}] {name}: {}",
                                    todo.len(),
                                    one_line(&record)
                                ));
                            }
                        }
                        Err(e) => {
                            say(format!("[{i}/{}] {name}: FAILED: {e}", todo.len()));
                            tally
                                .lock()
                                .expect("tally lock")
                                .failed
                                .push(format!("{name}: {e}"));
                        }
                    }
                    bar.inc(1);
                }
            }
            Ok(())
        })
    };
    let workers = opts.jobs.clamp(1, groups.len());
    let outcome: Result<(), RunError> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(worker)).collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("a worker thread panicked outside a job"))
    });
    outcome?;
    bar.finish_and_clear();
    let tally = tally.into_inner().expect("tally lock");
    summary.ran = tally.ran;
    summary.diverged = tally.diverged;
    summary.failed = tally.failed;
    summary.wall_s = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Runs `job` at `site` (its threads and shard recorded in its provenance), reusing `group` when it
/// holds the job's (task, model, seed) data; a panic inside the job becomes
/// [`JobError::Panic`] and drops the group (its state is suspect).
pub(crate) fn run_in_group(
    suite: &Suite,
    job: &Job,
    engine: &Engine,
    group: &mut Option<GroupState>,
    site: JobSite<'_>,
    progress: &dyn Fn(String),
) -> Result<JobOutput, JobError> {
    catch_unwind(AssertUnwindSafe(|| -> Result<JobOutput, JobError> {
        if group.as_ref().is_none_or(|g| g.key != job.group_key()) {
            *group = None; // free the previous group's data before building the next
            *group = Some(GroupState::new(suite, job, engine)?);
        }
        let g = group.as_mut().expect("set above");
        job::run_job(suite, job, engine, g, site, &mut |phase| progress(phase))
    }))
    .unwrap_or_else(|panic| {
        *group = None;
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
        Err(JobError::Panic(
            msg.unwrap_or_else(|| "unknown panic".into()),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceSpec;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    const BASE: &str = "tasks: [circle, relu]\nmethods: [dense, random, magnitude, imp]\ndensities: [0.5, 0.1]\nseeds: 3\n";
    const GROWN: &str = "tasks: [circle, relu, helix]\nmethods: [dense, random, magnitude, imp, snip, {name: random, rule: erk}]\ndensities: [0.5, 0.2, 0.1]\nseeds: 4\n";

    fn shards(text: &str, count: usize) -> BTreeMap<String, usize> {
        let suite = Suite::parse(text, Path::new("t.yaml")).unwrap();
        let mut owner = BTreeMap::new();
        for index in 1..=count {
            for job in planned_jobs(&suite, DeviceSpec::Cpu, Some(Shard { index, count })) {
                assert!(
                    owner.insert(job.settings_hash, index).is_none(),
                    "a job in two shards"
                );
            }
        }
        assert_eq!(owner.len(), job::expand(&suite, DeviceSpec::Cpu).len());
        owner
    }

    #[test]
    fn shards_partition_the_grid_and_keep_their_jobs_when_the_suite_grows() {
        let before = shards(BASE, 4);
        let after = shards(GROWN, 4);
        for (hash, shard) in &before {
            assert_eq!(after.get(hash), Some(shard), "job {hash} moved");
        }
        // Every density and check of one (task, model, seed, method) row shares a shard, so
        // IMP's levels are trained once; and no shard is empty.
        let suite = Suite::parse(GROWN, Path::new("t.yaml")).unwrap();
        let mut rows: BTreeMap<(usize, usize, u64, usize), BTreeSet<usize>> = BTreeMap::new();
        for job in job::expand(&suite, DeviceSpec::Cpu) {
            rows.entry((job.task, job.model, job.seed, job.method))
                .or_default()
                .insert(after[&job.settings_hash]);
        }
        assert!(rows.values().all(|s| s.len() == 1));
        let used: BTreeSet<usize> = after.values().copied().collect();
        assert_eq!(used.len(), 4);
    }

    #[test]
    fn shard_arguments_are_checked() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "1", "a/b", "1/0", "-1/2"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("write I/N"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_grid_size_matches_the_expanded_grid() {
        for text in [
            BASE,
            GROWN,
            "tasks: [circle]\nmodels: [{hidden: [24, 24, 24], init: he-scaled, plant: pns}]\nmethods: [planted, dense, magnitude, snip]\ndensities: [planted, 0.5]\nseeds: 2\nchecks: [layer_shuffle, invert, random_labels]\n",
        ] {
            let suite = Suite::parse(text, Path::new("t.yaml")).unwrap();
            assert_eq!(
                job::grid_size(&suite),
                job::expand(&suite, DeviceSpec::Cpu).len() as u128
            );
        }
    }
}
