//! The nightly workflow's own steps, executed locally: every `run:` script of
//! `.github/workflows/nightly.yml` runs as written, in job order, the `run` job once per
//! matrix shard as parallel processes, in a scratch checkout with a local git remote. The
//! `uses:` actions are emulated: checkout is the scratch copy, artifacts are directories,
//! cache and toolchain steps are skipped. Two substitutions keep it inside a test: the Build
//! step's `cargo build --release` is replaced by this test's own binary at
//! `target/release/ticketbench`, and `suites/nightly.yaml` by tests/data/nightly-mini.yaml
//! (`TICKETBENCH_NIGHTLY_SUITE=suites/nightly.yaml` runs the real one, as docs/scaling.md
//! measures it). The gh-pages push goes to a second local bare repository through git's
//! `url.<dir>.insteadOf`.

mod common;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn workflow() -> Value {
    let text = std::fs::read_to_string(format!("{ROOT}/.github/workflows/nightly.yml")).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The environment of one job: workspace, artifacts store and GitHub's variables.
struct Runner {
    workspace: PathBuf,
    artifacts: PathBuf,
    env: BTreeMap<String, String>,
}

impl Runner {
    /// `${{ matrix.shard }}`, `${{ secrets.GITHUB_TOKEN }}` and the job's `env:` filled in.
    fn expand(&self, text: &str, shard: Option<u64>) -> String {
        let mut out = text.to_string();
        if let Some(i) = shard {
            out = out.replace("${{ matrix.shard }}", &i.to_string());
        }
        out.replace("${{ secrets.GITHUB_TOKEN }}", "local-token")
    }

    /// Starts one step's script with bash -e, as GitHub's default shell does.
    fn spawn(&self, script: &str, step_env: &Value, shard: Option<u64>) -> Child {
        let mut c = Command::new("bash");
        c.args(["-e", "-c", &self.expand(script, shard)])
            .current_dir(&self.workspace)
            .envs(&self.env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(vars) = step_env.as_object() {
            for (k, v) in vars {
                c.env(k, self.expand(v.as_str().unwrap(), shard));
            }
        }
        c.spawn().unwrap()
    }

    /// Emulates a `uses:` step (checkout and cache do nothing here).
    fn action(&self, uses: &str, with: &Value, shard: Option<u64>) {
        let field = |k: &str| with[k].as_str().map(|v| self.expand(v, shard));
        if uses.starts_with("actions/upload-artifact") {
            let name = field("name").unwrap();
            let dest = self.artifacts.join(&name);
            std::fs::create_dir_all(&dest).unwrap();
            for path in field("path")
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                let status = Command::new("cp")
                    .args(["-r", "--parents", path.trim()])
                    .arg(&dest)
                    .current_dir(&self.workspace)
                    .status()
                    .unwrap();
                assert!(status.success(), "upload {name}: {path}");
            }
        } else if uses.starts_with("actions/download-artifact") {
            let into = self.workspace.join(field("path").unwrap());
            let names: Vec<String> = match (field("name"), field("pattern")) {
                (Some(n), _) => vec![n],
                (None, Some(p)) => {
                    let prefix = p.trim_end_matches('*');
                    let mut names: Vec<String> = std::fs::read_dir(&self.artifacts)
                        .unwrap()
                        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                        .filter(|n| n.starts_with(prefix))
                        .collect();
                    names.sort();
                    names
                }
                _ => panic!("download-artifact without name or pattern"),
            };
            let single = field("name").is_some();
            for name in names {
                let src = self.artifacts.join(&name);
                // One artifact lands in `path` itself, a pattern's each in `path/<name>`
                // (actions/download-artifact@v4); an uploaded file keeps its relative path.
                let dest = if single {
                    into.clone()
                } else {
                    into.join(&name)
                };
                std::fs::create_dir_all(&dest).unwrap();
                let status = Command::new("cp")
                    .arg("-r")
                    .arg(format!("{}/.", src.display()))
                    .arg(&dest)
                    .status()
                    .unwrap();
                assert!(status.success(), "download {name}");
                flatten_single_path(&dest);
            }
        } else {
            assert!(
                uses.starts_with("actions/checkout") || uses.starts_with("actions/cache"),
                "unknown action {uses}"
            );
        }
    }
}

/// upload-artifact stores `path` relative to the common root of its paths, so one uploaded
/// directory `results/shard-1` comes back as its contents; `cp --parents` kept the parents,
/// so strip a chain of single directories down to where files start.
fn flatten_single_path(dest: &Path) {
    loop {
        let entries: Vec<PathBuf> = std::fs::read_dir(dest)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let [only] = &entries[..] else { return };
        if !only.is_dir() {
            return;
        }
        let inner: Vec<PathBuf> = std::fs::read_dir(only)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        for p in inner {
            std::fs::rename(&p, dest.join(p.file_name().unwrap())).unwrap();
        }
        std::fs::remove_dir(only).unwrap();
    }
}

fn wait(child: Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_nightly_workflow_steps_run_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let (origin, pages, workspace) = (
        tmp.path().join("origin.git"),
        tmp.path().join("pages.git"),
        tmp.path().join("work"),
    );
    // The checkout: the files the workflow reads, committed, with a local origin.
    for dir in ["suites", "reports/leaderboard", ".github/workflows"] {
        std::fs::create_dir_all(workspace.join(dir)).unwrap();
    }
    let suite = std::env::var("TICKETBENCH_NIGHTLY_SUITE")
        .unwrap_or_else(|_| "tests/data/nightly-mini.yaml".into());
    std::fs::copy(
        format!("{ROOT}/{suite}"),
        workspace.join("suites/nightly.yaml"),
    )
    .unwrap();
    let history = workspace.join("reports/leaderboard/history.jsonl");
    std::fs::copy(
        format!("{ROOT}/reports/leaderboard/history.jsonl"),
        &history,
    )
    .unwrap();
    let before = std::fs::read_to_string(&history).unwrap().lines().count();
    for bare in [&origin, &pages] {
        git(
            tmp.path(),
            &["init", "-q", "--bare", bare.to_str().unwrap()],
        );
    }
    git(&workspace, &["init", "-q", "-b", "main"]);
    git(&workspace, &["add", "-A"]);
    git(
        &workspace,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "checkout",
        ],
    );
    git(
        &workspace,
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    git(&workspace, &["push", "-q", "origin", "main"]);
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // gh-pages pushes to https://x-access-token:…@github.com/<repo>.git: send it to `pages`.
    std::fs::write(
        home.join(".gitconfig"),
        format!(
            "[url \"{}\"]\n\tinsteadOf = https://x-access-token:local-token@github.com/local/ticketbench.git\n",
            pages.display()
        ),
    )
    .unwrap();

    let w = workflow();
    let mut env: BTreeMap<String, String> = w["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string().trim_matches('"').to_string()))
        .collect();
    let sha = git(&workspace, &["rev-parse", "HEAD"]).trim().to_string();
    env.extend([
        ("GITHUB_SHA".into(), sha.clone()),
        ("GITHUB_REF_NAME".into(), "main".into()),
        ("GITHUB_REPOSITORY".into(), "local/ticketbench".into()),
        ("HOME".into(), home.to_string_lossy().into_owned()),
        ("PATH".into(), std::env::var("PATH").unwrap()),
    ]);
    let runner = Runner {
        workspace: workspace.clone(),
        artifacts: tmp.path().join("artifacts"),
        env,
    };
    std::fs::create_dir_all(&runner.artifacts).unwrap();

    for job in ["build", "run", "report"] {
        let spec = &w["jobs"][job];
        let matrix: Vec<Option<u64>> = match spec["strategy"]["matrix"]["shard"].as_array() {
            Some(shards) => shards.iter().map(|s| s.as_u64()).collect(),
            None => vec![None],
        };
        // Each matrix entry runs its steps in order; the entries run in parallel, as
        // processes (a step's actions run between its scripts in the same entry).
        let mut entries: Vec<(Option<u64>, usize)> = matrix.iter().map(|&m| (m, 0)).collect();
        let steps = spec["steps"].as_array().unwrap();
        while entries.iter().any(|(_, i)| *i < steps.len()) {
            let mut running = Vec::new();
            for (shard, i) in entries.iter_mut() {
                while *i < steps.len() {
                    let step = &steps[*i];
                    *i += 1;
                    if let Some(uses) = step["uses"].as_str() {
                        runner.action(uses, &step["with"], *shard);
                        continue;
                    }
                    let script = step["run"].as_str().unwrap();
                    if script.contains("cargo build") {
                        // The Build step: this test's binary instead of a release build.
                        let dest = workspace.join("target/release");
                        std::fs::create_dir_all(&dest).unwrap();
                        std::fs::copy(env!("CARGO_BIN_EXE_ticketbench"), dest.join("ticketbench"))
                            .unwrap();
                        continue;
                    }
                    if script.contains("rustup") {
                        continue;
                    }
                    let name = step["name"].as_str().unwrap_or("step").to_string();
                    running.push((
                        runner.spawn(script, &step["env"], *shard),
                        format!("{job}/{name}"),
                    ));
                    break;
                }
            }
            for (child, what) in running {
                wait(child, &what);
            }
        }
        // Each job starts from a fresh checkout in GitHub; here the workspace is kept, so
        // clean what the job wrote that a next job would not find there.
        if job != "report" {
            let _ = std::fs::remove_dir_all(workspace.join("results"));
            let _ = std::fs::remove_dir_all(workspace.join("bin"));
        }
    }

    // The merged run, the report with its leaderboard, the history appended and pushed, and
    // the page published.
    let merged = workspace.join("results/nightly");
    let single = tmp.path().join("single");
    common::ok(common::ticketbench(&[
        "run",
        workspace.join("suites/nightly.yaml").to_str().unwrap(),
        "--out",
        single.to_str().unwrap(),
        "--quiet",
    ]));
    assert_eq!(
        common::records_by_hash(&merged),
        common::records_by_hash(&single),
        "merged shards differ"
    );
    for file in [
        "index.html",
        "report.md",
        "report.tex",
        "leaderboard.json",
        "history.jsonl",
    ] {
        assert!(workspace.join("site").join(file).is_file(), "site/{file}");
    }
    let pushed = git(&origin, &["show", "main:reports/leaderboard/history.jsonl"]);
    assert_eq!(
        pushed.lines().count(),
        before + 1,
        "one history entry per night"
    );
    let last: Value = serde_json::from_str(pushed.lines().last().unwrap()).unwrap();
    assert_eq!(last["commit"].as_str(), Some(sha.as_str()));
    assert!(
        git(&pages, &["ls-tree", "--name-only", "gh-pages"]).contains("index.html"),
        "gh-pages has the page"
    );
}
