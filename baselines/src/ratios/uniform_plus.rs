use super::{RatioError, RatioRule, RuleInfo, RuleInput};
use ticketbench_core::Density;

/// Smallest density of the output layer (at most 80% sparse).
const OUTPUT_MIN_DENSITY: f64 = 0.2;

/// Uniform+ (Gale et al. 2019, arXiv 1902.09574), methods.md §2.2.
///
/// The first layer is dense **if it is a conv layer** (4 dims), the output layer keeps at
/// least density 0.2, and all other layers share one density `u`. Budget `B = D·N`; a dense
/// conv first layer takes `B ← B − n_1`; `u = B / Σ_remaining n_l`; if `u < 0.2` the output
/// layer is set to 0.2, `B ← B − 0.2 n_L`, and `u` is recomputed over the middle layers.
/// A negative budget or `u > 1` is an error ([`RatioError::Infeasible`]), never clipped.
/// The first-layer exception applies to conv layers only (LAMP repository); MLP first layers
/// are usually far larger than the whole budget (LeNet-300-100: 235200 > 26620).
#[derive(Default)]
pub struct UniformPlus {
    /// Make the first layer dense even when it is not a conv layer (methods.md §2.2's
    /// `first_dense = true`); errors when infeasible, as it is for most MLPs.
    pub force_first_dense: bool,
}

pub(super) const INFO: RuleInfo = RuleInfo {
    name: "uniform-plus",
    summary: "uniform, but a conv first layer dense and the output layer at density >= 0.2",
    citation: "Gale et al. 2019, arXiv 1902.09574; Lee et al. 2021 (LAMP), arXiv 2010.07611",
    build: || Box::new(UniformPlus::default()),
};

impl RatioRule for UniformPlus {
    fn name(&self) -> &'static str {
        INFO.name
    }

    fn densities(&self, input: RuleInput<'_>, density: Density) -> Result<Vec<f64>, RatioError> {
        let shapes = input.shapes();
        let n: Vec<f64> = shapes.iter().map(|s| s.len() as f64).collect();
        let layers = n.len();
        if layers == 0 {
            return Ok(Vec::new());
        }
        let infeasible = |reason: String| RatioError::Infeasible {
            rule: INFO.name,
            reason,
        };
        let mut d = vec![0.0; layers];
        let mut free = vec![true; layers];
        let mut budget = density.get() * n.iter().sum::<f64>();
        // The first layer is never also the output layer here: a one-layer network is all output.
        if layers >= 2 && (shapes[0].dims.len() == 4 || self.force_first_dense) {
            d[0] = 1.0;
            free[0] = false;
            budget -= n[0];
            if budget < 0.0 {
                return Err(infeasible(format!(
                    "a dense first layer needs {} weights but the whole budget D·N is {}",
                    n[0],
                    budget + n[0]
                )));
            }
        }
        let free_mass = |free: &[bool]| -> f64 {
            n.iter()
                .zip(free)
                .filter(|(_, f)| **f)
                .map(|(n, _)| n)
                .sum()
        };
        let mut u = budget / free_mass(&free);
        let last = layers - 1;
        if u < OUTPUT_MIN_DENSITY {
            d[last] = OUTPUT_MIN_DENSITY;
            free[last] = false;
            budget -= OUTPUT_MIN_DENSITY * n[last];
            if budget < 0.0 {
                return Err(infeasible(format!(
                    "the output layer's minimum density {OUTPUT_MIN_DENSITY} needs {} weights, \
                     {} more than the budget left",
                    OUTPUT_MIN_DENSITY * n[last],
                    -budget
                )));
            }
            let mass = free_mass(&free);
            u = if mass > 0.0 { budget / mass } else { 0.0 };
        }
        if u > 1.0 {
            return Err(infeasible(format!(
                "the shared density of the other layers would be {u} > 1"
            )));
        }
        for (dl, _) in d.iter_mut().zip(&free).filter(|(_, f)| **f) {
            *dl = u;
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_close, conv_example, lenet};
    use super::*;

    #[test]
    fn lenet_worked_densities_and_counts() {
        // methods.md §2.8: no first-layer exception for an MLP; output layer at 0.2.
        let shapes = lenet();
        let input = RuleInput::Shapes(&shapes);
        let rule = UniformPlus::default();
        let d = |x| rule.densities(input, Density::new(x).unwrap()).unwrap();
        assert_close(&d(0.10), &[0.099623, 0.099623, 0.2], 1e-6);
        assert_close(&d(0.02), &[0.019321, 0.019321, 0.2], 1e-6);
        let c = |x| rule.counts(input, Density::new(x).unwrap()).unwrap();
        assert_eq!(c(0.10), vec![23431, 2989, 200]);
        assert_eq!(c(0.02), vec![4544, 580, 200]);
        // Above the floor the output layer is not special: plain uniform.
        assert_close(&d(0.5), &[0.5, 0.5, 0.5], 1e-12);
    }

    #[test]
    fn conv_first_layer_is_dense() {
        // n = (72, 1152, 7840), N = 9064. D = 0.5: B = 4532 − 72 over 8992 weights, u = 0.496.
        // D = 0.2: u = 1740.8 / 8992 < 0.2, so the output gets 0.2 and the middle layer
        // (1740.8 − 1568) / 1152 = 0.15.
        let shapes = conv_example();
        let input = RuleInput::Shapes(&shapes);
        let rule = UniformPlus::default();
        let d = |x| rule.densities(input, Density::new(x).unwrap()).unwrap();
        assert_close(&d(0.5), &[1.0, 4460.0 / 8992.0, 4460.0 / 8992.0], 1e-12);
        assert_close(&d(0.2), &[1.0, 0.15, 0.2], 1e-12);
        let k: usize = rule
            .counts(input, Density::new(0.2).unwrap())
            .unwrap()
            .iter()
            .sum();
        assert_eq!(k, 1813);
    }

    #[test]
    fn infeasible_budgets_are_errors() {
        let infeasible = |r: Result<Vec<f64>, RatioError>| {
            assert!(
                matches!(
                    r,
                    Err(RatioError::Infeasible {
                        rule: "uniform-plus",
                        ..
                    })
                ),
                "{r:?}"
            );
        };
        // Conv example at D = 0.1: 906.4 − 72 (dense conv first layer) < 0.2 · 7840.
        let conv = conv_example();
        infeasible(
            UniformPlus::default().densities(RuleInput::Shapes(&conv), Density::new(0.1).unwrap()),
        );
        // LeNet-300-100 at D = 0.0005: 133.1 weights < 0.2 · 1000 for the output layer.
        let lenet = lenet();
        let input = RuleInput::Shapes(&lenet);
        infeasible(UniformPlus::default().densities(input, Density::new(0.0005).unwrap()));
        // A forced dense MLP first layer: 235200 > 26620.
        let forced = UniformPlus {
            force_first_dense: true,
        };
        let err = forced.densities(input, Density::new(0.1).unwrap());
        infeasible(err.clone());
        assert!(err.unwrap_err().to_string().contains("235200"));
        // The default `counts` passes the error through.
        assert!(forced.counts(input, Density::new(0.1).unwrap()).is_err());
    }
}
