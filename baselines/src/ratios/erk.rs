use super::{RatioError, RatioRule, RuleInfo, RuleInput};
use ticketbench_core::{Density, LayerShape};

/// Erdős–Rényi-Kernel (Evci et al. 2020, RigL, arXiv 1911.11134), methods.md §2.4.
///
/// Raw density `r_l = (Σ dims W_l) / (Π dims W_l)` — dense: `(n_in + n_out)/(n_in·n_out)`,
/// conv: `(c_out + c_in + k_h + k_w)/(c_out·c_in·k_h·k_w)` — optionally raised to the power β.
/// `d_l = ε r_l` with `ε = budget / Σ_free r_l n_l`; while some `ε r_l > 1`, every free layer
/// tied at the maximal raw ratio becomes dense and ε is recomputed over the rest (RigL's
/// redistribution loop, exact budget form; see [`redistribute`], shared with ER).
pub struct Erk {
    /// `erk_power_scale` β (1 by default).
    pub power: f64,
}

pub(super) const INFO: RuleInfo = RuleInfo {
    name: "erk",
    summary: "density ∝ (Σ dims)/(Π dims), saturated layers made dense and the rest rescaled",
    citation: "Evci et al. 2020 (RigL), arXiv 1911.11134; ER: Mocanu et al. 2018, arXiv 1707.04780",
    build: || Box::new(Erk { power: 1.0 }),
};

impl Erk {
    fn raw(&self, shape: &LayerShape) -> f64 {
        let sum: usize = shape.dims.iter().sum();
        (sum as f64 / shape.len() as f64).powf(self.power)
    }
}

impl RatioRule for Erk {
    fn name(&self) -> &'static str {
        INFO.name
    }

    fn densities(&self, input: RuleInput<'_>, density: Density) -> Result<Vec<f64>, RatioError> {
        let shapes = input.shapes();
        let raw: Vec<f64> = shapes.iter().map(|s| self.raw(s)).collect();
        redistribute(INFO.name, &shapes, &raw, density)
    }
}

/// The RigL redistribution loop (methods.md §2.4, `get_sparsities_erdos_renyi`, exact budget
/// form), shared by ER and ERK: `d_l = ε r_l` for the raw ratios `raw`; while the largest
/// `ε r_l` of the free layers exceeds 1, every free layer tied at the maximal raw ratio becomes
/// dense and ε is recomputed over the remaining layers with the remaining budget.
pub(super) fn redistribute(
    rule: &'static str,
    shapes: &[LayerShape],
    raw: &[f64],
    density: Density,
) -> Result<Vec<f64>, RatioError> {
    debug_assert_eq!(shapes.len(), raw.len());
    let total: f64 = shapes.iter().map(|s| s.len() as f64).sum();
    let mut dense = vec![false; shapes.len()];
    loop {
        let budget = density.get() * total
            - shapes
                .iter()
                .zip(&dense)
                .filter(|(_, d)| **d)
                .map(|(s, _)| s.len() as f64)
                .sum::<f64>();
        let free_mass: f64 = shapes
            .iter()
            .zip(raw)
            .zip(&dense)
            .filter(|(_, d)| !**d)
            .map(|((s, r), _)| r * s.len() as f64)
            .sum();
        if free_mass <= 0.0 {
            // Every layer dense: only possible at D = 1.
            return Ok(vec![1.0; shapes.len()]);
        }
        if budget < 0.0 {
            return Err(RatioError::Infeasible {
                rule,
                reason: format!("negative budget {budget}"),
            });
        }
        let eps = budget / free_mass;
        let max_raw = raw
            .iter()
            .zip(&dense)
            .filter(|(_, d)| !**d)
            .map(|(r, _)| *r)
            .fold(f64::MIN, f64::max);
        if eps * max_raw <= 1.0 {
            return Ok(raw
                .iter()
                .zip(&dense)
                .map(|(r, &d)| if d { 1.0 } else { eps * r })
                .collect());
        }
        for (l, r) in raw.iter().enumerate() {
            if !dense[l] && *r == max_raw {
                dense[l] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_close, conv_example, lenet};
    use super::*;

    #[test]
    fn lenet_worked_densities_and_counts() {
        // methods.md §2.8: ER = ERK for dense layers.
        let erk = Erk { power: 1.0 };
        let shapes = lenet();
        let input = RuleInput::Shapes(&shapes);
        let d = |x| erk.densities(input, Density::new(x).unwrap()).unwrap();
        assert_close(&d(0.10), &[0.079568, 0.230189, 1.0], 1e-6);
        assert_close(&d(0.02), &[0.015394, 0.044534, 0.367403], 1e-6);
        let c = |x| erk.counts(input, Density::new(x).unwrap()).unwrap();
        assert_eq!(c(0.10), vec![18714, 6906, 1000]);
        assert_eq!(c(0.02), vec![3621, 1336, 367]);
    }

    #[test]
    fn lenet_worked_epsilon() {
        // methods.md §2.8: ε = 17.264151 at D = 0.10 (second pass), 3.340025 at D = 0.02;
        // raw r_2 = (300 + 100)/(300·100).
        let shapes = lenet();
        let r2 = 400.0 / 30_000.0;
        for (x, eps) in [(0.10, 17.264151), (0.02, 3.340025)] {
            let d = Erk { power: 1.0 }
                .densities(RuleInput::Shapes(&shapes), Density::new(x).unwrap())
                .unwrap();
            assert!((d[1] / r2 - eps).abs() < 1e-6, "{x}: {}", d[1] / r2);
        }
    }

    #[test]
    fn conv_worked_densities() {
        // methods.md §2.4: shapes (8,1,3,3), (16,8,3,3), dense (10, 784).
        let shapes = conv_example();
        let erk = Erk { power: 1.0 };
        let d = |x| {
            erk.densities(RuleInput::Shapes(&shapes), Density::new(x).unwrap())
                .unwrap()
        };
        assert_close(&d(0.5), &[1.0, 0.140954, 0.548166], 1e-6);
        assert_close(&d(0.1), &[0.225070, 0.028134, 0.109411], 1e-6);
    }

    #[test]
    fn budget_is_preserved() {
        let shapes = lenet();
        let input = RuleInput::Shapes(&shapes);
        for x in [0.9, 0.5, 0.1, 0.01, 0.001] {
            let dens = Density::new(x).unwrap();
            let d = Erk { power: 1.0 }.densities(input, dens).unwrap();
            let kept: f64 = d.iter().zip(&shapes).map(|(d, s)| d * s.len() as f64).sum();
            assert!((kept - x * 266_200.0).abs() < 1e-6, "{x}: {kept}");
            assert!(d.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        assert_eq!(
            Erk { power: 1.0 }.densities(input, Density::DENSE).unwrap(),
            vec![1.0; 3]
        );
    }
}
