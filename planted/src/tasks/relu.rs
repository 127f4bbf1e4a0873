use super::{Example, Params, Split, Task, TaskError, TaskInfo, parse_params};
use crate::{OutputKind, TaskData};
use serde::{Deserialize, Serialize};
use ticketbench_core::{Streams, sample_standard_normal, sample_uniform};

/// ReLU (planting.md §1.1): `x ~ U[−1, 1]`, `y = max(0, x) + ε`, `ε ~ N(0, σ²)` with σ = 0.01
/// (a standard deviation, as in the release code). MSE loss; metric test MSE.
/// Fischer & Burkholz 2022.
pub struct Relu {
    params: RegressionParams,
}

/// Parameters shared by the 1-D regression tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RegressionParams {
    pub noise_std: f64,
    pub samples: usize,
    pub train_fraction: f64,
}

impl Default for RegressionParams {
    fn default() -> Self {
        let s = Split::PLANT_N_SEEK;
        RegressionParams {
            noise_std: 0.01,
            samples: s.samples,
            train_fraction: s.train_fraction,
        }
    }
}

impl RegressionParams {
    pub(super) fn parse(task: &'static str, p: &Params) -> Result<Self, TaskError> {
        let params: RegressionParams = parse_params(task, p)?;
        params.split().validate(task)?;
        if !(params.noise_std >= 0.0 && params.noise_std.is_finite()) {
            return Err(TaskError::InvalidParams {
                task,
                message: format!("noise_std {} must be ≥ 0", params.noise_std),
            });
        }
        Ok(params)
    }

    pub(super) fn split(&self) -> Split {
        Split {
            samples: self.samples,
            train_fraction: self.train_fraction,
        }
    }
}

pub(super) const INFO: TaskInfo = TaskInfo {
    name: "relu",
    summary: "1-D regression of max(0, x) with N(0, 0.01²) noise",
    citation: "Fischer & Burkholz 2022, Plant 'n' Seek, arXiv 2111.11153",
    paths: &[],
    build: |p| {
        Ok(Box::new(Relu {
            params: RegressionParams::parse(INFO.name, p)?,
        }))
    },
};

impl Task for Relu {
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
        1
    }
    fn output(&self) -> OutputKind {
        OutputKind::Regression(1)
    }
    fn target(&self, depth: usize) -> Result<crate::TargetNet, crate::PlantError> {
        crate::target::relu_target(depth)
    }
    fn generate(&self, streams: &Streams) -> TaskData {
        let std = self.params.noise_std;
        self.params
            .split()
            .generate(INFO.name, streams, self.output(), 1, |rx, rn| {
                let x = sample_uniform(rx, -1.0, 1.0);
                let y = x.max(0.0) + std * sample_standard_normal(rn);
                (vec![x as f32], Example::Values(vec![y as f32]))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Targets;
    use crate::tasks::Params;

    #[test]
    fn targets_follow_relu_with_small_noise() {
        let data = (INFO.build)(&Params::new())
            .unwrap()
            .generate(&Streams::new(0));
        let Targets::Values { values, dim: 1 } = &data.train.targets else {
            unreachable!()
        };
        let resid: Vec<f64> = data
            .train
            .inputs
            .iter()
            .zip(values)
            .map(|(x, y)| (*y - x.max(0.0)) as f64)
            .collect();
        let var = resid.iter().map(|r| r * r).sum::<f64>() / resid.len() as f64;
        assert!(
            (var.sqrt() - 0.01).abs() < 0.001,
            "noise std {}",
            var.sqrt()
        );
        assert!(data.train.inputs.iter().all(|x| (-1.0..=1.0).contains(x)));
    }
}
