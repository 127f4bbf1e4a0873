use super::relu::RegressionParams;
use super::{Example, Task, TaskInfo};
use crate::{OutputKind, TaskData};
use std::f64::consts::PI;
use ticketbench_core::{Streams, sample_standard_normal, sample_uniform};

/// Helix (planting.md §1.3): `x ~ U[−1, 1]`, `t = 5π + 3πx`,
/// `y = (t cos t, t sin t, t)/(8π) + ε`, `ε ~ N(0, σ² I₃)`, σ = 0.01. MSE averaged over the 3
/// outputs; metric test MSE. Fischer & Burkholz 2022.
pub struct Helix {
    params: RegressionParams,
}

pub(super) const INFO: TaskInfo = TaskInfo {
    name: "helix",
    summary: "1-D input, 3-D regression of a helix curve with N(0, 0.01²) noise",
    citation: "Fischer & Burkholz 2022, Plant 'n' Seek, arXiv 2111.11153",
    paths: &[],
    build: |p| {
        Ok(Box::new(Helix {
            params: RegressionParams::parse(INFO.name, p)?,
        }))
    },
};

/// The noise-free helix point for input `x`.
pub(crate) fn helix_point(x: f64) -> [f64; 3] {
    let t = 5.0 * PI + 3.0 * PI * x;
    [
        t * t.cos() / (8.0 * PI),
        t * t.sin() / (8.0 * PI),
        t / (8.0 * PI),
    ]
}

impl Task for Helix {
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
        OutputKind::Regression(3)
    }
    fn target(&self, depth: usize) -> Result<crate::TargetNet, crate::PlantError> {
        crate::target::helix_target(depth)
    }
    fn generate(&self, streams: &Streams) -> TaskData {
        let std = self.params.noise_std;
        self.params
            .split()
            .generate(INFO.name, streams, self.output(), 1, |rx, rn| {
                let x = sample_uniform(rx, -1.0, 1.0);
                let y = helix_point(x).map(|v| (v + std * sample_standard_normal(rn)) as f32);
                (vec![x as f32], Example::Values(y.to_vec()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helix_ranges() {
        // planting.md §1.3: y₃ ∈ [0.25, 1]; y₁, y₂ ∈ [−1, 1].
        for i in 0..=200 {
            let y = helix_point(-1.0 + i as f64 / 100.0);
            assert!((0.25 - 1e-12..=1.0 + 1e-12).contains(&y[2]));
            assert!(y[0].abs() <= 1.0 && y[1].abs() <= 1.0);
        }
        assert!(
            (helix_point(-1.0)[2] - 0.25).abs() < 1e-12
                && (helix_point(1.0)[2] - 1.0).abs() < 1e-12
        );
    }
}
