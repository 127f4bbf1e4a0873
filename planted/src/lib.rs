//! ticketbench-planted: ground truth for pruning (Plant 'n' Seek, Fischer & Burkholz 2022,
//! arXiv 2111.11153).
//!
//! * [`tasks`]: seeded synthetic tasks — ReLU, Circle, Helix — and image datasets (the
//!   vendored UCI digits, IDX and CIFAR-10 files on disk) behind one [`Task`] trait, their
//!   train/test splits and the class-balanced scoring batches pruners read.
//! * [`target`]: the hand-crafted, extremely sparse target network of each task.
//! * [`plant`]: weak planting (`pns`): hide a target in a random host, exactly.
//! * [`subset_sum`]: strong planting: a random host that contains an ε-approximation of the
//!   target as a masked subnetwork, with a certificate.
//! * [`evaluate`]: host-side test metrics of a target or ticket (with output rescaling).
//! * [`recovery`]: how much of a planted ticket a found mask recovers.
//!
//! No tensor engine here: everything is host f64/f32 and testable in isolation.

mod data;
pub mod evaluate;
pub mod plant;
pub mod recovery;
pub mod subset_sum;
pub mod target;
pub mod tasks;

pub use data::{Dataset, ImageShape, OutputKind, Targets, TaskData, scoring_rows};
pub use evaluate::{FunctionScore, function_outputs, score_function, score_outputs};
pub use plant::{PlantKind, PlantedTicket, SparseTicket, plant_pns};
pub use recovery::Recovery;
pub use subset_sum::{Certificate, SubsetSumConfig, plant_subset_sum};
pub use target::{TargetLayer, TargetNet};
pub use tasks::{Task, TaskError, TaskInfo};

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum PlantError {
    #[error("task `{task}` has no planted target (tasks with targets: relu, circle, helix)")]
    NoTarget { task: &'static str },
    #[error(
        "task `{task}` needs depth ≥ {min} (layers including input and output) for its target; got {depth}"
    )]
    TooShallow {
        task: &'static str,
        depth: usize,
        min: usize,
    },
    #[error(
        "host widths {host:?} cannot hold target widths {target:?}: same depth, inputs and outputs, and hidden layers at least as wide are required"
    )]
    HostTooSmall {
        target: Vec<usize>,
        host: Vec<usize>,
    },
    #[error(
        "host layer {layer} has no bias but the target needs one; build the host with `bias: true`"
    )]
    HostWithoutBias { layer: usize },
    #[error("invalid planting settings: {0}")]
    InvalidConfig(String),
    #[error(
        "subset sum for block {layer}, output {output} missed its target {target} by {error} even after adding fresh candidates; raise `copies` or `epsilon`"
    )]
    SubsetSumFailed {
        layer: usize,
        output: usize,
        target: f64,
        error: f64,
    },
    #[error(
        "measured ticket error {measured} exceeds the certified bound {bound} (a bug in the construction)"
    )]
    CertificateViolated { measured: f64, bound: f64 },
}
