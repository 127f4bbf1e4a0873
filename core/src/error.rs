use thiserror::Error;

/// Errors of the core types: invalid densities, shape mismatches, impossible selections.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    #[error(
        "density {0} is outside (0, 1]; use a fraction of weights kept, e.g. 0.1 for 90% sparsity"
    )]
    DensityOutOfRange(f64),
    #[error(
        "density {density} keeps no weight of a network with {total} prunable weights; use a density of at least {min:.3e}"
    )]
    DensityTooSmall {
        density: f64,
        total: usize,
        min: f64,
    },
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),
    #[error("cannot keep {requested} entries: only {available} candidates")]
    NotEnoughCandidates { requested: usize, available: usize },
    #[error("score {value} at layer {layer}, index {index} is not a number; a scorer produced NaN")]
    NanScore {
        layer: usize,
        index: usize,
        value: f64,
    },
    #[error("network needs at least two widths (input and output), got {0:?}")]
    TooFewWidths(Vec<usize>),
    #[error("width 0 in {0:?}: every layer needs at least one unit")]
    ZeroWidth(Vec<usize>),
}
