//! Export of tickets as safetensors, readable from numpy (`safetensors.numpy.load_file`) and
//! PyTorch. Tensor names (docs/export.md):
//!
//! | name | dtype | shape | content |
//! |---|---|---|---|
//! | `layers.<l>.weight` | F32 | `[out, in]` | θ_0, the initial weights (PyTorch `nn.Linear` layout) |
//! | `layers.<l>.bias` | F32 | `[out]` | initial bias (absent for bias-free models) |
//! | `layers.<l>.mask` | U8 | `[out, in]` | 1 = kept, 0 = pruned |
//! | `layers.<l>.scores` | F64 | `[out, in]` | the method's final scores, where it has them |
//! | `start.<l>.weight`, `start.<l>.bias` | F32 | as above | the weights the ticket trains from, when they are not θ_0 |
//! | `scoring.x`, `scoring.y` | F32, I64 (F32 for regression) | `[n, in]`, `[n]` (`[n, out]`) | the class-balanced scoring batch SNIP and GraSP use at this seed |
//!
//! The file's metadata key `ticketbench` holds the settings as one JSON string (`method`,
//! `density`, `seed`, …), so the same ticket always gives the same bytes.
//!
//! `ticketbench plant --export` writes `planted.safetensors` (docs/export.md):
//!
//! | name | dtype | shape | content |
//! |---|---|---|---|
//! | `host.<l>.weight`, `host.<l>.bias` | F32 | `[out, in]`, `[out]` | the host with the planted values written in |
//! | `planted.<l>.mask` | U8 | `[out, in]` | 1 = planted edge |
//! | `planted.<l>.bias_mask` | U8 | `[out]` | 1 = bias belongs to the ticket |
//! | `target.<l>.weight`, `target.<l>.bias` | F64 | `[out, in]`, `[out]` | the target network |
//! | `output_scale` | F64 | `[n_out]` | λ_out: masked host output = λ_out ⊙ target output |

use crate::methods::PruneOutcome;
use crate::tensor_file::{Owned, f64_bytes, push_dataset, push_network, u8_mask, write_file};
use safetensors::tensor::Dtype;
use std::path::Path;
use ticketbench_core::Network;
use ticketbench_planted::{Dataset, PlantedTicket};

pub const TICKET_FILE: &str = "ticket.safetensors";
pub const PLANTED_FILE: &str = "planted.safetensors";

pub use crate::tensor_file::TensorFileError as ExportError;

/// Writes `dir/planted.safetensors`: host, planted masks, target and output scale.
pub fn export_planted(
    dir: &Path,
    planted: &PlantedTicket,
    summary: &serde_json::Value,
) -> Result<std::path::PathBuf, ExportError> {
    let mut tensors = Vec::new();
    push_network(&mut tensors, "host", &planted.host);
    for (l, layer) in planted.host.layers.iter().enumerate() {
        tensors.push(u8_mask(
            format!("planted.{l}.mask"),
            layer.shape.dims.clone(),
            planted.mask.layer(l),
        ));
        tensors.push(u8_mask(
            format!("planted.{l}.bias_mask"),
            vec![layer.shape.fan_out()],
            &planted.bias_mask[l],
        ));
    }
    for (l, t) in planted.target.layers.iter().enumerate() {
        tensors.push(Owned {
            name: format!("target.{l}.weight"),
            dtype: Dtype::F64,
            shape: vec![t.fan_out, t.fan_in],
            bytes: f64_bytes(&t.weight),
        });
        tensors.push(Owned {
            name: format!("target.{l}.bias"),
            dtype: Dtype::F64,
            shape: vec![t.fan_out],
            bytes: f64_bytes(&t.bias),
        });
    }
    tensors.push(Owned {
        name: "output_scale".into(),
        dtype: Dtype::F64,
        shape: vec![planted.output_scale.len()],
        bytes: f64_bytes(&planted.output_scale),
    });
    write_file(dir, PLANTED_FILE, &tensors, summary)
}

/// Writes `dir/ticket.safetensors` for θ_0, a method's outcome and the scoring batch.
pub fn export_ticket(
    dir: &Path,
    net: &Network,
    outcome: &PruneOutcome,
    scoring: &Dataset,
    summary: &serde_json::Value,
) -> Result<std::path::PathBuf, ExportError> {
    let mut tensors = Vec::new();
    push_network(&mut tensors, "layers", net);
    for (l, (layer, keep)) in net.layers.iter().zip(outcome.mask.layers()).enumerate() {
        tensors.push(u8_mask(
            format!("layers.{l}.mask"),
            layer.shape.dims.clone(),
            keep,
        ));
    }
    if let Some(scores) = &outcome.scores {
        for (l, (layer, s)) in net.layers.iter().zip(&scores.layers).enumerate() {
            tensors.push(Owned {
                name: format!("layers.{l}.scores"),
                dtype: Dtype::F64,
                shape: layer.shape.dims.clone(),
                bytes: f64_bytes(s),
            });
        }
    }
    if let Some(start) = &outcome.start {
        push_network(&mut tensors, "start", start);
    }
    push_dataset(&mut tensors, "scoring", scoring);
    write_file(dir, TICKET_FILE, &tensors, summary)
}
