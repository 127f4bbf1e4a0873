use super::{RatioError, RatioRule, RuleInfo, RuleInput};
use ticketbench_core::Density;

/// Which of the reference's two formulas smart ratio uses (methods.md §2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmartVariant {
    /// `d_l = c·q_l / l²`: the reference's formula for every non-ResNet architecture (VGG,
    /// and by the same rule plain MLPs). ticketbench's default.
    #[default]
    Plain,
    /// `d_l = c·q_l`: the reference's ResNet formula.
    Resnet,
}

/// Smart ratio (Su et al. 2020, "Sanity-checking pruning methods: random tickets can win the
/// jackpot", arXiv 2009.11094), methods.md §2.5, with ticketbench's MLP adaptation.
///
/// Layers `l = 1..L` in forward order get raw keep weights `q_l = (L−l+1)² + (L−l+1)`
/// (12, 6, 2 for three layers). The **last** layer keeps the fixed `linear_keep_ratio`
/// (0.3); every other layer follows the formula, `d_l = c·q_l/l²` ([`SmartVariant::Plain`],
/// default) or `d_l = c·q_l` ([`SmartVariant::Resnet`]), with `c` solving
/// `Σ_{l<L} d_l n_l = D·N − linear_keep_ratio·n_L`. (The reference fixes *every* Linear
/// layer at 0.3, which would leave an MLP nothing to allocate.)
/// Overflow: walking the layers in order, a layer whose count exceeds `n_l` is clamped dense
/// and the excess carried forward to the next layers up to their capacity; excess reaching
/// the end is dropped (it cannot arise while `D ≤ 1`). A negative formula budget
/// (`D·N < linear_keep_ratio·n_L`) is an error.
pub struct SmartRatio {
    pub variant: SmartVariant,
    /// Fixed density of the last layer (reference `linear_keep_ratio`, 0.3).
    pub linear_keep_ratio: f64,
}

impl Default for SmartRatio {
    fn default() -> Self {
        SmartRatio {
            variant: SmartVariant::Plain,
            linear_keep_ratio: 0.3,
        }
    }
}

pub(super) const INFO: RuleInfo = RuleInfo {
    name: "smart-ratio",
    summary: "density ∝ ((L−l+1)² + (L−l+1))/l², last layer fixed at 0.3, overflow carried forward",
    citation: "Su et al. 2020, arXiv 2009.11094",
    build: || Box::new(SmartRatio::default()),
};

impl RatioRule for SmartRatio {
    fn name(&self) -> &'static str {
        INFO.name
    }

    fn densities(&self, input: RuleInput<'_>, density: Density) -> Result<Vec<f64>, RatioError> {
        let n: Vec<f64> = input.shapes().iter().map(|s| s.len() as f64).collect();
        let layers = n.len();
        if layers < 2 {
            return Err(RatioError::Infeasible {
                rule: INFO.name,
                reason: format!(
                    "needs at least two layers (the last keeps linear_keep_ratio, the formula \
                     sets the others), got {layers}"
                ),
            });
        }
        let last = layers - 1;
        let fixed = self.linear_keep_ratio;
        if !(0.0..=1.0).contains(&fixed) {
            return Err(RatioError::LayerDensityOutOfRange {
                rule: INFO.name,
                layer: last,
                density: fixed,
            });
        }
        // Raw weights of the formula layers (1-based l = i + 1).
        let q: Vec<f64> = (0..last)
            .map(|i| {
                let l = (i + 1) as f64;
                let j = (layers - i) as f64; // L − l + 1
                let q = j * j + j;
                match self.variant {
                    SmartVariant::Plain => q / (l * l),
                    SmartVariant::Resnet => q,
                }
            })
            .collect();
        let budget = density.get() * n.iter().sum::<f64>() - fixed * n[last];
        if budget < 0.0 {
            return Err(RatioError::Infeasible {
                rule: INFO.name,
                reason: format!(
                    "the last layer's fixed density {fixed} needs {} weights, more than D·N = {}",
                    fixed * n[last],
                    budget + fixed * n[last]
                ),
            });
        }
        let mass: f64 = q.iter().zip(&n).map(|(q, n)| q * n).sum();
        let c = budget / mass;
        let mut d: Vec<f64> = q.iter().map(|q| c * q).collect();
        d.push(fixed);
        // Overflow: clamp and carry the excess count forward.
        let mut carry = 0.0;
        for (dl, &nl) in d.iter_mut().zip(&n) {
            let x = *dl * nl + carry;
            if x >= nl {
                carry = x - nl;
                *dl = 1.0;
            } else {
                carry = 0.0;
                *dl = x / nl;
            }
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_close, lenet};
    use super::*;
    use ticketbench_core::LayerShape;

    fn rule(variant: SmartVariant) -> SmartRatio {
        SmartRatio {
            variant,
            ..SmartRatio::default()
        }
    }

    #[test]
    fn lenet_worked_densities_and_counts_plain() {
        // methods.md §2.8: q = (12, 6, 2); plain uses (12, 1.5, ·); last layer 0.3.
        let shapes = lenet();
        let input = RuleInput::Shapes(&shapes);
        let r = SmartRatio::default();
        assert_eq!(r.variant, SmartVariant::Plain);
        let d = |x| r.densities(input, Density::new(x).unwrap()).unwrap();
        assert_close(&d(0.10), &[0.110149, 0.013769, 0.3], 1e-6);
        assert_close(&d(0.02), &[0.021025, 0.002628, 0.3], 1e-6);
        let c = |x| r.counts(input, Density::new(x).unwrap()).unwrap();
        assert_eq!(c(0.10), vec![25907, 413, 300]);
        assert_eq!(c(0.02), vec![4945, 79, 300]);
    }

    #[test]
    fn lenet_worked_densities_and_counts_resnet() {
        let shapes = lenet();
        let input = RuleInput::Shapes(&shapes);
        let r = rule(SmartVariant::Resnet);
        let d = |x| r.densities(input, Density::new(x).unwrap()).unwrap();
        assert_close(&d(0.10), &[0.105196, 0.052598, 0.3], 1e-6);
        assert_close(&d(0.02), &[0.020080, 0.010040, 0.3], 1e-6);
        let c = |x| r.counts(input, Density::new(x).unwrap()).unwrap();
        assert_eq!(c(0.10), vec![24742, 1578, 300]);
        assert_eq!(c(0.02), vec![4723, 301, 300]);
    }

    #[test]
    fn overflow_is_carried_forward() {
        // LeNet at D = 0.95: the formula gives d_1 > 1 in both variants (1.057, 1.0096);
        // layer 1 is clamped dense and layer 2 takes the rest: (252890 − 300 − 235200)/30000.
        let shapes = lenet();
        let input = RuleInput::Shapes(&shapes);
        for v in [SmartVariant::Plain, SmartVariant::Resnet] {
            let d = rule(v)
                .densities(input, Density::new(0.95).unwrap())
                .unwrap();
            assert_close(&d, &[1.0, 17390.0 / 30000.0, 0.3], 1e-9);
        }
        // A carry that fills layer 2 too and spills into layer 3. n = (1000, 100, 10000,
        // 1000), plain, D = 0.5: budget 6050 − 300, c = 5750 / 26966.67, d_1 = 4.26, layer 2
        // is filled, layer 3 gets everything left: (5750 − 1000 − 100) / 10000.
        let shapes = vec![
            LayerShape::dense(100, 10),
            LayerShape::dense(10, 10),
            LayerShape::dense(100, 100),
            LayerShape::dense(100, 10),
        ];
        let input = RuleInput::Shapes(&shapes);
        let r = SmartRatio::default();
        let d = r.densities(input, Density::new(0.5).unwrap()).unwrap();
        assert_close(&d, &[1.0, 1.0, 0.465, 0.3], 1e-9);
        assert_eq!(
            r.counts(input, Density::new(0.5).unwrap()).unwrap(),
            vec![1000, 100, 4650, 300]
        );
        // Every formula layer full: the rest lands in the last layer (LeNet, D = 0.999).
        let shapes = lenet();
        let d = r
            .densities(RuleInput::Shapes(&shapes), Density::new(0.999).unwrap())
            .unwrap();
        assert_close(&d, &[1.0, 1.0, 0.3 + 0.4338], 1e-9);
    }

    #[test]
    fn infeasible_budgets_are_errors() {
        // LeNet at D = 0.001: 266.2 weights < 0.3 · 1000 for the last layer.
        let shapes = lenet();
        let r = SmartRatio::default()
            .densities(RuleInput::Shapes(&shapes), Density::new(0.001).unwrap());
        assert!(matches!(r, Err(RatioError::Infeasible { .. })), "{r:?}");
        let one = vec![LayerShape::dense(10, 10)];
        let r =
            SmartRatio::default().densities(RuleInput::Shapes(&one), Density::new(0.3).unwrap());
        assert!(matches!(r, Err(RatioError::Infeasible { .. })), "{r:?}");
    }
}
