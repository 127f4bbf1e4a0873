//! Hand-crafted sparse target networks of Plant 'n' Seek (planting.md §2).
//!
//! Each target is a ReLU MLP with a linear output, built deterministically (no training)
//! in f64. Depth `D` counts layers including input and output (`D − 1` weight matrices), as
//! in the release and planting.md §0.

use crate::PlantError;
use std::f64::consts::{FRAC_PI_2, SQRT_2};
use ticketbench_core::{Layer, LayerShape, Network};

/// One layer of a target: `weight[o·fan_in + i]` is the edge `i → o` (PyTorch `[out, in]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetLayer {
    pub fan_in: usize,
    pub fan_out: usize,
    pub weight: Vec<f64>,
    pub bias: Vec<f64>,
}

impl TargetLayer {
    fn zeros(fan_in: usize, fan_out: usize) -> Self {
        TargetLayer {
            fan_in,
            fan_out,
            weight: vec![0.0; fan_in * fan_out],
            bias: vec![0.0; fan_out],
        }
    }

    /// Weight of the edge `from → to`.
    pub fn edge(&self, from: usize, to: usize) -> f64 {
        self.weight[to * self.fan_in + from]
    }

    fn set(&mut self, from: usize, to: usize, value: f64) {
        self.weight[to * self.fan_in + from] = value;
    }

    /// Inputs with a nonzero edge into `to`, ascending.
    pub fn sources(&self, to: usize) -> Vec<usize> {
        (0..self.fan_in)
            .filter(|&i| self.edge(i, to) != 0.0)
            .collect()
    }

    pub fn nonzero_weights(&self) -> usize {
        self.weight.iter().filter(|&&w| w != 0.0).count()
    }
}

/// A target network: the function a planted ticket computes (up to a positive output scale).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetNet {
    pub layers: Vec<TargetLayer>,
}

impl TargetNet {
    /// Widths `[n_0, …, n_L]`.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.layers[0].fan_in];
        w.extend(self.layers.iter().map(|l| l.fan_out));
        w
    }

    /// Depth `D` = number of layers including input and output.
    pub fn depth(&self) -> usize {
        self.layers.len() + 1
    }

    /// Nonzero weights per layer (the planted edge counts of planting.md §2).
    pub fn layer_nonzeros(&self) -> Vec<usize> {
        self.layers
            .iter()
            .map(TargetLayer::nonzero_weights)
            .collect()
    }

    pub fn nonzero_weights(&self) -> usize {
        self.layer_nonzeros().iter().sum()
    }

    pub fn nonzero_biases(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.bias.iter().filter(|&&b| b != 0.0).count())
            .sum()
    }

    /// Forward pass in f64 (ReLU between layers, linear output).
    pub fn forward(&self, input: &[f64]) -> Vec<f64> {
        let last = self.layers.len() - 1;
        let mut act = input.to_vec();
        for (l, layer) in self.layers.iter().enumerate() {
            act = (0..layer.fan_out)
                .map(|o| {
                    let row = &layer.weight[o * layer.fan_in..(o + 1) * layer.fan_in];
                    let z = row.iter().zip(&act).map(|(w, a)| w * a).sum::<f64>() + layer.bias[o];
                    if l == last { z } else { z.max(0.0) }
                })
                .collect();
        }
        act
    }

    /// The target as a (small) host-layout [`Network`] in f32, e.g. for export or training.
    pub fn to_network(&self) -> Network {
        Network {
            layers: self
                .layers
                .iter()
                .map(|l| Layer {
                    shape: LayerShape::dense(l.fan_in, l.fan_out),
                    weight: l.weight.iter().map(|&w| w as f32).collect(),
                    bias: Some(l.bias.iter().map(|&b| b as f32).collect()),
                    conv: None,
                })
                .collect(),
        }
    }
}

/// `n` equally spaced points on `[start, stop]`, bit-identical to `numpy.linspace` (which the
/// release's targets use; exact zeros among the outer weights depend on these bits).
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    let step = (stop - start) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
    v[n - 1] = stop;
    v
}

/// Alternating knot signs `+1, −1, +1, …` (planting.md §2.1; the first is always +1).
fn alternating_signs(n: usize) -> Vec<f64> {
    (0..n)
        .map(|j| if j % 2 == 0 { 1.0 } else { -1.0 })
        .collect()
}

/// Exact piecewise-linear interpolant of `f` at the knots (planting.md §2.1): hidden neuron
/// `j` computes `φ(p_j·(u − s_j))` (weight `p_j`, bias `−p_j·s_j`); the output is
/// `Σ_j a_j·φ(p_j(u − s_j)) + b` with `a_j = m_j − m_{j−1}` (j ≥ 2),
/// `a_1 = m_1 + Σ_{j≥2, p_j=−1} a_j` and `b = f(s_1) − Σ_j a_j φ(p_j(s_1 − s_j))`, where `m_j`
/// are the slopes between consecutive knots plus one extra knot `s_N + (s_2 − s_1)`.
struct KnotInterpolant {
    in_weight: Vec<f64>,
    in_bias: Vec<f64>,
    out_weight: Vec<f64>,
    out_bias: f64,
}

impl KnotInterpolant {
    fn new(knots: &[f64], signs: &[f64], f: impl Fn(f64) -> f64) -> Self {
        let n = knots.len();
        let mut p = signs.to_vec();
        p[0] = 1.0;
        let in_bias: Vec<f64> = knots.iter().zip(&p).map(|(s, p)| -s * p).collect();
        let delta = knots[1] - knots[0];
        let mut xt = knots.to_vec();
        xt.push(knots[n - 1] + delta);
        let yt: Vec<f64> = xt.iter().map(|&x| f(x)).collect();
        let slopes: Vec<f64> = (0..n)
            .map(|i| (yt[i + 1] - yt[i]) / (xt[i + 1] - xt[i]))
            .collect();
        let mut out_weight = vec![0.0; n];
        for j in 1..n {
            out_weight[j] = slopes[j] - slopes[j - 1];
        }
        out_weight[0] = slopes[0]
            + (1..n)
                .filter(|&j| p[j] == -1.0)
                .map(|j| out_weight[j])
                .sum::<f64>();
        let at_first: f64 = (0..n)
            .map(|j| (knots[0] * p[j] + in_bias[j]).max(0.0) * out_weight[j])
            .sum();
        KnotInterpolant {
            in_weight: p,
            in_bias,
            out_weight,
            out_bias: f(knots[0]) - at_first,
        }
    }

    fn len(&self) -> usize {
        self.in_weight.len()
    }
}

fn square(x: f64) -> f64 {
    x * x
}

/// ReLU target (planting.md §2.2): a single path of `D − 1` unit edges, zero biases.
pub fn relu_target(depth: usize) -> Result<TargetNet, PlantError> {
    check_depth("relu", depth, 2)?;
    let layers = (0..depth - 1)
        .map(|_| TargetLayer {
            fan_in: 1,
            fan_out: 1,
            weight: vec![1.0],
            bias: vec![0.0],
        })
        .collect();
    Ok(TargetNet { layers })
}

/// Circle: knots per coordinate of the squared-norm approximation.
const CIRCLE_KNOTS: usize = 10;
/// Circle class thresholds on `g = x₁² + x₂²` and the logit slopes `A = (5, 10, 20, 40)`.
const CIRCLE_THRESHOLDS: [f64; 3] = [0.2, 0.5, 0.7];
const CIRCLE_FIRST_SLOPE: f64 = 5.0;

/// Circle target (planting.md §2.3) for depth `D ≥ 3`.
pub fn circle_target(depth: usize) -> Result<TargetNet, PlantError> {
    check_depth("circle", depth, 3)?;
    let k = CIRCLE_KNOTS;
    // Per depth: the hidden layers, then the knot neurons' outer weights (in knot-layer
    // order) and the summed intercept ĝ(·) adds.
    let (mut layers, outer, intercept) = match depth {
        3 => {
            let knots = KnotInterpolant::new(&linspace(-1.0, 1.0, k), &last_sign(k, -1.0), square);
            let mut l1 = TargetLayer::zeros(2, 2 * k);
            for c in 0..2 {
                write_knot_inputs(&mut l1, &knots, &[c], c * k);
            }
            (vec![l1], outer_twice(&knots), 2.0 * knots.out_bias)
        }
        4 => {
            let knots = KnotInterpolant::new(&linspace(0.0, 1.0, k), &last_sign(k, -1.0), square);
            let mut l2 = TargetLayer::zeros(4, 2 * k);
            for c in 0..2 {
                write_knot_inputs(&mut l2, &knots, &[2 * c, 2 * c + 1], c * k);
            }
            (
                vec![half_waves(), l2],
                outer_twice(&knots),
                2.0 * knots.out_bias,
            )
        }
        5 => {
            let knots = KnotInterpolant::new(&linspace(0.0, 1.0, k), &last_sign(k, 1.0), square);
            let mut l3 = TargetLayer::zeros(2, 2 * k);
            for c in 0..2 {
                write_knot_inputs(&mut l3, &knots, &[c], c * k);
            }
            (
                vec![half_waves(), absolute_values(), l3],
                outer_twice(&knots),
                2.0 * knots.out_bias,
            )
        }
        _ => {
            let mut layers = vec![half_waves(), absolute_values()];
            // `point` expresses the represented point u ∈ ℝ² in the previous layer's neurons.
            let mut point = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
            let mut angle = FRAC_PI_2;
            let mut axis = [1.0, 0.0];
            for _ in 0..depth - 5 {
                angle /= 2.0;
                axis = [angle.cos(), angle.sin()];
                let fan_in = point[0].len();
                let mut mirror = TargetLayer::zeros(fan_in, 3);
                for (i, (&p0, &p1)) in point[0].iter().zip(&point[1]).enumerate() {
                    let along = axis[0] * p0 + axis[1] * p1;
                    let across = axis[1] * p0 - axis[0] * p1;
                    mirror.set(i, 0, along);
                    mirror.set(i, 1, across);
                    mirror.set(i, 2, -across);
                }
                layers.push(mirror);
                point = vec![
                    vec![axis[0], axis[1], axis[1]],
                    vec![axis[1], -axis[0], -axis[0]],
                ];
            }
            // Knot layer: the parallel neuron spans [0, √2], the folded perpendicular part
            // only [0, c⊥].
            let c_perp = axis[1].abs() * CIRCLE_THRESHOLDS[2].sqrt() + 0.01;
            let n_par =
                ((SQRT_2 / (c_perp + SQRT_2) * (2 * k) as f64).ceil() as usize).min(2 * k - 3);
            let n_perp = (2 * k - n_par).max(3);
            let par = KnotInterpolant::new(
                &linspace(0.0, SQRT_2, n_par),
                &last_sign(n_par, 1.0),
                square,
            );
            let perp = KnotInterpolant::new(
                &linspace(0.0, c_perp, n_perp),
                &last_sign(n_perp, 1.0),
                square,
            );
            let mut knot_layer = TargetLayer::zeros(3, n_par + n_perp);
            write_knot_inputs(&mut knot_layer, &par, &[0], 0);
            write_knot_inputs(&mut knot_layer, &perp, &[1, 2], n_par);
            layers.push(knot_layer);
            let mut outer = par.out_weight.clone();
            outer.extend(&perp.out_weight);
            (layers, outer, par.out_bias + perp.out_bias)
        }
    };
    layers.push(circle_logits(&outer, intercept));
    Ok(TargetNet { layers })
}

/// Circle output layer: `logit_c = A_c·ĝ + β_c`, `A_c = 5·2^c`, with `β` chosen so adjacent
/// logits tie exactly at the class thresholds: `β_0 = 0`, `β_c = β_{c−1} + (A_{c−1} − A_c)·t_c`.
fn circle_logits(outer: &[f64], intercept: f64) -> TargetLayer {
    let classes = CIRCLE_THRESHOLDS.len() + 1;
    let mut out = TargetLayer::zeros(outer.len(), classes);
    let mut slope = CIRCLE_FIRST_SLOPE;
    let mut offset = 0.0;
    for c in 0..classes {
        if c > 0 {
            offset += (slope - 2.0 * slope) * CIRCLE_THRESHOLDS[c - 1];
            slope *= 2.0;
        }
        for (i, &a) in outer.iter().enumerate() {
            out.set(i, c, slope * a);
        }
        out.bias[c] = offset + intercept * slope;
    }
    out
}

/// `[2 → 4]`: `φ(x₁), φ(−x₁), φ(x₂), φ(−x₂)`.
fn half_waves() -> TargetLayer {
    let mut l = TargetLayer::zeros(2, 4);
    for c in 0..2 {
        l.set(c, 2 * c, 1.0);
        l.set(c, 2 * c + 1, -1.0);
    }
    l
}

/// `[4 → 2]`: `|x_c| = φ(x_c) + φ(−x_c)`.
fn absolute_values() -> TargetLayer {
    let mut l = TargetLayer::zeros(4, 2);
    for c in 0..2 {
        l.set(2 * c, c, 1.0);
        l.set(2 * c + 1, c, 1.0);
    }
    l
}

/// Alternating signs with the last one forced to `last`.
fn last_sign(n: usize, last: f64) -> Vec<f64> {
    let mut p = alternating_signs(n);
    p[n - 1] = last;
    p
}

/// Writes the knot neurons `offset..offset+len` of `layer`, each fed by every input in
/// `inputs` with the knot's weight (several inputs sum, e.g. `φ(x) + φ(−x) = |x|`).
fn write_knot_inputs(
    layer: &mut TargetLayer,
    knots: &KnotInterpolant,
    inputs: &[usize],
    offset: usize,
) {
    for j in 0..knots.len() {
        for &i in inputs {
            layer.set(i, offset + j, knots.in_weight[j]);
        }
        layer.bias[offset + j] = knots.in_bias[j];
    }
}

/// The outer weights of two identical per-coordinate interpolants, concatenated.
fn outer_twice(knots: &KnotInterpolant) -> Vec<f64> {
    let mut w = knots.out_weight.clone();
    w.extend(&knots.out_weight);
    w
}

/// Helix: knots of the shared interpolation layer.
const HELIX_KNOTS: usize = 30;

/// Helix target (planting.md §2.4, following the release: all three outputs share one knot
/// layer) for depth `D ≥ 3`.
pub fn helix_target(depth: usize) -> Result<TargetNet, PlantError> {
    check_depth("helix", depth, 3)?;
    let k = HELIX_KNOTS;
    let curve = |x: f64, c: usize| crate::tasks::helix_point(x)[c];
    if depth == 3 {
        let knots = linspace(-1.0, 1.0, k);
        let parts: Vec<KnotInterpolant> = (0..3)
            .map(|c| KnotInterpolant::new(&knots, &alternating_signs(k), |x| curve(x, c)))
            .collect();
        let mut hidden = TargetLayer::zeros(1, k);
        write_knot_inputs(&mut hidden, &parts[0], &[0], 0);
        return Ok(TargetNet {
            layers: vec![hidden, helix_outputs(&parts)],
        });
    }
    // u = φ(x + 1) ∈ [0, 2], knots on [0, 2] for f(u − 1).
    let knots = linspace(0.0, 2.0, k);
    let parts: Vec<KnotInterpolant> = (0..3)
        .map(|c| KnotInterpolant::new(&knots, &alternating_signs(k), |u| curve(u - 1.0, c)))
        .collect();
    let shift = TargetLayer {
        fan_in: 1,
        fan_out: 1,
        weight: vec![1.0],
        bias: vec![1.0],
    };
    let mut hidden = TargetLayer::zeros(1, k);
    write_knot_inputs(&mut hidden, &parts[0], &[0], 0);
    let mut layers = vec![shift, hidden, helix_outputs(&parts)];
    if depth > 4 {
        // Keep the three values ≥ 0 through the ReLUs of D − 4 identity layers, then undo.
        layers[2].bias.iter_mut().for_each(|b| *b += 1.0);
        for _ in 4..depth {
            let mut identity = TargetLayer::zeros(3, 3);
            (0..3).for_each(|c| identity.set(c, c, 1.0));
            layers.push(identity);
        }
        layers.last_mut().expect("identity layers").bias = vec![-1.0; 3];
    }
    Ok(TargetNet { layers })
}

/// `[k → 3]`: output `c` is interpolant `c`'s outer weights and intercept.
fn helix_outputs(parts: &[KnotInterpolant]) -> TargetLayer {
    let k = parts[0].len();
    let mut out = TargetLayer::zeros(k, parts.len());
    for (c, part) in parts.iter().enumerate() {
        for (j, &a) in part.out_weight.iter().enumerate() {
            out.set(j, c, a);
        }
        out.bias[c] = part.out_bias;
    }
    out
}

fn check_depth(task: &'static str, depth: usize, min: usize) -> Result<(), PlantError> {
    if depth < min {
        return Err(PlantError::TooShallow { task, depth, min });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Host size `N` of widths `[n_in, 100, …, 100, n_out]` with `depth` entries.
    fn host_weights(n_in: usize, n_out: usize, depth: usize) -> usize {
        let mut widths = vec![100; depth];
        widths[0] = n_in;
        widths[depth - 1] = n_out;
        widths.windows(2).map(|w| w[0] * w[1]).sum()
    }

    #[test]
    fn linspace_matches_numpy_bits() {
        let v = linspace(0.0, 2.0, 30);
        assert_eq!(v[0], 0.0);
        assert_eq!(v[29], 2.0);
        assert_eq!(v[1], 2.0 / 29.0);
        assert_eq!(v[7], 7.0 * (2.0 / 29.0));
    }

    #[test]
    fn knot_interpolant_is_exact_at_and_between_knots() {
        let knots = linspace(-1.0, 1.0, 10);
        let f = |x: f64| x * x * x - x;
        let k = KnotInterpolant::new(&knots, &last_sign(10, -1.0), f);
        let eval = |u: f64| {
            (0..k.len())
                .map(|j| k.out_weight[j] * (k.in_weight[j] * u + k.in_bias[j]).max(0.0))
                .sum::<f64>()
                + k.out_bias
        };
        for (i, &s) in knots.iter().enumerate() {
            assert!((eval(s) - f(s)).abs() < 1e-13, "knot {i}");
        }
        // Linear between knots.
        let mid = 0.5 * (knots[3] + knots[4]);
        assert!((eval(mid) - 0.5 * (f(knots[3]) + f(knots[4]))).abs() < 1e-13);
    }

    #[test]
    fn relu_target_densities() {
        // planting.md §2.2: D=3: 2/200; D=5: 4/20 200; D=6: 5/30 200; D=10: 9/70 200.
        for (d, kept, total) in [(3, 2, 200), (5, 4, 20_200), (6, 5, 30_200), (10, 9, 70_200)] {
            let t = relu_target(d).unwrap();
            assert_eq!((t.nonzero_weights(), host_weights(1, 1, d)), (kept, total));
            assert_eq!(t.forward(&[0.3]), vec![0.3]);
            assert_eq!(t.forward(&[-0.3]), vec![0.0]);
        }
    }

    #[test]
    fn circle_target_densities_and_layer_counts() {
        // planting.md §2.3 [run] values.
        for (d, kept, total) in [
            (3, 100, 600),
            (4, 124, 10_600),
            (5, 108, 20_600),
            (6, 119, 30_600),
            (10, 153, 70_600),
        ] {
            let t = circle_target(d).unwrap();
            assert_eq!(
                (t.nonzero_weights(), host_weights(2, 4, d)),
                (kept, total),
                "D={d}"
            );
            assert_eq!(t.nonzero_biases(), if d == 3 { 24 } else { 22 }, "D={d}");
        }
        assert_eq!(
            circle_target(5).unwrap().layer_nonzeros(),
            vec![4, 4, 20, 80]
        );
        assert_eq!(
            circle_target(6).unwrap().layer_nonzeros(),
            vec![4, 4, 6, 25, 80]
        );
        assert_eq!(
            circle_target(10).unwrap().layer_nonzeros(),
            vec![4, 4, 6, 9, 9, 9, 9, 23, 80]
        );
    }

    #[test]
    fn helix_target_densities_and_layer_counts() {
        // planting.md §2.4 [run] values.
        for (d, kept, total) in [
            (3, 115, 400),
            (4, 117, 10_400),
            (5, 120, 20_400),
            (6, 123, 30_400),
            (10, 135, 70_400),
        ] {
            let t = helix_target(d).unwrap();
            assert_eq!(
                (t.nonzero_weights(), host_weights(1, 3, d)),
                (kept, total),
                "D={d}"
            );
            assert_eq!(t.nonzero_biases(), if d <= 4 { 33 } else { 36 }, "D={d}");
        }
        assert_eq!(
            helix_target(5).unwrap().layer_nonzeros(),
            vec![1, 30, 86, 3]
        );
    }

    #[test]
    fn circle_target_classifies_the_clean_rings() {
        // Away from the ring boundaries (knot error < margin) the argmax is the clean class.
        let mut checked = 0;
        for d in [3, 4, 5, 6, 10] {
            let t = circle_target(d).unwrap();
            for i in 0..41 {
                for j in 0..41 {
                    let x = [-1.0 + i as f64 / 20.0, -1.0 + j as f64 / 20.0];
                    let g = x[0] * x[0] + x[1] * x[1];
                    if CIRCLE_THRESHOLDS.iter().any(|t| (g - t).abs() < 0.05) {
                        continue;
                    }
                    let clean = CIRCLE_THRESHOLDS.iter().filter(|&&t| g > t).count();
                    let logits = t.forward(&x);
                    let arg = (0..4)
                        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
                        .unwrap();
                    assert_eq!(arg, clean, "D={d} x={x:?} logits={logits:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 5000);
    }

    #[test]
    fn helix_target_tracks_the_curve() {
        // Linear interpolation error ≤ h²/8·max|f''|: h = 2/29, |f''| ≤ (3π)²·(1 + 2/t)·t/(8π)
        // ≈ 100 near t = 8π, so ≈ 0.06.
        for d in [3, 4, 5, 6, 10] {
            let t = helix_target(d).unwrap();
            let worst = (0..=400)
                .map(|i| {
                    let x = -1.0 + i as f64 / 200.0;
                    let y = crate::tasks::helix_point(x);
                    let f = t.forward(&[x]);
                    (0..3).map(|c| (f[c] - y[c]).abs()).fold(0.0, f64::max)
                })
                .fold(0.0, f64::max);
            assert!(worst < 0.06, "D={d}: max error {worst}");
        }
    }

    #[test]
    fn too_shallow_is_an_error() {
        assert!(circle_target(2).is_err());
        assert!(helix_target(2).is_err());
        assert!(relu_target(1).is_err());
    }
}
