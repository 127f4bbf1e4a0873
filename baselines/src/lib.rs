//! ticketbench-baselines: the baselines every pruning method is compared against.
//!
//! * [`ratios`]: layerwise density rules (`densities(input, D) -> d_l`, where the input is
//!   layer shapes or, for weight-dependent rules such as LAMP, a network) and the integer
//!   rounding of layer budgets (methods.md §2, §2.9).
//! * [`random_ticket`]: a uniformly random mask with given per-layer counts, i.e. a random
//!   ticket at any ratio rule, or at "the layerwise densities of method M".
//! * [`checks`]: the sanity-check transforms of methods.md §3.1 (mask shuffles, weight
//!   shuffle, reinit, score inversion, random labels / pixels on the scoring data).
//!
//! No tensor engine here.

pub mod checks;
pub mod random_ticket;
pub mod ratios;

pub use checks::{
    CheckError, CheckStage, SanityCheck, Scope, global_shuffle, invert, layer_shuffle,
    random_labels, random_pixels, reinit, weight_shuffle,
};
pub use random_ticket::random_ticket;
pub use ratios::{RatioError, RatioRule, RuleInfo, RuleInput, layer_counts};
