//! Planted hosts end to end through the binary: suites with `plant: pns`, recovery records,
//! the planted reference, transfer, and `ticketbench plant` exports a numpy user can verify.

mod common;

use common::{ok, records, ticketbench};
use safetensors::SafeTensors;
use serde_json::Value;
use std::path::Path;

fn run_planted(out: &Path) -> Vec<Value> {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/planted.yaml");
    ok(ticketbench(&[
        "run",
        suite.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]));
    records(out)
}

#[test]
fn planted_suite_records_ground_truth_recovery_and_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let recs = run_planted(dir.path());
    // 3 tasks × 2 seeds × (planted + dense + 3 methods × {0.5, planted density}).
    assert_eq!(recs.len(), 3 * 2 * 8);
    for r in &recs {
        let p = &r["planted"];
        assert!(
            p.is_object(),
            "every job on a planted host has ground truth: {r}"
        );
        let rec = &p["recovery"];
        for key in [
            "precision",
            "recall",
            "jaccard",
            "neuron_jaccard",
            "path_recall",
        ] {
            let v = rec[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{key} = {v}");
        }
        if r["method"] == "planted" {
            // A pruner handed the planted mask recovers it exactly.
            assert_eq!(rec["jaccard"], 1.0);
            assert_eq!(rec["contains_planted"], true);
            assert_eq!(r["density"], p["density"]);
            // Untrained, output-rescaled, the planted ticket is the target (§3.3).
            let (strong, target) = (
                p["untrained_rescaled"].as_f64().unwrap(),
                p["target_metric"].as_f64().unwrap(),
            );
            if r["task_kind"] == "classification" {
                assert!((strong - target).abs() <= 0.01, "{strong} vs {target}");
            } else {
                assert!(strong <= 1.05 * target, "{strong} vs {target}");
            }
        }
        if r["method"] == "snip" {
            let auroc = rec["score_auroc"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&auroc));
        }
        let circle = r["task"] == "circle";
        assert_eq!(
            r["transfer"].as_array().map_or(0, Vec::len),
            usize::from(circle)
        );
    }
    // Planted density = target nonzeros / host weights: Circle D=5 keeps 108 of
    // 2·24 + 24·24·2 + 24·4 = 1296.
    let circle_planted = recs
        .iter()
        .find(|r| r["task"] == "circle" && r["method"] == "planted")
        .unwrap();
    assert_eq!(circle_planted["kept"], 108);
    assert_eq!(circle_planted["total"], 1296);
    let at_planted_density = recs
        .iter()
        .filter(|r| r["task"] == "circle" && r["method"] == "random")
        .filter(|r| r["kept"] == 108)
        .count();
    assert_eq!(
        at_planted_density,
        2 * 2,
        "random runs at the planted density on both circles"
    );

    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(report.contains("· recovery"), "{report}");
    assert!(
        report.contains("· strong ticket (no training, output rescaled)"),
        "{report}"
    );
    assert!(
        report.contains("transfer to circle[label_noise=0.2,samples=600]"),
        "{report}"
    );
    assert!(
        report.contains("Planted host: the planted ticket has density"),
        "{report}"
    );

    let again = tempfile::tempdir().unwrap();
    assert_eq!(run_planted(again.path()), recs, "same seeds, same records");
}

fn plant(kind: &str, widths: &str, dir: &Path) -> Value {
    let out = ok(ticketbench(&[
        "plant",
        "--task",
        "circle",
        "--host-widths",
        widths,
        "--kind",
        kind,
        "--seed",
        "3",
        "--export",
        dir.to_str().unwrap(),
    ]));
    serde_json::from_str(&out).unwrap()
}

fn f32s(st: &SafeTensors, name: &str) -> Vec<f64> {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
    t.data()
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
        .collect()
}

fn f64s(st: &SafeTensors, name: &str) -> Vec<f64> {
    let t = st.tensor(name).unwrap();
    t.data()
        .chunks(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn u8s(st: &SafeTensors, name: &str) -> Vec<f64> {
    st.tensor(name)
        .unwrap()
        .data()
        .iter()
        .map(|&b| b as f64)
        .collect()
}

/// One exported layer: weights `[out, in]`, biases, weight mask and bias mask (0/1).
type ExportedLayer = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

/// Forward of an exported net (ReLU between layers), entrywise masked.
fn forward(layers: &[ExportedLayer], x: &[f64]) -> Vec<f64> {
    let mut act = x.to_vec();
    for (l, (w, b, m, bm)) in layers.iter().enumerate() {
        let fan_in = act.len();
        let mut out: Vec<f64> = (0..b.len())
            .map(|o| {
                let z: f64 = (0..fan_in)
                    .map(|i| w[o * fan_in + i] * m[o * fan_in + i] * act[i])
                    .sum();
                z + b[o] * bm[o]
            })
            .collect();
        if l + 1 < layers.len() {
            out.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        act = out;
    }
    act
}

#[test]
fn plant_exports_a_host_anyone_can_verify() {
    let dir = tempfile::tempdir().unwrap();
    let summary = plant("weak", "2,100,100,100,4", dir.path());
    assert_eq!(summary["planted_weights"], 108);
    assert_eq!(summary["host_weights"], 20_600);
    let bytes = std::fs::read(dir.path().join("planted.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let scale = f64s(&st, "output_scale");
    // Masked host (all biases kept: unplanted neurons feed nothing planted) and the target.
    let host: Vec<_> = (0..4)
        .map(|l| {
            let b = f32s(&st, &format!("host.{l}.bias"));
            let ones = vec![1.0; b.len()];
            (
                f32s(&st, &format!("host.{l}.weight")),
                b,
                u8s(&st, &format!("planted.{l}.mask")),
                ones,
            )
        })
        .collect();
    let target: Vec<_> = (0..4)
        .map(|l| {
            let w = f64s(&st, &format!("target.{l}.weight"));
            let b = f64s(&st, &format!("target.{l}.bias"));
            let (ones_w, ones_b) = (vec![1.0; w.len()], vec![1.0; b.len()]);
            (w, b, ones_w, ones_b)
        })
        .collect();
    for x in [[0.3, -0.2], [-0.9, 0.7], [0.05, 0.99]] {
        let (h, t) = (forward(&host, &x), forward(&target, &x));
        for c in 0..4 {
            assert!(
                (h[c] - scale[c] * t[c]).abs() < 1e-4 * (1.0 + t[c].abs()),
                "{h:?} vs {t:?}"
            );
        }
    }
    let again = tempfile::tempdir().unwrap();
    plant("weak", "2,100,100,100,4", again.path());
    assert!(bytes == std::fs::read(again.path().join("planted.safetensors")).unwrap());

    let strong = tempfile::tempdir().unwrap();
    let s = plant("strong", "2,60,60,60,4", strong.path());
    assert_eq!(
        s["host_widths"].as_array().unwrap().len(),
        9,
        "2(D−1) weight layers"
    );
    let cert: Value = serde_json::from_str(
        &std::fs::read_to_string(strong.path().join("certificate.json")).unwrap(),
    )
    .unwrap();
    let (measured, bound) = (
        cert["probe_max_error"].as_f64().unwrap(),
        cert["certified_bound"].as_f64().unwrap(),
    );
    assert!(measured > 0.0 && measured <= bound, "{cert}");
    // The ε-ticket classifies like the target (within a few boundary points).
    let (t, k) = (
        s["target_metric"].as_f64().unwrap(),
        s["ticket_metric"].as_f64().unwrap(),
    );
    assert!((t - k).abs() <= 0.01, "target {t} vs ticket {k}");

    let bad = ticketbench(&[
        "plant",
        "--task",
        "gaussian",
        "--host-widths",
        "2,10,2",
        "--export",
        "/tmp/x",
    ]);
    assert_eq!(bad.status.code(), Some(2));
}
