//! Layerwise sparsity-ratio rules (methods.md §2): `densities(input, D) -> Vec<d_l>` with
//! `Σ_l d_l n_l = D·N` before integer rounding and every `d_l ∈ [0, 1]`.
//!
//! Most rules read only the layer shapes; weight-dependent rules (LAMP) read the weights of a
//! network, so every rule takes a [`RuleInput`].
//!
//! Adding a rule: one module implementing [`RatioRule`] plus one line in [`RULES`].

mod er;
mod erk;
mod igq;
mod lamp;
mod smart_ratio;
mod uniform;
mod uniform_plus;

pub use er::Er;
pub use erk::Erk;
pub use igq::Igq;
pub use lamp::Lamp;
pub use smart_ratio::{SmartRatio, SmartVariant};
pub use uniform::Uniform;
pub use uniform_plus::UniformPlus;

use thiserror::Error;
use ticketbench_core::{Density, LayerShape, Network, target_count};

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
    #[error(
        "ratio rule `{rule}` ranks weights by magnitude and needs a network's weights, not only layer shapes"
    )]
    NeedsWeights { rule: &'static str },
    #[error("{0}")]
    Core(#[from] ticketbench_core::CoreError),
}

/// What a ratio rule sees: layer shapes, and the weights for weight-dependent rules (LAMP).
#[derive(Debug, Clone, Copy)]
pub enum RuleInput<'a> {
    Shapes(&'a [LayerShape]),
    Network(&'a Network),
}

impl<'a> RuleInput<'a> {
    /// Layer shapes in network order.
    pub fn shapes(&self) -> Vec<LayerShape> {
        match self {
            RuleInput::Shapes(shapes) => shapes.to_vec(),
            RuleInput::Network(net) => net.shapes(),
        }
    }

    /// Per-layer weights (row-major, `[out, in]`), or `None` when only shapes are known.
    pub fn weights(&self) -> Option<Vec<&'a [f32]>> {
        match self {
            RuleInput::Shapes(_) => None,
            RuleInput::Network(net) => {
                Some(net.layers.iter().map(|l| l.weight.as_slice()).collect())
            }
        }
    }
}

/// A layerwise density rule.
pub trait RatioRule: Send + Sync {
    /// The suite-file name, e.g. `erk`.
    fn name(&self) -> &'static str;

    /// True for rules that read weights (LAMP): they need [`RuleInput::Network`].
    fn needs_weights(&self) -> bool {
        false
    }

    /// Per-layer densities `d_l` (in layer order) reaching the global density `density`.
    fn densities(&self, input: RuleInput<'_>, density: Density) -> Result<Vec<f64>, RatioError>;

    /// Integer keep counts `k_l` per §2.9 (sum exactly `round_half_up(D·N)`).
    fn counts(&self, input: RuleInput<'_>, density: Density) -> Result<Vec<usize>, RatioError> {
        let d = self.densities(input, density)?;
        for (layer, &dl) in d.iter().enumerate() {
            if !(0.0..=1.0).contains(&dl) {
                return Err(RatioError::LayerDensityOutOfRange {
                    rule: self.name(),
                    layer,
                    density: dl,
                });
            }
        }
        layer_counts(&input.shapes(), &d, density)
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
pub const RULES: &[RuleInfo] = &[
    uniform::INFO,
    uniform_plus::INFO,
    er::INFO,
    erk::INFO,
    smart_ratio::INFO,
    igq::INFO,
    lamp::INFO,
];

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

    /// Shapes (8,1,3,3), (16,8,3,3), dense (10, 784) of the methods.md §2.4 conv example.
    pub fn conv_example() -> Vec<LayerShape> {
        vec![
            LayerShape {
                dims: vec![8, 1, 3, 3],
            },
            LayerShape {
                dims: vec![16, 8, 3, 3],
            },
            LayerShape {
                dims: vec![10, 784],
            },
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

    #[test]
    fn registry_names_in_order() {
        assert_eq!(
            rule_names(),
            vec![
                "uniform",
                "uniform-plus",
                "er",
                "erk",
                "smart-ratio",
                "igq",
                "lamp"
            ]
        );
        for info in RULES {
            let r = (info.build)();
            assert_eq!(r.name(), info.name);
            assert_eq!(r.needs_weights(), info.name == "lamp", "{}", info.name);
        }
    }

    #[test]
    fn every_rule_meets_the_budget_on_lenet() {
        // Shape-only rules on shapes and on a network agree, and every rule's counts hit K.
        let net = ticketbench_core::Network::mlp(
            &[784, 300, 100, 10],
            false,
            ticketbench_core::InitScheme::KaimingNormal,
            &ticketbench_core::Streams::new(0),
        )
        .unwrap();
        let shapes = lenet();
        for x in [0.5, 0.1, 0.02] {
            let density = Density::new(x).unwrap();
            let k = target_count(density, 266_200).unwrap();
            for info in RULES {
                let r = (info.build)();
                let from_net = r.counts(RuleInput::Network(&net), density).unwrap();
                assert_eq!(from_net.iter().sum::<usize>(), k, "{} at {x}", info.name);
                if !r.needs_weights() {
                    let from_shapes = r.counts(RuleInput::Shapes(&shapes), density).unwrap();
                    assert_eq!(from_shapes, from_net, "{} at {x}", info.name);
                    let d = r.densities(RuleInput::Shapes(&shapes), density).unwrap();
                    let kept: f64 = d.iter().zip(&shapes).map(|(d, s)| d * s.len() as f64).sum();
                    assert!(
                        (kept - x * 266_200.0).abs() < 1e-6,
                        "{} at {x}: {kept}",
                        info.name
                    );
                }
            }
        }
    }
}
