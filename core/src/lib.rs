//! ticketbench-core: the pure-math vocabulary every other ticketbench crate speaks.
//!
//! * [`LayerShape`], [`Layer`] and [`Network`]: a host-side network (f32 weights and biases,
//!   PyTorch layout `[out, in]`), initialised from named ChaCha streams so every device starts
//!   from bit-identical bytes ([`InitScheme`]).
//! * [`Mask`]: one keep-bit per prunable weight, with global and per-layer density.
//! * [`Streams`]: named, seeded ChaCha8 random streams (`(seed, purpose) -> stream`).
//! * [`Density`] and [`select`]: validated densities and the exact-k selection rule shared by
//!   every pruning method (keep exactly `round_half_up(d·N)` entries, ties by flat index).
//!
//! * [`channel_structured`]: the channel-level structured version of a convolution mask.
//!
//! No tensor engine here: this crate compiles in seconds and is tested on its own.

mod conv;
mod density;
mod error;
mod init;
mod mask;
mod network;
pub mod select;
mod streams;
mod structure;

pub use conv::{Conv2d, Im2col};
pub use density::{Density, target_count};
pub use error::CoreError;
pub use init::InitScheme;
pub use mask::Mask;
pub use network::{ConvNetSpec, ConvSpec, Layer, LayerShape, Network};
pub use select::Scores;
pub use streams::{StreamRng, Streams, sample_index, sample_standard_normal, sample_uniform};
pub use structure::channel_structured;
