//! Before a run: how many jobs, how long, how much memory; and the guard that refuses a grid
//! beyond a job-count or memory budget unless the user passes `--yes`.
//!
//! Times come from recorded results (the output directory and any `--timings` directories):
//! a job's estimate is the mean `timing.total_s` of the recorded jobs most like it, matched
//! first on (method, check, task, widths, density), then (method, check, widths), then
//! method alone. Memory is a per-job model (see [`MemoryEstimate`]), not a measurement.

use super::job::{self, Job, JobRecord};
use super::suite::Suite;
use super::{RunOptions, store};
use crate::device::DeviceSpec;
use crate::train::EVAL_CHUNK;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use thiserror::Error;
use ticketbench_baselines::checks::SanityCheck;

/// Largest grid run without `--yes`.
pub const DEFAULT_MAX_JOBS: u128 = 50_000;

/// What a run may use before it asks for `--yes`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_jobs: u128,
    pub memory_budget_bytes: u64,
}

impl Limits {
    /// [`DEFAULT_MAX_JOBS`] and 80 % of the memory the OS reports available (8 GiB when it
    /// cannot be read), or `memory_budget_gib` when given.
    pub fn for_this_machine(memory_budget_gib: Option<f64>) -> Limits {
        let available = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("MemAvailable:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map(|kib| (kib as f64 * 1024.0 * 0.8) as u64);
        let budget = match memory_budget_gib {
            Some(gib) => (gib * GIB) as u64,
            None => available.unwrap_or(8 * GIB as u64),
        };
        Limits {
            max_jobs: DEFAULT_MAX_JOBS,
            memory_budget_bytes: budget,
        }
    }
}

const GIB: f64 = (1u64 << 30) as f64;

#[derive(Debug, Error, PartialEq)]
pub enum PlanError {
    #[error(
        "the suite expands to {jobs} jobs, more than the {limit} run without confirmation; check `seeds`, `densities` and `methods` for a typo, or pass --yes to run it anyway"
    )]
    TooManyJobs { jobs: u128, limit: u128 },
    #[error(
        "the suite's largest job needs an estimated {need:.2} GiB ({widths} on {task} with {samples} examples) × {parallel} parallel jobs, more than the memory budget of {budget:.2} GiB; use smaller widths or samples, fewer --jobs, a larger --memory-budget, or pass --yes to run it anyway"
    )]
    OverMemory {
        need: f64,
        widths: String,
        task: String,
        samples: usize,
        parallel: usize,
        budget: f64,
    },
}

/// Estimated peak memory of one job, from the largest (task, model) pair of the suite, and
/// of the process running `parallel_jobs` of them ([`PROCESS_BASE_BYTES`] plus the jobs).
///
/// Model: the data held once (the device copy is the only one; docs/decisions.md), twice
/// when the suite runs the `random_pixels` check (its corrupted training split),
/// one [`EVAL_CHUNK`] of test rows read for evaluation with two layers' outputs,
/// [`NETWORK_COPIES`] f32 copies of the parameters (θ_0, θ, trained dense
/// θ_T, mask, scores, gradient, two Adam moments, dense gradient of the dynamic methods,
/// the matched random ticket and the autodiff graph's saved tensors), and forward plus
/// backward activations of one batch, each layer's input and output kept four times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryEstimate {
    pub per_job_bytes: u64,
    pub parallel_jobs: usize,
    pub peak_bytes: u64,
    pub budget_bytes: u64,
    /// The task and model the estimate comes from.
    pub task: String,
    pub model: String,
    pub widths: String,
    pub samples: usize,
}

/// Parameter-sized f32 buffers one job can hold at once (see [`MemoryEstimate`]).
pub const NETWORK_COPIES: u64 = 16;

/// Resident memory of the process before any job (binary, allocator, thread pools):
/// measured 18–20 MiB on Linux x86-64 (docs/scaling.md).
pub const PROCESS_BASE_BYTES: u64 = 20 << 20;

/// Memory of the suite's largest job and of `parallel` of them.
pub fn memory_estimate(suite: &Suite, parallel: usize, limits: &Limits) -> MemoryEstimate {
    let mut best = (0u64, String::new(), String::new(), String::new(), 0usize);
    let data_copies = if suite.checks.contains(&SanityCheck::RandomPixels) {
        2
    } else {
        1
    };
    for task in &suite.tasks {
        for model in suite.models.iter().filter(|m| m.runs_on(task)) {
            let widths = model.widths(task.task.as_ref());
            let samples = task.task.samples();
            let io = (widths[0] + widths[widths.len() - 1]) as u64;
            let data = samples as u64 * io * 4 * data_copies;
            let widest = widths.iter().copied().max().unwrap_or(0);
            let eval = samples.min(EVAL_CHUNK) as u64 * (widths[0] + 2 * widest) as u64 * 4;
            let params: u64 = model
                .shapes(task.task.as_ref())
                .unwrap_or_default()
                .iter()
                .map(|s| (s.len() + s.fan_out()) as u64)
                .sum();
            let activations =
                task.train.batch_size as u64 * widths.iter().sum::<usize>() as u64 * 4 * 4;
            let bytes = data + eval + params * 4 * NETWORK_COPIES + activations;
            if bytes > best.0 {
                let w: Vec<String> = widths.iter().map(|w| w.to_string()).collect();
                best = (
                    bytes,
                    task.label.clone(),
                    model.label(),
                    w.join("-"),
                    samples,
                );
            }
        }
    }
    let (per_job_bytes, task, model, widths, samples) = best;
    MemoryEstimate {
        per_job_bytes,
        parallel_jobs: parallel,
        peak_bytes: PROCESS_BASE_BYTES + per_job_bytes.saturating_mul(parallel as u64),
        budget_bytes: limits.memory_budget_bytes,
        task,
        model,
        widths,
        samples,
    }
}

/// Refuses, before anything is expanded or allocated, a suite beyond `limits` (unless
/// `confirmed`, i.e. `--yes`).
pub fn guard(
    suite: &Suite,
    parallel: usize,
    limits: &Limits,
    confirmed: bool,
) -> Result<(), PlanError> {
    if confirmed {
        return Ok(());
    }
    let jobs = job::grid_size(suite);
    if jobs > limits.max_jobs {
        return Err(PlanError::TooManyJobs {
            jobs,
            limit: limits.max_jobs,
        });
    }
    let memory = memory_estimate(suite, parallel, limits);
    if memory.peak_bytes > limits.memory_budget_bytes {
        return Err(PlanError::OverMemory {
            need: memory.per_job_bytes as f64 / GIB,
            widths: memory.widths,
            task: memory.task,
            samples: memory.samples,
            parallel,
            budget: limits.memory_budget_bytes as f64 / GIB,
        });
    }
    Ok(())
}

/// Estimated running time from recorded timings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeEstimate {
    /// Sum of the per-job estimates of the jobs still to run (`None`: no job has one).
    pub serial_s: Option<f64>,
    /// `serial_s` spread over the parallel jobs (groups are the unit of parallelism, so this
    /// is a lower bound when groups are few).
    pub wall_s: Option<f64>,
    /// Jobs estimated from recorded jobs with the same method, check, task, widths, density.
    pub exact: usize,
    /// … with the same method, check and widths.
    pub same_shape: usize,
    /// … with the same method only.
    pub same_method: usize,
    /// Jobs with no recorded timing to go by (not in `serial_s`).
    pub unknown: usize,
    /// Recorded results the estimate read.
    pub timing_records: usize,
}

/// What `ticketbench plan` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub suite: String,
    /// Jobs of the whole grid.
    pub grid_jobs: usize,
    pub shard: Option<String>,
    /// Jobs of this shard (the whole grid without `--shard`).
    pub jobs: usize,
    /// Of those, already recorded in the output directory.
    pub recorded: usize,
    pub to_run: usize,
    /// (task, model, seed) groups among the jobs to run: the unit `--jobs` spreads.
    pub groups_to_run: usize,
    pub time: TimeEstimate,
    pub memory: MemoryEstimate,
}

type ExactKey = (String, Option<String>, String, Vec<usize>, u64);
type ShapeKey = (String, Option<String>, Vec<usize>);

/// Mean recorded seconds per job at three levels of likeness.
#[derive(Default)]
struct Timings {
    exact: HashMap<ExactKey, (f64, usize)>,
    shape: HashMap<ShapeKey, (f64, usize)>,
    method: HashMap<String, (f64, usize)>,
}

fn add(map_entry: &mut (f64, usize), seconds: f64) {
    map_entry.0 += seconds;
    map_entry.1 += 1;
}

fn mean(entry: Option<&(f64, usize)>) -> Option<f64> {
    entry.map(|(sum, n)| sum / *n as f64)
}

impl Timings {
    fn record(&mut self, r: &JobRecord) {
        let s = r.timing.total_s;
        let exact = (
            r.method.clone(),
            r.check.clone(),
            r.task.clone(),
            r.widths.clone(),
            r.density.to_bits(),
        );
        add(self.exact.entry(exact).or_default(), s);
        let shape = (r.method.clone(), r.check.clone(), r.widths.clone());
        add(self.shape.entry(shape).or_default(), s);
        add(self.method.entry(r.method.clone()).or_default(), s);
    }
}

/// Plans `suite` as `opts` would run it on `device`, with timings from the output directory
/// and `timing_dirs`.
pub fn plan(
    suite: &Suite,
    device: DeviceSpec,
    opts: &RunOptions,
    timing_dirs: &[PathBuf],
    limits: &Limits,
) -> Result<Plan, store::StoreError> {
    let grid_jobs = job::grid_size(suite) as usize;
    let jobs = super::planned_jobs(suite, device, opts.shard);
    let recorded_here = store::load(&opts.out)?;
    let done = store::done_hashes(&recorded_here);
    let mut timings = Timings::default();
    let mut timing_records = 0;
    let mut seen = std::collections::HashSet::new();
    for loaded in
        std::iter::once(Ok(recorded_here)).chain(timing_dirs.iter().map(|d| store::load(d)))
    {
        for r in &loaded?.records {
            if seen.insert(r.settings_hash.clone()) {
                timings.record(r);
                timing_records += 1;
            }
        }
    }
    let todo: Vec<&Job> = jobs
        .iter()
        .filter(|j| !done.contains(&j.settings_hash))
        .collect();
    let mut time = TimeEstimate {
        serial_s: None,
        wall_s: None,
        exact: 0,
        same_shape: 0,
        same_method: 0,
        unknown: 0,
        timing_records,
    };
    for j in &todo {
        let task = &suite.tasks[j.task];
        let method = suite.methods[j.method].pruner.info().name.to_string();
        let check = j.check.map(|c| c.name().to_string());
        let widths = suite.models[j.model].widths(task.task.as_ref());
        let exact = (
            method.clone(),
            check.clone(),
            task.task.name().to_string(),
            widths.clone(),
            j.density.get().to_bits(),
        );
        let estimate = if let Some(s) = mean(timings.exact.get(&exact)) {
            time.exact += 1;
            s
        } else if let Some(s) = mean(timings.shape.get(&(method.clone(), check, widths))) {
            time.same_shape += 1;
            s
        } else if let Some(s) = mean(timings.method.get(&method)) {
            time.same_method += 1;
            s
        } else {
            time.unknown += 1;
            continue;
        };
        *time.serial_s.get_or_insert(0.0) += estimate;
    }
    let groups_to_run = todo.chunk_by(|a, b| a.group_key() == b.group_key()).count();
    let parallel = opts.jobs.clamp(1, groups_to_run.max(1));
    time.wall_s = time.serial_s.map(|s| s / parallel as f64);
    Ok(Plan {
        suite: suite.name.clone(),
        grid_jobs,
        shard: opts.shard.map(|s| s.to_string()),
        jobs: jobs.len(),
        recorded: jobs.len() - todo.len(),
        to_run: todo.len(),
        groups_to_run,
        time,
        memory: memory_estimate(suite, opts.jobs, limits),
    })
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shard = self.shard.as_ref().map_or(String::new(), |s| {
            format!(" (shard {s} of a {}-job grid)", self.grid_jobs)
        });
        writeln!(
            f,
            "suite {}: {} jobs{shard}; {} already recorded, {} to run in {} groups",
            self.suite, self.jobs, self.recorded, self.to_run, self.groups_to_run
        )?;
        let t = &self.time;
        match (t.serial_s, t.wall_s) {
            (Some(serial), Some(wall)) => writeln!(
                f,
                "estimated time: {} of job time, about {} wall with {} parallel jobs",
                duration(serial),
                duration(wall),
                self.memory.parallel_jobs
            )?,
            _ => writeln!(f, "estimated time: unknown (no recorded timings to go by)")?,
        }
        writeln!(
            f,
            "  from {} recorded results: {} jobs matched exactly, {} by method and widths, {} by method only, {} without an estimate",
            t.timing_records, t.exact, t.same_shape, t.same_method, t.unknown
        )?;
        let m = &self.memory;
        write!(
            f,
            "estimated memory: {:.1} MiB per job ({} on {}), {:.1} MiB peak with {} parallel jobs; budget {:.1} GiB",
            m.per_job_bytes as f64 / (1u64 << 20) as f64,
            m.model,
            m.task,
            m.peak_bytes as f64 / (1u64 << 20) as f64,
            m.parallel_jobs,
            m.budget_bytes as f64 / GIB
        )
    }
}

fn duration(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7200.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}
