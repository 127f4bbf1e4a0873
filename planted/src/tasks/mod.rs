//! Seeded task generators behind one [`Task`] trait.
//!
//! Adding a task: one module implementing [`Task`] plus one line in [`TASKS`].

mod cifar;
mod circle;
mod digits;
mod gaussian;
mod helix;
mod idx;
mod relu;
mod smc_facts;
mod smc_modchain;
mod smc_potts;
mod stored;

pub use circle::Circle;
pub use gaussian::{Gaussian, GaussianParams};
pub use helix::Helix;
pub(crate) use helix::helix_point;
pub use relu::Relu;
pub use smc_facts::SmcFacts;
pub use smc_modchain::SmcModchain;
pub use smc_potts::{PottsModel, SmcPotts};
pub use stored::StoredTask;

use crate::{Dataset, ImageShape, OutputKind, PlantError, TargetNet, Targets, TaskData};
use serde::de::DeserializeOwned;
use thiserror::Error;
use ticketbench_core::{StreamRng, Streams, sample_index};

/// Task parameters as written in a suite file (`{name: circle, label_noise: 0.0}`).
pub type Params = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum TaskError {
    #[error("unknown task `{name}`; valid tasks: {valid}")]
    Unknown { name: String, valid: String },
    #[error("task `{task}`: {message}")]
    InvalidParams { task: &'static str, message: String },
}

/// A seeded data generator with a fixed input width and output kind.
pub trait Task: Send + Sync {
    /// The suite-file name, e.g. `circle`.
    fn name(&self) -> &'static str;
    /// Every parameter, defaults included (hashed into each job's settings).
    fn params(&self) -> serde_json::Value;
    /// Examples held in memory, train and test together (sizes memory before a run).
    fn samples(&self) -> usize;
    fn input_dim(&self) -> usize;
    fn output(&self) -> OutputKind;
    /// Train and test splits, drawn only from streams named `task/<name>/…` of `streams`.
    fn generate(&self, streams: &Streams) -> TaskData;
    /// The geometry of image inputs (each example stored CHW, `input_dim` =
    /// `channels·height·width`); `None` for inputs that are not images.
    fn image_shape(&self) -> Option<ImageShape> {
        None
    }
    /// The hand-crafted sparse target of depth `depth` (layers including input and output)
    /// that solves this task (planting.md §2); an error for tasks without one.
    fn target(&self, depth: usize) -> Result<TargetNet, PlantError> {
        let _ = depth;
        Err(PlantError::NoTarget { task: self.name() })
    }
}

/// Registry entry of a task: what `ticketbench list` shows and how to build it.
pub struct TaskInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub citation: &'static str,
    /// Parameters that name files or directories: a suite resolves them relative to the
    /// suite file before `build` reads them.
    pub paths: &'static [&'static str],
    pub build: fn(&Params) -> Result<Box<dyn Task>, TaskError>,
}

/// Every task ticketbench ships, by suite-file name.
pub const TASKS: &[TaskInfo] = &[
    relu::INFO,
    circle::INFO,
    helix::INFO,
    gaussian::INFO,
    smc_facts::INFO,
    smc_modchain::INFO,
    smc_potts::INFO,
    digits::INFO,
    idx::INFO,
    cifar::INFO,
];

/// Builds the task `name` from suite-file parameters.
pub fn build(name: &str, params: &Params) -> Result<Box<dyn Task>, TaskError> {
    let info = TASKS
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| TaskError::Unknown {
            name: name.to_string(),
            valid: task_names().join(", "),
        })?;
    (info.build)(params)
}

/// The registry entry of task `name`, if there is one.
pub fn info(name: &str) -> Option<&'static TaskInfo> {
    TASKS.iter().find(|t| t.name == name)
}

pub fn task_names() -> Vec<&'static str> {
    TASKS.iter().map(|t| t.name).collect()
}

/// Parses a task's parameter struct (unknown keys are rejected by `deny_unknown_fields`).
pub(crate) fn parse_params<P: DeserializeOwned>(
    task: &'static str,
    params: &Params,
) -> Result<P, TaskError> {
    serde_json::from_value(serde_json::Value::Object(params.clone())).map_err(|e| {
        TaskError::InvalidParams {
            task,
            message: e.to_string(),
        }
    })
}

/// How many examples one draw has and which rows form the splits (planting.md §1).
///
/// Train and test come from two independent draws of `samples` rows each (as the Plant
/// 'n' Seek release calls its generator once per loader); each draw is permuted with its own
/// stream, train keeps the first `⌊train_fraction·samples⌋` rows and test the rest.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    pub samples: usize,
    pub train_fraction: f64,
}

impl Split {
    pub const PLANT_N_SEEK: Split = Split {
        samples: 10_000,
        train_fraction: 0.9,
    };

    pub(crate) fn validate(&self, task: &'static str) -> Result<(), TaskError> {
        let n_train = self.n_train();
        if !(self.train_fraction > 0.0 && self.train_fraction < 1.0)
            || n_train == 0
            || n_train == self.samples
        {
            return Err(TaskError::InvalidParams {
                task,
                message: format!(
                    "samples {} with train_fraction {} leaves an empty split; use samples ≥ 10 and 0 < train_fraction < 1",
                    self.samples, self.train_fraction
                ),
            });
        }
        Ok(())
    }

    fn n_train(&self) -> usize {
        (self.samples as f64 * self.train_fraction).floor() as usize
    }

    /// Draws both splits. `draw(x_rng, noise_rng)` returns one example's inputs and target.
    pub(crate) fn generate<F>(
        &self,
        task: &str,
        streams: &Streams,
        output: OutputKind,
        input_dim: usize,
        draw: F,
    ) -> TaskData
    where
        F: Fn(&mut StreamRng, &mut StreamRng) -> (Vec<f32>, Example),
    {
        let one = |split: &str, keep: std::ops::Range<usize>| {
            let mut rx = streams.stream(&format!("task/{task}/{split}/x"));
            let mut rn = streams.stream(&format!("task/{task}/{split}/noise"));
            let mut rp = streams.stream(&format!("task/{task}/{split}/perm"));
            // The permutation has its own stream, so it is drawn first; then each drawn row
            // goes straight to its place in the split (or is dropped), and the split is the
            // only copy of its rows ever held (drawing all rows, then gathering the kept ones,
            // held 1.9 copies of the training split).
            let mut perm: Vec<usize> = (0..self.samples).collect();
            for i in (1..perm.len()).rev() {
                perm.swap(i, sample_index(&mut rp, i + 1));
            }
            let kept = keep.len();
            let mut slot = vec![usize::MAX; self.samples]; // MAX: not kept
            for (j, &i) in perm[keep].iter().enumerate() {
                slot[i] = j;
            }
            drop(perm);
            let mut inputs = vec![0.0f32; kept * input_dim];
            let mut targets = match output {
                OutputKind::Classes(_) => Targets::Classes(vec![0; kept]),
                OutputKind::Regression(dim) => Targets::Values {
                    values: vec![0.0; kept * dim],
                    dim,
                },
            };
            for &j in &slot {
                let (x, y) = draw(&mut rx, &mut rn);
                if j == usize::MAX {
                    continue;
                }
                inputs[j * input_dim..(j + 1) * input_dim].copy_from_slice(&x);
                match (&mut targets, y) {
                    (Targets::Classes(t), Example::Class(c)) => t[j] = c,
                    (Targets::Values { values, dim }, Example::Values(v)) => {
                        values[j * *dim..(j + 1) * *dim].copy_from_slice(&v)
                    }
                    _ => unreachable!("a task draws targets of its own output kind"),
                }
            }
            Dataset {
                inputs,
                input_dim,
                targets,
            }
        };
        let n_train = self.n_train();
        TaskData {
            output,
            train: one("train", 0..n_train),
            test: one("test", n_train..self.samples),
        }
    }
}

/// One generated example's target.
pub(crate) enum Example {
    Class(u32),
    Values(Vec<f32>),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each split is `samples` rows drawn in stream order, permuted by the split's own
    /// stream, and cut at `⌊train_fraction·samples⌋`: checked against drawing every row first.
    #[test]
    fn split_rows_are_the_permuted_draws() {
        let split = Split {
            samples: 50,
            train_fraction: 0.8,
        };
        let draw = |rx: &mut StreamRng, rn: &mut StreamRng| {
            let x = (0..3).map(|_| sample_index(rx, 1000) as f32).collect();
            (x, sample_index(rn, 7))
        };
        let streams = Streams::new(3);
        let classes = split.generate("toy", &streams, OutputKind::Classes(7), 3, |rx, rn| {
            let (x, y) = draw(rx, rn);
            (x, Example::Class(y as u32))
        });
        let values = split.generate("toy", &streams, OutputKind::Regression(1), 3, |rx, rn| {
            let (x, y) = draw(rx, rn);
            (x, Example::Values(vec![y as f32]))
        });
        for (name, keep, got, got_values) in [
            ("train", 0..40, &classes.train, &values.train),
            ("test", 40..50, &classes.test, &values.test),
        ] {
            let mut rx = streams.stream(&format!("task/toy/{name}/x"));
            let mut rn = streams.stream(&format!("task/toy/{name}/noise"));
            let mut rp = streams.stream(&format!("task/toy/{name}/perm"));
            let rows: Vec<_> = (0..50).map(|_| draw(&mut rx, &mut rn)).collect();
            let mut perm: Vec<usize> = (0..50).collect();
            for i in (1..50).rev() {
                perm.swap(i, sample_index(&mut rp, i + 1));
            }
            let kept: Vec<_> = perm[keep].iter().map(|&i| &rows[i]).collect();
            let inputs: Vec<f32> = kept.iter().flat_map(|(x, _)| x.clone()).collect();
            let labels: Vec<u32> = kept.iter().map(|(_, y)| *y as u32).collect();
            assert_eq!(got.inputs, inputs, "{name}");
            assert_eq!(got.targets, Targets::Classes(labels.clone()), "{name}");
            assert_eq!(got_values.inputs, inputs, "{name}");
            let want = labels.iter().map(|&y| y as f32).collect();
            assert_eq!(
                got_values.targets,
                Targets::Values {
                    values: want,
                    dim: 1
                },
                "{name}"
            );
        }
    }

    #[test]
    fn every_task_is_deterministic_per_seed_and_sized() {
        // Closed-book memorisation tasks (SMC-lite): test is the training table itself and
        // the seed changes at least the row order (smc-modchain's rows are seed-independent).
        const MEMORISES: &[&str] = &["smc-facts", "smc-modchain"];
        // Tasks whose default sizes are not Plant 'n' Seek's 9000/1000.
        const OWN_SIZES: &[&str] = &["gaussian", "smc-facts", "smc-modchain", "smc-potts"];
        // Tasks reading files on disk have required parameters (tested in their modules).
        const NEED_FILES: &[&str] = &["idx", "cifar"];
        for info in TASKS {
            if NEED_FILES.contains(&info.name) {
                let e = (info.build)(&Params::new()).err().unwrap().to_string();
                assert!(e.contains("missing field"), "{}: {e}", info.name);
                continue;
            }
            let task = (info.build)(&Params::new()).unwrap();
            let a = task.generate(&Streams::new(1));
            let b = task.generate(&Streams::new(1));
            let c = task.generate(&Streams::new(2));
            assert_eq!(a, b, "{} not deterministic", info.name);
            assert_ne!(
                a.train.inputs, c.train.inputs,
                "{} ignores the seed",
                info.name
            );
            assert_eq!(a.train.input_dim, task.input_dim());
            if info.name == "digits" {
                // The fixed stratified split of the vendored file (digits.rs).
                assert_eq!((a.train.len(), a.test.len()), (1352, 445));
            } else if !OWN_SIZES.contains(&info.name) {
                assert_eq!((a.train.len(), a.test.len()), (9000, 1000), "{}", info.name);
            }
            if MEMORISES.contains(&info.name) {
                assert_eq!(a.train, a.test, "{}: test is the full table", info.name);
            } else {
                assert_ne!(
                    a.train.inputs[..10],
                    a.test.inputs[..10],
                    "{}: splits are one draw",
                    info.name
                );
            }
        }
    }

    #[test]
    fn unknown_task_and_params_are_clear_errors() {
        let e = build("circel", &Params::new()).err().unwrap().to_string();
        assert!(e.contains("circle") && e.contains("relu"), "{e}");
        let mut p = Params::new();
        p.insert("nois".into(), serde_json::json!(0.1));
        let e = build("circle", &p).err().unwrap().to_string();
        assert!(e.contains("nois") && e.contains("label_noise"), "{e}");
        let mut p = Params::new();
        p.insert("samples".into(), serde_json::json!(1));
        assert!(build("relu", &p).is_err());
    }
}
