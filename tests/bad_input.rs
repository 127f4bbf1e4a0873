//! Every malformed suite in tests/data/bad/ gives a clear error and exit code 2, never a
//! panic. Each file's first line says what the message must contain: `# expect: <text>`.

use std::path::Path;
use std::process::Command;

fn ticketbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ticketbench"))
}

#[test]
fn bad_suites_fail_cleanly_with_located_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 25,
        "the corpus shrank: {} files",
        files.len()
    );
    let out = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks `# expect:`", file.display()));
        let result = ticketbench()
            .arg("run")
            .arg(file)
            .arg("--out")
            .arg(out.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        let name = file.file_name().unwrap().to_string_lossy();
        let ok = result.status.code() == Some(2)
            && stderr.contains(expect)
            && stderr.contains(&*name)
            && !stderr.contains("panicked");
        if !ok {
            failures.push(format!(
                "{name}: exit {:?}, wanted `{expect}`, got:\n{stderr}",
                result.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
    assert!(
        !out.path().join("results.jsonl").exists(),
        "a bad suite must not start any job"
    );
}

#[test]
fn missing_suite_file_is_a_clear_error() {
    let result = ticketbench()
        .args(["run", "no/such/suite.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot read suite file no/such/suite.yaml"),
        "{stderr}"
    );
}

#[test]
fn bad_command_line_values_exit_2() {
    for args in [
        vec![
            "ratios",
            "--rule",
            "erk",
            "--widths",
            "784,300,100,10",
            "--density",
            "1.5",
        ],
        vec![
            "ratios",
            "--rule",
            "nope",
            "--widths",
            "784,300,100,10",
            "--density",
            "0.1",
        ],
        vec![
            "ratios",
            "--rule",
            "erk",
            "--widths",
            "784",
            "--density",
            "0.1",
        ],
        vec![
            "prune",
            "--method",
            "snp",
            "--widths",
            "4,3,2",
            "--density",
            "0.5",
            "--export",
            "x",
        ],
        vec!["report", "no/such/dir"],
        vec!["run", "tests/data/tiny.yaml", "--shard", "0/4"],
        vec!["run", "tests/data/tiny.yaml", "--shard", "5/4"],
        vec!["run", "tests/data/tiny.yaml", "--shard", "half"],
        vec!["run", "tests/data/tiny.yaml", "--jobs", "0"],
        vec!["run", "tests/data/tiny.yaml", "--memory-budget", "-1"],
        vec!["merge", "no/such/dir", "--out", "unused"],
        vec!["merge", "tests/data", "--out", "unused"],
        vec!["plan", "no/such/suite.yaml"],
        vec!["plan", "tests/data/bad/huge_seed_count.yaml"],
    ] {
        let result = ticketbench().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    assert!(
        !std::path::Path::new("unused").exists(),
        "a refused merge created its --out"
    );
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_names_the_fix() {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny.yaml");
    let result = ticketbench()
        .arg("run")
        .arg(&suite)
        .args(["--device", "cuda", "--out"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--features cuda"), "{stderr}");
}
