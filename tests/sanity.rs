//! Sanity checks from a suite file: which checks run for which method, and what each one
//! does to the ticket.

mod common;

use common::{ok, records, ticketbench};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn run(suite: &str) -> (tempfile::TempDir, Vec<Value>) {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join(suite);
    let out = tempfile::tempdir().unwrap();
    ok(ticketbench(&[
        "run",
        suite.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
        "--quiet",
    ]));
    let records = records(out.path());
    (out, records)
}

#[test]
fn checks_run_where_they_apply_and_transform_the_ticket() {
    let (_dir, records) = run("tests/data/sanity-tiny.yaml");
    let mut checks: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &records {
        if let Some(c) = r["check"].as_str() {
            checks
                .entry(r["method"].as_str().unwrap().into())
                .or_default()
                .push(c.into());
        }
    }
    for list in checks.values_mut() {
        list.sort();
        list.dedup();
    }
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // SNIP reads data and ranks by scores: every check.
    assert_eq!(
        checks["snip"],
        names(&[
            "global_shuffle",
            "invert",
            "layer_shuffle",
            "random_labels",
            "random_pixels",
            "reinit",
            "weight_shuffle"
        ])
    );
    // SynFlow is data-free (no data checks) but ranks by scores.
    assert_eq!(
        checks["synflow"],
        names(&[
            "global_shuffle",
            "invert",
            "layer_shuffle",
            "reinit",
            "weight_shuffle"
        ])
    );
    // PHEW and the planted ticket: data-free, no scores.
    for m in ["phew", "planted"] {
        assert_eq!(
            checks[m],
            names(&[
                "global_shuffle",
                "layer_shuffle",
                "reinit",
                "weight_shuffle"
            ]),
            "{m}"
        );
    }
    // Dense and a method that trains its own ticket get none.
    assert!(!checks.contains_key("dense") && !checks.contains_key("rigl"));

    let find = |method: &str, check: Option<&str>, seed: u64| {
        records
            .iter()
            .find(|r| r["method"] == method && r["check"].as_str() == check && r["seed"] == seed)
            .unwrap()
    };
    for seed in [0, 1] {
        let orig = find("planted", None, seed);
        // layer_shuffle keeps per-layer densities and destroys the planted structure.
        let shuffled = find("planted", Some("layer_shuffle"), seed);
        assert_eq!(orig["layer_densities"], shuffled["layer_densities"]);
        assert_eq!(orig["planted"]["recovery"]["jaccard"], 1.0);
        assert!(shuffled["planted"]["recovery"]["jaccard"].as_f64().unwrap() < 0.5);
        // global_shuffle keeps only the total.
        let global = find("planted", Some("global_shuffle"), seed);
        assert_eq!(orig["kept"], global["kept"]);
        assert_ne!(orig["layer_densities"], global["layer_densities"]);
        // weight_shuffle and reinit keep the mask.
        for c in ["weight_shuffle", "reinit"] {
            let r = find("planted", Some(c), seed);
            assert_eq!(r["planted"]["recovery"]["jaccard"], 1.0, "{c}");
        }
        // invert keeps the density, not the layer profile.
        let snip = find("snip", None, seed);
        let inverted = find("snip", Some("invert"), seed);
        assert_eq!(snip["kept"], inverted["kept"]);
        assert_ne!(snip["layer_densities"], inverted["layer_densities"]);
        // Checked jobs are hashed apart from the original.
        assert_ne!(snip["settings_hash"], inverted["settings_hash"]);
    }
}

#[test]
fn the_report_judges_each_check_and_says_when_seeds_are_too_few() {
    let (dir, _) = run("tests/data/sanity-tiny.yaml");
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(report.contains("## Sanity checks"), "{report}");
    // Two seeds: every cell is reported but none is judged.
    assert!(report.contains("insufficient seeds"));
    for word in ["sensitive ", "insensitive ", "inconclusive "] {
        assert!(
            !report.contains(&format!("| {word}")),
            "{word} judged on 2 seeds"
        );
    }
    assert!(report.contains("**snip** (circle"));
    let tex = std::fs::read_to_string(dir.path().join("sanity.tex")).unwrap();
    for needle in ["\\toprule", "\\midrule", "\\bottomrule", "layer\\_shuffle"] {
        assert!(tex.contains(needle), "{needle} missing from sanity.tex");
    }
    // The comparison tables hold the original tickets only: one SNIP row in each of the
    // main, recovery and strong-ticket tables, one per density in the recovery-metrics and
    // layer-density tables (one density here), plus its row in the verdict table.
    assert_eq!(report.matches("| snip ").count(), 6);
}

#[test]
fn verdicts_follow_the_paired_differences() {
    // Rewrite a real run's records into a controlled 6-seed experiment: SNIP's layer shuffle
    // costs 30 points on every seed (sensitive), its reinit changes nothing beyond ±0.2
    // points (insensitive), and its weight shuffle is all over the place (inconclusive).
    let (dir, _) = run("tests/data/sanity-tiny.yaml");
    // Whole records (timing and provenance included), as the results file holds them.
    let records: Vec<Value> = std::fs::read_to_string(dir.path().join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let template = |check: Option<&str>| {
        records
            .iter()
            .find(|r| r["method"] == "snip" && r["check"].as_str() == check && r["seed"] == 0)
            .unwrap()
            .clone()
    };
    let out = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for seed in 0..6u64 {
        let base = 0.90 + 0.01 * seed as f64;
        let wobble = [0.002, -0.001, 0.0015, -0.002, 0.001, 0.0][seed as usize];
        let wild = [0.2, -0.25, 0.3, -0.2, 0.15, -0.3][seed as usize];
        for (check, acc) in [
            (None, base),
            (Some("layer_shuffle"), base - 0.30),
            (Some("reinit"), base + wobble),
            (Some("weight_shuffle"), base + wild),
        ] {
            let mut r = template(check);
            r["seed"] = seed.into();
            r["settings_hash"] = format!("{seed}-{check:?}").into();
            r["metrics"]["test_acc"] = acc.into();
            r["status"] = "ok".into();
            lines.push(serde_json::to_string(&r).unwrap());
        }
    }
    std::fs::write(out.path().join("results.jsonl"), lines.join("\n") + "\n").unwrap();
    ok(ticketbench(&["report", out.path().to_str().unwrap()]));
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    let row = report
        .lines()
        .find(|l| l.starts_with("| snip") && l.contains("(n=6)"))
        .unwrap_or_else(|| panic!("no verdict row:\n{report}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let header = report
        .lines()
        .find(|l| l.starts_with("| method") && l.contains("layer_shuffle"))
        .unwrap();
    let names: Vec<&str> = header.split('|').map(str::trim).collect();
    let cell = |check: &str| cells[names.iter().position(|n| *n == check).unwrap()];
    assert!(
        cell("layer_shuffle")
            .starts_with("sensitive: uses structure beyond its layer ratios -30.0"),
        "{row}"
    );
    assert!(
        cell("reinit").starts_with("insensitive: weight values interchangeable"),
        "{row}"
    );
    assert!(cell("reinit").contains("d_z=+0.2"), "{row}");
    assert!(cell("weight_shuffle").starts_with("inconclusive"), "{row}");
}
