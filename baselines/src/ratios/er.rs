use super::erk::redistribute;
use super::{RatioError, RatioRule, RuleInfo, RuleInput};
use ticketbench_core::{Density, LayerShape};

/// Erdős–Rényi (Mocanu et al. 2018, SET, arXiv 1707.04780), methods.md §2.3.
///
/// Raw density from channel counts only, `r_l = (c_in + c_out)/(c_in·c_out)` with
/// `c_out = dims[0]`, `c_in = dims[1]` (kernel dimensions are ignored, unlike ERK; for dense
/// layers ER and ERK coincide). `d_l = ε r_l` with ε solving the budget, saturated layers made
/// dense by the same redistribution loop as ERK (§2.4).
pub struct Er;

pub(super) const INFO: RuleInfo = RuleInfo {
    name: "er",
    summary: "density ∝ (c_in + c_out)/(c_in·c_out) from channel counts, saturated layers made dense",
    citation: "Mocanu et al. 2018 (SET), arXiv 1707.04780; redistribution: Evci et al. 2020, arXiv 1911.11134",
    build: || Box::new(Er),
};

fn raw(shape: &LayerShape) -> f64 {
    let c_out = shape.dims[0] as f64;
    let c_in = shape.dims.get(1).copied().unwrap_or(1) as f64;
    (c_in + c_out) / (c_in * c_out)
}

impl RatioRule for Er {
    fn name(&self) -> &'static str {
        INFO.name
    }

    fn densities(&self, input: RuleInput<'_>, density: Density) -> Result<Vec<f64>, RatioError> {
        let shapes = input.shapes();
        let raw: Vec<f64> = shapes.iter().map(raw).collect();
        redistribute(INFO.name, &shapes, &raw, density)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_close, conv_example, lenet};
    use super::*;

    #[test]
    fn lenet_worked_densities_and_counts() {
        // methods.md §2.8: ER = ERK for dense layers.
        let shapes = lenet();
        let input = RuleInput::Shapes(&shapes);
        let d = |x| Er.densities(input, Density::new(x).unwrap()).unwrap();
        assert_close(&d(0.10), &[0.079568, 0.230189, 1.0], 1e-6);
        assert_close(&d(0.02), &[0.015394, 0.044534, 0.367403], 1e-6);
        let c = |x| Er.counts(input, Density::new(x).unwrap()).unwrap();
        assert_eq!(c(0.10), vec![18714, 6906, 1000]);
        assert_eq!(c(0.02), vec![3621, 1336, 367]);
    }

    #[test]
    fn conv_worked_densities() {
        // methods.md §2.4: shapes (8,1,3,3), (16,8,3,3), dense (10, 784); channel counts only.
        let shapes = conv_example();
        let input = RuleInput::Shapes(&shapes);
        let d = |x| Er.densities(input, Density::new(x).unwrap()).unwrap();
        assert_close(&d(0.5), &[1.0, 0.827970, 0.447217], 1e-6);
        assert_close(&d(0.1), &[0.934647, 0.155775, 0.084139], 1e-6);
        for x in [0.5, 0.1] {
            let k: usize = Er
                .counts(input, Density::new(x).unwrap())
                .unwrap()
                .iter()
                .sum();
            let n: usize = shapes.iter().map(LayerShape::len).sum();
            assert_eq!(k, (x * n as f64 + 0.5).floor() as usize);
        }
    }
}
