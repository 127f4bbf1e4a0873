//! `.github/workflows/nightly.yml` is valid YAML with the structure GitHub Actions needs
//! (actionlint is not installable offline), runs the nightly suite sharded over its matrix,
//! merges every shard, and calls only `ticketbench` subcommands and flags that exist.

mod common;

use common::{ok, ticketbench};
use serde_json::Value;
use std::path::Path;

fn workflow() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows/nightly.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `run:` script of the workflow, with its job name.
fn scripts(w: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (job, spec) in w["jobs"].as_object().unwrap() {
        for step in spec["steps"].as_array().unwrap() {
            if let Some(run) = step["run"].as_str() {
                out.push((job.clone(), run.to_string()));
            }
        }
    }
    out
}

#[test]
fn nightly_workflow_has_a_valid_structure() {
    let w = workflow();
    let cron = w["on"]["schedule"][0]["cron"].as_str().expect("a schedule");
    assert_eq!(
        cron.split_whitespace().count(),
        5,
        "cron has five fields: {cron}"
    );
    let jobs = w["jobs"].as_object().expect("jobs");
    for (name, job) in jobs {
        assert!(job["runs-on"].is_string(), "{name}: runs-on");
        let steps = job["steps"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: steps"));
        for step in steps {
            assert!(
                step["uses"].is_string() ^ step["run"].is_string(),
                "{name}: every step either uses an action or runs a script: {step}"
            );
            if let Some(action) = step["uses"].as_str() {
                assert!(
                    action.contains('@'),
                    "{name}: {action} is not pinned to a version"
                );
            }
        }
        let needs: Vec<&str> = match &job["needs"] {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().map(|v| v.as_str().unwrap()).collect(),
            _ => Vec::new(),
        };
        for n in needs {
            assert!(jobs.contains_key(n), "{name} needs unknown job {n}");
        }
    }
}

#[test]
fn nightly_workflow_shards_merges_and_reports() {
    let w = workflow();
    let shards: Vec<u64> = w["jobs"]["run"]["strategy"]["matrix"]["shard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let n = shards.len() as u64;
    assert_eq!(shards, (1..=n).collect::<Vec<_>>(), "shards 1..=N");
    assert_eq!(w["env"]["SHARDS"].as_u64(), Some(n));
    let all = scripts(&w);
    let text: String = all
        .iter()
        .map(|(_, s)| s.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains(&format!(
        "run suites/nightly.yaml --shard ${{{{ matrix.shard }}}}/{n} --out results/shard-${{{{ matrix.shard }}}}"
    )));
    let merge = text
        .lines()
        .find(|l| l.contains("ticketbench merge"))
        .unwrap();
    for i in 1..=n {
        assert!(merge.contains(&format!("results/shard-{i} ")), "{merge}");
    }
    let report = text
        .lines()
        .find(|l| l.contains("ticketbench report"))
        .unwrap();
    for needle in [
        "--format all",
        "--history reports/leaderboard/history.jsonl",
        "--record-history",
    ] {
        assert!(report.contains(needle), "{report}");
    }
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("suites/nightly.yaml")
            .is_file()
    );
    // The suite gives the leaderboard what it needs.
    let suite =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/nightly.yaml"))
            .unwrap();
    assert!(suite.contains("matched_random: true") && suite.contains("- dense"));
    // Every subcommand and flag the workflow passes to ticketbench exists.
    for line in text.lines().filter(|l| l.contains("bin/ticketbench ")) {
        let args: Vec<&str> = line
            .split("bin/ticketbench ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect();
        let help = ok(ticketbench(&[args[0], "--help"]));
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            assert!(
                help.contains(flag),
                "`ticketbench {}` has no {flag}",
                args[0]
            );
        }
    }
}
