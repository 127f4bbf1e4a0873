//! ticketbench: a benchmark and sanity-check suite for lottery-ticket pruning methods.
//!
//! Layout (see docs/architecture.md):
//! * [`device`] — which burn backend runs a job (`cpu` = burn-flex, `ndarray`, `cuda[:N]`);
//! * [`model`] — the masked MLP in burn, built from a host network and mask;
//! * [`engine`] and [`train`] — data upload, gradients, training and evaluation loops;
//! * [`methods`] — one file per pruning method behind the [`methods::Pruner`] trait;
//! * [`runner`] — suite file → job grid → execution → `results.jsonl`;
//! * [`report`] — comparison tables from result directories;
//! * [`export`] — tickets as safetensors;
//! * [`cli`] — the command line.
//!
//! The pure-math parts live in the workspace crates `ticketbench-core` (networks, masks,
//! streams, selection), `ticketbench-planted` (tasks) and `ticketbench-baselines` (ratio
//! rules, random tickets).

pub mod bench;
pub mod cli;
pub mod crash_point;
pub mod device;
pub mod engine;
pub mod export;
pub mod methods;
pub mod model;
mod native;
pub mod report;
pub mod runner;
pub mod score_train;
pub(crate) mod tensor_file;
pub mod train;

/// The crate version, recorded in every result and hashed into every settings hash.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
