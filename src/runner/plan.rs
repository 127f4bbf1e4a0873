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
use crate::methods::Work;
use crate::train::EVAL_CHUNK;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use thiserror::Error;
use ticketbench_baselines::checks::SanityCheck;

/// Largest grid run without `--yes`.
pub const DEFAULT_MAX_JOBS: u128 = 50_000;

/// Longest modelled wall time run without `--yes`: one day.
pub const DEFAULT_MAX_MODEL_WALL_S: f64 = 24.0 * 3600.0;

/// The time model's machine, per parallel job: about what a dense LeNet-300-100 training
/// step sustains on the 2-core recording machine (98–108 GFLOP/s, docs/performance.md) and
/// a per-step floor well under its measured ~1.3 ms steps. The model is meant to catch a
/// typo (`epochs: 1000000000`), so it errs fast: a run it calls a day takes longer.
/// Host passes: SynFlow's rounds measured 1.0e8 weights/s (0.2 ms per round of a
/// 2-100-100-100-4 host); the model takes ten times that.
const MODEL_FLOP_PER_S: f64 = 1e11;
const MODEL_STEP_S: f64 = 2e-6;
const MODEL_HOST_WEIGHTS_PER_S: f64 = 1e9;

/// What a run may use before it asks for `--yes`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_jobs: u128,
    pub memory_budget_bytes: u64,
    /// Longest modelled wall time ([`time_model`]) run without `--yes`.
    pub max_model_wall_s: f64,
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
            max_model_wall_s: DEFAULT_MAX_MODEL_WALL_S,
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
    #[error(
        "the suite would run for an estimated {} or more ({jobs} jobs, {parallel} at a time; the heaviest is {heaviest}, about {} alone), more than the {} run without confirmation; check `epochs`, `rounds`, `generations` and `samples` for a typo, see `ticketbench plan` (it estimates from recorded timings), or pass --yes to run it anyway",
        duration(*wall_s),
        duration(*heaviest_s),
        duration(*limit_s)
    )]
    TooLong {
        wall_s: f64,
        jobs: usize,
        parallel: usize,
        heaviest: String,
        heaviest_s: f64,
        limit_s: f64,
    },
}

/// "40 s", "12.5 min", "3.2 h", "41 days", "2.10e6 years".
fn duration(s: f64) -> String {
    const DAY: f64 = 86_400.0;
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else if s < 2.0 * DAY {
        format!("{:.1} h", s / 3600.0)
    } else if s < 730.0 * DAY {
        format!("{:.0} days", s / DAY)
    } else {
        format!("{:.2e} years", s / (365.25 * DAY))
    }
}

/// The compute model behind the time guard: per job, the method's own [`Work`] plus the
/// ticket's training (unless the method trains it), the matched random ticket's and each
/// transfer target's; a pass of one example costs 6 FLOP per weight (forward, backward,
/// update) at [`MODEL_FLOP_PER_S`], a step [`MODEL_STEP_S`], a host pass one weight per
/// 1/[`MODEL_HOST_WEIGHTS_PER_S`] s. Recorded timings are not used:
/// the guard runs before anything is read, and must stop a run no machine has timed.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeModel {
    /// Sum of the jobs' seconds spread over the parallel jobs.
    pub wall_s: f64,
    pub jobs: usize,
    /// The job with the most modelled seconds, as `task model method d=…`.
    pub heaviest: String,
    pub heaviest_s: f64,
}

pub fn time_model(suite: &Suite, parallel: usize) -> TimeModel {
    let jobs = job::expand(suite, DeviceSpec::Cpu);
    let mut serial = 0.0;
    let (mut heaviest, mut heaviest_s) = (String::new(), 0.0);
    for j in &jobs {
        let task = &suite.tasks[j.task];
        let model = &suite.models[j.model];
        let pruner = &suite.methods[j.method].pruner;
        let examples = task.task.samples();
        let weights: usize = model
            .shapes(task.task.as_ref())
            .unwrap_or_default()
            .iter()
            .map(|s| s.len())
            .sum();
        let training = Work::training(&task.train, examples);
        let mut work = pruner.work(j.density, &task.train, examples);
        let mut trainings = suite.transfer_targets(j.task).len() as f64;
        if !pruner.trains_ticket() {
            trainings += 1.0;
        }
        if suite.matched_random && !matches!(pruner.info().name, "dense" | "random") {
            trainings += 1.0;
        }
        work = work + training * trainings;
        let seconds = work.example_passes * 6.0 * weights as f64 / MODEL_FLOP_PER_S
            + work.steps * MODEL_STEP_S
            + work.host_passes * weights as f64 / MODEL_HOST_WEIGHTS_PER_S;
        serial += seconds;
        if seconds > heaviest_s {
            heaviest_s = seconds;
            heaviest = format!(
                "{} {} {} d={}",
                task.label,
                model.label(),
                suite.methods[j.method].label,
                j.density.get()
            );
        }
    }
    TimeModel {
        wall_s: serial / parallel.max(1) as f64,
        jobs: jobs.len(),
        heaviest,
        heaviest_s,
    }
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
    let time = time_model(suite, parallel);
    if time.wall_s > limits.max_model_wall_s {
        return Err(PlanError::TooLong {
            wall_s: time.wall_s,
            jobs: time.jobs,
            parallel,
            heaviest: time.heaviest,
            heaviest_s: time.heaviest_s,
            limit_s: limits.max_model_wall_s,
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
    /// The `--yes` guard's compute model of the whole grid ([`time_model`]).
    pub model_wall_s: f64,
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
        model_wall_s: time_model(suite, opts.jobs).wall_s,
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
        writeln!(
            f,
            "compute model (the --yes guard's, whole grid, no timings): {} wall with {} parallel jobs; limit {}",
            duration(self.model_wall_s),
            self.memory.parallel_jobs,
            duration(DEFAULT_MAX_MODEL_WALL_S)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn suite(text: &str) -> Suite {
        Suite::parse(text, Path::new("t.yaml")).unwrap()
    }

    #[test]
    fn the_time_model_counts_training_and_method_work_by_formula() {
        // Circle: 1,000 examples; 2-8-4 MLP: 16 + 32 = 48 weights; batch 100 → 10 steps an
        // epoch. random: one training of 3 epochs = 3,000 example passes and 30 steps.
        let s = suite(
            "tasks: [{name: circle, samples: 1000}]\nmodels: [{hidden: [8]}]\nmethods: [random]\ndensities: [0.5]\nseeds: 1\ntrain: {epochs: 3, batch_size: 100}\n",
        );
        let m = time_model(&s, 1);
        let want = 3000.0 * 6.0 * 48.0 / MODEL_FLOP_PER_S + 30.0 * MODEL_STEP_S;
        assert!((m.wall_s - want).abs() < 1e-15, "{} vs {want}", m.wall_s);
        // SynFlow adds its rounds as host passes; matched random a second training; two
        // parallel jobs halve the wall time.
        let s = suite(
            "tasks: [{name: circle, samples: 1000}]\nmodels: [{hidden: [8]}]\nmethods: [{name: synflow, rounds: 7}]\ndensities: [0.5]\nseeds: 1\nmatched_random: true\ntrain: {epochs: 3, batch_size: 100}\n",
        );
        let m = time_model(&s, 2);
        let want = (2.0 * want + 7.0 * 48.0 / MODEL_HOST_WEIGHTS_PER_S) / 2.0;
        assert!((m.wall_s - want).abs() < 1e-15, "{} vs {want}", m.wall_s);
        assert_eq!(
            m.heaviest,
            "circle[samples=1000] mlp-8 synflow[rounds=7] d=0.5"
        );
    }

    #[test]
    fn the_guard_refuses_a_run_of_years_and_yes_lets_it_pass() {
        let s = suite(
            "tasks: [circle]\nmethods: [random]\ndensities: [0.5]\nseeds: 1\ntrain: {epochs: 1000000000}\n",
        );
        let limits = Limits::for_this_machine(Some(1.0));
        let err = guard(&s, 1, &limits, false).unwrap_err();
        assert!(matches!(err, PlanError::TooLong { .. }), "{err}");
        assert!(err.to_string().contains("pass --yes"), "{err}");
        assert_eq!(guard(&s, 1, &limits, true), Ok(()));
        assert_eq!(duration(3.0e7), "347 days");
        assert_eq!(duration(1.0e9), "3.17e1 years");
    }
}
