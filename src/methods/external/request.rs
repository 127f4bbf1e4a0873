//! Writing a request directory (docs/external-methods.md, "Request"): `request.json` plus
//! the input tensors, θ_0 (`theta0.safetensors`), the scoring batch (`scoring.safetensors`)
//! and, for `data: full-training`, the training split (`train.safetensors`).
//!
//! Inputs are staged once per content under `<scratch>/inputs/<blake3>.safetensors` and
//! hard-linked into each request (copied where links fail): every density and check of one
//! seed shares θ_0 and the batch, and a training split is written once per run, not once per
//! job, while each request directory stays complete on its own for debugging.

use super::PROTOCOL;
use crate::methods::{DataNeeds, JobIdentity, Params, PruneContext};
use crate::tensor_file::{Owned, push_dataset, push_network, to_bytes};
use rand::Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use ticketbench_core::Conv2d;
use ticketbench_core::Density;
use ticketbench_planted::OutputKind;

/// The staging folder of a scratch directory.
pub(super) const INPUTS: &str = "inputs";

/// The answer files a plugin may write into its request directory.
pub(super) const MASK_FILE: &str = "mask.safetensors";
pub(super) const SCORES_FILE: &str = "scores.safetensors";
pub(super) const START_FILE: &str = "start.safetensors";
pub(super) const LOG_FILE: &str = "log.json";

/// What the method entry contributes to a request.
pub(super) struct Request<'a> {
    pub label: &'a str,
    pub command: &'a str,
    pub params: &'a Params,
    pub data: DataNeeds,
    pub per_class: usize,
    pub density: Density,
    pub kept: usize,
}

#[derive(Serialize)]
struct RequestFile<'a> {
    protocol: u32,
    method: MethodPart<'a>,
    task: TaskPart<'a>,
    job: JobPart<'a>,
    density: f64,
    kept: usize,
    total: usize,
    layers: Vec<LayerPart<'a>>,
    /// Between layers; none after the last.
    activation: &'static str,
    /// For the method's own randomness (< 2^53, exact in every JSON reader).
    seed: u64,
    data: DataNeeds,
    per_class: usize,
    train: &'a crate::train::TrainRecipe,
    files: BTreeMap<&'static str, PathBuf>,
    answer: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
struct MethodPart<'a> {
    label: &'a str,
    command: &'a str,
    params: &'a Params,
}

#[derive(Serialize)]
struct TaskPart<'a> {
    name: &'a str,
    label: &'a str,
    kind: &'static str,
    inputs: usize,
    outputs: usize,
}

#[derive(Serialize)]
struct JobPart<'a> {
    model: &'a str,
    seed: u64,
    check: Option<&'static str>,
    settings_hash: &'a str,
    threads: usize,
}

#[derive(Serialize)]
struct LayerPart<'a> {
    kind: &'static str,
    shape: &'a [usize],
    bias: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    conv: Option<&'a Conv2d>,
}

/// A label as a folder name: itself when it is made of `[A-Za-z0-9._-]`, else those
/// characters with `_` for the others and 8 hex digits of its blake3 (no two labels share a
/// folder, none escapes the scratch directory).
pub(super) fn label_dir(label: &str) -> String {
    let safe: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe == label && !label.starts_with('.') {
        safe
    } else {
        format!("{safe}-{}", &blake3::hash(label.as_bytes()).to_hex()[..8])
    }
}

/// `<scratch>/<label>/<settings hash>`, absolute (the plugin runs in another directory).
pub(super) fn dir(job: &JobIdentity, label: &str) -> PathBuf {
    let scratch = std::path::absolute(&job.scratch).unwrap_or_else(|_| job.scratch.clone());
    scratch.join(label_dir(label)).join(&job.settings_hash)
}

/// Writes the request for `ctx`'s job into `dir` (replacing an earlier attempt's) and
/// returns the staged input files.
pub(super) fn write(
    dir: &Path,
    req: &Request,
    ctx: &PruneContext<'_>,
) -> Result<Vec<PathBuf>, String> {
    let io = |what: &Path| {
        let what = what.display().to_string();
        move |e: std::io::Error| format!("{what}: {e}")
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let inputs = dir
        .parent()
        .and_then(Path::parent)
        .expect("a request directory is <scratch>/<label>/<hash>")
        .join(INPUTS);

    let mut files = BTreeMap::new();
    let mut staged = Vec::new();
    let mut put = |name: &'static str, tensors: Vec<Owned>| -> Result<(), String> {
        let (source, link) = stage(&inputs, dir, name, &tensors)?;
        staged.push(source);
        files.insert(name, link);
        Ok(())
    };
    let mut theta0 = Vec::new();
    push_network(&mut theta0, "layers", ctx.net);
    put("theta0", theta0)?;
    if req.data != DataNeeds::None {
        // The stream and purpose of the built-in SNIP and GraSP: the same batch at one seed.
        let batch = ctx
            .data
            .scoring_batch(req.per_class, ctx.streams, "scoring/batch");
        let mut tensors = Vec::new();
        push_dataset(&mut tensors, "scoring", &batch);
        put("scoring", tensors)?;
    }
    if req.data == DataNeeds::FullTraining {
        let mut tensors = Vec::new();
        push_dataset(&mut tensors, "train", &ctx.data.train_split());
        put("train", tensors)?;
    }

    let (kind, outputs) = match ctx.data.output() {
        OutputKind::Classes(n) => ("classification", n),
        OutputKind::Regression(n) => ("regression", n),
    };
    let request = RequestFile {
        protocol: PROTOCOL,
        method: MethodPart {
            label: req.label,
            command: req.command,
            params: req.params,
        },
        task: TaskPart {
            name: &ctx.job.task,
            label: &ctx.job.task_label,
            kind,
            inputs: ctx.data.input_dim(),
            outputs,
        },
        job: JobPart {
            model: &ctx.job.model,
            seed: ctx.job.seed,
            check: ctx.job.check,
            settings_hash: &ctx.job.settings_hash,
            threads: ctx.job.threads,
        },
        density: req.density.get(),
        kept: req.kept,
        total: ctx.net.num_prunable(),
        layers: ctx
            .net
            .layers
            .iter()
            .map(|l| LayerPart {
                kind: if l.conv.is_some() { "conv2d" } else { "linear" },
                shape: &l.shape.dims,
                bias: l.bias.is_some(),
                conv: l.conv.as_ref(),
            })
            .collect(),
        activation: "relu",
        // Per request: the method, density and check name the stream (not the device, so
        // `repro` hands both devices the same seed).
        seed: ctx
            .streams
            .stream(&format!(
                "external/seed/{}/{}/{}",
                req.label,
                req.density.get(),
                ctx.job.check.unwrap_or("none")
            ))
            .next_u64()
            >> 11,
        data: req.data,
        per_class: req.per_class,
        train: ctx.recipe,
        files,
        answer: BTreeMap::from([
            ("mask", MASK_FILE),
            ("scores", SCORES_FILE),
            ("start", START_FILE),
            ("log", LOG_FILE),
        ]),
    };
    let path = dir.join("request.json");
    let text = serde_json::to_string_pretty(&request).expect("requests serialize");
    std::fs::write(&path, text + "\n").map_err(io(&path))?;
    Ok(staged)
}

/// Stages `tensors` as `inputs/<blake3>.safetensors` (written once, through a rename) and
/// links it into `dir` as `<name>.safetensors`; returns (staged file, link).
fn stage(
    inputs: &Path,
    dir: &Path,
    name: &str,
    tensors: &[Owned],
) -> Result<(PathBuf, PathBuf), String> {
    let bytes =
        to_bytes(tensors, &serde_json::json!({"protocol": PROTOCOL})).map_err(|e| e.to_string())?;
    let source = inputs.join(format!("{}.safetensors", blake3::hash(&bytes).to_hex()));
    if !source.exists() {
        std::fs::create_dir_all(inputs).map_err(|e| format!("{}: {e}", inputs.display()))?;
        let tmp = inputs.join(format!(
            ".{name}.{}.{:?}.tmp",
            std::process::id(),
            std::thread::current().id()
        ));
        // Read-only: every request links the same file, so a plugin that wrote into its
        // θ_0 would change every later request's (as root, permissions do not stop it).
        let written = std::fs::write(&tmp, &bytes)
            .and_then(|()| {
                let mut permissions = std::fs::metadata(&tmp)?.permissions();
                permissions.set_readonly(true);
                std::fs::set_permissions(&tmp, permissions)
            })
            .and_then(|()| std::fs::rename(&tmp, &source));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("{}: {e}", source.display()));
        }
    }
    let link = dir.join(format!("{name}.safetensors"));
    if std::fs::hard_link(&source, &link).is_err() {
        std::fs::copy(&source, &link).map_err(|e| format!("{}: {e}", link.display()))?;
    }
    Ok((source, link))
}
