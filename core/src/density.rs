use crate::CoreError;
use serde::{Deserialize, Serialize};

/// A validated density: the fraction of prunable weights kept, in (0, 1].
///
/// Sparsity is `1 − d`, compression `1/d`; a "90% sparse" ticket has density 0.1.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Density(f64);

impl Density {
    /// The dense network (density 1).
    pub const DENSE: Density = Density(1.0);

    /// Validates `value ∈ (0, 1]` (NaN and infinities are rejected).
    pub fn new(value: f64) -> Result<Self, CoreError> {
        if value.is_finite() && value > 0.0 && value <= 1.0 {
            Ok(Density(value))
        } else {
            Err(CoreError::DensityOutOfRange(value))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }

    pub fn is_dense(self) -> bool {
        self.0 >= 1.0
    }
}

impl TryFrom<f64> for Density {
    type Error = CoreError;
    fn try_from(value: f64) -> Result<Self, Self::Error> {
        Density::new(value)
    }
}

impl From<Density> for f64 {
    fn from(d: Density) -> f64 {
        d.0
    }
}

impl std::fmt::Display for Density {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The ticketbench exact-k rule: `K = round_half_up(d·N)` (methods.md §0 and §2.9).
///
/// Errors when `K = 0`, i.e. the density is too small to keep a single weight.
pub fn target_count(density: Density, total: usize) -> Result<usize, CoreError> {
    let k = (density.get() * total as f64 + 0.5).floor() as usize;
    if k == 0 {
        return Err(CoreError::DensityTooSmall {
            density: density.get(),
            total,
            min: 0.5 / total.max(1) as f64,
        });
    }
    Ok(k.min(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_out_of_range() {
        for bad in [0.0, -1.0, 1.5, f64::NAN, f64::INFINITY] {
            assert!(Density::new(bad).is_err(), "{bad} accepted");
        }
        assert!(Density::new(1.0).is_ok());
        assert!(Density::new(1e-9).is_ok());
    }

    #[test]
    fn rounds_half_up() {
        // methods.md §2.8: LeNet-300-100 budgets 26620 / 5324.
        assert_eq!(
            target_count(Density::new(0.10).unwrap(), 266_200),
            Ok(26_620)
        );
        assert_eq!(
            target_count(Density::new(0.02).unwrap(), 266_200),
            Ok(5_324)
        );
        assert_eq!(target_count(Density::new(0.5).unwrap(), 3), Ok(2)); // 1.5 -> 2
        assert_eq!(target_count(Density::new(0.25).unwrap(), 2), Ok(1)); // 0.5 -> 1
        assert!(target_count(Density::new(0.1).unwrap(), 4).is_err()); // 0.4 -> 0
    }
}
