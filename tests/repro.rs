//! `ticketbench repro` end to end: the same suite on two CPU backends (flex and ndarray),
//! and on one backend twice.

mod common;

use common::{ok, ticketbench};
use serde_json::Value;

fn tiny() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tiny.yaml").to_string()
}

fn repro(devices: &str, out: &std::path::Path) -> Value {
    let stdout = ok(ticketbench(&[
        "repro",
        &tiny(),
        "--devices",
        devices,
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]));
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn two_cpu_backends_give_identical_data_free_masks_and_agreeing_forward_passes() {
    let out = tempfile::tempdir().unwrap();
    let result = repro("cpu,ndarray", out.path());
    assert_eq!(result["devices"], serde_json::json!(["cpu", "ndarray"]));
    let rows = result["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 44, "every job of the tiny suite");
    let tolerances = &result["tolerances"];
    let mut data_free = 0;
    for row in rows {
        assert!(row["error"].is_null(), "{row}");
        assert_ne!(row["agreement"], "broken", "{row}");
        if row["data_free"] == true {
            data_free += 1;
            assert_eq!(row["identical_mask"], true, "{row}");
            let tolerance = if row["classification"] == true {
                tolerances["untrained_points"].as_f64().unwrap()
            } else {
                tolerances["untrained_log10"].as_f64().unwrap()
            };
            assert!(
                row["untrained_diff"].as_f64().unwrap() <= tolerance,
                "{row}"
            );
        }
    }
    // dense, random, random[erk] and synflow on 2 tasks × 2 seeds (dense once per seed).
    assert_eq!(data_free, 2 * 2 * (1 + 3 * 2));
    let markdown = std::fs::read_to_string(out.path().join("repro.md")).unwrap();
    assert!(markdown.contains("| task | model | method |") && markdown.contains("44 jobs:"));
    assert!(out.path().join("repro.json").is_file());
}

#[test]
fn one_backend_twice_is_bit_identical() {
    let out = tempfile::tempdir().unwrap();
    let result = repro("cpu,cpu", out.path());
    for row in result["rows"].as_array().unwrap() {
        assert_eq!(row["agreement"], "identical", "{row}");
    }
}

#[test]
fn repro_needs_two_devices_that_exist() {
    for (devices, expect) in [
        ("cpu", "--devices takes two devices"),
        ("cpu,ndarray,cpu", "--devices takes two devices"),
        ("cpu,gpu", "unknown device `gpu`"),
    ] {
        let out = ticketbench(&["repro", &tiny(), "--devices", devices]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{devices}: {stderr}");
        assert!(stderr.contains(expect), "{devices}: {stderr}");
    }
    #[cfg(not(feature = "cuda"))]
    {
        let out = ticketbench(&["repro", &tiny(), "--devices", "cpu,cuda"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--features cuda"), "{stderr}");
    }
}
