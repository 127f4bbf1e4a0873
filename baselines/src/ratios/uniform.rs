use super::{RatioError, RatioRule, RuleInfo, RuleInput};
use ticketbench_core::Density;

/// Uniform: `d_l = D` for every layer (ShrinkBench `LayerMagWeight`, LAMP "Unif").
/// Never infeasible.
pub struct Uniform;

pub(super) const INFO: RuleInfo = RuleInfo {
    name: "uniform",
    summary: "every layer keeps the global density D",
    citation: "Blalock et al. 2020, arXiv 2003.03033 (ShrinkBench LayerMagWeight)",
    build: || Box::new(Uniform),
};

impl RatioRule for Uniform {
    fn name(&self) -> &'static str {
        INFO.name
    }

    fn densities(&self, input: RuleInput<'_>, density: Density) -> Result<Vec<f64>, RatioError> {
        Ok(vec![density.get(); input.shapes().len()])
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::lenet;
    use super::*;

    #[test]
    fn lenet_worked_counts() {
        // methods.md §2.8.
        let shapes = lenet();
        let c = |d| {
            Uniform
                .counts(RuleInput::Shapes(&shapes), Density::new(d).unwrap())
                .unwrap()
        };
        assert_eq!(c(0.10), vec![23520, 3000, 100]);
        assert_eq!(c(0.02), vec![4704, 600, 20]);
    }
}
