//! External methods: a pruning method in any language, run as a plugin process and judged
//! like the built-in ones (docs/external-methods.md has the protocol).
//!
//! ```yaml
//! methods:
//!   - {name: external, label: my-snip, command: "python3 plugins/my_snip.py", data: scoring-batch}
//! ```
//!
//! Per job ticketbench writes a request directory ([`request`]: `request.json`, θ_0, the
//! scoring batch, for `data: full-training` the training split), sends its path as one JSON
//! line on the plugin's stdin and reads one JSON line back; the plugin has written its answer
//! files (mask and/or scores, start weights, a log) into the directory ([`answer`]). A plugin
//! process ([`worker`]) is started on first use and kept for later requests, at most one per
//! concurrently running job, so its start-up is paid once per worker, not once per job.
//!
//! The settings hash covers the label, the command, `data`, `per_class`, `scores`, the
//! `params:` passed through and a blake3 of every file in `hash_files:` (default: the files
//! the command names), so editing the plugin reruns its jobs and nothing else. The suite's
//! directory, where the command runs, is not hashed: a results directory stays valid when
//! the checkout moves.

mod answer;
mod request;
mod worker;

use super::{
    DataNeeds, Family, MethodError, MethodInfo, Params, PruneContext, PruneOutcome, Pruner,
    at_least_one,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use ticketbench_core::select::top_k_global;
use ticketbench_core::{Density, target_count};
use worker::Worker;

/// Version of the request and answer files and lines; a plugin refuses other versions.
pub const PROTOCOL: u32 = 1;

/// Default `timeout_s`: how long one request may take before the plugin is killed.
const DEFAULT_TIMEOUT_S: f64 = 3600.0;

/// The parameter the suite loader sets to the suite file's directory (not hashed).
pub const SUITE_DIR_KEY: &str = "suite_dir";

pub(super) const INFO: MethodInfo = MethodInfo {
    name: "external",
    family: Family::AtInit,
    data: DataNeeds::ScoringBatch,
    summary: "a plugin in any language (docs/external-methods.md): label, command, data required; params, hash_files, timeout_s, per_class, scores",
    citation: "ticketbench external-method protocol v1",
    build: |p| Ok(Box::new(External::build(p)?)),
};

/// An external method's entry as the suite writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternalSpec {
    /// The method's name in tables (required: there is no registry name to derive it from).
    label: String,
    /// The plugin's command line, split into words like a shell would (quotes, backslashes),
    /// but run without a shell, in the suite file's directory.
    command: String,
    /// What the plugin reads: `none`, `scoring-batch` or `full-training`.
    data: DataNeeds,
    /// Passed through to the plugin as `request.json`'s `method.params`.
    #[serde(default)]
    params: Params,
    /// Files whose contents enter the settings hash (relative to the suite's directory);
    /// default: every word of the command that names a file there.
    #[serde(default)]
    hash_files: Option<Vec<String>>,
    #[serde(default = "default_timeout")]
    timeout_s: f64,
    /// Examples per class of the scoring batch (the built-in SNIP's and GraSP's default).
    #[serde(default = "default_per_class")]
    per_class: usize,
    /// Whether the plugin returns scores for every weight (then the `invert` check applies).
    #[serde(default)]
    scores: bool,
    /// How the reports judge the method (`strong`: by its untrained ticket, as edge-popup);
    /// default `at-init`.
    #[serde(default)]
    family: Option<Family>,
    #[serde(default, rename = "suite_dir")]
    suite_dir: Option<PathBuf>,
}

fn default_timeout() -> f64 {
    DEFAULT_TIMEOUT_S
}

fn default_per_class() -> usize {
    10
}

/// What enters the settings hash (and the results' `method_params`).
#[derive(Debug, Serialize)]
struct HashedSpec<'a> {
    label: &'a str,
    command: &'a str,
    data: DataNeeds,
    params: &'a Params,
    per_class: usize,
    scores: bool,
    /// Only when the suite sets it, so entries without it keep their hashes; with it, the
    /// jobs rerun once and their records carry the family the reports judge them by.
    #[serde(skip_serializing_if = "Option::is_none")]
    family: Option<Family>,
    /// blake3 (hex) of each hashed file, by its name as the suite writes it.
    files: &'a BTreeMap<String, String>,
}

/// A failed request: which plugin, what went wrong, where its request is kept and what the
/// plugin last wrote to stderr.
#[derive(Debug)]
pub struct ExternalError {
    pub label: String,
    pub command: String,
    pub problem: String,
    /// The request directory, kept for debugging (`None` when it could not be written).
    pub request_dir: Option<PathBuf>,
    pub stderr: Vec<String>,
}

impl std::fmt::Display for ExternalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "external method `{}` (`{}`): {}",
            self.label, self.command, self.problem
        )?;
        if let Some(dir) = &self.request_dir {
            write!(f, "\n  request kept in {}", dir.display())?;
        }
        if self.stderr.is_empty() {
            write!(f, "\n  (nothing on the plugin's stderr)")
        } else {
            write!(f, "\n  last lines of the plugin's stderr:")?;
            for line in &self.stderr {
                write!(f, "\n    | {line}")?;
            }
            Ok(())
        }
    }
}

impl std::error::Error for ExternalError {}

pub struct External {
    spec: ExternalSpec,
    argv: Vec<String>,
    cwd: PathBuf,
    files: BTreeMap<String, String>,
    /// Idle plugin processes; a job takes one (or starts one) and puts it back after a
    /// well-formed answer.
    idle: Mutex<Vec<Worker>>,
    /// Input files this method staged and the scratch directories it used (removed when
    /// the run ends, see `Drop`).
    staged: Mutex<Staged>,
}

impl External {
    fn build(params: &Params) -> Result<External, MethodError> {
        let invalid = |message: String| MethodError::InvalidParams {
            method: INFO.name,
            message,
        };
        let spec: ExternalSpec = super::parse_params(INFO.name, params)?;
        at_least_one(INFO.name, "per_class", spec.per_class)?;
        if spec.label.trim().is_empty() {
            return Err(invalid("`label` is empty; name the method".into()));
        }
        if !(spec.timeout_s > 0.0 && Duration::try_from_secs_f64(spec.timeout_s).is_ok()) {
            return Err(invalid(format!(
                "timeout_s must be a positive number of seconds, found {}",
                spec.timeout_s
            )));
        }
        if spec.family == Some(Family::Reference) {
            return Err(invalid(
                "`family: reference` is for the unpruned and planted references; use at-init, after-training, iterative, strong or dynamic".into(),
            ));
        }
        let argv = split_command(&spec.command).map_err(invalid)?;
        let cwd = match &spec.suite_dir {
            Some(dir) => dir.clone(),
            None => std::env::current_dir().map_err(|e| invalid(e.to_string()))?,
        };
        let hashed = match &spec.hash_files {
            Some(list) => list.clone(),
            None => {
                let named: Vec<String> = argv
                    .iter()
                    // An absolute path is the machine's (`/usr/bin/python3`), not the plugin's.
                    .filter(|w| Path::new(w).is_relative() && cwd.join(w).is_file())
                    .cloned()
                    .collect();
                if named.is_empty() {
                    return Err(invalid(format!(
                        "no word of `command: {}` names a file in {}; list the plugin's files in `hash_files:` (their contents enter the settings hash)",
                        spec.command,
                        cwd.display()
                    )));
                }
                named
            }
        };
        let mut files = BTreeMap::new();
        for name in hashed {
            let path = cwd.join(&name);
            let bytes = std::fs::read(&path)
                .map_err(|e| invalid(format!("hash_files: cannot read {}: {e}", path.display())))?;
            files.insert(name, blake3::hash(&bytes).to_hex().to_string());
        }
        // A program named by a relative path runs from the suite's directory too.
        let mut argv = argv;
        if argv[0].contains('/') && Path::new(&argv[0]).is_relative() {
            argv[0] = cwd.join(&argv[0]).to_string_lossy().into_owned();
        }
        Ok(External {
            spec,
            argv,
            cwd,
            files,
            idle: Mutex::new(Vec::new()),
            staged: Mutex::new(Staged::default()),
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.spec.timeout_s)
    }

    fn error(&self, problem: String, dir: Option<&Path>, stderr: Vec<String>) -> MethodError {
        MethodError::External(Box::new(ExternalError {
            label: self.spec.label.clone(),
            command: self.spec.command.clone(),
            problem,
            request_dir: dir.map(Path::to_path_buf),
            stderr,
        }))
    }

    /// Sends the request in `dir` to an idle worker (or a new one) and returns its reply
    /// line; the worker goes back to the pool unless the exchange broke it.
    fn ask(&self, dir: &Path, threads: usize) -> Result<(answer::Reply, Vec<String>), MethodError> {
        // An idle worker that died (or is out of step) since its last answer is dropped here,
        // so it cannot fail this job.
        let taken = self
            .idle
            .lock()
            .expect("worker pool")
            .pop()
            .and_then(|mut w| w.is_ready().then_some(w));
        let mut worker = match taken {
            Some(w) => w,
            None => Worker::spawn(&self.argv, &self.cwd, threads)
                .map_err(|f| self.error(f.to_string(), Some(dir), Vec::new()))?,
        };
        let line = serde_json::json!({"protocol": PROTOCOL, "request": dir}).to_string();
        let reply = worker
            .ask(&line, self.timeout())
            .map_err(|f| f.to_string())
            .and_then(|text| answer::Reply::parse(&text));
        match reply {
            Ok(reply) => {
                let stderr = worker.stderr_tail();
                self.idle.lock().expect("worker pool").push(worker);
                Ok((reply, stderr))
            }
            // The worker is dropped (killed if still running): its stream may be out of step.
            Err(problem) => Err(self.error(problem, Some(dir), worker.stderr_tail())),
        }
    }
}

impl Pruner for External {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn params(&self) -> serde_json::Value {
        super::to_value(&HashedSpec {
            label: &self.spec.label,
            command: &self.spec.command,
            data: self.spec.data,
            params: &self.spec.params,
            per_class: self.spec.per_class,
            scores: self.spec.scores,
            family: self.spec.family,
            files: &self.files,
        })
    }

    fn data_needs(&self) -> DataNeeds {
        self.spec.data
    }

    fn family(&self) -> Family {
        self.spec.family.unwrap_or(INFO.family)
    }

    fn label(&self) -> Option<String> {
        Some(self.spec.label.clone())
    }

    fn returns_scores(&self) -> bool {
        self.spec.scores
    }

    fn prune(
        &self,
        ctx: &mut PruneContext<'_>,
        density: Density,
    ) -> Result<PruneOutcome, MethodError> {
        let total = ctx.net.num_prunable();
        let kept = target_count(density, total)?;
        let dir = request::dir(&ctx.job, &self.spec.label);
        let staged = request::write(
            &dir,
            &request::Request {
                label: &self.spec.label,
                command: &self.spec.command,
                params: &self.spec.params,
                data: self.spec.data,
                per_class: self.spec.per_class,
                density,
                kept,
            },
            ctx,
        )
        .map_err(|e| self.error(format!("cannot write the request: {e}"), Some(&dir), vec![]))?;
        {
            let mut record = self.staged.lock().expect("staged");
            record.files.extend(staged);
            record.scratch.insert(ctx.job.scratch.clone());
        }
        (ctx.progress)(format!("waiting for external method {}", self.spec.label));
        let (reply, stderr) = self.ask(&dir, ctx.job.threads)?;
        let outcome = answer::read(&dir, &reply, ctx.net, kept)
            .and_then(|answer| {
                if self.spec.scores && answer.scores.is_none() {
                    return Err(
                        "the suite declares `scores: true` but the plugin wrote no scores.safetensors"
                            .to_string(),
                    );
                }
                let mask = match answer.mask {
                    Some(mask) => mask,
                    None => {
                        let scores = answer.scores.as_ref().expect("read checks mask or scores");
                        top_k_global(scores, kept, None, answer.keep).map_err(|e| e.to_string())?
                    }
                };
                Ok(PruneOutcome {
                    mask,
                    start: answer.start,
                    scores: answer.scores,
                    keep: answer.keep,
                    trained: None,
                    log: answer.log,
                })
            })
            .map_err(|problem| self.error(problem, Some(&dir), stderr))?;
        // A good answer needs no debugging: its request goes (its inputs stay staged).
        let _ = std::fs::remove_dir_all(&dir);
        Ok(outcome)
    }
}

#[derive(Default)]
struct Staged {
    files: BTreeSet<PathBuf>,
    scratch: BTreeSet<PathBuf>,
}

impl Drop for External {
    /// Removes the staged inputs (a failed request keeps its own hard links or copies) and
    /// every folder this method left empty.
    fn drop(&mut self) {
        let staged = std::mem::take(&mut *self.staged.lock().expect("staged"));
        for path in &staged.files {
            let _ = std::fs::remove_file(path);
        }
        for scratch in &staged.scratch {
            let _ = std::fs::remove_dir(scratch.join(request::INPUTS));
            let _ = std::fs::remove_dir(scratch.join(request::label_dir(&self.spec.label)));
            let _ = std::fs::remove_dir(scratch);
        }
    }
}

/// Splits a command line into words: whitespace separates, single quotes keep everything,
/// double quotes keep all but `\"` and `\\`, a backslash outside quotes escapes the next
/// character. No variables, globs or pipes: the command runs without a shell.
fn split_command(command: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(format!("unclosed ' in `command: {command}`")),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err(format!("unclosed \" in `command: {command}`")),
                        },
                        Some(c) => w.push(c),
                        None => return Err(format!("unclosed \" in `command: {command}`")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err(format!("`command: {command}` ends in a backslash")),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    if words.is_empty() {
        return Err(
            "`command` is empty; give the plugin's command line, e.g. `python3 plugins/my_snip.py`"
                .into(),
        );
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_like_a_shell_without_one() {
        let words = |s: &str| split_command(s).unwrap();
        assert_eq!(words("python3 plugins/a.py"), ["python3", "plugins/a.py"]);
        assert_eq!(
            words("  a   'b c'  \"d \\\"e\\\"\" f\\ g "),
            ["a", "b c", "d \"e\"", "f g"]
        );
        assert_eq!(words("x ''"), ["x", ""]);
        assert_eq!(words("a\"b\"'c'"), ["abc"]);
        for bad in ["", "   ", "a 'b", "a \"b", "a\\"] {
            assert!(split_command(bad).is_err(), "{bad:?}");
        }
    }

    fn params(v: serde_json::Value) -> Params {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_hash_covers_the_named_files_and_not_the_directory() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            std::fs::write(d.join("p.py"), "print(1)").unwrap();
        }
        let build = |dir: &Path| {
            External::build(&params(serde_json::json!({
                "label": "mine", "command": "python3 p.py", "data": "none",
                "suite_dir": dir,
            })))
            .unwrap()
            .params()
        };
        assert_eq!(
            build(a.path()),
            build(b.path()),
            "the directory is not hashed"
        );
        let before = build(a.path());
        std::fs::write(a.path().join("p.py"), "print(2)").unwrap();
        assert_ne!(build(a.path()), before, "an edited plugin has new settings");
        assert_eq!(
            build(a.path())["files"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["p.py"]
        );
    }

    #[test]
    fn bad_entries_are_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = |v: serde_json::Value| {
            let mut p = params(v);
            p.insert("suite_dir".into(), serde_json::json!(dir.path()));
            External::build(&p).err().unwrap().to_string()
        };
        assert!(
            err(serde_json::json!({"label": "x", "command": "python3 missing.py", "data": "none"}))
                .contains("hash_files")
        );
        assert!(err(serde_json::json!({"command": "a", "data": "none"})).contains("label"));
        assert!(
            err(serde_json::json!({"label": "x", "command": "a", "data": "all", "hash_files": []}))
                .contains("scoring-batch")
        );
        assert!(err(serde_json::json!({"label": "x", "command": "a", "data": "none", "hash_files": ["nope.py"]})).contains("nope.py"));
        assert!(err(serde_json::json!({"label": "x", "command": "a", "data": "none", "hash_files": [], "timeout_s": 0})).contains("timeout_s"));
        assert!(err(serde_json::json!({"label": "x", "command": "a", "data": "none", "hash_files": [], "colour": 1})).contains("colour"));
        assert!(err(serde_json::json!({"label": "x", "command": "a", "data": "none", "hash_files": [], "family": "reference"})).contains("strong"));
        assert!(err(serde_json::json!({"label": "x", "command": "a", "data": "none", "hash_files": [], "family": "weak"})).contains("at-init"));
    }

    #[test]
    fn a_family_is_the_entries_own_and_hashed_only_when_set() {
        let dir = tempfile::tempdir().unwrap();
        let build = |extra: serde_json::Value| {
            let mut p = params(serde_json::json!({
                "label": "mine", "command": "a", "data": "none", "hash_files": [],
                "suite_dir": dir.path(),
            }));
            p.extend(params(extra));
            External::build(&p).unwrap()
        };
        let plain = build(serde_json::json!({}));
        assert_eq!(plain.family(), Family::AtInit);
        assert!(
            plain.params().get("family").is_none(),
            "old entries keep their hashes"
        );
        let strong = build(serde_json::json!({"family": "strong"}));
        assert_eq!(strong.family(), Family::Strong);
        assert_eq!(strong.params()["family"], "strong");
    }
}
