//! UCI "Optical Recognition of Handwritten Digits" (Alpaydin & Kaynak 1998, DOI
//! 10.24432/C50P49, CC BY 4.0), shipped in the repository: the 1,797-example test set
//! (`optdigits.tes`, 13 writers) as scikit-learn 1.9.1 bundles it
//! (`sklearn/datasets/data/digits.csv.gz`). Each example is an 8×8 image (1×8×8, CHW) of
//! counts 0..16 of set pixels in 4×4 blocks of a 32×32 bitmap, class = digit 0..9.
//!
//! Fixed, seed-independent stratified split: of each class's `n_c` rows, the first
//! `⌈3·n_c/4⌉` in file order train and the rest test (1,352 train, 445 test). Only the order
//! of the training rows depends on the seed (stream `task/digits/perm`); test rows keep file
//! order. Inputs: `normalise: unit` (default) maps counts to `count/16 ∈ [0, 1]`; `standard`
//! then standardises each pixel with the mean and population standard deviation of the
//! training split (pixels constant over it are only centred). Cross-entropy over 10 logits;
//! metric test accuracy.

use super::stored::{RawSplit, Stored, StoredTask, gunzip};
use super::{TaskInfo, parse_params};
use crate::ImageShape;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The vendored file: scikit-learn's copy of the UCI test set (`planted/data/README.md`
/// gives provenance, licence and digests).
const DIGITS_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");
const ROWS: usize = 1797;
const SHAPE: ImageShape = ImageShape {
    channels: 1,
    height: 8,
    width: 8,
};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Normalise {
    /// `count/16 ∈ [0, 1]`.
    #[default]
    Unit,
    /// `count/16`, then per-pixel standardisation with training-split statistics.
    Standard,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct DigitsParams {
    normalise: Normalise,
}

pub(super) const INFO: TaskInfo = TaskInfo {
    name: "digits",
    summary: "UCI 8×8 handwritten digits (1,797 images, 10 classes), vendored; fixed stratified 75/25 split",
    citation: "Alpaydin & Kaynak 1998, UCI ML Repository, doi:10.24432/C50P49 (CC BY 4.0)",
    paths: &[],
    build: |p| {
        let params: DigitsParams = parse_params(INFO.name, p)?;
        let (pixels, labels) = rows();
        let stored = split(pixels, labels);
        let stored = match params.normalise {
            Normalise::Unit => stored,
            Normalise::Standard => stored.standardised(),
        };
        Ok(Box::new(StoredTask::new(
            INFO.name,
            serde_json::to_value(&params).expect("plain struct"),
            stored,
        )))
    },
};

/// The embedded rows, parsed once: `1797 × 64` counts and the labels, in file order.
fn rows() -> &'static (Vec<u8>, Vec<u32>) {
    static ROWS_CACHE: OnceLock<(Vec<u8>, Vec<u32>)> = OnceLock::new();
    ROWS_CACHE.get_or_init(|| {
        let csv = gunzip(DIGITS_GZ).expect("vendored digits.csv.gz is valid gzip");
        let csv = std::str::from_utf8(&csv).expect("vendored digits.csv is ASCII");
        parse(csv).expect("vendored digits.csv is well formed")
    })
}

/// Parses rows of 64 counts 0..16 followed by a label 0..9.
fn parse(csv: &str) -> Result<(Vec<u8>, Vec<u32>), String> {
    let dim = SHAPE.input_dim();
    let mut pixels = Vec::with_capacity(ROWS * dim);
    let mut labels = Vec::with_capacity(ROWS);
    for (line_no, line) in csv.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != dim + 1 {
            return Err(format!(
                "line {}: {} fields, expected {}",
                line_no + 1,
                fields.len(),
                dim + 1
            ));
        }
        for f in &fields[..dim] {
            match f.trim().parse::<u8>() {
                Ok(v) if v <= 16 => pixels.push(v),
                _ => return Err(format!("line {}: bad count `{f}`", line_no + 1)),
            }
        }
        match fields[dim].trim().parse::<u32>() {
            Ok(y) if y < 10 => labels.push(y),
            _ => return Err(format!("line {}: bad label `{}`", line_no + 1, fields[dim])),
        }
    }
    Ok((pixels, labels))
}

/// Rows of training examples of class `c` among `count` rows of that class.
fn n_train(count: usize) -> usize {
    (3 * count).div_ceil(4)
}

/// The fixed stratified split (see [`Digits`]), both splits in file order.
fn split(pixels: &[u8], labels: &[u32]) -> Stored {
    let dim = SHAPE.input_dim();
    let mut counts = [0usize; 10];
    for &y in labels {
        counts[y as usize] += 1;
    }
    let mut seen = [0usize; 10];
    let (mut train, mut test) = (RawSplit::default(), RawSplit::default());
    for (i, &y) in labels.iter().enumerate() {
        let c = y as usize;
        let to = if seen[c] < n_train(counts[c]) {
            &mut train
        } else {
            &mut test
        };
        seen[c] += 1;
        to.pixels.extend_from_slice(&pixels[i * dim..(i + 1) * dim]);
        to.labels.push(y);
    }
    Stored {
        shape: SHAPE,
        classes: 10,
        train,
        test,
        divisor: 16.0,
        standardise: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Params;
    use crate::{OutputKind, Targets};
    use ticketbench_core::Streams;

    fn class_counts(y: &[u32]) -> Vec<usize> {
        (0..10)
            .map(|c| y.iter().filter(|&&v| v == c).count())
            .collect()
    }

    fn labels(t: &Targets) -> &[u32] {
        match t {
            Targets::Classes(y) => y,
            Targets::Values { .. } => unreachable!(),
        }
    }

    #[test]
    fn embedded_file_matches_the_digest_in_the_data_readme() {
        let readme = include_str!("../../data/README.md");
        let line = readme
            .lines()
            .find(|l| l.contains("blake3"))
            .expect("README names the blake3 digest");
        let got = blake3::hash(DIGITS_GZ).to_hex().to_string();
        assert!(line.contains(&got), "README line `{line}` vs blake3 {got}");
        assert_eq!(DIGITS_GZ.len(), 57_523);
    }

    #[test]
    fn file_has_1797_rows_with_the_uci_class_counts() {
        let (pixels, y) = rows();
        assert_eq!(y.len(), 1797);
        assert_eq!(pixels.len(), 1797 * 64);
        assert_eq!(
            class_counts(y),
            [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
        );
        assert_eq!(pixels.iter().copied().max(), Some(16));
        // First row of the file: a zero.
        assert_eq!(&pixels[..8], &[0, 0, 5, 13, 9, 1, 0, 0]);
        assert_eq!(y[..3], [0, 1, 2]);
    }

    #[test]
    fn split_is_fixed_stratified_and_seed_only_orders_training_rows() {
        let task = (INFO.build)(&Params::new()).unwrap();
        let a = task.generate(&Streams::new(1));
        let b = task.generate(&Streams::new(2));
        assert_eq!(
            class_counts(labels(&a.train.targets)),
            [134, 137, 133, 138, 136, 137, 136, 135, 131, 135]
        );
        assert_eq!(
            class_counts(labels(&a.test.targets)),
            [44, 45, 44, 45, 45, 45, 45, 44, 43, 45]
        );
        assert_eq!((a.train.len(), a.test.len()), (1352, 445));
        assert_eq!(task.samples(), 1797);
        assert_eq!(a.test, b.test);
        assert_ne!(a.train, b.train);
        assert_eq!(a, task.generate(&Streams::new(1)));
        // Same training rows, other order.
        let sorted = |d: &crate::Dataset| {
            let mut rows: Vec<(Vec<u32>, u32)> = d
                .inputs
                .chunks(64)
                .map(|r| r.iter().map(|v| v.to_bits()).collect())
                .zip(labels(&d.targets).iter().copied())
                .collect();
            rows.sort();
            rows
        };
        assert_eq!(sorted(&a.train), sorted(&b.train));
        // Test = every row after the first `n_train` of its class, in file order.
        let (pixels, y) = rows();
        let n_train = [134, 137, 133, 138, 136, 137, 136, 135, 131, 135];
        let mut seen = [0; 10];
        let mut want = Vec::new();
        for (i, &c) in y.iter().enumerate() {
            seen[c as usize] += 1;
            if seen[c as usize] > n_train[c as usize] {
                want.extend(
                    pixels[i * 64..(i + 1) * 64]
                        .iter()
                        .map(|&p| f32::from(p) / 16.0),
                );
            }
        }
        assert_eq!(a.test.inputs, want);
    }

    #[test]
    fn shape_and_normalisation() {
        let task = (INFO.build)(&Params::new()).unwrap();
        assert_eq!(task.input_dim(), 64);
        assert_eq!(task.output(), OutputKind::Classes(10));
        let shape = task.image_shape().unwrap();
        assert_eq!((shape.channels, shape.height, shape.width), (1, 8, 8));
        assert_eq!(shape.input_dim(), task.input_dim());
        let data = task.generate(&Streams::new(0));
        let all = || data.train.inputs.iter().chain(&data.test.inputs);
        assert!(all().all(|&v| (0.0..=1.0).contains(&v)));
        assert_eq!(all().copied().fold(0.0f32, f32::max), 1.0);
        assert_eq!(task.params(), serde_json::json!({"normalise": "unit"}));

        let mut p = Params::new();
        p.insert("normalise".into(), serde_json::json!("standard"));
        let task = (INFO.build)(&p).unwrap();
        let data = task.generate(&Streams::new(0));
        let n = data.train.len() as f64;
        for j in 0..64 {
            let col: Vec<f64> = data
                .train
                .inputs
                .chunks(64)
                .map(|r| f64::from(r[j]))
                .collect();
            let mean = col.iter().sum::<f64>() / n;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            assert!(mean.abs() < 1e-5, "pixel {j} mean {mean}");
            assert!(
                (var - 1.0).abs() < 1e-4 || var < 1e-12,
                "pixel {j} variance {var}"
            );
        }
        p.insert("normalise".into(), serde_json::json!("zscore"));
        let e = (INFO.build)(&p).err().unwrap().to_string();
        assert!(e.contains("unit") && e.contains("standard"), "{e}");
    }

    #[test]
    fn parse_rejects_malformed_rows() {
        let row = |last: &str| format!("{}{last}", "1,".repeat(64));
        assert_eq!(parse(&row("3")).unwrap().1, vec![3]);
        assert!(parse(&row("10")).is_err());
        assert!(parse(&format!("17,{}3", "1,".repeat(63))).is_err());
        assert!(parse(&format!("16,{}3", "1,".repeat(63))).is_ok());
        assert!(parse("1,2,3").is_err());
    }
}
