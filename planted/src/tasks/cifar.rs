//! CIFAR-10 (Krizhevsky 2009), the "binary version" on disk: `dir` holds
//! `data_batch_1.bin` … `data_batch_5.bin` (training, in that order) and `test_batch.bin`,
//! each a sequence of 3,073-byte records (label 0..9, then the 32×32 red, green and blue
//! planes, row-major — already CHW). Nothing is downloaded.
//!
//! `dir` is used as given (absolute, or relative to the current directory); a suite file
//! resolves it relative to the suite file before building the task. Files are read and
//! validated when the task is built and held in memory; [`Task::params`] records `dir` with
//! the blake3 digest of each file (key `blake3`).
//!
//! Inputs are `byte/255 ∈ [0, 1]` (no mean/std normalisation), image shape 3×32×32, 10
//! classes; `limit_train`/`limit_test` keep only the first records (quick runs). The split is
//! the files' own; only the order of the training rows depends on the seed (stream
//! `task/cifar/perm`). Cross-entropy; metric test accuracy.

use super::stored::{RawSplit, Stored, StoredTask, check_limit, read_file};
use super::{Task, TaskError, TaskInfo, parse_params};
use crate::ImageShape;
use serde::{Deserialize, Serialize};
use std::path::Path;

const SHAPE: ImageShape = ImageShape {
    channels: 3,
    height: 32,
    width: 32,
};
/// One record: a label byte, then 1024 red, 1024 green and 1024 blue bytes (row-major 32×32).
const RECORD: usize = 1 + 3 * 32 * 32;
const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
const TEST_FILE: &str = "test_batch.bin";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CifarParams {
    dir: String,
    #[serde(default)]
    limit_train: Option<usize>,
    #[serde(default)]
    limit_test: Option<usize>,
}

pub(super) const INFO: TaskInfo = TaskInfo {
    name: "cifar",
    summary: "CIFAR-10 binary batches on disk (3×32×32 colour images, 10 classes, 50,000/10,000)",
    citation: "Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images (CIFAR-10)",
    paths: &["dir"],
    build: |p| {
        let params: CifarParams = parse_params(INFO.name, p)?;
        load(params).map_err(|message| TaskError::InvalidParams {
            task: INFO.name,
            message,
        })
    },
};

/// Appends the records of one batch file to `split`.
fn parse_batch(path: &str, bytes: &[u8], split: &mut RawSplit) -> Result<(), String> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(format!(
            "`{path}`: {} bytes is not a whole, non-zero number of {RECORD}-byte records (1 label + 3072 pixels)",
            bytes.len()
        ));
    }
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        if record[0] >= 10 {
            return Err(format!(
                "`{path}`: record {i} has label {}; CIFAR-10 labels are 0..9 (CIFAR-100's binary files have 2 label bytes and are not supported)",
                record[0]
            ));
        }
        split.labels.push(u32::from(record[0]));
        split.pixels.extend_from_slice(&record[1..]);
    }
    Ok(())
}

fn load(params: CifarParams) -> Result<Box<dyn Task>, String> {
    let dir = Path::new(&params.dir);
    if !dir.is_dir() {
        return Err(format!("dir `{}` is not a directory", params.dir));
    }
    let missing: Vec<&str> = TRAIN_FILES
        .iter()
        .chain([&TEST_FILE])
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "dir `{}` lacks {} (the CIFAR-10 binary version has data_batch_1.bin … data_batch_5.bin and test_batch.bin)",
            params.dir,
            missing.join(", ")
        ));
    }
    let mut digests = serde_json::Map::new();
    let mut read = |file: &str, split: &mut RawSplit| -> Result<(), String> {
        let path = dir.join(file);
        let path = path.to_string_lossy();
        let (bytes, digest) = read_file("batch", &path)?;
        digests.insert(file.to_string(), digest.into());
        parse_batch(&path, &bytes, split)
    };
    let (mut train, mut test) = (RawSplit::default(), RawSplit::default());
    for file in TRAIN_FILES {
        read(file, &mut train)?;
    }
    read(TEST_FILE, &mut test)?;
    let dim = SHAPE.input_dim();
    let n = check_limit(
        "limit_train",
        params.limit_train,
        train.len(),
        "the data batches",
    )?;
    train.truncate(n, dim);
    let n = check_limit("limit_test", params.limit_test, test.len(), TEST_FILE)?;
    test.truncate(n, dim);
    let mut recorded = serde_json::to_value(&params).expect("plain struct");
    recorded["blake3"] = serde_json::Value::Object(digests);
    Ok(Box::new(StoredTask::new(
        INFO.name,
        recorded,
        Stored {
            shape: SHAPE,
            classes: 10,
            train,
            test,
            divisor: 255.0,
            standardise: None,
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Params;
    use crate::{OutputKind, Targets};
    use ticketbench_core::Streams;

    /// Record with `label` whose pixel (c, y, x) is `(seed + 3c + 2y + x) mod 256`.
    fn record(label: u8, seed: u8) -> Vec<u8> {
        let mut r = vec![label];
        for c in 0..3u8 {
            for y in 0..32u8 {
                for x in 0..32u8 {
                    r.push(seed.wrapping_add(3 * c).wrapping_add(2 * y).wrapping_add(x));
                }
            }
        }
        r
    }

    /// Batch `b` (1..=5) holds records with seeds `20b`, `20b + 1` and labels `b`, `b + 1`;
    /// the test batch seeds 200, 201 and labels 9, 0.
    fn write_dir(dir: &Path) -> Params {
        for (b, file) in TRAIN_FILES.iter().enumerate() {
            let b = b as u8 + 1;
            let bytes = [record(b, 20 * b), record(b + 1, 20 * b + 1)].concat();
            std::fs::write(dir.join(file), bytes).unwrap();
        }
        std::fs::write(
            dir.join(TEST_FILE),
            [record(9, 200), record(0, 201)].concat(),
        )
        .unwrap();
        let mut p = Params::new();
        p.insert("dir".into(), dir.to_str().unwrap().into());
        p
    }

    fn labels(t: &Targets) -> Vec<u32> {
        match t {
            Targets::Classes(y) => y.clone(),
            Targets::Values { .. } => unreachable!(),
        }
    }

    #[test]
    fn loads_records_in_chw_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_dir(dir.path());
        let task = (INFO.build)(&p).unwrap();
        assert_eq!(task.input_dim(), 3072);
        assert_eq!(task.output(), OutputKind::Classes(10));
        assert_eq!(task.image_shape(), Some(SHAPE));
        assert_eq!(task.samples(), 12);
        let data = task.generate(&Streams::new(0));
        assert_eq!(data, task.generate(&Streams::new(0)));
        assert_eq!((data.train.len(), data.test.len()), (10, 2));
        assert_eq!(labels(&data.test.targets), vec![9, 0]);
        let test0 = &data.test.inputs[..3072];
        for (c, y, x) in [(0, 0, 0), (0, 0, 5), (1, 2, 3), (2, 31, 31)] {
            let want = (200 + 3 * c + 2 * y + x) % 256;
            assert_eq!(
                test0[SHAPE.index(c, y, x)],
                want as f32 / 255.0,
                "({c}, {y}, {x})"
            );
        }
        assert_eq!(data.test.inputs[3072], 201.0 / 255.0);
        // Training rows: the seed (first pixel) tells batch and record, hence the label.
        let y = labels(&data.train.targets);
        let mut seeds: Vec<u32> = Vec::new();
        for (row, &label) in data.train.inputs.chunks(3072).zip(&y) {
            let seed = (row[0] * 255.0).round() as u32;
            assert_eq!(label, seed / 20 + seed % 20, "seed {seed}");
            assert_eq!(row[SHAPE.index(2, 1, 0)], ((seed + 8) % 256) as f32 / 255.0);
            seeds.push(seed);
        }
        seeds.sort_unstable();
        assert_eq!(seeds, vec![20, 21, 40, 41, 60, 61, 80, 81, 100, 101]);
        let params = task.params();
        assert_eq!(params["dir"], p["dir"]);
        let test_file = std::fs::read(dir.path().join(TEST_FILE)).unwrap();
        assert_eq!(
            params["blake3"][TEST_FILE],
            blake3::hash(&test_file).to_hex().to_string()
        );
        assert_eq!(params["blake3"].as_object().unwrap().len(), 6);

        let mut q = p.clone();
        q.insert("limit_train".into(), 3.into());
        q.insert("limit_test".into(), 1.into());
        let data = (INFO.build)(&q).unwrap().generate(&Streams::new(0));
        let mut y = labels(&data.train.targets);
        y.sort_unstable();
        // The first three records: batch 1's two, then batch 2's first.
        assert_eq!(y, vec![1, 2, 2]);
        assert_eq!(labels(&data.test.targets), vec![9]);
    }

    fn error(p: &Params) -> String {
        (INFO.build)(p).err().expect("an error").to_string()
    }

    #[test]
    fn clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_dir(dir.path());
        let batch3 = dir.path().join("data_batch_3.bin");
        let good = std::fs::read(&batch3).unwrap();

        std::fs::write(&batch3, &good[..RECORD + 100]).unwrap();
        let e = error(&p);
        assert!(
            e.contains("data_batch_3.bin`: 3173 bytes is not a whole"),
            "{e}"
        );

        let mut bad = good.clone();
        bad[RECORD] = 10;
        std::fs::write(&batch3, &bad).unwrap();
        let e = error(&p);
        assert!(
            e.contains("data_batch_3.bin`: record 1 has label 10"),
            "{e}"
        );

        std::fs::remove_file(&batch3).unwrap();
        std::fs::remove_file(dir.path().join(TEST_FILE)).unwrap();
        let e = error(&p);
        assert!(e.contains("lacks data_batch_3.bin, test_batch.bin"), "{e}");

        let mut q = Params::new();
        q.insert("dir".into(), "/nonexistent/cifar-10-batches-bin".into());
        assert!(error(&q).contains("is not a directory"));
        assert!(error(&Params::new()).contains("missing field `dir`"));
    }
}
