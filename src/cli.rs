//! The command line (clap): parses arguments and dispatches to the library. Exit codes:
//! 0 success, 2 bad input or usage (the message names the file/line or the fix), 1 other
//! failures.

use crate::device::DeviceSpec;
use crate::engine::{Engine, Kernel};
use crate::methods::{self, MethodCache, PruneContext};
use crate::report;
use crate::runner::{self, RunOptions, suite::Suite};
use anyhow::{Context, anyhow};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use ticketbench_baselines::ratios;
use ticketbench_core::select::Keep;
use ticketbench_core::{Density, InitScheme, Network, Streams, target_count};
use ticketbench_planted::tasks as task_registry;
use ticketbench_planted::{SparseTicket, SubsetSumConfig, plant_subset_sum, score_function};

/// A failure with its exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub error: anyhow::Error,
}

impl CliError {
    /// The error and its causes as `a: b: c`, leaving out a cause the text before it already
    /// ends with (library errors that print their source, e.g. `path: No space left on
    /// device`, would otherwise say it twice).
    pub fn message(&self) -> String {
        let mut out = String::new();
        for cause in self.error.chain() {
            let text = cause.to_string();
            if out.ends_with(&text) {
                continue;
            }
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        out
    }
}

impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> Self {
        CliError { code: 1, error }
    }
}

/// Marks an error as bad input (exit code 2).
trait BadInput<T> {
    fn bad_input(self) -> Result<T, CliError>;
}

impl<T, E: Into<anyhow::Error>> BadInput<T> for Result<T, E> {
    fn bad_input(self) -> Result<T, CliError> {
        self.map_err(|e| CliError {
            code: 2,
            error: e.into(),
        })
    }
}

#[derive(Parser)]
#[command(
    name = "ticketbench",
    version,
    about = "Planted-ticket benchmark and sanity checks for lottery-ticket pruning methods"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a suite; jobs already recorded in the output directory are skipped.
    Run(RunArgs),
    /// Tables (Markdown, LaTeX, CSV), plots (SVG, PNG), an HTML page and the leaderboard
    /// from one or more result directories.
    Report(ReportArgs),
    /// List methods, ratio rules, tasks, inits and devices with citations.
    List(ListArgs),
    /// Per-layer densities of a ratio rule.
    Ratios(RatiosArgs),
    /// Prune one network outside a suite and export the ticket as safetensors.
    Prune(PruneArgs),
    /// Plant a task's target in a random host and export host, planted mask and target.
    Plant(PlantArgs),
    /// Combine the results of several directories (shards) into one.
    Merge(MergeArgs),
    /// Job count, estimated time and memory of a suite, before running it.
    Plan(PlanArgs),
    /// Run a suite's jobs on two devices or backends and compare masks and metrics.
    Repro(ReproArgs),
    /// Training-step throughput of one masked MLP (steps per second).
    BenchStep(BenchStepArgs),
}

/// Planting kind on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PlantChoice {
    /// Plant 'n' Seek: exact ticket, planted values written into a He-scaled host.
    Weak,
    /// Subset-sum construction: host values untouched, ε-ticket with a certificate.
    Strong,
}

#[derive(Args)]
struct PlantArgs {
    /// Task with a target: relu, circle or helix.
    #[arg(long)]
    task: String,
    /// Host widths W0,W1,...,WL (weak: the host; strong: its depth gives the target's depth
    /// and the hidden widths the minimum padded width of every host layer).
    #[arg(long = "host-widths", value_parser = parse_widths)]
    host_widths: Widths,
    #[arg(long, value_enum, default_value = "weak")]
    kind: PlantChoice,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Strong only: largest error of every realised parameter (ε_w).
    #[arg(long, default_value_t = 0.01)]
    epsilon: f64,
    /// Directory for planted.safetensors and planted.json (+ certificate.json when strong).
    #[arg(long)]
    export: PathBuf,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    target: SuiteTarget,
    /// Do not print a line per finished job.
    #[arg(long)]
    quiet: bool,
    /// Run a grid beyond the job-count or memory budget (see `ticketbench plan`).
    #[arg(long)]
    yes: bool,
}

/// A suite, where its results go and how its grid is run (shared by `run` and `plan`).
#[derive(Args)]
struct SuiteTarget {
    /// Suite file (YAML).
    suite: PathBuf,
    /// Results directory [default: results/<suite name>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// cpu | ndarray | cuda[:N]; overrides the suite's `device`.
    #[arg(long)]
    device: Option<DeviceSpec>,
    #[command(flatten)]
    grid: GridArgs,
}

impl SuiteTarget {
    /// The parsed suite, its device and the run options.
    fn load(&self, verbose: bool) -> Result<(Suite, DeviceSpec, RunOptions), CliError> {
        let suite = Suite::load(&self.suite).bad_input()?;
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("results").join(&suite.name));
        let opts = self.grid.options(out, verbose)?;
        let device = self.device.unwrap_or(suite.device);
        Ok((suite, device, opts))
    }
}

/// How a suite's grid is split and run (shared by `run` and `plan`).
#[derive(Args)]
struct GridArgs {
    /// Threads of each job's CPU backend (1 is fastest for the small MLPs of the planted
    /// tasks).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Jobs run in parallel, each with its own --threads (jobs × threads ≤ cores avoids
    /// oversubscription).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Run only shard I of N (1 ≤ I ≤ N): a hash-based part of the grid that stays the same
    /// when jobs are added. Give each shard its own --out and combine them with `merge`.
    #[arg(long, value_parser = clap::value_parser!(runner::Shard))]
    shard: Option<runner::Shard>,
    /// Memory budget in GiB [default: 80 % of the memory available now].
    #[arg(long = "memory-budget")]
    memory_budget_gib: Option<f64>,
}

impl GridArgs {
    fn options(&self, out: PathBuf, verbose: bool) -> Result<RunOptions, CliError> {
        if self.threads == 0 || self.jobs == 0 {
            return Err(anyhow!("--threads and --jobs must be at least 1")).bad_input();
        }
        if let Some(gib) = self.memory_budget_gib
            && !(gib.is_finite() && gib > 0.0)
        {
            return Err(anyhow!(
                "--memory-budget {gib} is not a positive number of GiB"
            ))
            .bad_input();
        }
        Ok(RunOptions {
            out,
            threads: self.threads,
            jobs: self.jobs,
            shard: self.shard,
            verbose,
        })
    }

    fn limits(&self) -> runner::plan::Limits {
        runner::plan::Limits::for_this_machine(self.memory_budget_gib)
    }
}

#[derive(Args)]
struct MergeArgs {
    /// Result directories to combine.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Directory of the merged results.jsonl (its own results are kept).
    #[arg(long)]
    out: PathBuf,
    /// On conflicting records of one job, keep the first input's and report the others.
    #[arg(long = "keep-first")]
    keep_first: bool,
}

#[derive(Args)]
struct BenchStepArgs {
    /// Layer widths W0,W1,...,WL of an MLP (WL ≥ 2 classes).
    #[arg(long, value_parser = parse_widths, default_value = "784,300,100,10")]
    widths: Widths,
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Density of a uniform random ticket (1 = dense).
    #[arg(long, value_parser = parse_density, default_value = "1")]
    density: Density,
    /// Timed steps.
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// Untimed warm-up steps before.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// Threads of the backend pool.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Kernels of the native CPU step for masked layers: sparse (CSR) at density ≤ 5 %
    /// (auto), or forced dense GEMMs or sparse.
    #[arg(long, value_enum, default_value_t = Kernel::Auto)]
    kernel: Kernel,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ReproArgs {
    /// Suite file (YAML); its `device` is ignored.
    suite: PathBuf,
    /// The two devices, e.g. cpu,ndarray (two CPU backends) or cpu,cuda; cpu,cpu checks
    /// run-to-run determinism.
    #[arg(long, value_delimiter = ',', required = true)]
    devices: Vec<DeviceSpec>,
    /// Threads of each backend pool.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Also write repro.md and repro.json into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print JSON instead of the Markdown table.
    #[arg(long)]
    json: bool,
    /// Run a grid beyond the job-count or memory budget.
    #[arg(long)]
    yes: bool,
}

#[derive(Args)]
struct PlanArgs {
    #[command(flatten)]
    target: SuiteTarget,
    /// More result directories whose timings inform the estimate.
    #[arg(long = "timings")]
    timings: Vec<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ReportArgs {
    /// Result directories (their results.jsonl are merged).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where to write the report [default: the first directory].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Comma-separated output formats: md, tex, csv, svg, png, html, or all.
    #[arg(long, default_value = "all", value_parser = parse_formats)]
    format: Formats,
    /// Leaderboard history (JSON lines) to compare the scores with, e.g.
    /// reports/leaderboard/history.jsonl.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Append this report's leaderboard to --history (replacing an entry of the same date
    /// and commit).
    #[arg(long, requires = "history")]
    record_history: bool,
    /// Commit recorded in the history [default: the results' provenance commit].
    #[arg(long)]
    commit: Option<String>,
    /// Date recorded in the history, YYYY-MM-DD [default: today, UTC].
    #[arg(long)]
    date: Option<String>,
}

/// Report formats (a newtype: clap would read a bare `Vec` as repeated values).
#[derive(Debug, Clone)]
struct Formats(Vec<report::Format>);

fn parse_formats(s: &str) -> Result<Formats, String> {
    report::Format::parse_list(s)
        .map(Formats)
        .map_err(|e| e.to_string())
}

#[derive(Args)]
struct ListArgs {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Layer widths `W0,W1,...,WL` (a newtype: clap would read a bare `Vec` as repeated values).
#[derive(Debug, Clone)]
struct Widths(Vec<usize>);

fn parse_widths(s: &str) -> Result<Widths, String> {
    let widths: Vec<usize> = s
        .split(',')
        .map(|w| {
            w.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{w}` is not a width; write e.g. 784,300,100,10"))
        })
        .collect::<Result<_, _>>()?;
    Network::mlp_shapes(&widths).map_err(|e| e.to_string())?;
    Ok(Widths(widths))
}

fn parse_density(s: &str) -> Result<Density, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    Density::new(v).map_err(|e| e.to_string())
}

#[derive(Args)]
struct RatiosArgs {
    /// Ratio rule name (see `ticketbench list`).
    #[arg(long)]
    rule: String,
    /// Layer widths W0,W1,...,WL of an MLP.
    #[arg(long, value_parser = parse_widths)]
    widths: Widths,
    /// Global density in (0, 1].
    #[arg(long, value_parser = parse_density)]
    density: Density,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PruneArgs {
    /// Method name (see `ticketbench list`).
    #[arg(long)]
    method: String,
    /// Method parameter `key=value` (repeatable), e.g. --param rule=erk.
    #[arg(long = "param")]
    params: Vec<String>,
    /// Layer widths W0,W1,...,WL of an MLP.
    #[arg(long, value_parser = parse_widths)]
    widths: Widths,
    #[arg(long, value_parser = parse_density)]
    density: Density,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory for ticket.safetensors and ticket.json.
    #[arg(long)]
    export: PathBuf,
    /// Data for data-dependent methods [default: gaussian noise of matching widths].
    #[arg(long)]
    task: Option<String>,
    #[arg(long, default_value = "kaiming-normal")]
    init: String,
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
}

/// Entry point of the binary.
pub fn main() -> Result<(), CliError> {
    let cli = Cli::try_parse().unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Run(a) => run(a),
        Command::Report(a) => report_cmd(a),
        Command::List(a) => list(a),
        Command::Ratios(a) => ratios_cmd(a),
        Command::Prune(a) => prune(a),
        Command::Plant(a) => plant(a),
        Command::Merge(a) => merge(a),
        Command::Plan(a) => plan(a),
        Command::Repro(a) => repro(a),
        Command::BenchStep(a) => bench_step(a),
    }
}

fn run(a: RunArgs) -> Result<(), CliError> {
    let (suite, device, opts) = a.target.load(!a.quiet)?;
    let out = opts.out.clone();
    let path = a.target.suite.display();
    runner::plan::guard(&suite, opts.jobs, &a.target.grid.limits(), a.yes)
        .with_context(|| format!("{path} (see `ticketbench plan {path}`)"))
        .bad_input()?;
    // A missing backend is a usage error, reported before any work.
    let engine = Engine::new(device).bad_input()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if opts.jobs * opts.threads > cores {
        eprintln!(
            "warning: --jobs {} × --threads {} = {} threads on {cores} cores; the jobs will slow each other down",
            opts.jobs,
            opts.threads,
            opts.jobs * opts.threads
        );
    }
    if !a.quiet {
        let about = suite.description.as_deref().unwrap_or("no description");
        eprintln!(
            "suite {} ({}): {}",
            suite.name,
            a.target.suite.display(),
            about.trim()
        );
    }
    if let Some(shard) = opts.shard {
        eprintln!("running shard {shard} into {}", out.display());
    }
    let summary = match runner::run_suite(&suite, &engine, &opts) {
        Err(
            e @ runner::RunError::Store(
                runner::store::StoreError::Locked { .. }
                | runner::store::StoreError::NotResults { .. },
            ),
        ) => {
            return Err(e).bad_input();
        }
        other => other.context("running the suite")?,
    };
    let text =
        report::write_report(std::slice::from_ref(&out), &out).context("writing the report")?;
    println!("{text}");
    eprintln!(
        "{}: {} jobs, {} run, {} already recorded, {} diverged, {} failed, {:.1} s; results {}, report {}",
        suite.name,
        summary.total,
        summary.ran,
        summary.skipped,
        summary.diverged,
        summary.failed.len(),
        summary.wall_s,
        out.join(runner::store::RESULTS_FILE).display(),
        out.join(report::REPORT_FILE).display()
    );
    if !summary.failed.is_empty() {
        return Err(anyhow!(
            "{} jobs failed (rerun to retry them):\n  {}",
            summary.failed.len(),
            summary.failed.join("\n  ")
        )
        .into());
    }
    Ok(())
}

fn merge(a: MergeArgs) -> Result<(), CliError> {
    use runner::merge::MergeError;
    let summary = match runner::merge::merge(&a.dirs, &a.out, a.keep_first) {
        Ok(s) => s,
        Err(
            e
            @ (MergeError::Store(runner::store::StoreError::Io { .. }) | MergeError::Conflicts(_)),
        ) => {
            return Err(anyhow::Error::from(e).context("merging").into());
        }
        Err(e) => return Err(e).bad_input(),
    };
    for bad in &summary.bad_lines {
        eprintln!("warning: {bad} (not copied)");
    }
    for c in &summary.kept_first {
        eprintln!("warning: kept the first of two conflicting records: {c}");
    }
    eprintln!(
        "merged {} directories into {}: {} results ({} duplicates kept once, {} conflicts, {} unreadable lines skipped)",
        a.dirs.len(),
        a.out.join(runner::store::RESULTS_FILE).display(),
        summary.records,
        summary.duplicates,
        summary.kept_first.len(),
        summary.bad_lines.len()
    );
    Ok(())
}

fn plan(a: PlanArgs) -> Result<(), CliError> {
    let (suite, device, opts) = a.target.load(false)?;
    let limits = a.target.grid.limits();
    let jobs = runner::job::grid_size(&suite);
    if jobs > limits.max_jobs {
        // Too large to expand here either: say so instead of exhausting memory.
        return Err(runner::plan::PlanError::TooManyJobs {
            jobs,
            limit: limits.max_jobs,
        })
        .with_context(|| a.target.suite.display().to_string())
        .bad_input();
    }
    let plan = runner::plan::plan(&suite, device, &opts, &a.timings, &limits)
        .context("reading recorded timings")?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).expect("plans serialize")
        );
    } else {
        println!("{plan}");
        if let Err(e) = runner::plan::guard(&suite, opts.jobs, &limits, false) {
            println!("`ticketbench run` would refuse this grid without --yes: {e}");
        }
    }
    Ok(())
}

fn repro(a: ReproArgs) -> Result<(), CliError> {
    let suite = Suite::load(&a.suite).bad_input()?;
    let [first, second] = a.devices[..] else {
        return Err(anyhow!(
            "--devices takes two devices, e.g. --devices cpu,ndarray (got {})",
            a.devices.len()
        ))
        .bad_input();
    };
    if a.threads == 0 {
        return Err(anyhow!("--threads must be at least 1")).bad_input();
    }
    let limits = runner::plan::Limits::for_this_machine(None);
    runner::plan::guard(&suite, 2, &limits, a.yes)
        .with_context(|| a.suite.display().to_string())
        .bad_input()?;
    let engines = [
        Engine::new(first).bad_input()?,
        Engine::new(second).bad_input()?,
    ];
    let result = runner::repro::repro(
        &suite,
        [&engines[0], &engines[1]],
        a.threads,
        &mut |i, n, row| {
            eprintln!(
                "[{i}/{n}] {} {} {} d={} seed={}: {:?}",
                row.task, row.model, row.method, row.density, row.seed, row.agreement
            )
        },
    )
    .context("running the jobs")?;
    let markdown = result.to_string();
    let json = serde_json::to_string_pretty(&result).expect("repro results serialize");
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
        for (name, text) in [("repro.md", &markdown), ("repro.json", &json)] {
            let path = out.join(name);
            std::fs::write(&path, text).with_context(|| path.display().to_string())?;
        }
    }
    println!("{}", if a.json { &json } else { &markdown });
    if !result.holds() {
        return Err(anyhow!(
            "{} jobs broke the reproducibility contract (a data-free mask or an untrained metric differs) and {} failed; see the table",
            result.count(runner::repro::Agreement::Broken),
            result.count(runner::repro::Agreement::Failed)
        )
        .into());
    }
    Ok(())
}

fn bench_step(a: BenchStepArgs) -> Result<(), CliError> {
    if a.threads == 0 || a.steps == 0 || a.batch == 0 {
        return Err(anyhow!("--threads, --steps and --batch must be at least 1")).bad_input();
    }
    let engine = Engine::new(a.device).bad_input()?.with_kernel(a.kernel);
    let bench = crate::bench::StepBench {
        widths: a.widths.0,
        batch: a.batch,
        density: a.density,
        steps: a.steps,
        warmup: a.warmup,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()
        .context("building the thread pool")?;
    let result = pool
        .install(|| crate::bench::bench_step(&engine, a.threads, &bench))
        .bad_input()?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&result).expect("results serialize")
        );
    } else {
        println!("{result}");
    }
    Ok(())
}

fn report_cmd(a: ReportArgs) -> Result<(), CliError> {
    let out = a.out.unwrap_or_else(|| a.dirs[0].clone());
    let opts = report::ReportOptions {
        formats: a.format.0,
        history: a.history,
        record_history: a.record_history,
        commit: a.commit,
        date: a.date,
    };
    let summary = report::write_reports(&a.dirs, &out, &opts).map_err(|e| CliError {
        code: if e.is_bad_input() { 2 } else { 1 },
        error: anyhow::Error::from(e).context("writing the report"),
    })?;
    if let Some(text) = &summary.markdown {
        println!("{text}");
    }
    eprintln!(
        "report written to {}: {} files ({})",
        out.display(),
        summary.files.len(),
        opts.formats
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    match (&summary.recorded, opts.record_history) {
        (Some(path), _) => eprintln!(
            "leaderboard of {} methods recorded in {}",
            summary.leaderboard.entries.len(),
            path.display()
        ),
        (None, true) => eprintln!(
            "no method has a matched random ticket and a dense reference: nothing recorded in the history"
        ),
        (None, false) => {}
    }
    Ok(())
}

fn list(a: ListArgs) -> Result<(), CliError> {
    let method_rows: Vec<serde_json::Value> = methods::METHODS
        .iter()
        .map(|m| {
            let defaults = (m.build)(&Default::default()).map(|p| p.params()).unwrap_or_default();
            json!({"name": m.name, "family": m.family, "data": m.data, "summary": m.summary, "citation": m.citation, "params": defaults})
        })
        .collect();
    let rule_rows: Vec<serde_json::Value> = ratios::RULES
        .iter()
        .map(|r| json!({"name": r.name, "summary": r.summary, "citation": r.citation}))
        .collect();
    let task_rows: Vec<serde_json::Value> = task_registry::TASKS
        .iter()
        .map(|t| {
            // Tasks that read files (idx, cifar) have no defaults to show.
            match (t.build)(&Default::default()) {
                Ok(task) => json!({"name": t.name, "summary": t.summary, "citation": t.citation, "inputs": task.input_dim(), "output": task.output(), "params": task.params()}),
                Err(_) => json!({"name": t.name, "summary": t.summary, "citation": t.citation, "inputs": null, "output": null, "params": null, "required": t.paths}),
            }
        })
        .collect();
    let inits: Vec<&str> = InitScheme::ALL.iter().map(|i| i.name()).collect();
    let devices = ["cpu", "ndarray", "cuda[:N]"];
    if a.json {
        let all = json!({"methods": method_rows, "ratio_rules": rule_rows, "tasks": task_rows, "inits": inits, "devices": devices});
        println!("{}", serde_json::to_string_pretty(&all).expect("json"));
        return Ok(());
    }
    let field = |v: &serde_json::Value, k: &str| {
        v[k].as_str()
            .map_or_else(|| v[k].to_string(), str::to_string)
    };
    println!("METHODS (name, family, data, summary; citation)");
    for m in &method_rows {
        println!(
            "  {:<12} {:<15} {:<14} {}\n  {:<12} {}",
            field(m, "name"),
            field(m, "family"),
            field(m, "data"),
            field(m, "summary"),
            "",
            field(m, "citation")
        );
    }
    println!(
        "  Any method that prunes at the suite's densities also takes `structure: channel`:\n  whole output channels of the convolutions, at the method's own layer counts."
    );
    println!("\nRATIO RULES");
    for r in &rule_rows {
        println!(
            "  {:<12} {}\n  {:<12} {}",
            field(r, "name"),
            field(r, "summary"),
            "",
            field(r, "citation")
        );
    }
    println!("\nTASKS");
    for t in &task_rows {
        println!(
            "  {:<10} {}\n  {:<10} {}",
            field(t, "name"),
            field(t, "summary"),
            "",
            field(t, "citation")
        );
    }
    println!(
        "\nINITS    {}\nDEVICES  {}",
        inits.join(", "),
        devices.join(", ")
    );
    Ok(())
}

fn ratios_cmd(a: RatiosArgs) -> Result<(), CliError> {
    let rule = ratios::rule(&a.rule).bad_input()?;
    let shapes = Network::mlp_shapes(&a.widths.0).bad_input()?;
    // Only widths here: a weight-dependent rule (LAMP) answers with a NeedsWeights error.
    let input = ratios::RuleInput::Shapes(&shapes);
    let densities = rule.densities(input, a.density).bad_input()?;
    let counts = rule.counts(input, a.density).bad_input()?;
    let rows: Vec<serde_json::Value> = shapes
        .iter()
        .zip(&densities)
        .zip(&counts)
        .enumerate()
        .map(|(l, ((s, d), k))| json!({"layer": l, "shape": s.dims, "size": s.len(), "density": d, "count": k}))
        .collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
    } else {
        println!("rule {} at density {}:", a.rule, a.density);
        for ((s, d), k) in shapes.iter().zip(&densities).zip(&counts) {
            println!(
                "  {:>12}  density {:.6}  keeps {k} of {}",
                s.to_string(),
                d,
                s.len()
            );
        }
    }
    Ok(())
}

/// `key=value` → JSON (numbers, booleans and JSON literals parse; anything else is a string).
fn parse_param(kv: &str) -> Result<(String, serde_json::Value), String> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| format!("--param `{kv}` is not key=value"))?;
    let value =
        serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

fn prune(a: PruneArgs) -> Result<(), CliError> {
    let params: methods::Params = a
        .params
        .iter()
        .map(|p| parse_param(p))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!(e))
        .bad_input()?;
    let pruner = methods::build(&a.method, &params).bad_input()?;
    let init: InitScheme = serde_json::from_value(json!(a.init))
        .map_err(|_| {
            anyhow!(
                "unknown init `{}`; valid inits: {}",
                a.init,
                InitScheme::ALL.map(|i| i.name()).join(", ")
            )
        })
        .bad_input()?;
    let (inputs, outputs) = (a.widths.0[0], *a.widths.0.last().expect("validated"));
    let task = match &a.task {
        Some(name) => task_registry::build(name, &Default::default()).bad_input()?,
        None => {
            let mut p = methods::Params::new();
            p.insert("inputs".into(), json!(inputs));
            p.insert("classes".into(), json!(outputs));
            task_registry::build("gaussian", &p)
                .context("the default gaussian task needs at least 2 outputs; pass --task")
                .bad_input()?
        }
    };
    check_task_widths(task.as_ref(), &a.widths.0, "--widths")?;
    let engine = Engine::new(a.device).bad_input()?;
    let streams = Streams::new(a.seed);
    let net = Network::mlp(&a.widths.0, true, init, &streams).bad_input()?;
    let device_data = engine.upload(task.generate(&streams));
    let recipe = crate::train::TrainRecipe::default();
    let mut trained_dense = None;
    let mut ctx = PruneContext {
        engine: &engine,
        net: &net,
        data: &device_data,
        recipe: &recipe,
        streams: &streams,
        trained_dense: &mut trained_dense,
        cache: &mut MethodCache::new(),
        progress: &mut |msg| eprintln!("{msg}"),
        planted: None,
        job: Default::default(),
    };
    let outcome = pruner.prune(&mut ctx, a.density).context("pruning")?;
    // The scoring batch of SNIP and GraSP at this seed (their stream, the method's
    // `per_class` or their default 10), exported so others can score on the same data.
    let per_class = pruner.params()["per_class"]
        .as_u64()
        .map_or(10, |n| n as usize);
    let scoring = device_data.scoring_batch(per_class, &streams, "scoring/batch");
    let expected = target_count(a.density, net.num_prunable()).bad_input()?;
    if outcome.mask.kept() != expected {
        return Err(anyhow!(
            "method kept {} weights instead of {expected}",
            outcome.mask.kept()
        )
        .into());
    }
    let summary = json!({
        "method": pruner.info().name,
        "params": pruner.params(),
        "task": task.name(),
        "widths": a.widths.0,
        "init": init.name(),
        "density": a.density.get(),
        "seed": a.seed,
        "kept": outcome.mask.kept(),
        "total": outcome.mask.total(),
        "layer_kept": outcome.mask.layer_kept(),
        "layer_densities": outcome.mask.layer_densities(),
        "scores_keep": outcome.scores.as_ref().map(|_| match outcome.keep {
            Keep::Highest => "highest",
            Keep::Lowest => "lowest",
        }),
        "method_log": outcome.log,
        "scoring_per_class": per_class,
        "version": crate::VERSION,
        "layout": "weights [out, in] row-major (PyTorch nn.Linear); see docs/export.md",
    });
    let path = crate::export::export_ticket(&a.export, &net, &outcome, &scoring, &summary)
        .context("exporting the ticket")?;
    let json_path = write_json(&a.export, "ticket.json", &summary)?;
    println!("{}", serde_json::to_string_pretty(&summary).expect("json"));
    eprintln!("wrote {} and {}", path.display(), json_path.display());
    Ok(())
}

/// Writes `value` as pretty JSON to `dir/file` and returns the path.
fn write_json(
    dir: &std::path::Path,
    file: &str,
    value: &impl serde::Serialize,
) -> Result<PathBuf, CliError> {
    let path = dir.join(file);
    std::fs::write(&path, serde_json::to_string_pretty(value).expect("json"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The first and last of `widths` (given as `flag`) must be the task's input and output widths.
fn check_task_widths(
    task: &dyn task_registry::Task,
    widths: &[usize],
    flag: &str,
) -> Result<(), CliError> {
    let (inputs, outputs) = (task.input_dim(), task.output().dim());
    if widths[0] != inputs || widths.last() != Some(&outputs) {
        return Err(anyhow!(
            "task `{}` has {inputs} inputs and {outputs} outputs; {flag} must start with {inputs} and end with {outputs}",
            task.name(),
        ))
        .bad_input();
    }
    Ok(())
}

fn plant(a: PlantArgs) -> Result<(), CliError> {
    let task = task_registry::build(&a.task, &Default::default()).bad_input()?;
    let widths = &a.host_widths.0;
    check_task_widths(task.as_ref(), widths, "--host-widths")?;
    let target = task.target(widths.len()).bad_input()?;
    let streams = Streams::new(a.seed);
    let (planted, certificate) = match a.kind {
        PlantChoice::Weak => {
            let host = Network::mlp(widths, true, InitScheme::HeScaled, &streams).bad_input()?;
            (
                ticketbench_planted::plant_pns(&target, host).bad_input()?,
                None,
            )
        }
        PlantChoice::Strong => {
            let config = SubsetSumConfig {
                epsilon: a.epsilon,
                width: widths[1..widths.len() - 1]
                    .iter()
                    .copied()
                    .max()
                    .unwrap_or(0),
                ..SubsetSumConfig::default()
            };
            let (p, c) = plant_subset_sum(&target, &config, &streams).bad_input()?;
            (p, Some(c))
        }
    };
    let data = task.generate(&streams);
    let ticket = SparseTicket::new(&planted.host, &planted.mask, Some(&planted.bias_mask));
    let ticket_score = score_function(&data.test, &planted.output_scale, |x| {
        let y = ticket.forward(x);
        y.iter()
            .zip(&planted.output_scale)
            .map(|(v, s)| v / s)
            .collect()
    });
    let ones = vec![1.0; task.output().dim()];
    let target_score = score_function(&data.test, &ones, |x| target.forward(x));
    let metric = match task.output() {
        ticketbench_planted::OutputKind::Classes(_) => "test accuracy",
        ticketbench_planted::OutputKind::Regression(_) => "test MSE",
    };
    let summary = json!({
        "task": task.name(),
        "kind": planted.kind,
        "seed": a.seed,
        "host_widths": planted.host.widths(),
        "target_widths": target.widths(),
        "planted_weights": planted.mask.kept(),
        "host_weights": planted.mask.total(),
        "density": planted.density(),
        "layer_planted": planted.mask.layer_kept(),
        "output_scale": planted.output_scale,
        "neurons": planted.neurons,
        "metric": metric,
        "target_metric": target_score.raw,
        "ticket_metric": ticket_score.raw,
        "version": crate::VERSION,
        "layout": "weights [out, in] row-major (PyTorch nn.Linear); see docs/export.md",
    });
    let path = crate::export::export_planted(&a.export, &planted, &summary)
        .context("exporting the planted host")?;
    let json_path = write_json(&a.export, "planted.json", &summary)?;
    if let Some(c) = &certificate {
        write_json(&a.export, "certificate.json", c)?;
        eprintln!(
            "certificate: sup-norm error ≤ {:.4} (measured max {:.4} on {} probes)",
            c.certified_bound, c.probe_max_error, c.probes
        );
    }
    println!("{}", serde_json::to_string_pretty(&summary).expect("json"));
    eprintln!("wrote {} and {}", path.display(), json_path.display());
    Ok(())
}
