//! ticketbench-planted: ground truth for pruning.
//!
//! * [`tasks`]: seeded synthetic tasks of Plant 'n' Seek (Fischer & Burkholz 2022,
//!   arXiv 2111.11153) — ReLU, Circle, Helix — behind one [`Task`] trait, plus their
//!   train/test splits and the class-balanced scoring batches pruners read.
//!
//! Planting (hand-crafted targets hidden in random hosts) and recovery metrics build on the
//! same [`Task`] trait. No tensor engine here.

mod data;
pub mod tasks;

pub use data::{Dataset, OutputKind, Targets, TaskData};
pub use tasks::{Task, TaskError, TaskInfo};
