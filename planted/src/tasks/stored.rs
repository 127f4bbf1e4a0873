//! What the dataset tasks (`digits`, `idx`, `cifar`) share: a fixed train/test split of byte
//! images held once in memory, its conversion to f32 inputs, and file reading.

use super::Task;
use crate::{Dataset, ImageShape, OutputKind, Targets, TaskData};
use std::io::Read;
use std::sync::Arc;
use ticketbench_core::{Streams, sample_index};

/// One split as stored: `len × dim` pixel bytes (CHW per example) and the class labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawSplit {
    pub pixels: Vec<u8>,
    pub labels: Vec<u32>,
}

impl RawSplit {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Keeps the first `n` examples of width `dim`.
    pub fn truncate(&mut self, n: usize, dim: usize) {
        self.labels.truncate(n);
        self.pixels.truncate(n * dim);
    }
}

/// A task served from a [`Stored`] split: the one [`Task`] implementation of `digits`, `idx`
/// and `cifar`. `params` are the parameters as results record them (the file tasks add the
/// blake3 of each file under `blake3`).
pub struct StoredTask {
    name: &'static str,
    params: serde_json::Value,
    data: Arc<Stored>,
}

impl StoredTask {
    pub(crate) fn new(name: &'static str, params: serde_json::Value, data: Stored) -> Self {
        StoredTask {
            name,
            params,
            data: Arc::new(data),
        }
    }
}

impl Task for StoredTask {
    fn name(&self) -> &'static str {
        self.name
    }
    fn params(&self) -> serde_json::Value {
        self.params.clone()
    }
    fn samples(&self) -> usize {
        self.data.samples()
    }
    fn input_dim(&self) -> usize {
        self.data.shape.input_dim()
    }
    fn output(&self) -> OutputKind {
        self.data.output()
    }
    fn image_shape(&self) -> Option<ImageShape> {
        Some(self.data.shape)
    }
    fn generate(&self, streams: &Streams) -> TaskData {
        self.data.generate(self.name, streams)
    }
}

/// A fixed train/test split of byte images. Input `j` of an example is
/// `(byte/divisor − mean_j)·inv_std_j`, with `mean = 0`, `inv_std = 1` unless standardised.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    pub shape: ImageShape,
    pub classes: usize,
    pub train: RawSplit,
    pub test: RawSplit,
    /// 16 or 255: maps bytes onto [0, 1] (a division, so 255 → exactly 1 and `b/255` is the
    /// correctly rounded f32).
    pub divisor: f32,
    /// Per-input `(mean, 1/std)` of the training split, when standardised.
    pub standardise: Option<(Vec<f32>, Vec<f32>)>,
}

impl Stored {
    pub fn samples(&self) -> usize {
        self.train.len() + self.test.len()
    }

    pub fn output(&self) -> OutputKind {
        OutputKind::Classes(self.classes)
    }

    /// Standardises each input with the mean and population standard deviation of the
    /// training split (after dividing); an input constant over the training split is only
    /// centred.
    pub fn standardised(mut self) -> Self {
        let dim = self.shape.input_dim();
        let n = self.train.len().max(1) as f64;
        let divisor = f64::from(self.divisor);
        let mut sum = vec![0.0f64; dim];
        let mut sq = vec![0.0f64; dim];
        for row in self.train.pixels.chunks_exact(dim) {
            for (j, &b) in row.iter().enumerate() {
                let x = f64::from(b) / divisor;
                sum[j] += x;
                sq[j] += x * x;
            }
        }
        let (mean, inv): (Vec<f32>, Vec<f32>) = (0..dim)
            .map(|j| {
                let m = sum[j] / n;
                let sd = (sq[j] / n - m * m).max(0.0).sqrt();
                (m as f32, if sd > 1e-9 { (1.0 / sd) as f32 } else { 1.0 })
            })
            .unzip();
        self.standardise = Some((mean, inv));
        self
    }

    /// Both splits as f32. Only the order of the training rows depends on the seed (stream
    /// `task/<task>/perm`); the test rows keep their stored order.
    pub fn generate(&self, task: &str, streams: &Streams) -> TaskData {
        let n = self.train.len();
        let mut perm: Vec<usize> = (0..n).collect();
        let mut rng = streams.stream(&format!("task/{task}/perm"));
        for i in (1..n).rev() {
            perm.swap(i, sample_index(&mut rng, i + 1));
        }
        TaskData {
            output: self.output(),
            train: self.dataset(&self.train, &perm),
            test: self.dataset(&self.test, &(0..self.test.len()).collect::<Vec<_>>()),
        }
    }

    fn dataset(&self, split: &RawSplit, order: &[usize]) -> Dataset {
        let dim = self.shape.input_dim();
        let mut inputs = Vec::with_capacity(order.len() * dim);
        for &i in order {
            let row = &split.pixels[i * dim..(i + 1) * dim];
            match &self.standardise {
                None => inputs.extend(row.iter().map(|&b| f32::from(b) / self.divisor)),
                Some((mean, inv)) => inputs.extend(
                    row.iter()
                        .zip(mean.iter().zip(inv))
                        .map(|(&b, (&m, &s))| (f32::from(b) / self.divisor - m) * s),
                ),
            }
        }
        Dataset {
            inputs,
            input_dim: dim,
            targets: Targets::Classes(order.iter().map(|&i| split.labels[i]).collect()),
        }
    }
}

/// Decompresses gzip data (one or more members).
pub(crate) fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// A file's contents (gunzipped when its name ends in `.gz`) and the blake3 digest (hex) of
/// its bytes as stored on disk. `what` names the file in errors, e.g. `train_images`.
pub(crate) fn read_file(what: &str, path: &str) -> Result<(Vec<u8>, String), String> {
    let raw = std::fs::read(path).map_err(|e| format!("cannot read {what} `{path}`: {e}"))?;
    let digest = blake3::hash(&raw).to_hex().to_string();
    let bytes = if path.ends_with(".gz") {
        gunzip(&raw).map_err(|e| format!("{what} `{path}`: not a valid gzip file: {e}"))?
    } else {
        raw
    };
    Ok((bytes, digest))
}

/// Checks `limit_<split>` against the `available` examples: `Some(0)` and more than there are
/// are errors.
pub(crate) fn check_limit(
    name: &str,
    limit: Option<usize>,
    available: usize,
    what: &str,
) -> Result<usize, String> {
    match limit {
        None => Ok(available),
        Some(0) => Err(format!("{name} 0 leaves an empty split")),
        Some(n) if n > available => Err(format!(
            "{name} {n} exceeds the {available} examples of {what}"
        )),
        Some(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Stored {
        Stored {
            shape: ImageShape {
                channels: 1,
                height: 1,
                width: 2,
            },
            classes: 2,
            train: RawSplit {
                pixels: vec![0, 10, 2, 10, 4, 10],
                labels: vec![0, 1, 0],
            },
            test: RawSplit {
                pixels: vec![6, 10],
                labels: vec![1],
            },
            divisor: 2.0,
            standardise: None,
        }
    }

    #[test]
    fn scales_permutes_train_only_and_standardises_with_train_statistics() {
        let data = toy().generate("toy", &Streams::new(0));
        assert_eq!(data.test.inputs, vec![3.0, 5.0]);
        // Training rows are whole rows (label follows its pixels) in some order.
        let Targets::Classes(y) = &data.train.targets else {
            unreachable!()
        };
        for (row, &label) in data.train.inputs.chunks(2).zip(y) {
            assert_eq!(row[1], 5.0);
            assert_eq!(label, u32::from(row[0] == 1.0), "row {row:?}");
        }
        // Train column 0 scaled: 0, 1, 2 → mean 1, sd √(2/3); column 1 constant → centred.
        let data = toy().standardised().generate("toy", &Streams::new(0));
        let sd = (2.0f32 / 3.0).sqrt();
        assert!((data.test.inputs[0] - 2.0 / sd).abs() < 1e-6);
        assert_eq!(data.test.inputs[1], 0.0);
        let col0: f32 = data.train.inputs.chunks(2).map(|r| r[0]).sum();
        assert!(col0.abs() < 1e-6);
    }

    #[test]
    fn gunzip_round_trips_and_rejects_garbage() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"hello").unwrap();
        assert_eq!(gunzip(&enc.finish().unwrap()).unwrap(), b"hello");
        assert!(gunzip(b"not gzip").is_err());
    }
}
