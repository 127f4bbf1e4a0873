use serde::{Deserialize, Serialize};
use ticketbench_core::{Streams, sample_index};

/// What a task's network outputs and how it is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    /// `n` logits, cross-entropy loss, accuracy metric (higher is better).
    Classes(usize),
    /// `n` real outputs, mean-squared-error loss and metric (lower is better).
    Regression(usize),
}

impl OutputKind {
    /// Width of the network's output layer.
    pub fn dim(self) -> usize {
        match self {
            OutputKind::Classes(n) | OutputKind::Regression(n) => n,
        }
    }
}

/// Geometry of image inputs. Each example is stored row-major in CHW order (channel, row,
/// column), so a task's `input_dim` is `channels·height·width` and pixel `(c, y, x)` of an
/// example sits at [`ImageShape::index`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    /// Values per example: `channels·height·width`.
    pub fn input_dim(self) -> usize {
        self.channels * self.height * self.width
    }

    /// Offset of pixel `(channel, row, column)` within one example.
    pub fn index(self, channel: usize, row: usize, column: usize) -> usize {
        (channel * self.height + row) * self.width + column
    }
}

/// Targets of a dataset: class labels or real vectors (row-major `n × dim`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Targets {
    Classes(Vec<u32>),
    Values { values: Vec<f32>, dim: usize },
}

impl Targets {
    /// Examples these targets label.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(y) => y.len(),
            Targets::Values { values, dim } => values.len() / (*dim).max(1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Examples as a row-major `n × input_dim` f32 matrix with their targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub inputs: Vec<f32>,
    pub input_dim: usize,
    pub targets: Targets,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.inputs.len() / self.input_dim.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows `indices`, in that order.
    pub fn rows(&self, indices: &[usize]) -> Dataset {
        let d = self.input_dim;
        let inputs = indices
            .iter()
            .flat_map(|&i| self.inputs[i * d..(i + 1) * d].iter().copied())
            .collect();
        let targets = match &self.targets {
            Targets::Classes(y) => Targets::Classes(indices.iter().map(|&i| y[i]).collect()),
            Targets::Values { values, dim } => Targets::Values {
                values: indices
                    .iter()
                    .flat_map(|&i| values[i * dim..(i + 1) * dim].iter().copied())
                    .collect(),
                dim: *dim,
            },
        };
        Dataset {
            inputs,
            input_dim: d,
            targets,
        }
    }
}

/// A task's splits. One copy per job; the engine uploads it to the device once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskData {
    pub output: OutputKind,
    pub train: Dataset,
    pub test: Dataset,
}

impl TaskData {
    /// The scoring batch of data-dependent pruners (methods.md §0 "Data"), from the
    /// training split by stream `purpose`:
    /// * classification: class-balanced, `per_class` examples of each class in label order
    ///   (all of a class when it has fewer);
    /// * regression: `4·per_class` random examples (Plant 'n' Seek's release uses the
    ///   4-"class" pruning set of 40 samples for every task).
    pub fn scoring_batch(&self, per_class: usize, streams: &Streams, purpose: &str) -> Dataset {
        let labels = match &self.train.targets {
            Targets::Classes(y) => Some(y.as_slice()),
            Targets::Values { .. } => None,
        };
        self.train.rows(&scoring_rows(
            self.train.len(),
            labels,
            self.output,
            per_class,
            streams,
            purpose,
        ))
    }
}

/// The rows of [`TaskData::scoring_batch`] among `n` training examples, chosen from their
/// class `labels` alone (`None` for regression), so a split that lives on a device is
/// gathered row by row, never copied whole.
pub fn scoring_rows(
    n: usize,
    labels: Option<&[u32]>,
    output: OutputKind,
    per_class: usize,
    streams: &Streams,
    purpose: &str,
) -> Vec<usize> {
    let mut rng = streams.stream(purpose);
    let mut order: Vec<usize> = (0..n).collect();
    // Full Fisher–Yates: a uniformly random order of the training rows.
    for i in (1..n).rev() {
        let j = sample_index(&mut rng, i + 1);
        order.swap(i, j);
    }
    match (labels, output) {
        (Some(y), OutputKind::Classes(classes)) => (0..classes as u32)
            .flat_map(|c| {
                order
                    .iter()
                    .copied()
                    .filter(move |&i| y[i] == c)
                    .take(per_class)
            })
            .collect(),
        _ => order.into_iter().take(4 * per_class).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> TaskData {
        let train = Dataset {
            inputs: (0..20).map(|i| i as f32).collect(),
            input_dim: 2,
            targets: Targets::Classes(vec![0, 1, 0, 1, 0, 1, 2, 0, 1, 0]),
        };
        TaskData {
            output: OutputKind::Classes(3),
            test: train.clone(),
            train,
        }
    }

    #[test]
    fn rows_selects_inputs_and_targets() {
        let d = toy().train.rows(&[3, 0]);
        assert_eq!(d.inputs, vec![6.0, 7.0, 0.0, 1.0]);
        assert_eq!(d.targets, Targets::Classes(vec![1, 0]));
    }

    #[test]
    fn scoring_batch_is_class_balanced_and_seeded() {
        let data = toy();
        let b = data.scoring_batch(2, &Streams::new(0), "snip/batch");
        // Two of class 0, two of class 1, the single example of class 2, in label order.
        match &b.targets {
            Targets::Classes(y) => assert_eq!(y, &vec![0, 0, 1, 1, 2]),
            _ => unreachable!(),
        }
        assert_eq!(b, data.scoring_batch(2, &Streams::new(0), "snip/batch"));
    }
}
