//! MNIST-style IDX files on disk (MNIST, LeCun et al. 1998; Fashion-MNIST, Xiao et al. 2017;
//! KMNIST, EMNIST…): `train_images`, `train_labels`, `test_images`, `test_labels` as
//! unsigned-byte IDX files (magic `0x00000803`: count, rows, columns, then pixels;
//! `0x00000801`: count, then labels), each optionally gzipped (read transparently when its
//! name ends in `.gz`). Nothing is downloaded.
//!
//! Paths are used as given (absolute, or relative to the current directory); a suite file
//! resolves its paths relative to the suite file before building the task. Files are read and
//! validated when the task is built and held in memory; [`Task::params`] records every path
//! with the blake3 digest of the file's bytes on disk (key `blake3`).
//!
//! Inputs are `pixel/255 ∈ [0, 1]`, image shape `1×rows×columns`. `classes` defaults to the
//! largest label in the four files plus one; `limit_train`/`limit_test` keep only the first
//! rows of a file (quick runs). The split is the files' own; only the order of the training
//! rows depends on the seed (stream `task/idx/perm`). Cross-entropy; metric test accuracy.

use super::stored::{RawSplit, Stored, StoredTask, check_limit, read_file};
use super::{Task, TaskError, TaskInfo, parse_params};
use crate::ImageShape;
use serde::{Deserialize, Serialize};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdxParams {
    train_images: String,
    train_labels: String,
    test_images: String,
    test_labels: String,
    #[serde(default)]
    classes: Option<usize>,
    #[serde(default)]
    limit_train: Option<usize>,
    #[serde(default)]
    limit_test: Option<usize>,
}

pub(super) const INFO: TaskInfo = TaskInfo {
    name: "idx",
    summary: "MNIST-style IDX image/label files on disk (MNIST, Fashion-MNIST, …); their own train/test split",
    citation: "LeCun et al. 1998 (MNIST); Xiao et al. 2017, arXiv 1708.07747 (Fashion-MNIST)",
    paths: &["train_images", "train_labels", "test_images", "test_labels"],
    build: |p| {
        let params: IdxParams = parse_params(INFO.name, p)?;
        load(params).map_err(|message| TaskError::InvalidParams {
            task: INFO.name,
            message,
        })
    },
};

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// The magic number, or an error when the file is shorter than its header.
fn header(what: &str, path: &str, bytes: &[u8], len: usize) -> Result<u32, String> {
    if bytes.len() < len {
        return Err(format!(
            "{what} `{path}`: {} bytes is shorter than the {len}-byte IDX header",
            bytes.len()
        ));
    }
    Ok(be_u32(bytes, 0))
}

fn bad_magic(what: &str, path: &str, magic: u32, want: u32, kind: &str) -> String {
    let hint = match magic {
        IMAGES_MAGIC => " (this is an image file)",
        LABELS_MAGIC => " (this is a label file)",
        _ if magic >> 16 == 0x1f8b => " (gzip data: name the file `….gz`)",
        _ => "",
    };
    format!("{what} `{path}`: bad IDX magic 0x{magic:08X}; expected 0x{want:08X} ({kind}){hint}")
}

/// `(rows, columns, images)` of an unsigned-byte image file.
fn parse_images(what: &str, path: &str, bytes: Vec<u8>) -> Result<(usize, usize, Vec<u8>), String> {
    let magic = header(what, path, &bytes, 4)?;
    if magic != IMAGES_MAGIC {
        return Err(bad_magic(
            what,
            path,
            magic,
            IMAGES_MAGIC,
            "unsigned-byte images",
        ));
    }
    header(what, path, &bytes, 16)?;
    let [n, rows, cols] = [4, 8, 12].map(|at| be_u32(&bytes, at) as usize);
    let body = bytes.len() - 16;
    let want = n.checked_mul(rows).and_then(|v| v.checked_mul(cols));
    if want != Some(body) {
        return Err(format!(
            "{what} `{path}`: header says {n} images of {rows}×{cols} but the file has {body} bytes after its 16-byte header"
        ));
    }
    if n == 0 || rows == 0 || cols == 0 {
        return Err(format!(
            "{what} `{path}`: no pixels ({n} images of {rows}×{cols})"
        ));
    }
    let mut bytes = bytes;
    bytes.drain(..16);
    Ok((rows, cols, bytes))
}

fn parse_labels(what: &str, path: &str, bytes: &[u8]) -> Result<Vec<u32>, String> {
    let magic = header(what, path, bytes, 4)?;
    if magic != LABELS_MAGIC {
        return Err(bad_magic(
            what,
            path,
            magic,
            LABELS_MAGIC,
            "unsigned-byte labels",
        ));
    }
    header(what, path, bytes, 8)?;
    let n = be_u32(bytes, 4) as usize;
    let body = bytes.len() - 8;
    if body != n {
        return Err(format!(
            "{what} `{path}`: header says {n} labels but the file has {body} bytes after its 8-byte header"
        ));
    }
    Ok(bytes[8..].iter().map(|&b| u32::from(b)).collect())
}

/// Reads and validates one split's image and label files.
fn read_split(
    split: &str,
    images: &str,
    labels: &str,
    digests: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<(usize, usize, RawSplit), String> {
    let images_key = format!("{split}_images");
    let labels_key = format!("{split}_labels");
    let (bytes, d) = read_file(&images_key, images)?;
    digests.insert(images_key.clone(), d.into());
    let (rows, cols, pixels) = parse_images(&images_key, images, bytes)?;
    let (bytes, d) = read_file(&labels_key, labels)?;
    digests.insert(labels_key.clone(), d.into());
    let labels_read = parse_labels(&labels_key, labels, &bytes)?;
    let n_images = pixels.len() / (rows * cols);
    if labels_read.len() != n_images {
        return Err(format!(
            "{labels_key} has {} labels for {n_images} images (`{labels}`, `{images}`)",
            labels_read.len()
        ));
    }
    Ok((
        rows,
        cols,
        RawSplit {
            pixels,
            labels: labels_read,
        },
    ))
}

fn load(mut params: IdxParams) -> Result<Box<dyn Task>, String> {
    let mut digests = serde_json::Map::new();
    let (rows, cols, mut train) = read_split(
        "train",
        &params.train_images,
        &params.train_labels,
        &mut digests,
    )?;
    let (t_rows, t_cols, mut test) = read_split(
        "test",
        &params.test_images,
        &params.test_labels,
        &mut digests,
    )?;
    if (t_rows, t_cols) != (rows, cols) {
        return Err(format!(
            "test_images are {t_rows}×{t_cols} but train_images are {rows}×{cols}"
        ));
    }
    let largest = train.labels.iter().chain(&test.labels).max().copied();
    let classes = params
        .classes
        .unwrap_or(largest.map_or(0, |m| m as usize + 1));
    if !(2..=256).contains(&classes) {
        return Err(format!(
            "classes {classes} is outside 2..=256 (IDX labels are bytes; a classifier needs 2 classes)"
        ));
    }
    for (key, split) in [("train_labels", &train), ("test_labels", &test)] {
        if let Some((row, &y)) = split
            .labels
            .iter()
            .enumerate()
            .find(|&(_, &y)| y as usize >= classes)
        {
            return Err(format!(
                "{key}: label {y} at row {row} is not below classes {classes}"
            ));
        }
    }
    let shape = ImageShape {
        channels: 1,
        height: rows,
        width: cols,
    };
    let dim = shape.input_dim();
    let n = check_limit(
        "limit_train",
        params.limit_train,
        train.len(),
        "train_images",
    )?;
    train.truncate(n, dim);
    let n = check_limit("limit_test", params.limit_test, test.len(), "test_images")?;
    test.truncate(n, dim);
    params.classes = Some(classes);
    let mut recorded = serde_json::to_value(&params).expect("plain struct");
    recorded["blake3"] = serde_json::Value::Object(digests);
    Ok(Box::new(StoredTask::new(
        INFO.name,
        recorded,
        Stored {
            shape,
            classes,
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
    use std::io::Write;
    use std::path::Path;
    use ticketbench_core::Streams;

    fn images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [IMAGES_MAGIC, n, rows, cols] {
            out.extend(v.to_be_bytes());
        }
        out.extend(pixels);
        out
    }

    fn labels(y: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [LABELS_MAGIC, y.len() as u32] {
            out.extend(v.to_be_bytes());
        }
        out.extend(y);
        out
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// Train: 5 images of 3×2, pixel `j` of image `i` = `10·i + j`, label `i mod 3`.
    /// Test: 2 images, pixel `j` of image `i` = `255 − j − i`, labels 2, 0.
    fn write_files(dir: &Path, suffix: &str, enc: fn(&[u8]) -> Vec<u8>) -> Params {
        let train_px: Vec<u8> = (0..5u8)
            .flat_map(|i| (0..6).map(move |j| 10 * i + j))
            .collect();
        let test_px: Vec<u8> = (0..2u8)
            .flat_map(|i| (0..6).map(move |j| 255 - j - i))
            .collect();
        let files = [
            ("train_images", images(5, 3, 2, &train_px)),
            ("train_labels", labels(&[0, 1, 2, 0, 1])),
            ("test_images", images(2, 3, 2, &test_px)),
            ("test_labels", labels(&[2, 0])),
        ];
        let mut p = Params::new();
        for (key, bytes) in files {
            let path = dir.join(format!("{key}{suffix}"));
            std::fs::write(&path, enc(&bytes)).unwrap();
            p.insert(key.into(), path.to_str().unwrap().into());
        }
        p
    }

    fn classes(t: &Targets) -> Vec<u32> {
        match t {
            Targets::Classes(y) => y.clone(),
            Targets::Values { .. } => unreachable!(),
        }
    }

    fn check_loaded(p: &Params) {
        let task = (INFO.build)(p).unwrap();
        let shape = task.image_shape().unwrap();
        assert_eq!((shape.channels, shape.height, shape.width), (1, 3, 2));
        assert_eq!(task.input_dim(), 6);
        assert_eq!(task.output(), OutputKind::Classes(3));
        assert_eq!(task.samples(), 7);
        let data = task.generate(&Streams::new(5));
        assert_eq!(data, task.generate(&Streams::new(5)));
        let want: Vec<f32> = [255u8, 254, 253, 252, 251, 250, 254, 253, 252, 251, 250, 249]
            .iter()
            .map(|&b| f32::from(b) / 255.0)
            .collect();
        assert_eq!(data.test.inputs, want);
        assert_eq!(classes(&data.test.targets), vec![2, 0]);
        // Training rows: image i (recovered from its first pixel) keeps label i mod 3.
        let y = classes(&data.train.targets);
        let mut seen: Vec<u32> = Vec::new();
        for (row, &label) in data.train.inputs.chunks(6).zip(&y) {
            let i = (row[0] * 255.0).round() as u32 / 10;
            assert_eq!(label, i % 3);
            for (j, &v) in row.iter().enumerate() {
                assert_eq!(v, (10 * i + j as u32) as f32 / 255.0);
            }
            seen.push(i);
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1, 2, 3, 4]);
        let params = task.params();
        for key in ["train_images", "train_labels", "test_images", "test_labels"] {
            assert_eq!(params[key], p[key]);
            let file = std::fs::read(p[key].as_str().unwrap()).unwrap();
            assert_eq!(
                params["blake3"][key],
                blake3::hash(&file).to_hex().to_string()
            );
        }
        assert_eq!(params["classes"], 3);
    }

    #[test]
    fn loads_plain_and_gzipped_files() {
        let dir = tempfile::tempdir().unwrap();
        check_loaded(&write_files(dir.path(), "", |b| b.to_vec()));
        check_loaded(&write_files(dir.path(), ".gz", gz));
    }

    #[test]
    fn limits_and_classes() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = write_files(dir.path(), "", |b| b.to_vec());
        p.insert("limit_train".into(), 2.into());
        p.insert("limit_test".into(), 1.into());
        p.insert("classes".into(), 10.into());
        let task = (INFO.build)(&p).unwrap();
        assert_eq!(task.output(), OutputKind::Classes(10));
        let data = task.generate(&Streams::new(0));
        assert_eq!((data.train.len(), data.test.len()), (2, 1));
        let mut y = classes(&data.train.targets);
        y.sort_unstable();
        assert_eq!(y, vec![0, 1]);
        p.insert("limit_train".into(), 6.into());
        let e = (INFO.build)(&p).err().unwrap().to_string();
        assert!(e.contains("limit_train 6 exceeds the 5"), "{e}");
        p.insert("limit_train".into(), 0.into());
        assert!((INFO.build)(&p).is_err());
    }

    fn error(p: &Params) -> String {
        (INFO.build)(p).err().expect("an error").to_string()
    }

    #[test]
    fn clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_files(dir.path(), "", |b| b.to_vec());
        let path = |key: &str| p[key].as_str().unwrap().to_string();

        let mut q = p.clone();
        q.insert("test_images".into(), "/nonexistent/t10k-images".into());
        let e = error(&q);
        assert!(
            e.contains("cannot read test_images `/nonexistent/t10k-images`"),
            "{e}"
        );

        assert!(error(&Params::new()).contains("missing field"));
        let mut q = p.clone();
        q.insert("labels".into(), "x".into());
        assert!(error(&q).contains("unknown field"));

        // Labels where images belong.
        let mut q = p.clone();
        q.insert("train_images".into(), path("train_labels").into());
        let e = error(&q);
        assert!(
            e.contains("bad IDX magic 0x00000801; expected 0x00000803 (unsigned-byte images)"),
            "{e}"
        );

        // Truncated image file.
        let bytes = std::fs::read(path("train_images")).unwrap();
        std::fs::write(path("train_images"), &bytes[..bytes.len() - 1]).unwrap();
        let e = error(&p);
        assert!(
            e.contains("header says 5 images of 3×2 but the file has 29 bytes"),
            "{e}"
        );
        std::fs::write(path("train_images"), &bytes[..10]).unwrap();
        assert!(error(&p).contains("shorter than the 16-byte IDX header"));
        std::fs::write(path("train_images"), &bytes).unwrap();

        // One label short.
        std::fs::write(path("train_labels"), labels(&[0, 1, 2, 0])).unwrap();
        let e = error(&p);
        assert!(e.contains("train_labels has 4 labels for 5 images"), "{e}");
        // Header count disagreeing with the bytes.
        let mut l = labels(&[0, 1, 2, 0, 1]);
        l.push(0);
        std::fs::write(path("train_labels"), l).unwrap();
        assert!(error(&p).contains("header says 5 labels but the file has 6 bytes"));
        std::fs::write(path("train_labels"), labels(&[0, 1, 2, 0, 1])).unwrap();

        // Label ≥ classes.
        let mut q = p.clone();
        q.insert("classes".into(), 2.into());
        let e = error(&q);
        assert!(e.contains("label 2 at row 2 is not below classes 2"), "{e}");
        q.insert("classes".into(), 300.into());
        assert!(error(&q).contains("outside 2..=256"));

        // Shapes of the splits differ.
        std::fs::write(path("test_images"), images(2, 2, 3, &[0; 12])).unwrap();
        assert!(error(&p).contains("test_images are 2×3 but train_images are 3×2"));

        // Gzip data under a plain name, and a `.gz` name that is not gzip.
        std::fs::write(path("test_images"), gz(&images(2, 3, 2, &[0; 12]))).unwrap();
        assert!(error(&p).contains("gzip data"));
        let fake = dir.path().join("x.gz");
        std::fs::write(&fake, images(2, 3, 2, &[0; 12])).unwrap();
        let mut q = p.clone();
        q.insert("test_images".into(), fake.to_str().unwrap().into());
        assert!(error(&q).contains("not a valid gzip file"));

        // With valid files, `build` succeeds again (the errors above came from the edits).
        std::fs::write(path("test_images"), images(2, 3, 2, &[0; 12])).unwrap();
        assert!((INFO.build)(&p).is_ok());
    }
}
