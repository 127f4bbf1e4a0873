//! Layerwise sparsity-ratio rules (methods.md §2): `densities(shapes, D) -> Vec<d_l>` with
//! `Σ_l d_l n_l = D·N` before integer rounding and every `d_l ∈ [0, 1]`.
//!
//! Adding a rule: one module implementing [`RatioRule`] plus one line in [`RULES`].

mod erk;
mod uniform;

pub use erk::Erk;
pub use uniform::Uniform;

use thiserror::Error;
use ticketbench_core::{Density, LayerShape, target_count};

/// Errors of ratio rules and budget rounding.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RatioError {
    #[error("unknown ratio rule `{name}`; valid rules: {valid}")]
    UnknownRule { name: String, valid: String },
    #[error("ratio rule `{rule}` gave layer {layer} the density {density}, outside [0, 1]")]
    LayerDensityOutOfRange {
        rule: &'static str,
        layer: usize,
        density: f64,
    },
    #[error("ratio rule `{rule}` is infeasible: {reason}")]
    Infeasible { rule: &'static str, reason: String },
    #[error("{0}")]
    Core(#[from] ticketbench_core::CoreError),
}

/// A layerwise density rule.
pub trait RatioRule: Send + Sync {
    /// The suite-file name, e.g. `erk`.
    fn name(&self) -> &'static str;

    /// Per-layer densities `d_l` (in layer order) reaching the global density `density`.
    fn densities(&self, shapes: &[LayerShape], density: Density) -> Result<Vec<f64>, RatioError>;

    /// Integer keep counts `k_l` per §2.9 (sum exactly `round_half_up(D·N)`).
    fn counts(&self, shapes: &[LayerShape], density: Density) -> Result<Vec<usize>, RatioError> {
        let d = self.densities(shapes, density)?;
        for (layer, &dl) in d.iter().enumerate() {
            if !(0.0..=1.0).contains(&dl) {
                return Err(RatioError::LayerDensityOutOfRange {
                    rule: self.name(),
                    layer,
                    density: dl,
                });
            }
        }
        layer_counts(shapes, &d, density)
    }
}

/// Registry entry of a ratio rule: what `ticketbench list` shows and how to build it.
pub struct RuleInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub citation: &'static str,
    pub build: fn() -> Box<dyn RatioRule>,
}

/// Every ratio rule ticketbench ships, by suite-file name.
pub const RULES: &[RuleInfo] = &[uniform::INFO, erk::INFO];

/// Looks a rule up by name, with the list of valid names in the error.
pub fn rule(name: &str) -> Result<Box<dyn RatioRule>, RatioError> {
    RULES
        .iter()
        .find(|r| r.name == name)
        .map(|r| (r.build)())
        .ok_or_else(|| RatioError::UnknownRule {
            name: name.to_string(),
            valid: rule_names().join(", "),
        })
}

pub fn rule_names() -> Vec<&'static str> {
    RULES.iter().map(|r| r.name).collect()
}

/// Integer rounding of layer budgets (methods.md §2.9).
///
/// `K = round_half_up(D·N)`; `x_l = d_l n_l`; `k_l = min(n_l, ⌊x_l⌋)`; the remaining
/// `K − Σ k_l` weights go one at a time to layers in order of decreasing fractional part
/// (ties to the lower layer index), skipping full layers. Guarantees `Σ k_l = K` and
/// `|k_l − x_l| < 1`.
pub fn layer_counts(
    shapes: &[LayerShape],
    densities: &[f64],
    density: Density,
) -> Result<Vec<usize>, RatioError> {
    let total: usize = shapes.iter().map(LayerShape::len).sum();
    let k_total = target_count(density, total)?;
    let raw: Vec<f64> = shapes
        .iter()
        .zip(densities)
        .map(|(s, &d)| d * s.len() as f64)
        .collect();
    let mut counts: Vec<usize> = raw
        .iter()
        .zip(shapes)
        .map(|(&x, s)| (x.floor() as usize).min(s.len()))
        .collect();
    let mut order: Vec<usize> = (0..shapes.len()).collect();
    let frac = |l: usize| raw[l] - raw[l].floor();
    order.sort_by(|&a, &b| {
        frac(b)
            .partial_cmp(&frac(a))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    let mut assigned: usize = counts.iter().sum();
    if assigned > k_total {
        return Err(RatioError::Infeasible {
            rule: "rounding",
            reason: format!("layer budgets sum to {assigned} > K = {k_total}"),
        });
    }
    // Cycle through the fractional-part order; floating error can leave up to L extra.
    while assigned < k_total {
        let before = assigned;
        for &l in &order {
            if assigned == k_total {
                break;
            }
            if counts[l] < shapes[l].len() {
                counts[l] += 1;
                assigned += 1;
            }
        }
        if assigned == before {
            return Err(RatioError::Infeasible {
                rule: "rounding",
                reason: format!("cannot place {k_total} weights in {total}"),
            });
        }
    }
    Ok(counts)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn lenet() -> Vec<LayerShape> {
        vec![
            LayerShape::dense(784, 300),
            LayerShape::dense(300, 100),
            LayerShape::dense(100, 10),
        ]
    }

    pub fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol, "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn rounding_hits_k_exactly() {
        let shapes = lenet();
        let d = Density::new(0.1).unwrap();
        let counts = layer_counts(&shapes, &[0.1, 0.1, 0.1], d).unwrap();
        assert_eq!(counts, vec![23520, 3000, 100]);
        // Fractional parts decide: x = (1.5, 1.5, 0) of K = 3 -> first layer wins the tie.
        let small = vec![
            LayerShape::dense(2, 2),
            LayerShape::dense(2, 2),
            LayerShape::dense(2, 2),
        ];
        let c = layer_counts(&small, &[0.375, 0.375, 0.0], Density::new(0.25).unwrap()).unwrap();
        assert_eq!(c, vec![2, 1, 0]);
    }

    #[test]
    fn registry_lookup() {
        assert_eq!(rule("erk").unwrap().name(), "erk");
        let err = rule("erkk").err().unwrap().to_string();
        assert!(err.contains("uniform") && err.contains("erk"), "{err}");
    }
}
