use crate::{CoreError, InitScheme, Streams};
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

/// One layer of a host network: weights in row-major `shape` order and an optional bias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub shape: LayerShape,
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
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
            if pair[0].shape.fan_out() != pair[1].shape.fan_in() {
                return Err(CoreError::ShapeMismatch(format!(
                    "layer {l} has {} outputs but layer {} expects {} inputs",
                    pair[0].shape.fan_out(),
                    l + 1,
                    pair[1].shape.fan_in()
                )));
            }
        }
        Ok(Network { layers })
    }

    pub fn shapes(&self) -> Vec<LayerShape> {
        self.layers.iter().map(|l| l.shape.clone()).collect()
    }

    /// Widths `[n_0, …, n_L]` of a dense network.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.layers[0].shape.fan_in()];
        w.extend(self.layers.iter().map(|l| l.shape.fan_out()));
        w
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
            let mut out: Vec<f64> = (0..layer.shape.fan_out())
                .map(|o| {
                    let row = &layer.weight[o * fan_in..(o + 1) * fan_in];
                    let b = layer.bias.as_ref().map_or(0.0, |b| b[o] as f64);
                    row.iter()
                        .zip(&act)
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
        };
        let bad = Layer {
            shape: LayerShape::dense(3, 1),
            weight: vec![1.0; 3],
            bias: None,
        };
        assert!(Network::from_layers(vec![ok.clone(), bad]).is_err());
        let short = Layer {
            shape: LayerShape::dense(2, 2),
            weight: vec![1.0; 3],
            bias: None,
        };
        assert!(Network::from_layers(vec![short]).is_err());
        assert!(Network::from_layers(vec![ok]).is_ok());
    }

    #[test]
    fn forward_f64_matches_hand_computation() {
        // methods.md shared net, x = [1, 3]: linear forward gives h = [−5, 3.75]; with ReLU,
        // h = [0, 3.75] and ŷ = 15.
        let net = Network::methods_md_worked_example();
        assert_eq!(net.forward_f64(&[1.0, 3.0]), vec![15.0]);
    }
}
