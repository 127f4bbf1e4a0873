use super::{Example, Split, Task, TaskError, TaskInfo, parse_params};
use crate::{OutputKind, TaskData};
use serde::{Deserialize, Serialize};
use ticketbench_core::{Streams, sample_uniform};

/// Circle (planting.md §1.2): `x ~ U[−1, 1]²`, `g = x₁² + x₂²`, class = number of thresholds
/// (0.2, 0.5, 0.7) that `g` exceeds (4 rings). With probability `label_noise` the label is the
/// class with the second-largest generator score `s_c(g) = a_c·g + β_c`,
/// `a = (0.1, 0.2, 0.4, 0.8)`, `β = (0, −0.02, −0.12, −0.40)` (always an adjacent ring).
/// Cross-entropy over 4 logits; metric test accuracy. Fischer & Burkholz 2022.
pub struct Circle {
    params: CircleParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CircleParams {
    label_noise: f64,
    samples: usize,
    train_fraction: f64,
}

impl Default for CircleParams {
    fn default() -> Self {
        let s = Split::PLANT_N_SEEK;
        CircleParams {
            label_noise: 0.01,
            samples: s.samples,
            train_fraction: s.train_fraction,
        }
    }
}

pub(super) const INFO: TaskInfo = TaskInfo {
    name: "circle",
    summary: "2-D inputs, 4 concentric-ring classes, 1% adjacent-ring label noise (classification)",
    citation: "Fischer & Burkholz 2022, Plant 'n' Seek, arXiv 2111.11153",
    paths: &[],
    build: |p| {
        let params: CircleParams = parse_params(INFO.name, p)?;
        Split {
            samples: params.samples,
            train_fraction: params.train_fraction,
        }
        .validate(INFO.name)?;
        if !(0.0..=1.0).contains(&params.label_noise) {
            return Err(TaskError::InvalidParams {
                task: INFO.name,
                message: format!("label_noise {} is not a probability", params.label_noise),
            });
        }
        Ok(Box::new(Circle { params }))
    },
};

const SLOPE: [f64; 4] = [0.1, 0.2, 0.4, 0.8];
const OFFSET: [f64; 4] = [0.0, -0.02, -0.12, -0.40];

/// Clean class and its noisy replacement (second-largest generator score).
fn classes(g: f64) -> (u32, u32) {
    let mut order: Vec<usize> = (0..4).collect();
    order.sort_by(|&a, &b| (SLOPE[b] * g + OFFSET[b]).total_cmp(&(SLOPE[a] * g + OFFSET[a])));
    (order[0] as u32, order[1] as u32)
}

impl Task for Circle {
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
        2
    }
    fn output(&self) -> OutputKind {
        OutputKind::Classes(4)
    }
    fn target(&self, depth: usize) -> Result<crate::TargetNet, crate::PlantError> {
        crate::target::circle_target(depth)
    }
    fn generate(&self, streams: &Streams) -> TaskData {
        let split = Split {
            samples: self.params.samples,
            train_fraction: self.params.train_fraction,
        };
        let noise = self.params.label_noise;
        split.generate(INFO.name, streams, self.output(), 2, |rx, rn| {
            let x = [sample_uniform(rx, -1.0, 1.0), sample_uniform(rx, -1.0, 1.0)];
            let (clean, second) = classes(x[0] * x[0] + x[1] * x[1]);
            let label = if sample_uniform(rn, 0.0, 1.0) < noise {
                second
            } else {
                clean
            };
            (vec![x[0] as f32, x[1] as f32], Example::Class(label))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Targets;
    use crate::tasks::Params;

    #[test]
    fn ring_thresholds_and_noise_rule() {
        // planting.md §1.2: class 0 → 1; class 1 → 0 if g < 0.4 else 2;
        // class 2 → 1 if g < 0.6333… else 3; class 3 → 2.
        assert_eq!(classes(0.1), (0, 1));
        assert_eq!(classes(0.3), (1, 0));
        assert_eq!(classes(0.45), (1, 2));
        assert_eq!(classes(0.6), (2, 1));
        assert_eq!(classes(0.65), (2, 3));
        assert_eq!(classes(1.5), (3, 2));
    }

    #[test]
    fn class_frequencies_match_ring_areas() {
        // Exact probabilities π·0.2/4, π·0.3/4, π·0.2/4, 1 − π·0.7/4 (≈ .157 .236 .157 .450).
        let mut p = Params::new();
        p.insert("label_noise".into(), serde_json::json!(0.0));
        let data = (INFO.build)(&p).unwrap().generate(&Streams::new(3));
        let Targets::Classes(y) = &data.train.targets else {
            unreachable!()
        };
        let pi = std::f64::consts::PI;
        for (c, want) in [
            pi * 0.2 / 4.0,
            pi * 0.3 / 4.0,
            pi * 0.2 / 4.0,
            1.0 - pi * 0.7 / 4.0,
        ]
        .iter()
        .enumerate()
        {
            let got = y.iter().filter(|&&v| v == c as u32).count() as f64 / y.len() as f64;
            assert!((got - want).abs() < 0.015, "class {c}: {got} vs {want}");
        }
    }

    #[test]
    fn label_noise_rate() {
        let data = (INFO.build)(&Params::new())
            .unwrap()
            .generate(&Streams::new(4));
        let Targets::Classes(y) = &data.train.targets else {
            unreachable!()
        };
        let flipped = data.train.inputs.chunks(2).zip(y).filter(|&(x, &l)| {
            let g = (x[0] as f64).powi(2) + (x[1] as f64).powi(2);
            classes(g).0 != l
        });
        let rate = flipped.count() as f64 / y.len() as f64;
        assert!((0.005..0.016).contains(&rate), "noise rate {rate}");
    }
}
