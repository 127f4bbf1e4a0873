//! Pruning methods: one file per method, all behind the [`Pruner`] trait, one registry.
//!
//! Adding a method (docs/adding-a-method.md): write `src/methods/<name>.rs` with a
//! `pub(super) const INFO: MethodInfo` and a type implementing [`Pruner`], then add one line
//! to [`METHODS`]. Everything else — suite parsing, `ticketbench list`, the runner, reports,
//! the conformance tests in `tests/methods.rs` — reads the registry.

mod biprop;
mod dense;
mod dynamic;
mod early_bird;
mod edge_popup;
mod external;
mod ga;
mod gem_miner;
mod granet;
mod grasp;
mod hessian;
mod imp;
mod magnitude;
mod phew;
mod planted;
mod prospr;
mod random;
mod rigl;
mod set;
mod snip;
mod structure;
mod synflow;

use crate::engine::{DeviceData, Engine, EngineError};
use crate::train::{TrainOutcome, TrainRecipe};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use thiserror::Error;
use ticketbench_baselines::RatioError;
use ticketbench_core::select::{Keep, top_k_global};
use ticketbench_core::{CoreError, Density, Mask, Network, Scores, Streams, target_count};
use ticketbench_planted::PlantedTicket;

/// Method parameters as written in a suite file (`{name: synflow, rounds: 50}`).
pub type Params = serde_json::Map<String, serde_json::Value>;

pub use external::{ExternalError, SUITE_DIR_KEY as EXTERNAL_SUITE_DIR_KEY};

/// Every method ticketbench ships, by suite-file name.
pub const METHODS: &[MethodInfo] = &[
    dense::INFO,
    planted::INFO,
    random::INFO,
    magnitude::INFO,
    snip::INFO,
    grasp::INFO,
    synflow::INFO,
    prospr::INFO,
    phew::INFO,
    imp::INFO,
    early_bird::INFO,
    edge_popup::INFO,
    gem_miner::INFO,
    biprop::INFO,
    ga::INFO,
    set::INFO,
    rigl::INFO,
    granet::INFO,
    external::INFO,
];

/// When a method looks at the network (the `family` column of `ticketbench list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Not a pruning method: the unpruned reference.
    Reference,
    /// Scores the initial weights θ_0 once.
    AtInit,
    /// Scores weights after (dense) training.
    AfterTraining,
    /// Prunes in several rounds (re-scoring the masked network).
    Iterative,
    /// Finds a mask without training weights (strong tickets).
    Strong,
    /// Changes the mask during training (dynamic sparse training).
    Dynamic,
}

/// What data a method reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataNeeds {
    /// Input shape (and weights) only.
    None,
    /// One labelled scoring batch (class-balanced).
    ScoringBatch,
    /// The full training set (trains the network).
    FullTraining,
}

/// Registry entry: what `ticketbench list` shows and how to build the method.
pub struct MethodInfo {
    pub name: &'static str,
    pub family: Family,
    pub data: DataNeeds,
    pub summary: &'static str,
    pub citation: &'static str,
    pub build: fn(&Params) -> Result<Box<dyn Pruner>, MethodError>,
}

#[derive(Debug, Error)]
pub enum MethodError {
    #[error("unknown method `{name}`; valid methods: {valid}")]
    Unknown { name: String, valid: String },
    #[error("method `{method}`: {message}")]
    InvalidParams {
        method: &'static str,
        message: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Ratio(#[from] RatioError),
    #[error(transparent)]
    External(#[from] Box<external::ExternalError>),
}

/// What a method returns: the mask and the weights the ticket starts training from.
#[derive(Debug, Clone)]
pub struct PruneOutcome {
    pub mask: Mask,
    /// Starting weights of the ticket; `None` means θ_0 (the network the method was given).
    pub start: Option<Network>,
    /// The final scores, where the method has them (exported by `ticketbench prune`).
    pub scores: Option<Scores>,
    /// Which end of `scores` the method keeps (GraSP keeps the lowest).
    pub keep: Keep,
    /// The ticket as the method itself trained it (dynamic sparse training, Early-Bird): the
    /// runner evaluates this network instead of training `start` with the suite recipe.
    pub trained: Option<TrainOutcome>,
    /// Per-round results and scalar events of iterative methods (recorded with the job).
    pub log: MethodLog,
}

/// What an iterative or training-based method reports beside its mask.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MethodLog {
    /// One entry per pruning round or level (IMP levels, …), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<RoundResult>,
    /// Named scalars (`eb_epoch`, `mask_updates`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub events: BTreeMap<String, f64>,
}

impl MethodLog {
    pub fn is_empty(&self) -> bool {
        self.rounds.is_empty() && self.events.is_empty()
    }
}

/// The network of one round, trained at that round's density and evaluated on the test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundResult {
    pub round: usize,
    pub density: f64,
    pub test_acc: Option<f64>,
    #[serde(with = "crate::train::nonfinite")]
    pub test_loss: f64,
}

impl PruneOutcome {
    /// A mask on θ_0, no scores, nothing trained.
    pub fn new(mask: Mask) -> Self {
        PruneOutcome {
            mask,
            start: None,
            scores: None,
            keep: Keep::Highest,
            trained: None,
            log: MethodLog::default(),
        }
    }

    /// One-shot global exact-k: keep the `round_half_up(d·N)` best-ranked entries of
    /// `scores` (ties to the lower flat index), train from θ_0.
    pub fn global_top_k(scores: Scores, density: Density, keep: Keep) -> Result<Self, MethodError> {
        let k = target_count(density, scores.total())?;
        let mask = top_k_global(&scores, k, None, keep)?;
        Ok(PruneOutcome {
            scores: Some(scores),
            keep,
            ..PruneOutcome::new(mask)
        })
    }
}

/// Everything a method may use. Methods never touch burn directly: gradients and training
/// go through the [`Engine`].
pub struct PruneContext<'a> {
    pub engine: &'a Engine,
    /// θ_0, shared by every method at this seed.
    pub net: &'a Network,
    /// The task's data: the job's only copy, on the device. Host code reads batches from it
    /// ([`DeviceData::scoring_batch`], [`DeviceData::train_rows`]).
    pub data: &'a DeviceData,
    /// The suite's training recipe (methods that train use it, e.g. magnitude after training).
    pub recipe: &'a TrainRecipe,
    /// The job's named random streams.
    pub streams: &'a Streams,
    /// Dense network trained from θ_0 with `recipe`, shared by the jobs of one (task, model,
    /// seed) group; filled on first use.
    pub trained_dense: &'a mut Option<Network>,
    /// Results a method shares between the jobs of one group (IMP's trained levels, which
    /// every target density of the same seed reuses). Keyed by method name and parameters.
    pub cache: &'a mut MethodCache,
    /// Phase messages for the progress display ("pretrain epoch 3/10").
    pub progress: &'a mut dyn FnMut(String),
    /// The ticket planted in `net`, when the model is a planted host.
    pub planted: Option<&'a PlantedTicket>,
    /// The job being pruned for (an external method's request names it).
    pub job: JobIdentity,
}

/// Compute in the units of the run's time guard (`runner/plan.rs`, `time_model`): passes
/// of one example forward and backward through the dense network (batched on the engine),
/// optimiser steps (each with a fixed overhead whatever its batch), and unbatched f64 passes
/// over every weight on the host (SynFlow's rounds), which run far below GEMM speed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Work {
    pub example_passes: f64,
    pub steps: f64,
    pub host_passes: f64,
}

impl Work {
    /// `epochs` over `examples` in batches of `batch_size`.
    pub fn epochs(epochs: usize, batch_size: usize, examples: usize) -> Work {
        let epochs = epochs as f64;
        Work {
            example_passes: epochs * examples as f64,
            steps: epochs * (examples as f64 / batch_size.max(1) as f64).ceil(),
            host_passes: 0.0,
        }
    }

    /// One training run of `recipe` over `examples`.
    pub fn training(recipe: &TrainRecipe, examples: usize) -> Work {
        Work::epochs(recipe.epochs, recipe.batch_size, examples)
    }
}

impl std::ops::Add for Work {
    type Output = Work;
    fn add(self, other: Work) -> Work {
        Work {
            example_passes: self.example_passes + other.example_passes,
            steps: self.steps + other.steps,
            host_passes: self.host_passes + other.host_passes,
        }
    }
}

impl std::ops::Mul<f64> for Work {
    type Output = Work;
    fn mul(self, k: f64) -> Work {
        Work {
            example_passes: self.example_passes * k,
            steps: self.steps * k,
            host_passes: self.host_passes * k,
        }
    }
}

/// The job a method prunes for, as far as a method may know it: built-in methods ignore it,
/// an external method writes it into its request (docs/external-methods.md).
#[derive(Debug, Clone, Serialize)]
pub struct JobIdentity {
    /// The task's registry name and its label in the suite.
    pub task: String,
    pub task_label: String,
    pub model: String,
    pub seed: u64,
    /// The sanity check the job runs (`None`: the method's own ticket).
    pub check: Option<&'static str>,
    /// Names the job's request directory (unique within a results directory).
    pub settings_hash: String,
    /// Where a method may keep per-job files: `<results>/.external` for suite runs.
    #[serde(skip)]
    pub scratch: PathBuf,
    /// The job's share of the machine's cores (`run --threads`): a plugin process gets it as
    /// its BLAS/OpenMP thread count, so `--jobs` plugins do not oversubscribe the cores.
    pub threads: usize,
}

impl Default for JobIdentity {
    /// A job outside any suite run (unit tests, benches): files go under the system's
    /// temporary directory.
    fn default() -> Self {
        JobIdentity {
            task: String::new(),
            task_label: String::new(),
            model: String::new(),
            seed: 0,
            check: None,
            settings_hash: format!("standalone-{}", std::process::id()),
            scratch: std::env::temp_dir().join("ticketbench-external"),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl PruneContext<'_> {
    /// θ_T: the dense network trained from θ_0 with the suite recipe (computed once per group).
    pub fn dense_trained(&mut self) -> Result<Network, MethodError> {
        if self.trained_dense.is_none() {
            let mask = Mask::dense(&self.net.shapes());
            let progress = &mut *self.progress;
            let outcome = self.engine.train(
                self.net,
                &mask,
                self.data,
                self.recipe,
                self.streams,
                &mut |e| {
                    progress(format!(
                        "dense pretraining epoch {}/{} loss {:.4}",
                        e.epoch, e.epochs, e.train_loss
                    ))
                },
            )?;
            if let Some(d) = outcome.diverged {
                return Err(MethodError::Engine(EngineError::Recipe(format!(
                    "dense pretraining diverged at step {} (loss {}); lower the learning rate",
                    d.step, d.loss
                ))));
            }
            *self.trained_dense = Some(outcome.net);
        }
        Ok(self.trained_dense.clone().expect("filled above"))
    }
}

/// Per-group memo of expensive intermediate results, keyed by `<method>/<params>`.
pub type MethodCache = HashMap<String, Box<dyn Any + Send>>;

/// Densities the runner schedules a method at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every density of the suite.
    Grid,
    /// Density 1 only (the dense reference).
    DenseOnly,
    /// The planted ticket's density only, on planted models only.
    PlantedDensity,
}

/// A pruning method.
pub trait Pruner: Send + Sync {
    fn info(&self) -> &'static MethodInfo;

    /// Every parameter, defaults included (hashed into each job's settings).
    fn params(&self) -> serde_json::Value;

    /// How per-layer budgets are set: a ratio rule name, `global` for one global ranking
    /// (the default), `None` when the method does not prune.
    fn ratio_rule(&self) -> Option<String> {
        Some("global".into())
    }

    /// What data the method reads (`ticketbench list`'s `data` column; per entry for
    /// external methods). Data checks apply only to methods that read data.
    fn data_needs(&self) -> DataNeeds {
        self.info().data
    }

    /// The method's own compute for one job at `density` beyond the job's training of the
    /// ticket (which the runner counts), for the time guard: a rough model that catches
    /// `rounds: 1000000000`, not a prediction. Default: negligible (one scoring batch).
    fn work(&self, _density: Density, _recipe: &TrainRecipe, _train_examples: usize) -> Work {
        Work::default()
    }

    /// How the reports judge the method (`ticketbench list`'s `family` column; per entry
    /// for external methods).
    fn family(&self) -> Family {
        self.info().family
    }

    /// The entry's label when the method names itself (`label:` of an external method);
    /// `None`: the registry name plus the parameters that differ from the defaults.
    fn label(&self) -> Option<String> {
        None
    }

    /// Whether the outcome carries scores that rank every weight (so the `invert` sanity
    /// check can keep the other end of the same ranking).
    fn returns_scores(&self) -> bool {
        false
    }

    /// Whether the method trains its own ticket and returns it in `PruneOutcome::trained`
    /// (dynamic sparse training, Early-Bird).
    fn trains_ticket(&self) -> bool {
        false
    }

    /// Whether the starting weights the method returns are computed from its own mask
    /// (biprop's per-layer gain α_l is the mean |w| of the kept weights), so another mask
    /// (`structure: channel`) cannot reuse them.
    fn start_depends_on_mask(&self) -> bool {
        false
    }

    /// Which densities the runner schedules this method at.
    fn schedule(&self) -> Schedule {
        Schedule::Grid
    }

    /// A mask of exactly `round_half_up(density·N)` kept weights.
    fn prune(
        &self,
        ctx: &mut PruneContext<'_>,
        density: Density,
    ) -> Result<PruneOutcome, MethodError>;
}

/// Looks a method up by name and builds it from suite-file parameters (`structure: channel`
/// on any entry makes its convolution masks channel-structured, [`structure`]).
pub fn build(name: &str, params: &Params) -> Result<Box<dyn Pruner>, MethodError> {
    structure::build(info(name)?, params)
}

pub fn info(name: &str) -> Result<&'static MethodInfo, MethodError> {
    METHODS
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| MethodError::Unknown {
            name: name.to_string(),
            valid: method_names().join(", "),
        })
}

pub fn method_names() -> Vec<&'static str> {
    METHODS.iter().map(|m| m.name).collect()
}

/// Parses a method's parameter struct (unknown keys rejected by `deny_unknown_fields`).
pub(crate) fn parse_params<P: DeserializeOwned>(
    method: &'static str,
    params: &Params,
) -> Result<P, MethodError> {
    serde_json::from_value(serde_json::Value::Object(params.clone())).map_err(|e| {
        MethodError::InvalidParams {
            method,
            message: e.to_string(),
        }
    })
}

/// Rejects a count parameter of 0 (`rounds`, `per_class`, …).
pub(crate) fn at_least_one(
    method: &'static str,
    param: &str,
    value: usize,
) -> Result<(), MethodError> {
    if value == 0 {
        return Err(MethodError::InvalidParams {
            method,
            message: format!("{param} must be at least 1"),
        });
    }
    Ok(())
}

pub(crate) fn to_value<P: Serialize>(params: &P) -> serde_json::Value {
    serde_json::to_value(params).expect("parameter structs serialize")
}
