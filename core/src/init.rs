use crate::{Layer, LayerShape, Streams, sample_standard_normal, sample_uniform};
use serde::{Deserialize, Serialize};

/// Weight initialisation schemes, drawn on the host from named ChaCha streams.
///
/// Every scheme draws layer `l`'s weights from stream `init/<l>/w` in row-major `[out, in]`
/// order and its biases from `init/<l>/b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitScheme {
    /// He et al. 2015 (arXiv 1502.01852), ReLU gain, fan-in mode:
    /// `W ~ N(0, 2/fan_in)`, biases 0. OpenLTH's LeNet default.
    KaimingNormal,
    /// PyTorch's `nn.Linear` default (kaiming-uniform with a = √5):
    /// `W ~ U(−1/√fan_in, 1/√fan_in)`, `b ~ U(−1/√fan_in, 1/√fan_in)`.
    KaimingUniform,
    /// Glorot & Bengio 2010: `W ~ N(0, 2/(fan_in + fan_out))`, biases 0.
    XavierNormal,
    /// Ramanujan et al. 2020 (edge-popup, arXiv 1911.13299) "signed Kaiming constant":
    /// `W = ±√(2/fan_in)` with a fair random sign, biases 0.
    SignedKaimingConstant,
    /// Plant 'n' Seek host law (Fischer & Burkholz 2022, planting.md §3.1):
    /// `W_l ~ N(0, 2/n_{l−1})`, `b_l ~ N(0, σ_{b,l}²)` with `σ_{b,l} = Π_{k≤l} √(2/n_{k−1})`.
    HeScaled,
}

impl InitScheme {
    pub const ALL: [InitScheme; 5] = [
        InitScheme::KaimingNormal,
        InitScheme::KaimingUniform,
        InitScheme::XavierNormal,
        InitScheme::SignedKaimingConstant,
        InitScheme::HeScaled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            InitScheme::KaimingNormal => "kaiming-normal",
            InitScheme::KaimingUniform => "kaiming-uniform",
            InitScheme::XavierNormal => "xavier-normal",
            InitScheme::SignedKaimingConstant => "signed-kaiming-constant",
            InitScheme::HeScaled => "he-scaled",
        }
    }

    /// Initialises one layer per shape (layer index = position in `shapes`).
    pub fn init_layers(self, shapes: &[LayerShape], bias: bool, streams: &Streams) -> Vec<Layer> {
        // σ_{b,l} = Π_{k≤l} √(2/fan_in_k) for the Plant 'n' Seek bias law.
        let mut bias_scale = 1.0f64;
        shapes
            .iter()
            .enumerate()
            .map(|(l, shape)| {
                let fan_in = shape.fan_in() as f64;
                // Glorot's fan-out counts the receptive field too: `c_out·k_h·k_w`.
                let fan_out = (shape.len() / shape.dims[1]) as f64;
                bias_scale *= (2.0 / fan_in).sqrt();
                let mut rw = streams.stream(&format!("init/{l}/w"));
                let mut rb = streams.stream(&format!("init/{l}/b"));
                let n = shape.len();
                let (weight, b): (Vec<f32>, Vec<f32>) = match self {
                    InitScheme::KaimingNormal => {
                        let std = (2.0 / fan_in).sqrt();
                        (normal_vec(&mut rw, n, std), vec![0.0; shape.fan_out()])
                    }
                    InitScheme::KaimingUniform => {
                        let bound = 1.0 / fan_in.sqrt();
                        (
                            uniform_vec(&mut rw, n, bound),
                            uniform_vec(&mut rb, shape.fan_out(), bound),
                        )
                    }
                    InitScheme::XavierNormal => {
                        let std = (2.0 / (fan_in + fan_out)).sqrt();
                        (normal_vec(&mut rw, n, std), vec![0.0; shape.fan_out()])
                    }
                    InitScheme::SignedKaimingConstant => {
                        let c = (2.0 / fan_in).sqrt() as f32;
                        let w = (0..n)
                            .map(|_| if rw.next_u64() >> 63 == 1 { c } else { -c })
                            .collect();
                        (w, vec![0.0; shape.fan_out()])
                    }
                    InitScheme::HeScaled => {
                        let std = (2.0 / fan_in).sqrt();
                        (
                            normal_vec(&mut rw, n, std),
                            normal_vec(&mut rb, shape.fan_out(), bias_scale),
                        )
                    }
                };
                Layer {
                    shape: shape.clone(),
                    weight,
                    bias: bias.then_some(b),
                    conv: None,
                }
            })
            .collect()
    }
}

use rand::Rng;

fn normal_vec<R: Rng>(rng: &mut R, n: usize, std: f64) -> Vec<f32> {
    (0..n)
        .map(|_| (sample_standard_normal(rng) * std) as f32)
        .collect()
}

fn uniform_vec<R: Rng>(rng: &mut R, n: usize, bound: f64) -> Vec<f32> {
    (0..n)
        .map(|_| sample_uniform(rng, -bound, bound) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn std_of(xs: &[f32]) -> f64 {
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
        (xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    }

    #[test]
    fn kaiming_normal_std_per_layer() {
        // methods.md §1.2(e): std √(2/fan_in) = 0.0505 / 0.0816 / 0.1414 on LeNet-300-100.
        let shapes = vec![
            LayerShape::dense(784, 300),
            LayerShape::dense(300, 100),
            LayerShape::dense(100, 10),
        ];
        let layers = InitScheme::KaimingNormal.init_layers(&shapes, true, &Streams::new(3));
        for (layer, want) in layers.iter().zip([0.0505, 0.0816, 0.1414]) {
            let rel = (std_of(&layer.weight) - want).abs() / want;
            assert!(
                rel < 0.05 || layer.weight.len() < 2000 && rel < 0.15,
                "std {} vs {want}",
                std_of(&layer.weight)
            );
            assert!(layer.bias.as_ref().unwrap().iter().all(|&b| b == 0.0));
        }
    }

    #[test]
    fn signed_constant_and_uniform_bounds() {
        let shapes = vec![LayerShape::dense(300, 100)];
        let l = &InitScheme::SignedKaimingConstant.init_layers(&shapes, false, &Streams::new(1))[0];
        let c = (2.0f64 / 300.0).sqrt() as f32;
        assert!(l.weight.iter().all(|&w| w == c || w == -c));
        assert!(l.weight.iter().any(|&w| w > 0.0) && l.weight.iter().any(|&w| w < 0.0));
        assert!(l.bias.is_none());
        let u = &InitScheme::KaimingUniform.init_layers(&shapes, true, &Streams::new(1))[0];
        let bound = 1.0 / 300f32.sqrt();
        assert!(
            u.weight
                .iter()
                .chain(u.bias.as_ref().unwrap())
                .all(|&w| w.abs() <= bound)
        );
    }

    #[test]
    fn he_scaled_bias_std_shrinks_with_depth() {
        let shapes = vec![LayerShape::dense(2, 4000), LayerShape::dense(4000, 4000)];
        let layers = InitScheme::HeScaled.init_layers(&shapes, true, &Streams::new(5));
        let s0 = std_of(layers[0].bias.as_ref().unwrap());
        let s1 = std_of(layers[1].bias.as_ref().unwrap());
        assert!((s0 - 1.0).abs() < 0.05, "layer 0 bias std {s0}"); // √(2/2) = 1
        let want1 = (2.0f64 / 4000.0).sqrt();
        assert!((s1 - want1).abs() / want1 < 0.05, "layer 1 bias std {s1}");
    }

    #[test]
    fn layer_streams_are_independent_of_other_layers() {
        let a = InitScheme::KaimingNormal.init_layers(
            &[LayerShape::dense(4, 5), LayerShape::dense(5, 3)],
            true,
            &Streams::new(9),
        );
        let b = InitScheme::KaimingNormal.init_layers(
            &[LayerShape::dense(7, 5), LayerShape::dense(5, 3)],
            true,
            &Streams::new(9),
        );
        assert_eq!(a[1].weight, b[1].weight);
        assert_ne!(a[0].weight[..20], b[0].weight[..20]);
    }
}
