//! Datasets on disk through a suite file: relative paths resolve against the suite's
//! directory, results record the files' digests, labels leave paths out.

mod common;

use common::{ok, records, ticketbench};
use ticketbench::runner::suite::Suite;
use ticketbench_core::Streams;
use ticketbench_planted::{OutputKind, Targets};

/// An unsigned-byte IDX image file of `n` images `rows × cols` with pixel `i` = `i % 256`.
fn idx_images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0x0000_0803u32, n, rows, cols] {
        b.extend(v.to_be_bytes());
    }
    b.extend((0..n * rows * cols).map(|i| (i % 256) as u8));
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0x0000_0801u32, labels.len() as u32] {
        b.extend(v.to_be_bytes());
    }
    b.extend(labels);
    b
}

#[test]
fn a_suite_reads_idx_files_relative_to_itself() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("train-images"), idx_images(6, 2, 3)).unwrap();
    std::fs::write(data.join("train-labels"), idx_labels(&[0, 1, 2, 0, 1, 2])).unwrap();
    std::fs::write(data.join("test-images"), idx_images(3, 2, 3)).unwrap();
    std::fs::write(data.join("test-labels"), idx_labels(&[2, 1, 0])).unwrap();
    let suite_path = dir.path().join("mine.yaml");
    std::fs::write(
        &suite_path,
        "tasks:\n  - {name: idx, train_images: data/train-images, train_labels: data/train-labels, test_images: data/test-images, test_labels: data/test-labels}\nmodels: [{hidden: [4]}, {conv: [2], hidden: [], name: tiny-cnn}]\nmethods: [dense, random]\ndensities: [0.5]\nseeds: 1\n",
    )
    .unwrap();
    // The test's working directory is the package root, not the suite's directory.
    let suite = Suite::load(&suite_path).unwrap();
    let task = &suite.tasks[0];
    assert_eq!(task.label, "idx");
    assert_eq!(task.task.input_dim(), 6);
    assert_eq!(task.task.output(), OutputKind::Classes(3));
    let params = task.task.params();
    let resolved = params["train_images"].as_str().unwrap();
    assert!(
        std::path::Path::new(resolved).is_absolute() && resolved.ends_with("train-images"),
        "{resolved}"
    );
    let digest = params["blake3"]["train_images"].as_str().unwrap();
    assert_eq!(digest, blake3::hash(&idx_images(6, 2, 3)).to_hex().as_str());
    let split = task.task.generate(&Streams::new(0));
    assert_eq!((split.train.len(), split.test.len()), (6, 3));
    assert_eq!(split.test.targets, Targets::Classes(vec![2, 1, 0]));
    // First test image: bytes 0..6 over 255, in file order.
    assert_eq!(split.test.inputs[5], 5.0 / 255.0);

    let missing = dir.path().join("missing.yaml");
    std::fs::write(
        &missing,
        "tasks:\n  - {name: idx, train_images: nope/train-images, train_labels: data/train-labels, test_images: data/test-images, test_labels: data/test-labels}\nmethods: [dense]\ndensities: [0.5]\nseeds: 1\n",
    )
    .unwrap();
    let e = Suite::load(&missing).err().unwrap().to_string();
    assert!(
        e.contains("missing.yaml:2:") && e.contains("nope/train-images"),
        "{e}"
    );
}

#[test]
fn a_conv4_style_net_runs_on_28x28_idx_images() {
    let dir = tempfile::tempdir().unwrap();
    let labels: Vec<u8> = (0..32).map(|i| (i % 10) as u8).collect();
    for (name, bytes) in [
        ("train-images", idx_images(32, 28, 28)),
        ("train-labels", idx_labels(&labels)),
        ("test-images", idx_images(16, 28, 28)),
        ("test-labels", idx_labels(&labels[..16])),
    ] {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    // Conv-4's conv-conv-pool-conv-conv-pool with stride-2 convolutions in place of pooling.
    let suite = dir.path().join("conv4.yaml");
    std::fs::write(
        &suite,
        "tasks:\n  - {name: idx, train_images: train-images, train_labels: train-labels, test_images: test-images, test_labels: test-labels}\nmodels: [{conv: [8, {channels: 8, stride: 2}, 16, {channels: 16, stride: 2}], hidden: [32, 32]}]\nmethods: [dense, snip, synflow, {name: magnitude, structure: channel}]\ndensities: [0.2]\nseeds: 1\ntrain: {epochs: 1, batch_size: 16}\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    ok(ticketbench(&[
        "run",
        suite.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]));
    let records = records(&out);
    assert_eq!(records.len(), 4);
    // Activations: 784 → 8·28·28 → 8·14·14 → 16·14·14 → 16·7·7 → 32 → 32 → 10.
    let widths: Vec<u64> = vec![784, 6272, 1568, 3136, 784, 32, 32, 10];
    for r in &records {
        assert_eq!(r["status"], "ok", "{}", r["method_label"]);
        assert_eq!(r["widths"], serde_json::json!(widths));
    }
}
