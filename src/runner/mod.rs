//! Suite file → grid of jobs → execution → `results.jsonl`.
//!
//! * [`suite`]: parsing and validation (file/line/column errors).
//! * [`job`]: grid expansion, settings hash, running one job, the result record.
//! * [`store`]: appending and reading `results.jsonl` (resume = skip recorded hashes).

pub mod job;
pub mod store;
pub mod suite;

use crate::engine::Engine;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use job::{GroupState, Job, JobError, JobRecord, Status};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use store::{ResultsWriter, StoreError};
use suite::Suite;
use thiserror::Error;

/// How to run a suite.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Results directory (`results/<suite name>/` by default).
    pub out: PathBuf,
    /// Threads of the CPU backend's pool.
    pub threads: usize,
    /// Print one line per finished job.
    pub verbose: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
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

/// Runs every job of `suite` not yet recorded in `opts.out`, appending each result as it
/// finishes. A failing job is reported and skipped; the others still run.
pub fn run_suite(
    suite: &Suite,
    engine: &Engine,
    opts: &RunOptions,
) -> Result<RunSummary, RunError> {
    let start = Instant::now();
    let device = engine.spec();
    let jobs = job::expand(suite, device);
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
    let mut writer = ResultsWriter::open(&opts.out)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| RunError::Threads {
            threads: opts.threads,
            message: e.to_string(),
        })?;

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

    pool.install(|| -> Result<(), RunError> {
        let mut group: Option<GroupState> = None;
        for (i, job) in todo.iter().enumerate() {
            let name = describe(suite, job);
            bar.set_message(name.clone());
            let result = catch_unwind(AssertUnwindSafe(|| -> Result<JobRecord, JobError> {
                if group
                    .as_ref()
                    .is_none_or(|g| g.key != (job.task, job.model, job.seed))
                {
                    group = None; // free the previous group's data before building the next
                    group = Some(GroupState::new(suite, job, engine)?);
                }
                let g = group.as_mut().expect("set above");
                job::run_job(suite, job, engine, g, opts.threads, &mut |phase| {
                    bar.set_message(format!("{name} · {phase}"))
                })
            }))
            .unwrap_or_else(|panic| {
                group = None;
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
                Err(JobError::Panic(
                    msg.unwrap_or_else(|| "unknown panic".into()),
                ))
            });
            match result {
                Ok(record) => {
                    writer.append(&record)?;
                    summary.ran += 1;
                    summary.diverged += (record.status == Status::Diverged) as usize;
                    if opts.verbose {
                        say(format!(
                            "[{}/{}] {name}: {}",
                            i + 1,
                            todo.len(),
                            one_line(&record)
                        ));
                    }
                }
                Err(e) => {
                    say(format!("[{}/{}] {name}: FAILED: {e}", i + 1, todo.len()));
                    summary.failed.push(format!("{name}: {e}"));
                }
            }
            bar.inc(1);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    summary.wall_s = start.elapsed().as_secs_f64();
    Ok(summary)
}
