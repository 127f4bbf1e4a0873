use crate::{Conv2d, CoreError, Im2col, InitScheme, Streams};
use serde::{Deserialize, Serialize};

/// Shape of one prunable weight tensor, PyTorch order: dense `[out, in]`,
/// convolution `[c_out, c_in, k_h, k_w]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerShape {
    pub dims: Vec<usize>,
}

impl LayerShape {
    /// A dense layer with `fan_in` inputs and `fan_out` outputs (stored `[out, in]`).
    pub fn dense(fan_in: usize, fan_out: usize) -> Self {
        LayerShape {
            dims: vec![fan_out, fan_in],
        }
    }

    /// Number of weight entries `n_l`.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn fan_out(&self) -> usize {
        self.dims[0]
    }

    /// Inputs per output unit (`c_in·k_h·k_w` for convolutions).
    pub fn fan_in(&self) -> usize {
        self.dims[1..].iter().product()
    }
}

impl std::fmt::Display for LayerShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<String> = self.dims.iter().map(|d| d.to_string()).collect();
        f.write_str(&dims.join("x"))
    }
}

/// One layer of a host network: weights in row-major `shape` order and an optional bias
/// (one per output unit, or per output channel of a convolution).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub shape: LayerShape,
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    /// The geometry of a convolution (`shape` `[c_out, c_in, k_h, k_w]`); `None` for a dense
    /// layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv: Option<Conv2d>,
}

impl Layer {
    /// Length of the layer's flat input: `fan_in`, or `c_in·in_h·in_w` for a convolution.
    pub fn in_len(&self) -> usize {
        match &self.conv {
            None => self.shape.fan_in(),
            Some(c) => self.shape.dims[1] * c.in_h * c.in_w,
        }
    }

    /// Length of the layer's flat output: `fan_out`, or `c_out·out_h·out_w` (CHW).
    pub fn out_len(&self) -> usize {
        self.shape.fan_out() * self.positions()
    }

    /// Output positions per output unit: 1 for a dense layer, `out_h·out_w` for a convolution.
    pub fn positions(&self) -> usize {
        match &self.conv {
            None => 1,
            Some(c) => {
                let (h, w) = c
                    .out_hw(self.shape.dims[2], self.shape.dims[3])
                    .expect("validated geometry");
                h * w
            }
        }
    }

    /// The im2col map of a convolution layer (`None` for a dense layer).
    pub fn im2col(&self) -> Option<Im2col> {
        self.conv.as_ref().map(|c| Im2col::new(&self.shape, c))
    }
}

/// One convolution of a [`ConvNetSpec`]: `channels` outputs, a square `kernel`, `stride`,
/// symmetric zero `padding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvSpec {
    pub channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvSpec {
    /// A 3×3 convolution with padding 1 (a suite's default for a bare channel count).
    pub fn k3(channels: usize, stride: usize) -> Self {
        ConvSpec {
            channels,
            kernel: 3,
            stride,
            padding: 1,
        }
    }
}

/// A convolutional network: convolutions (ReLU after each) on a `[c, h, w]` image, then dense
/// layers `hidden…, outputs` on the flattened CHW activations. Downsampling is by stride, not
/// by pooling (an all-convolutional net, Springenberg et al. 2015, arXiv 1412.6806): every
/// layer is then linear in its weights and its input, which the host-side methods rely on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvNetSpec {
    pub input: [usize; 3],
    pub convs: Vec<ConvSpec>,
    pub hidden: Vec<usize>,
    pub outputs: usize,
}

impl ConvNetSpec {
    /// Weight shapes and convolution geometries, layer by layer; an error names the layer
    /// whose kernel does not fit or whose width is 0.
    pub fn layers(&self) -> Result<Vec<(LayerShape, Option<Conv2d>)>, CoreError> {
        let [mut c, mut h, mut w] = self.input;
        if c == 0 || h == 0 || w == 0 {
            return Err(CoreError::ShapeMismatch(format!(
                "image input {c}×{h}×{w} has a zero dimension"
            )));
        }
        let mut layers = Vec::new();
        for (l, s) in self.convs.iter().enumerate() {
            let conv = Conv2d {
                in_h: h,
                in_w: w,
                stride: s.stride,
                padding: s.padding,
            };
            let (oh, ow) = conv
                .out_hw(s.kernel, s.kernel)
                .filter(|_| s.channels > 0)
                .ok_or_else(|| {
                    CoreError::ShapeMismatch(format!(
                        "convolution {l} ({} channels, kernel {}, stride {}, padding {}) does not fit its {c}×{h}×{w} input",
                        s.channels, s.kernel, s.stride, s.padding
                    ))
                })?;
            layers.push((
                LayerShape {
                    dims: vec![s.channels, c, s.kernel, s.kernel],
                },
                Some(conv),
            ));
            (c, h, w) = (s.channels, oh, ow);
        }
        let mut widths = vec![c * h * w];
        widths.extend(&self.hidden);
        widths.push(self.outputs);
        layers.extend(
            Network::mlp_shapes(&widths)?
                .into_iter()
                .map(|shape| (shape, None)),
        );
        Ok(layers)
    }
}

/// A feed-forward network held on the host: the single source of truth for weights.
///
/// Dense layers, ReLU between layers, linear output. Devices receive copies of these bytes,
/// so every backend starts a job from identical weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub layers: Vec<Layer>,
}

impl Network {
    /// An MLP with the given widths `[n_0, n_1, …, n_L]`, initialised from `streams` with
    /// `scheme`. Layer `l` draws its weights from stream `init/<l>/w` and its bias from
    /// `init/<l>/b`, so changing one layer never changes another.
    pub fn mlp(
        widths: &[usize],
        bias: bool,
        scheme: InitScheme,
        streams: &Streams,
    ) -> Result<Self, CoreError> {
        let shapes = Self::mlp_shapes(widths)?;
        let layers = scheme.init_layers(&shapes, bias, streams);
        Ok(Network { layers })
    }

    /// A convolutional network of `spec`, initialised like [`Network::mlp`] (a convolution's
    /// fan-in is `c_in·k_h·k_w`).
    pub fn conv_net(
        spec: &ConvNetSpec,
        bias: bool,
        scheme: InitScheme,
        streams: &Streams,
    ) -> Result<Self, CoreError> {
        let (shapes, convs): (Vec<LayerShape>, Vec<Option<Conv2d>>) =
            spec.layers()?.into_iter().unzip();
        let layers = scheme
            .init_layers(&shapes, bias, streams)
            .into_iter()
            .zip(convs)
            .map(|(layer, conv)| Layer { conv, ..layer })
            .collect();
        Network::from_layers(layers)
    }

    /// Dense layer shapes of an MLP with `widths`.
    pub fn mlp_shapes(widths: &[usize]) -> Result<Vec<LayerShape>, CoreError> {
        if widths.len() < 2 {
            return Err(CoreError::TooFewWidths(widths.to_vec()));
        }
        if widths.contains(&0) {
            return Err(CoreError::ZeroWidth(widths.to_vec()));
        }
        Ok(widths
            .windows(2)
            .map(|w| LayerShape::dense(w[0], w[1]))
            .collect())
    }

    /// Builds a network from explicit layers, checking every tensor length.
    pub fn from_layers(layers: Vec<Layer>) -> Result<Self, CoreError> {
        for (l, layer) in layers.iter().enumerate() {
            let conv_fits = match (&layer.conv, &layer.shape.dims[..]) {
                (None, [_, _]) => true,
                (Some(c), [_, _, kh, kw]) => c.out_hw(*kh, *kw).is_some(),
                _ => false,
            };
            if !conv_fits {
                return Err(CoreError::ShapeMismatch(format!(
                    "layer {l}: shape {} with convolution geometry {:?}",
                    layer.shape, layer.conv
                )));
            }
            if layer.weight.len() != layer.shape.len() {
                return Err(CoreError::ShapeMismatch(format!(
                    "layer {l}: {} weights for shape {}",
                    layer.weight.len(),
                    layer.shape
                )));
            }
            if let Some(b) = &layer.bias
                && b.len() != layer.shape.fan_out()
            {
                return Err(CoreError::ShapeMismatch(format!(
                    "layer {l}: {} biases for {} outputs",
                    b.len(),
                    layer.shape.fan_out()
                )));
            }
        }
        for (l, pair) in layers.windows(2).enumerate() {
            if pair[0].out_len() != pair[1].in_len() {
                return Err(CoreError::ShapeMismatch(format!(
                    "layer {l} has {} outputs but layer {} expects {} inputs",
                    pair[0].out_len(),
                    l + 1,
                    pair[1].in_len()
                )));
            }
        }
        Ok(Network { layers })
    }

    pub fn shapes(&self) -> Vec<LayerShape> {
        self.layers.iter().map(|l| l.shape.clone()).collect()
    }

    /// Activation widths `[n_0, …, n_L]`: the units of a dense network; for a convolutional
    /// one, the flat CHW lengths of the input and of every layer's output.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.layers[0].in_len()];
        w.extend(self.layers.iter().map(Layer::out_len));
        w
    }

    /// Whether any layer is a convolution.
    pub fn has_conv(&self) -> bool {
        self.layers.iter().any(|l| l.conv.is_some())
    }

    /// N: the number of prunable entries (weights only; biases are never pruned by default).
    pub fn num_prunable(&self) -> usize {
        self.layers.iter().map(|l| l.shape.len()).sum()
    }

    /// The shared worked network of methods.md §1, used by several methods' worked checks:
    /// bias-free, `W1 = [[1, −2], [3, 0.25]]` (hidden 2 × in 2), `W2 = [[−1, 4]]`; parameter
    /// order (a11, a12, a21, a22, b1, b2) = (1, −2, 3, 0.25, −1, 4).
    pub fn methods_md_worked_example() -> Network {
        let layer = |fan_in, fan_out, weight: Vec<f32>| Layer {
            shape: LayerShape::dense(fan_in, fan_out),
            weight,
            bias: None,
            conv: None,
        };
        Network {
            layers: vec![
                layer(2, 2, vec![1.0, -2.0, 3.0, 0.25]),
                layer(2, 1, vec![-1.0, 4.0]),
            ],
        }
    }

    /// Forward pass on the host in f64 (ReLU between layers, linear output) for one input.
    /// A reference for tests and small exact computations, not a training path.
    pub fn forward_f64(&self, input: &[f64]) -> Vec<f64> {
        let mut act = input.to_vec();
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let fan_in = layer.shape.fan_in();
            // Convolutions read their im2col rows (one per output position, CHW order).
            let (cols, positions) = match layer.im2col() {
                None => (act, 1),
                Some(map) => {
                    let mut cols = vec![0.0; map.positions() * map.taps()];
                    map.gather(&act, &mut cols);
                    (cols, map.positions())
                }
            };
            let mut out: Vec<f64> = (0..layer.shape.fan_out() * positions)
                .map(|at| {
                    let (o, p) = (at / positions, at % positions);
                    let row = &layer.weight[o * fan_in..(o + 1) * fan_in];
                    let b = layer.bias.as_ref().map_or(0.0, |b| b[o] as f64);
                    row.iter()
                        .zip(&cols[p * fan_in..(p + 1) * fan_in])
                        .map(|(w, a)| *w as f64 * a)
                        .sum::<f64>()
                        + b
                })
                .collect();
            if l != last {
                out.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            act = out;
        }
        act
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlp_shapes_and_counts() {
        let net = Network::mlp(
            &[784, 300, 100, 10],
            true,
            InitScheme::KaimingNormal,
            &Streams::new(0),
        )
        .unwrap();
        assert_eq!(net.num_prunable(), 266_200);
        assert_eq!(net.widths(), vec![784, 300, 100, 10]);
        assert_eq!(net.layers[0].shape.dims, vec![300, 784]);
        assert_eq!(net.layers[0].shape.fan_in(), 784);
        assert!(Network::mlp(&[3], true, InitScheme::KaimingNormal, &Streams::new(0)).is_err());
        assert!(
            Network::mlp(
                &[3, 0, 2],
                true,
                InitScheme::KaimingNormal,
                &Streams::new(0)
            )
            .is_err()
        );
    }

    #[test]
    fn from_layers_checks_shapes() {
        let ok = Layer {
            shape: LayerShape::dense(2, 2),
            weight: vec![1.0; 4],
            bias: None,
            conv: None,
        };
        let bad = Layer {
            shape: LayerShape::dense(3, 1),
            weight: vec![1.0; 3],
            bias: None,
            conv: None,
        };
        assert!(Network::from_layers(vec![ok.clone(), bad]).is_err());
        let short = Layer {
            shape: LayerShape::dense(2, 2),
            weight: vec![1.0; 3],
            bias: None,
            conv: None,
        };
        assert!(Network::from_layers(vec![short]).is_err());
        assert!(Network::from_layers(vec![ok]).is_ok());
    }

    #[test]
    fn conv_net_shapes_widths_and_fan_in() {
        let spec = ConvNetSpec {
            input: [1, 8, 8],
            convs: vec![ConvSpec::k3(16, 1), ConvSpec::k3(32, 2)],
            hidden: vec![64],
            outputs: 10,
        };
        let net =
            Network::conv_net(&spec, true, InitScheme::KaimingNormal, &Streams::new(0)).unwrap();
        let dims: Vec<Vec<usize>> = net.shapes().into_iter().map(|s| s.dims).collect();
        assert_eq!(
            dims,
            vec![
                vec![16, 1, 3, 3],
                vec![32, 16, 3, 3],
                vec![64, 512],
                vec![10, 64]
            ]
        );
        assert_eq!(net.widths(), vec![64, 1024, 512, 64, 10]);
        assert_eq!(net.layers[1].shape.fan_in(), 144);
        assert_eq!(net.layers[1].bias.as_ref().unwrap().len(), 32);
        assert!(net.has_conv());
        // Kaiming-normal with fan-in c_in·k_h·k_w = 144: std √(2/144) ≈ 0.118.
        let w = &net.layers[1].weight;
        let std = (w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        assert!((std - (2.0f64 / 144.0).sqrt()).abs() < 0.005, "{std}");
        let bad = ConvNetSpec {
            convs: vec![ConvSpec {
                kernel: 11,
                padding: 0,
                ..ConvSpec::k3(4, 1)
            }],
            ..spec.clone()
        };
        let e = Network::conv_net(&bad, true, InitScheme::KaimingNormal, &Streams::new(0))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("convolution 0") && e.contains("does not fit"),
            "{e}"
        );
    }

    #[test]
    fn conv_forward_f64_is_the_textbook_convolution() {
        // z[o, y, x] = b[o] + Σ_{c,i,j} W[o, c, i, j] · in[c, s·y + i − p, s·x + j − p].
        let spec = ConvNetSpec {
            input: [2, 5, 4],
            convs: vec![ConvSpec {
                channels: 3,
                kernel: 3,
                stride: 2,
                padding: 1,
            }],
            hidden: vec![],
            outputs: 2,
        };
        let net =
            Network::conv_net(&spec, true, InitScheme::KaimingUniform, &Streams::new(3)).unwrap();
        let conv_only = Network {
            layers: vec![net.layers[0].clone()],
        };
        let input: Vec<f64> = (0..40).map(|i| ((i * 7 % 11) as f64 - 5.0) / 5.0).collect();
        let out = conv_only.forward_f64(&input);
        let l = &net.layers[0];
        let (oh, ow) = (3, 2);
        assert_eq!(out.len(), 3 * oh * ow);
        for o in 0..3 {
            for y in 0..oh {
                for x in 0..ow {
                    let mut z = l.bias.as_ref().unwrap()[o] as f64;
                    for c in 0..2 {
                        for i in 0..3 {
                            for j in 0..3 {
                                let (iy, ix) = ((2 * y + i) as i64 - 1, (2 * x + j) as i64 - 1);
                                if (0..5).contains(&iy) && (0..4).contains(&ix) {
                                    let w = l.weight[((o * 2 + c) * 3 + i) * 3 + j] as f64;
                                    z += w * input[(c * 5 + iy as usize) * 4 + ix as usize];
                                }
                            }
                        }
                    }
                    // A single-layer network has a linear output (no ReLU).
                    let got = out[(o * oh + y) * ow + x];
                    assert!((got - z).abs() < 1e-12, "o {o} y {y} x {x}: {got} vs {z}");
                }
            }
        }
    }

    #[test]
    fn forward_f64_matches_hand_computation() {
        // methods.md shared net, x = [1, 3]: linear forward gives h = [−5, 3.75]; with ReLU,
        // h = [0, 3.75] and ŷ = 15.
        let net = Network::methods_md_worked_example();
        assert_eq!(net.forward_f64(&[1.0, 3.0]), vec![15.0]);
    }
}
