//! Reading and checking a plugin's answer (docs/external-methods.md, "Answer"): the reply
//! line, then `mask.safetensors` (U8 or BOOL `layers.<l>.mask`) and/or `scores.safetensors`
//! (F64 or F32 `layers.<l>.scores`), optional `start.safetensors` (`start.<l>.weight`,
//! `start.<l>.bias`) and `log.json`. Every problem is a message naming the file, tensor and
//! what was expected; nothing a plugin writes can panic the runner.

use super::request::{LOG_FILE, MASK_FILE, SCORES_FILE, START_FILE};
use crate::methods::MethodLog;
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use serde::Deserialize;
use std::path::Path;
use ticketbench_core::select::Keep;
use ticketbench_core::{Mask, Network, Scores};

/// The plugin's reply line.
#[derive(Debug)]
pub(super) struct Reply {
    keep: Keep,
}

#[derive(Deserialize)]
struct ReplyLine {
    status: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    keep: Option<String>,
}

impl Reply {
    /// A reply line: `{"status": "ok", "keep": "highest"|"lowest"}` or
    /// `{"status": "error", "message": "…"}` (the plugin's own failure).
    pub(super) fn parse(line: &str) -> Result<Reply, String> {
        let shown: String = line.chars().take(200).collect();
        let reply: ReplyLine = serde_json::from_str(line).map_err(|e| {
            format!(
                "the plugin wrote `{shown}` on stdout, which is not an answer line ({e}); stdout carries protocol lines only, write logs to stderr"
            )
        })?;
        match reply.status.as_str() {
            "ok" => {}
            "error" => {
                return Err(format!(
                    "the plugin failed: {}",
                    reply.message.as_deref().unwrap_or("(no message)")
                ));
            }
            other => {
                return Err(format!("answer status `{other}`; expected `ok` or `error`"));
            }
        }
        let keep = match reply.keep.as_deref() {
            None | Some("highest") => Keep::Highest,
            Some("lowest") => Keep::Lowest,
            Some(other) => {
                return Err(format!(
                    "answer `keep: {other}`; expected `highest` or `lowest`"
                ));
            }
        };
        Ok(Reply { keep })
    }
}

/// A checked answer.
pub(super) struct Answer {
    pub mask: Option<Mask>,
    pub scores: Option<Scores>,
    pub keep: Keep,
    pub start: Option<Network>,
    pub log: MethodLog,
}

/// Reads the answer files in `dir` for a network `net` that must keep exactly `kept`
/// weights.
pub(super) fn read(
    dir: &Path,
    reply: &Reply,
    net: &Network,
    kept: usize,
) -> Result<Answer, String> {
    // No answer file of a well-behaved plugin comes near this (F64 scores: 8 bytes a weight).
    let limit = ANSWER_SLACK_BYTES + 16 * net.num_prunable() as u64;
    let mask = read_tensors(dir, MASK_FILE, limit, |file| {
        let layers = layers_of(file, MASK_FILE, net, "mask", binary)?;
        let mask = Mask::from_layers(layers);
        if mask.kept() != kept {
            return Err(format!(
                "{MASK_FILE} keeps {} weights; the job's density requires exactly {kept} (request.json `kept`)",
                mask.kept()
            ));
        }
        Ok(mask)
    })?;
    let scores = read_tensors(dir, SCORES_FILE, limit, |file| {
        let layers = layers_of(file, SCORES_FILE, net, "scores", finite)?;
        Ok(Scores { layers })
    })?;
    if mask.is_none() && scores.is_none() {
        return Err(format!(
            "the plugin answered `ok` but wrote neither {MASK_FILE} nor {SCORES_FILE}"
        ));
    }
    let start = read_tensors(dir, START_FILE, limit, |file| start_network(file, net))?;
    let log_path = dir.join(LOG_FILE);
    check_size(&log_path, LOG_LIMIT_BYTES)?;
    let log = match std::fs::read_to_string(&log_path) {
        Ok(text) => serde_json::from_str::<MethodLog>(&text).map_err(|e| {
            format!(
                "{}:{}:{}: {e}; expected {{\"rounds\": [{{\"round\", \"density\", \"test_acc\", \"test_loss\"}}], \"events\": {{name: number}}}}",
                log_path.display(),
                e.line(),
                e.column()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => MethodLog::default(),
        Err(e) => return Err(format!("{}: {e}", log_path.display())),
    };
    Ok(Answer {
        mask,
        scores,
        keep: reply.keep,
        start,
        log,
    })
}

/// Room for safetensors headers beside the tensors' bytes.
const ANSWER_SLACK_BYTES: u64 = 1 << 20;
/// A log is a few rounds and events.
const LOG_LIMIT_BYTES: u64 = 16 << 20;

/// Refuses a file larger than `limit` before reading it (a runaway plugin must fail its job,
/// not exhaust the run's memory). A missing file passes.
fn check_size(path: &Path, limit: u64) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > limit => Err(format!(
            "{} is {} bytes, more than the {limit} an answer for this network can need",
            path.display(),
            m.len()
        )),
        _ => Ok(()),
    }
}

/// Parses `dir/file` with `parse` when the file exists (at most `limit` bytes).
fn read_tensors<T>(
    dir: &Path,
    file: &str,
    limit: u64,
    parse: impl FnOnce(&SafeTensors) -> Result<T, String>,
) -> Result<Option<T>, String> {
    let path = dir.join(file);
    check_size(&path, limit)?;
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let tensors = SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{file} is not a safetensors file: {e}"))?;
    parse(&tensors).map(Some)
}

/// One checked value per weight of every layer, from tensors `layers.<l>.<suffix>`.
fn layers_of<T>(
    file: &SafeTensors,
    file_name: &str,
    net: &Network,
    suffix: &str,
    value: fn(f64) -> Result<T, String>,
) -> Result<Vec<Vec<T>>, String> {
    let expected: Vec<String> = (0..net.layers.len())
        .map(|l| format!("layers.{l}.{suffix}"))
        .collect();
    unexpected(file, file_name, &expected)?;
    net.layers
        .iter()
        .zip(&expected)
        .map(|(layer, name)| {
            let values = numbers(file, file_name, name, &layer.shape.dims)?;
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| value(v).map_err(|why| format!("{file_name}: {name}[{i}] is {why}")))
                .collect()
        })
        .collect()
}

fn binary(v: f64) -> Result<bool, String> {
    match v {
        0.0 => Ok(false),
        1.0 => Ok(true),
        _ => Err(format!("{v}; a mask holds 0 (pruned) or 1 (kept)")),
    }
}

fn finite(v: f64) -> Result<f64, String> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{v}; scores must be finite"))
    }
}

/// Rejects tensors outside `expected` (a typo such as `layer.0.mask` would otherwise be
/// reported as a missing tensor only).
fn unexpected(file: &SafeTensors, file_name: &str, expected: &[String]) -> Result<(), String> {
    let mut extra: Vec<String> = file
        .names()
        .into_iter()
        .filter(|n| !expected.iter().any(|e| e == *n))
        .map(str::to_string)
        .collect();
    extra.sort();
    if extra.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{file_name} has unexpected tensors {}; expected {}",
            extra.join(", "),
            expected.join(", ")
        ))
    }
}

/// The values of tensor `name` with shape `shape`, widened to f64 (U8, BOOL, F32, F64).
fn numbers(
    file: &SafeTensors,
    file_name: &str,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f64>, String> {
    let t = file
        .tensor(name)
        .map_err(|_| format!("{file_name} has no tensor {name}"))?;
    if t.shape() != shape {
        return Err(format!(
            "{file_name}: {name} has shape {:?}; the layer's weights have shape {shape:?}",
            t.shape()
        ));
    }
    let data = t.data();
    Ok(match t.dtype() {
        Dtype::U8 | Dtype::BOOL => data.iter().map(|&b| b as f64).collect(),
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        other => {
            return Err(format!(
                "{file_name}: {name} has dtype {other:?}; expected U8 or BOOL (masks), F64 or F32 (scores, weights)"
            ));
        }
    })
}

/// θ_0 with every layer's weights (and biases, where the layer has them) from `start.*`.
fn start_network(file: &SafeTensors, net: &Network) -> Result<Network, String> {
    let mut expected = Vec::new();
    for (l, layer) in net.layers.iter().enumerate() {
        expected.push(format!("start.{l}.weight"));
        if layer.bias.is_some() {
            expected.push(format!("start.{l}.bias"));
        }
    }
    unexpected(file, START_FILE, &expected)?;
    let mut start = net.clone();
    for (l, layer) in start.layers.iter_mut().enumerate() {
        let read = |name: String, shape: &[usize]| -> Result<Vec<f32>, String> {
            numbers(file, START_FILE, &name, shape)?
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    finite(v)
                        .map(|v| v as f32)
                        .map_err(|why| format!("{START_FILE}: {name}[{i}] is {why}"))
                })
                .collect()
        };
        layer.weight = read(format!("start.{l}.weight"), &layer.shape.dims)?;
        if let Some(bias) = &mut layer.bias {
            *bias = read(format!("start.{l}.bias"), &[bias.len()])?;
        }
    }
    Ok(start)
}
