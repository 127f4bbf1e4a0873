//! Safetensors files as ticketbench writes and reads them: exported tickets
//! ([`crate::export`]) and the external-method protocol's requests and answers
//! (docs/external-methods.md). Little-endian, row-major, one metadata key `ticketbench`.

use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::Path;
use thiserror::Error;
use ticketbench_core::Network;
use ticketbench_planted::{Dataset, Targets};

#[derive(Debug, Error)]
pub enum TensorFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("safetensors: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
}

pub(crate) struct Owned {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn u8_mask(name: String, shape: Vec<usize>, keep: &[bool]) -> Owned {
    Owned {
        name,
        dtype: Dtype::U8,
        shape,
        bytes: keep.iter().map(|&k| k as u8).collect(),
    }
}

/// The bytes of a safetensors file of `tensors`, with `summary` as the one metadata key
/// `ticketbench` (one key: safetensors writes metadata from a HashMap, whose order would vary
/// per run, so the same tensors always give the same bytes).
pub(crate) fn to_bytes(
    tensors: &[Owned],
    summary: &serde_json::Value,
) -> Result<Vec<u8>, TensorFileError> {
    let metadata = HashMap::from([("ticketbench".to_string(), summary.to_string())]);
    let views = tensors
        .iter()
        .map(|t| TensorView::new(t.dtype, t.shape.clone(), &t.bytes).map(|v| (t.name.clone(), v)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(safetensors::tensor::serialize(views, Some(metadata))?)
}

/// Writes `tensors` to `dir/file` (see [`to_bytes`]).
pub(crate) fn write_file(
    dir: &Path,
    file: &str,
    tensors: &[Owned],
    summary: &serde_json::Value,
) -> Result<std::path::PathBuf, TensorFileError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TensorFileError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(file);
    std::fs::write(&path, to_bytes(tensors, summary)?).map_err(io(&path))?;
    Ok(path)
}

/// `<prefix>.x` (F32 `[n, inputs]`) and `<prefix>.y`: class labels as I64 `[n]` (what
/// PyTorch's cross-entropy takes), regression targets as F32 `[n, outputs]`.
pub(crate) fn push_dataset(out: &mut Vec<Owned>, prefix: &str, data: &Dataset) {
    out.push(Owned {
        name: format!("{prefix}.x"),
        dtype: Dtype::F32,
        shape: vec![data.len(), data.input_dim],
        bytes: f32_bytes(&data.inputs),
    });
    out.push(match &data.targets {
        Targets::Classes(y) => Owned {
            name: format!("{prefix}.y"),
            dtype: Dtype::I64,
            shape: vec![y.len()],
            bytes: y.iter().flat_map(|&c| (c as i64).to_le_bytes()).collect(),
        },
        Targets::Values { values, dim } => Owned {
            name: format!("{prefix}.y"),
            dtype: Dtype::F32,
            shape: vec![values.len() / (*dim).max(1), *dim],
            bytes: f32_bytes(values),
        },
    });
}

pub(crate) fn push_network(out: &mut Vec<Owned>, prefix: &str, net: &Network) {
    for (l, layer) in net.layers.iter().enumerate() {
        out.push(Owned {
            name: format!("{prefix}.{l}.weight"),
            dtype: Dtype::F32,
            shape: layer.shape.dims.clone(),
            bytes: f32_bytes(&layer.weight),
        });
        if let Some(b) = &layer.bias {
            out.push(Owned {
                name: format!("{prefix}.{l}.bias"),
                dtype: Dtype::F32,
                shape: vec![b.len()],
                bytes: f32_bytes(b),
            });
        }
    }
}
