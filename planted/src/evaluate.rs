//! Host-side scoring of any function on a task's test split, in f64: the target network's
//! own metric and the strong-ticket metrics with the output rescaling of planting.md §4.6.

use crate::{Dataset, Targets};

/// Test metric of a function: accuracy for classification, MSE for regression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FunctionScore {
    /// Accuracy of the raw outputs, or their MSE.
    pub raw: f64,
    /// After the output rescaling a planted host needs: classification divides output `c`
    /// by the planted scale λ_c before the argmax; regression multiplies output `j` by its
    /// least-squares factor `s_j = Σ y_j f_j / Σ f_j²` (1 when `f_j ≡ 0`), fitted on the
    /// whole test set (the release fits per batch).
    pub rescaled: f64,
}

/// Scores `f` on every row of `data`; `output_scale` is λ (one factor per output).
pub fn score_function(
    data: &Dataset,
    output_scale: &[f64],
    f: impl Fn(&[f64]) -> Vec<f64>,
) -> FunctionScore {
    score_outputs(
        &function_outputs(&data.inputs, data.input_dim, f),
        &data.targets,
        output_scale,
    )
}

/// `f` on each row of a row-major `inputs` matrix with `input_dim` columns, in f64.
pub fn function_outputs(
    inputs: &[f32],
    input_dim: usize,
    f: impl Fn(&[f64]) -> Vec<f64>,
) -> Vec<Vec<f64>> {
    inputs
        .chunks(input_dim.max(1))
        .map(|x| f(&x.iter().map(|&v| v as f64).collect::<Vec<_>>()))
        .collect()
}

/// Scores a function's `outputs` (one per example, in the order of `targets`).
pub fn score_outputs(
    outputs: &[Vec<f64>],
    targets: &Targets,
    output_scale: &[f64],
) -> FunctionScore {
    match targets {
        Targets::Classes(labels) => {
            let accuracy = |scale: &dyn Fn(usize) -> f64| {
                let hits = outputs
                    .iter()
                    .zip(labels)
                    .filter(|&(o, &y)| {
                        let arg = (0..o.len())
                            .max_by(|&a, &b| (o[a] / scale(a)).total_cmp(&(o[b] / scale(b))))
                            .expect("at least one output");
                        arg == y as usize
                    })
                    .count();
                hits as f64 / labels.len().max(1) as f64
            };
            FunctionScore {
                raw: accuracy(&|_| 1.0),
                rescaled: accuracy(&|c| output_scale[c]),
            }
        }
        Targets::Values { values, dim } => {
            let n = outputs.len().max(1) as f64;
            let factors: Vec<f64> = (0..*dim)
                .map(|j| {
                    let ff: f64 = outputs.iter().map(|o| o[j] * o[j]).sum();
                    let yf: f64 = outputs
                        .iter()
                        .enumerate()
                        .map(|(r, o)| values[r * dim + j] as f64 * o[j])
                        .sum();
                    if ff == 0.0 { 1.0 } else { yf / ff }
                })
                .collect();
            let mse = |scale: &dyn Fn(usize) -> f64| {
                outputs
                    .iter()
                    .enumerate()
                    .map(|(r, o)| {
                        (0..*dim)
                            .map(|j| (values[r * dim + j] as f64 - scale(j) * o[j]).powi(2))
                            .sum::<f64>()
                    })
                    .sum::<f64>()
                    / (n * *dim as f64)
            };
            FunctionScore {
                raw: mse(&|_| 1.0),
                rescaled: mse(&|j| factors[j]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks;
    use ticketbench_core::Streams;

    #[test]
    fn least_squares_rescale_undoes_an_output_factor() {
        let data = Dataset {
            inputs: vec![1.0, 2.0, 3.0],
            input_dim: 1,
            targets: Targets::Values {
                values: vec![2.0, 4.0, 6.0],
                dim: 1,
            },
        };
        let s = score_function(&data, &[1.0], |x| vec![10.0 * x[0]]);
        assert!(s.raw > 100.0);
        assert!(s.rescaled < 1e-20);
    }

    #[test]
    fn class_scale_changes_the_argmax() {
        let data = Dataset {
            inputs: vec![0.0],
            input_dim: 1,
            targets: Targets::Classes(vec![0]),
        };
        let s = score_function(&data, &[1.0, 10.0], |_| vec![2.0, 5.0]);
        assert_eq!((s.raw, s.rescaled), (0.0, 1.0));
    }

    #[test]
    fn every_target_solves_its_task() {
        // The planted reference: each hand-crafted target on a seed's noisy test split.
        // Measured: Circle 95.2% (D=3, coarse knots) to 98.5% (D=10) with 1% label noise;
        // ReLU ≈ 1.0e-4 (the noise variance); Helix ≈ 3.2e-4 (knot error + noise).
        for depth in [3, 5, 6, 10] {
            for (name, ok) in [
                ("circle", (|m: f64| m >= 0.94) as fn(f64) -> bool),
                ("relu", |m| m <= 1.2e-4),
                ("helix", |m| m <= 5e-4),
            ] {
                let task = tasks::build(name, &Default::default()).unwrap();
                let data = task.generate(&Streams::new(depth as u64));
                let target = task.target(depth).unwrap();
                let score = score_function(&data.test, &[1.0; 4], |x| target.forward(x));
                assert!(ok(score.raw), "{name} D={depth}: {}", score.raw);
            }
        }
    }
}
