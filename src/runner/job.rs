//! Jobs: one (task, model, method, density, seed) cell of a suite's grid, its settings
//! hash, its execution and its result record.

use super::suite::{ConvEntry, DensitySpec, ModelSpec, Suite, SuiteMethod, SuiteTask};
use crate::device::DeviceSpec;
use crate::engine::{DeviceData, Engine, EngineError};
use crate::methods::{
    DataNeeds, Family, JobIdentity, MethodCache, MethodError, MethodLog, PruneContext,
    PruneOutcome, Pruner, Schedule,
};
use crate::train::{Divergence, Evaluation, TrainRecipe};
use serde::{Deserialize, Serialize};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use thiserror::Error;
use ticketbench_baselines::checks::{self, CheckStage, SanityCheck, Scope};
use ticketbench_baselines::random_ticket;
use ticketbench_core::{CoreError, Density, Mask, Network, Streams, target_count};
use ticketbench_planted::{
    OutputKind, PlantError, PlantKind, PlantedTicket, Recovery, SparseTicket, plant_pns,
};

/// Version of the settings-hash payload; bump when its meaning changes.
const SCHEMA: u32 = 1;

/// One job of an expanded suite (indices into the suite's lists).
#[derive(Debug, Clone)]
pub struct Job {
    pub task: usize,
    pub model: usize,
    pub method: usize,
    pub density: Density,
    pub seed: u64,
    pub device: DeviceSpec,
    /// The sanity check applied to the method's ticket (`None`: the original ticket).
    pub check: Option<SanityCheck>,
    pub settings_hash: String,
    /// Hash of the settings without density and check: every density and check of one
    /// (task, model, seed, method) row lands in the same `--shard`, so IMP's levels and a
    /// row's trained dense network are computed once.
    pub shard_key: u64,
    /// Position in the whole expanded grid (reports order rows by it, so results written in
    /// any order, by shards or parallel jobs, give the same report).
    pub grid_index: usize,
}

impl Job {
    /// (task, model, seed): the jobs sharing data, θ_0 and θ_T, built once per group.
    pub fn group_key(&self) -> (usize, usize, u64) {
        (self.task, self.model, self.seed)
    }
}

/// Everything that determines a job's numbers, hashed (blake3) into its `settings_hash`.
/// Labels, timings and provenance are excluded.
#[derive(Serialize)]
struct HashedSettings<'a> {
    schema: u32,
    version: &'static str,
    task: &'static str,
    task_params: serde_json::Value,
    widths: Vec<usize>,
    /// A convolutional model's convolutions (absent for MLPs, so their hashes stay put).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    conv: &'a [ConvEntry],
    init: &'static str,
    bias: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    plant: Option<PlantKind>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    transfer: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    matched_random: bool,
    method: &'static str,
    method_params: serde_json::Value,
    check: Option<&'static str>,
    density: f64,
    seed: u64,
    train: &'a TrainRecipe,
    device: String,
}

/// The (density, check) cells of `method` on the (task, model) row, in grid order. `dense`
/// runs once at density 1 and `planted` at the planted density, whatever the density list;
/// `planted` in the list means the planted ticket's density.
fn method_cells(
    suite: &Suite,
    task: &SuiteTask,
    model: &ModelSpec,
    method: &SuiteMethod,
) -> Vec<(Density, Option<SanityCheck>)> {
    let planted = model.planted_density(task.task.as_ref());
    let densities = match method.pruner.schedule() {
        Schedule::Grid => {
            let mut grid: Vec<Density> = Vec::new();
            for spec in &suite.densities {
                let d = match spec {
                    DensitySpec::Fixed(d) => Some(*d),
                    DensitySpec::Planted => planted,
                };
                if let Some(d) = d
                    && !grid.contains(&d)
                {
                    grid.push(d);
                }
            }
            grid
        }
        Schedule::DenseOnly => vec![Density::DENSE],
        Schedule::PlantedDensity => planted.into_iter().collect(),
    };
    let checks: Vec<Option<SanityCheck>> = std::iter::once(None)
        .chain(
            suite
                .checks
                .iter()
                .filter(|c| check_applies(**c, method.pruner.as_ref()))
                .map(|c| Some(*c)),
        )
        .collect();
    densities
        .into_iter()
        .flat_map(|d| checks.iter().map(move |&c| (d, c)))
        .collect()
}

/// Number of jobs [`expand`] would return, without building them (a typo such as
/// `seeds: 100000000` must be refused before anything is allocated).
pub fn grid_size(suite: &Suite) -> u128 {
    let mut total = 0u128;
    for task in &suite.tasks {
        for model in suite.models.iter().filter(|m| m.runs_on(task)) {
            let per_seed: usize = suite
                .methods
                .iter()
                .map(|m| method_cells(suite, task, model, m).len())
                .sum();
            total += per_seed as u128 * suite.seeds.len() as u128;
        }
    }
    total
}

/// Expands a suite into its job grid, in execution order: task → model → seed → method →
/// density → check (see [`method_cells`]).
pub fn expand(suite: &Suite, device: DeviceSpec) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (ti, task) in suite.tasks.iter().enumerate() {
        let transfer: Vec<String> = suite
            .transfer_targets(ti)
            .into_iter()
            .map(|u| suite.tasks[u].label.clone())
            .collect();
        for (mi, model) in suite.models.iter().enumerate() {
            if !model.runs_on(task) {
                continue;
            }
            let cells: Vec<_> = (suite.methods.iter())
                .map(|m| method_cells(suite, task, model, m))
                .collect();
            for &seed in &suite.seeds {
                for (pi, method) in suite.methods.iter().enumerate() {
                    for &(density, check) in &cells[pi] {
                        let settings = HashedSettings {
                            schema: SCHEMA,
                            version: crate::VERSION,
                            task: task.task.name(),
                            task_params: task.task.params(),
                            widths: model.widths(task.task.as_ref()),
                            conv: &model.conv,
                            init: model.init.name(),
                            bias: model.bias,
                            plant: model.plant,
                            transfer: transfer.clone(),
                            matched_random: suite.matched_random && check.is_none(),
                            method: method.pruner.info().name,
                            method_params: method.pruner.params(),
                            check: check.map(|c| c.name()),
                            density: density.get(),
                            seed,
                            train: &task.train,
                            device: device.to_string(),
                        };
                        let canonical = serde_json::to_vec(&settings).expect("settings serialize");
                        let settings_hash = blake3::hash(&canonical).to_hex()[..16].to_string();
                        let shard_key = row_hash(&settings);
                        jobs.push(Job {
                            task: ti,
                            model: mi,
                            method: pi,
                            density,
                            seed,
                            device,
                            check,
                            settings_hash,
                            shard_key,
                            grid_index: jobs.len(),
                        });
                    }
                }
            }
        }
    }
    jobs
}

/// The first 8 bytes of the blake3 hash of `settings` without the fields that vary inside
/// one row (density, check, and `matched_random`, which is off for checked jobs).
fn row_hash(settings: &HashedSettings) -> u64 {
    let mut value = serde_json::to_value(settings).expect("settings serialize");
    let fields = value.as_object_mut().expect("settings are an object");
    for varying in ["density", "check", "matched_random"] {
        fields.remove(varying);
    }
    let canonical = serde_json::to_vec(&value).expect("settings serialize");
    let bytes = blake3::hash(&canonical);
    u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Whether the sanity check `check` is meaningful for `pruner` (methods.md §3.1): none for
/// the dense reference and for methods that train their own ticket (their mask evolves
/// during training: there is no ticket before training to transform); `invert` needs a
/// score ranking; data checks need a method that reads data (a data-free method's mask is
/// identical by construction, which the tests assert instead).
pub fn check_applies(check: SanityCheck, pruner: &dyn Pruner) -> bool {
    if pruner.schedule() == Schedule::DenseOnly || pruner.trains_ticket() {
        return false;
    }
    match check.acts_on() {
        CheckStage::ScoringData => pruner.data_needs() != DataNeeds::None,
        CheckStage::Ticket => check != SanityCheck::Invert || pruner.returns_scores(),
    }
}

/// Status of a finished job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// The training loss became NaN/inf; `metrics.diverged` says where.
    Diverged,
}

/// Metrics of a job. Classification tasks fill the `*_acc` fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Test accuracy after training (fraction).
    pub test_acc: Option<f64>,
    /// Test loss after training (cross-entropy, or MSE for regression).
    pub test_loss: Option<f64>,
    /// Mean training loss of the last epoch.
    pub train_loss: Option<f64>,
    /// Test metrics of the masked starting weights before training (the strong-ticket view).
    pub untrained_test_acc: Option<f64>,
    #[serde(with = "crate::train::nonfinite")]
    pub untrained_test_loss: f64,
    pub diverged: Option<Divergence>,
}

/// Ground-truth view of a job on a planted host (planting.md §4.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlantedResult {
    pub kind: PlantKind,
    /// Density of the planted ticket.
    pub density: f64,
    /// The target network's own test metric on this seed's test split (accuracy, or MSE).
    #[serde(with = "crate::train::nonfinite")]
    pub target_metric: f64,
    /// Trained test metric over the target's: accuracy ratio (1 = as good as the target),
    /// or MSE ratio (1 = as good, larger is worse). `None` when training diverged.
    pub relative_metric: Option<f64>,
    /// Strong-ticket metric of the mask on its starting weights after the output rescaling
    /// of planting.md §4.6 (λ_out for classes, least squares for regression).
    #[serde(with = "crate::train::nonfinite")]
    pub untrained_rescaled: f64,
    pub recovery: Recovery,
}

/// A uniformly random ticket with the per-layer counts of the job's mask, from θ_0, trained
/// with the suite recipe (suite option `matched_random`; Su et al. 2020's "random ticket at
/// the method's own layerwise ratios").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchedRandomResult {
    pub test_acc: Option<f64>,
    pub test_loss: Option<f64>,
    pub untrained_test_acc: Option<f64>,
    #[serde(with = "crate::train::nonfinite")]
    pub untrained_test_loss: f64,
    pub diverged: bool,
}

/// A ticket trained on another task of the same shape (suite option `transfer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferResult {
    pub task_label: String,
    pub test_acc: Option<f64>,
    pub test_loss: Option<f64>,
    pub diverged: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub prune_s: f64,
    pub train_s: f64,
    pub total_s: f64,
}

/// Where and how a result was produced (excluded from the settings hash). The crate
/// version is the record's `version`, the device its `device`. Fields added after the first
/// release default to empty when older results are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub backend: String,
    pub threads: usize,
    /// Unix time (seconds) when the job started and finished.
    pub started_unix: f64,
    pub finished_unix: f64,
    /// Commit the binary was built from (`-dirty`: with uncommitted changes); `None` outside
    /// a git checkout.
    #[serde(default)]
    pub git_commit: Option<String>,
    /// First 12 hex digits of blake3 of the host name: tells machines apart without naming
    /// them.
    #[serde(default)]
    pub host: String,
    /// The seeded streams the job drew from (numeric parts such as epochs written `#`),
    /// all derived from `seed` (see `ticketbench_core::Streams`).
    #[serde(default)]
    pub seed_streams: Vec<String>,
    /// `--shard` of the run that produced the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// The job's position in its suite's expanded grid (see `Job::grid_index`).
    #[serde(default)]
    pub grid_index: Option<usize>,
}

/// Hash of this machine's host name (see [`Provenance::host`]).
pub fn host_hash() -> String {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(|| std::env::var("COMPUTERNAME").ok())
            .unwrap_or_default();
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"ticketbench/host/v1");
        hasher.update(name.trim().as_bytes());
        hasher.finalize().to_hex()[..12].to_string()
    })
    .clone()
}

/// One line of `results.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub suite: String,
    pub task: String,
    pub task_label: String,
    pub task_params: serde_json::Value,
    /// `classification` or `regression`: which metric the report shows.
    pub task_kind: String,
    pub model: String,
    pub widths: Vec<usize>,
    pub init: String,
    pub method: String,
    pub method_label: String,
    pub method_params: serde_json::Value,
    pub ratio_rule: Option<String>,
    pub check: Option<String>,
    /// Requested density.
    pub density: f64,
    pub seed: u64,
    pub device: String,
    pub settings_hash: String,
    pub status: Status,
    pub metrics: Metrics,
    /// Kept and total prunable weights of the mask actually trained.
    pub kept: usize,
    pub total: usize,
    pub layer_densities: Vec<f64>,
    /// blake3 of the trained mask (16 hex digits, see `Mask::digest`): equal digests, equal
    /// masks, across runs, shards and devices. Empty in results older than the field.
    #[serde(default)]
    pub mask_digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planted: Option<PlantedResult>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfer: Vec<TransferResult>,
    /// The random ticket at this mask's per-layer counts (suite option `matched_random`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_random: Option<MatchedRandomResult>,
    /// Per-round results and events of iterative and training-based methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method_log: Option<MethodLog>,
    /// The method's family where its entry sets one other than the registry's (`family:` of
    /// an external method); read it through [`JobRecord::family`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method_family: Option<Family>,
    pub train: TrainRecipe,
    pub timing: Timing,
    pub version: String,
    pub provenance: Provenance,
}

impl JobRecord {
    /// How the reports judge this record's method: the family its entry set, else the
    /// registry's (`None` for a method this binary does not know).
    pub fn family(&self) -> Option<Family> {
        self.method_family
            .or_else(|| crate::methods::info(&self.method).ok().map(|m| m.family))
    }
}

#[derive(Debug, Error)]
pub enum JobError {
    #[error(transparent)]
    Method(#[from] MethodError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Plant(#[from] PlantError),
    #[error("{0}")]
    Model(String),
    #[error(
        "method `{method}` returned {kept} kept weights, but density {density} requires exactly {expected} (a bug in the method)"
    )]
    WrongDensity {
        method: String,
        density: f64,
        kept: usize,
        expected: usize,
    },
    #[error("the `invert` check needs scores, and method `{method}` returns none")]
    CheckNeedsScores { method: &'static str },
    #[error(transparent)]
    Check(#[from] ticketbench_baselines::CheckError),
    #[error("method `{method}` returned a trained network whose mask differs from its ticket")]
    TrainedMaskMismatch { method: String },
    #[error(
        "after training, {count} pruned weights of layer {layer} are non-zero (the mask was not enforced)"
    )]
    MaskViolated { layer: usize, count: usize },
    #[error("job panicked: {0}")]
    Panic(String),
}

/// Per-(task, model, seed) state shared by consecutive jobs: data, θ_0 and θ_T, the
/// planted ticket and the data of transfer tasks.
pub struct GroupState {
    pub key: (usize, usize, u64),
    /// The group's only copy of the task's data (docs/decisions.md, "One copy of the data").
    pub device_data: DeviceData,
    pub net: Network,
    pub trained_dense: Option<Network>,
    pub cache: MethodCache,
    pub planted: Option<PlantedTicket>,
    /// The target's own test metric (planted models).
    pub target_metric: Option<f64>,
    pub transfer: Vec<(usize, DeviceData)>,
    /// Streams drawn for the group's data, θ_0 and planting (part of each job's provenance).
    pub streams_used: Vec<String>,
}

impl GroupState {
    pub fn new(suite: &Suite, job: &Job, engine: &Engine) -> Result<Self, JobError> {
        let task = suite.tasks[job.task].task.as_ref();
        let streams = Streams::recording(job.seed);
        let device_data = engine.upload(task.generate(&streams));
        let model = &suite.models[job.model];
        let mut net = model.init_network(task, &streams)?;
        let mut planted = None;
        let mut target_metric = None;
        if let Some(target) = model.planted_target(task).map_err(JobError::Model)? {
            let ticket = plant_pns(&target, net)?;
            net = ticket.host.clone();
            let ones = vec![1.0; task.output().dim()];
            target_metric = Some(device_data.score_test(&ones, |x| target.forward(x)).raw);
            planted = Some(ticket);
        }
        let transfer = suite
            .transfer_targets(job.task)
            .into_iter()
            .map(|u| (u, engine.upload(suite.tasks[u].task.generate(&streams))))
            .collect();
        Ok(GroupState {
            key: job.group_key(),
            device_data,
            net,
            trained_dense: None,
            cache: MethodCache::new(),
            planted,
            target_metric,
            transfer,
            streams_used: streams.used(),
        })
    }
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A finished job: its record and the mask it trained.
#[derive(Debug, Clone)]
pub struct JobOutput {
    pub record: JobRecord,
    pub mask: Mask,
}

/// Where a job runs: recorded in its provenance (`threads`, `shard`), or where methods keep
/// per-job files (`scratch`: external methods' request directories).
#[derive(Debug, Clone, Copy)]
pub struct JobSite<'a> {
    pub threads: usize,
    pub shard: Option<super::Shard>,
    pub scratch: &'a std::path::Path,
}

/// Runs one job: prune, evaluate the untrained ticket, train, evaluate, record.
pub fn run_job(
    suite: &Suite,
    job: &Job,
    engine: &Engine,
    group: &mut GroupState,
    site: JobSite<'_>,
    progress: &mut dyn FnMut(String),
) -> Result<JobOutput, JobError> {
    let JobSite {
        threads,
        shard,
        scratch,
    } = site;
    let started_unix = now_unix();
    let t0 = Instant::now();
    let task = &suite.tasks[job.task];
    let model = &suite.models[job.model];
    let method = &suite.methods[job.method];
    let streams = Streams::recording(job.seed);

    // Data checks prune on corrupted scoring data, with their own θ_T and method caches
    // (magnitude and IMP must train on the corrupted labels too); training stays clean.
    let mut corrupted = match job.check {
        Some(c) if c.acts_on() == CheckStage::ScoringData => {
            let clean = &group.device_data;
            let output = clean.output();
            // Labels replace only the targets and share the inputs; pixels corrupt their own
            // download of the training split (the check's data, freed after pruning).
            let data = match c {
                SanityCheck::RandomLabels => engine.with_train_targets(
                    clean,
                    checks::random_labels(&clean.train_targets(), output, &streams)?,
                ),
                _ => engine.with_train(
                    clean,
                    checks::random_pixels(clean.train_split(), output, &streams)?,
                ),
            };
            Some((data, None, MethodCache::new()))
        }
        _ => None,
    };
    let (prune_data, trained_dense, cache) = match &mut corrupted {
        Some((d, dense, cache)) => (&*d, dense, cache),
        None => (
            &group.device_data,
            &mut group.trained_dense,
            &mut group.cache,
        ),
    };
    let mut ctx = PruneContext {
        engine,
        net: &group.net,
        data: prune_data,
        recipe: &task.train,
        streams: &streams,
        trained_dense,
        cache,
        progress: &mut *progress,
        planted: group.planted.as_ref(),
        job: JobIdentity {
            task: task.task.name().to_string(),
            task_label: task.label.clone(),
            model: model.label(),
            seed: job.seed,
            check: job.check.map(|c| c.name()),
            settings_hash: job.settings_hash.clone(),
            scratch: scratch.to_path_buf(),
            threads,
        },
    };
    let outcome = method.pruner.prune(&mut ctx, job.density)?;
    let outcome = apply_check(
        job.check,
        outcome,
        method.pruner.as_ref(),
        model,
        &group.net,
        &streams,
    )?;
    // The check's data (for random_pixels a second copy of the training inputs) is not
    // needed past pruning.
    drop(corrupted);
    let prune_s = t0.elapsed().as_secs_f64();

    let total = group.net.num_prunable();
    let expected = target_count(job.density, total)?;
    let mask = outcome.mask;
    mask.check_shapes(&group.net.shapes())?;
    if mask.kept() != expected {
        return Err(JobError::WrongDensity {
            method: method.label.clone(),
            density: job.density.get(),
            kept: mask.kept(),
            expected,
        });
    }
    let start = outcome.start.as_ref().unwrap_or(&group.net);
    let untrained = engine.evaluate(start, &mask, &group.device_data)?;
    let recovery = group
        .planted
        .as_ref()
        .map(|p| Recovery::measure(&mask, p, outcome.scores.as_ref().map(|s| (s, outcome.keep))));

    let t1 = Instant::now();
    let epochs = task.train.epochs;
    // Dynamic sparse training and Early-Bird train the ticket themselves.
    let trained = match outcome.trained {
        Some(trained) => trained,
        None => engine.train(
            start,
            &mask,
            &group.device_data,
            &task.train,
            &streams,
            &mut |e| {
                progress(format!(
                    "train epoch {}/{epochs} loss {:.4}",
                    e.epoch, e.train_loss
                ))
            },
        )?,
    };
    if trained.mask != mask {
        return Err(JobError::TrainedMaskMismatch {
            method: method.label.clone(),
        });
    }
    check_mask_enforced(&trained.net, &mask)?;
    let evaluation: Option<Evaluation> = if trained.diverged.is_none() {
        Some(engine.evaluate(&trained.net, &mask, &group.device_data)?)
    } else {
        None
    };
    let mut transfer = Vec::new();
    for (u, data) in &group.transfer {
        let other = &suite.tasks[*u];
        progress(format!("transfer to {}", other.label));
        let trained_there =
            engine.train(start, &mask, data, &other.train, &streams, &mut |_| {})?;
        let eval = match trained_there.diverged {
            None => Some(engine.evaluate(&trained_there.net, &mask, data)?),
            Some(_) => None,
        };
        transfer.push(TransferResult {
            task_label: other.label.clone(),
            test_acc: eval.and_then(|e| e.accuracy),
            test_loss: eval.map(|e| e.loss),
            diverged: trained_there.diverged.is_some(),
        });
    }
    let matched_random =
        if suite.matched_random && !mask.is_dense() && method.pruner.info().name != "random" {
            progress("random ticket at the same layer counts".into());
            Some(matched_random(engine, group, &mask, &task.train, &streams)?)
        } else {
            None
        };
    let train_s = t1.elapsed().as_secs_f64();

    let output = task.task.output();
    let planted = match (&group.planted, recovery, group.target_metric) {
        (Some(p), Some(recovery), Some(target_metric)) => {
            let ticket = SparseTicket::new(start, &mask, None);
            let strong = group
                .device_data
                .score_test(&p.output_scale, |x| ticket.forward(x));
            let trained_metric = match output {
                OutputKind::Classes(_) => evaluation.and_then(|e| e.accuracy),
                OutputKind::Regression(_) => evaluation.map(|e| e.loss),
            };
            Some(PlantedResult {
                kind: p.kind,
                density: p.density(),
                target_metric,
                relative_metric: trained_metric.map(|m| m / target_metric),
                untrained_rescaled: strong.rescaled,
                recovery,
            })
        }
        _ => None,
    };
    let record = JobRecord {
        suite: suite.name.clone(),
        task: task.task.name().to_string(),
        task_label: task.label.clone(),
        task_params: task.task.params(),
        task_kind: match output {
            OutputKind::Classes(_) => "classification".into(),
            OutputKind::Regression(_) => "regression".into(),
        },
        model: model.label(),
        widths: group.net.widths(),
        init: model.init.name().to_string(),
        method: method.pruner.info().name.to_string(),
        method_label: method.label.clone(),
        method_params: method.pruner.params(),
        ratio_rule: method.pruner.ratio_rule(),
        check: job.check.map(|c| c.name().to_string()),
        density: job.density.get(),
        seed: job.seed,
        device: job.device.to_string(),
        settings_hash: job.settings_hash.clone(),
        status: if trained.diverged.is_some() {
            Status::Diverged
        } else {
            Status::Ok
        },
        metrics: Metrics {
            test_acc: evaluation.and_then(|e| e.accuracy),
            test_loss: evaluation.map(|e| e.loss),
            train_loss: trained.epoch_losses.last().copied(),
            untrained_test_acc: untrained.accuracy,
            untrained_test_loss: untrained.loss,
            diverged: trained.diverged,
        },
        kept: mask.kept(),
        total,
        layer_densities: mask.layer_densities(),
        planted,
        transfer,
        matched_random,
        method_log: (!outcome.log.is_empty()).then_some(outcome.log),
        method_family: Some(method.pruner.family()).filter(|&f| f != method.pruner.info().family),
        train: task.train.clone(),
        timing: Timing {
            prune_s,
            train_s,
            total_s: t0.elapsed().as_secs_f64(),
        },
        version: crate::VERSION.to_string(),
        provenance: Provenance {
            backend: job.device.backend().to_string(),
            threads,
            started_unix,
            finished_unix: now_unix(),
            git_commit: option_env!("TICKETBENCH_GIT_COMMIT").map(str::to_string),
            host: host_hash(),
            seed_streams: {
                let mut used = group.streams_used.clone();
                used.extend(streams.used());
                used.sort();
                used.dedup();
                used
            },
            shard: shard.map(|s| s.to_string()),
            grid_index: Some(job.grid_index),
        },
        mask_digest: mask.digest(),
    };
    Ok(JobOutput { record, mask })
}

/// Applies a ticket check (methods.md §3.1) to a method's outcome; data checks and `None`
/// leave it as it is. A checked ticket is always trained by the runner with the suite
/// recipe, so it has no scores or trained network of its own.
fn apply_check(
    check: Option<SanityCheck>,
    outcome: PruneOutcome,
    pruner: &dyn Pruner,
    model: &ModelSpec,
    theta_0: &Network,
    streams: &Streams,
) -> Result<PruneOutcome, JobError> {
    let Some(check) = check else {
        return Ok(outcome);
    };
    let start = outcome.start.as_ref().unwrap_or(theta_0);
    let (mask, start) = match check {
        SanityCheck::LayerShuffle => (checks::layer_shuffle(&outcome.mask, streams), None),
        SanityCheck::GlobalShuffle => (checks::global_shuffle(&outcome.mask, streams), None),
        SanityCheck::WeightShuffle => (
            outcome.mask.clone(),
            Some(checks::weight_shuffle(&outcome.mask, start, streams)?),
        ),
        SanityCheck::Reinit => (
            outcome.mask.clone(),
            Some(checks::reinit(&outcome.mask, theta_0, model.init, streams)?),
        ),
        SanityCheck::Invert => {
            let scores = outcome.scores.as_ref().ok_or(JobError::CheckNeedsScores {
                method: pruner.info().name,
            })?;
            let scope = if pruner.ratio_rule().as_deref() == Some("global") {
                Scope::global_of(&outcome.mask)
            } else {
                Scope::per_layer_of(&outcome.mask)
            };
            (checks::invert(scores, outcome.keep, &scope)?, None)
        }
        SanityCheck::RandomLabels | SanityCheck::RandomPixels => {
            (outcome.mask.clone(), outcome.start.clone())
        }
    };
    // Shuffles and inversion keep the method's starting weights (θ_T for fine-tuning).
    let start = start.or(outcome.start);
    Ok(PruneOutcome {
        start,
        log: outcome.log,
        ..PruneOutcome::new(mask)
    })
}

/// Trains and evaluates a random ticket with `mask`'s per-layer counts from θ_0.
fn matched_random(
    engine: &Engine,
    group: &GroupState,
    mask: &Mask,
    recipe: &TrainRecipe,
    streams: &Streams,
) -> Result<MatchedRandomResult, JobError> {
    let random = random_ticket(
        &group.net.shapes(),
        &mask.layer_kept(),
        streams,
        "matched-random",
    );
    let untrained = engine.evaluate(&group.net, &random, &group.device_data)?;
    let trained = engine.train(
        &group.net,
        &random,
        &group.device_data,
        recipe,
        streams,
        &mut |_| {},
    )?;
    check_mask_enforced(&trained.net, &random)?;
    let eval = match trained.diverged {
        None => Some(engine.evaluate(&trained.net, &random, &group.device_data)?),
        Some(_) => None,
    };
    Ok(MatchedRandomResult {
        test_acc: eval.and_then(|e| e.accuracy),
        test_loss: eval.map(|e| e.loss),
        untrained_test_acc: untrained.accuracy,
        untrained_test_loss: untrained.loss,
        diverged: trained.diverged.is_some(),
    })
}

/// Every pruned weight must still be exactly zero after training.
fn check_mask_enforced(net: &Network, mask: &Mask) -> Result<(), JobError> {
    for (l, (layer, keep)) in net.layers.iter().zip(mask.layers()).enumerate() {
        let count = layer
            .weight
            .iter()
            .zip(keep)
            .filter(|&(&w, &k)| !k && w != 0.0)
            .count();
        if count > 0 {
            return Err(JobError::MaskViolated { layer: l, count });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_metrics_survive_a_round_trip() {
        let m = Metrics {
            test_acc: None,
            test_loss: None,
            train_loss: Some(0.5),
            untrained_test_acc: None,
            untrained_test_loss: f64::INFINITY,
            diverged: Some(Divergence {
                step: 7,
                epoch: 0,
                loss: f64::NAN,
            }),
        };
        let text = serde_json::to_string(&m).unwrap();
        assert!(
            text.contains("\"loss\":\"NaN\"") && text.contains("\"untrained_test_loss\":\"inf\""),
            "{text}"
        );
        let back: Metrics = serde_json::from_str(&text).unwrap();
        assert!(back.diverged.unwrap().loss.is_nan());
        assert_eq!(back.untrained_test_loss, f64::INFINITY);
        let finite: Metrics = serde_json::from_str(&text.replace("\"inf\"", "0.25")).unwrap();
        assert_eq!(finite.untrained_test_loss, 0.25);
    }
}
