use super::{Example, Split, Task, TaskError, TaskInfo, parse_params};
use crate::{OutputKind, TaskData};
use serde::{Deserialize, Serialize};
use ticketbench_core::{Streams, sample_index, sample_standard_normal};

/// Gaussian noise: `x ~ N(0, I_inputs)`, labels uniform over `classes`. There is nothing to
/// learn; the task exists so methods, benchmarks and `ticketbench prune` can run on any
/// widths (e.g. LeNet-300-100's 784 → 10) without a dataset.
pub struct Gaussian {
    params: GaussianParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GaussianParams {
    pub inputs: usize,
    pub classes: usize,
    pub samples: usize,
    pub train_fraction: f64,
}

impl Default for GaussianParams {
    fn default() -> Self {
        GaussianParams {
            inputs: 784,
            classes: 10,
            samples: 2048,
            train_fraction: 0.5,
        }
    }
}

pub(super) const INFO: TaskInfo = TaskInfo {
    name: "gaussian",
    summary: "N(0, I) inputs with uniformly random labels: no signal, for mechanics and speed",
    citation: "ticketbench (mechanics-only task)",
    paths: &[],
    build: |p| {
        let params: GaussianParams = parse_params(INFO.name, p)?;
        Split {
            samples: params.samples,
            train_fraction: params.train_fraction,
        }
        .validate(INFO.name)?;
        if params.inputs == 0 || params.classes < 2 {
            return Err(TaskError::InvalidParams {
                task: INFO.name,
                message: "needs inputs ≥ 1 and classes ≥ 2".into(),
            });
        }
        Ok(Box::new(Gaussian { params }))
    },
};

impl Gaussian {
    /// A Gaussian task of the given widths.
    pub fn new(params: GaussianParams) -> Self {
        Gaussian { params }
    }
}

impl Task for Gaussian {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).expect("plain struct")
    }
    fn samples(&self) -> usize {
        self.params.samples
    }
    fn input_dim(&self) -> usize {
        self.params.inputs
    }
    fn output(&self) -> OutputKind {
        OutputKind::Classes(self.params.classes)
    }
    fn generate(&self, streams: &Streams) -> TaskData {
        let p = &self.params;
        let split = Split {
            samples: p.samples,
            train_fraction: p.train_fraction,
        };
        split.generate(INFO.name, streams, self.output(), p.inputs, |rx, rn| {
            let x = (0..p.inputs)
                .map(|_| sample_standard_normal(rx) as f32)
                .collect();
            (x, Example::Class(sample_index(rn, p.classes) as u32))
        })
    }
}
