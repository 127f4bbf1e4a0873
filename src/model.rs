//! The masked network in burn, built from a host [`Network`] and [`Mask`] and read back into
//! one.
//!
//! Weights live on the device as `[in, out]` (so the forward pass is `x·W` with no per-step
//! transpose); the host keeps PyTorch's `[out, in]`. The layout change happens only when a
//! model is built or read back. A convolution is stored the same way, as its
//! `[c_in·k_h·k_w, c_out]` matrix, and reshaped to `[c_out, c_in, k_h, k_w]` in the forward
//! pass, so masking, optimiser state and read-back treat every layer alike. Activations
//! between layers are flat `[batch, features]` (CHW for convolutions).

use burn::module::{Module, Param};
use burn::prelude::{Device, Tensor, TensorData};
use burn::tensor::activation::relu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use ticketbench_core::{Conv2d, CoreError, Layer, Mask, Network};

/// What the device forward of a convolution needs: its weight shape and geometry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ConvLayout {
    /// `[c_out, c_in, k_h, k_w]`.
    dims: [usize; 4],
    conv: Conv2d,
}

impl ConvLayout {
    /// The layout of a host layer (`None` for a dense one).
    pub(crate) fn of(layer: &Layer) -> Option<ConvLayout> {
        let conv = layer.conv?;
        let [c_out, c_in, k_h, k_w] = layer.shape.dims[..] else {
            unreachable!("a validated convolution is 4-D");
        };
        Some(ConvLayout {
            dims: [c_out, c_in, k_h, k_w],
            conv,
        })
    }
}

/// One layer's pre-activation: `x·W + b` for a dense layer, or the convolution of `x`
/// (flat CHW rows) with `W` (`[c_in·k_h·k_w, c_out]`), flattened back to CHW rows.
pub(crate) fn layer_forward(
    x: Tensor<2>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
    conv: Option<&ConvLayout>,
) -> Tensor<2> {
    match conv {
        None => {
            let y = x.matmul(weight);
            match bias {
                Some(b) => y + b.unsqueeze::<2>(),
                None => y,
            }
        }
        Some(c) => {
            let [batch, _] = x.dims();
            let [c_out, c_in, k_h, k_w] = c.dims;
            let x = x.reshape([batch, c_in, c.conv.in_h, c.conv.in_w]);
            let w = weight.transpose().reshape([c_out, c_in, k_h, k_w]);
            let options = ConvOptions::new([c.conv.stride; 2], [c.conv.padding; 2], [1, 1], 1);
            let y = conv2d(x, w, bias, options);
            let [_, ch, h, w] = y.dims();
            y.reshape([batch, ch * h * w])
        }
    }
}

/// A dense layer whose weight is multiplied by a constant 0/1 mask in the forward pass.
///
/// The forward uses `x·(W ⊙ M)`, so a pruned weight contributes nothing and receives an
/// exactly-zero gradient. Pruned entries are stored as 0.0 when the layer is built, so plain
/// SGD, momentum, weight decay and Adam all keep them at exactly zero (0 gradient ⇒ 0 update).
#[derive(Module, Debug)]
pub struct MaskedLinear {
    /// `[in, out]`, trainable.
    pub weight: Param<Tensor<2>>,
    /// `[out]`, trainable; biases are never pruned.
    pub bias: Option<Param<Tensor<1>>>,
    /// `[in, out]` of 0.0/1.0; `None` when the layer is dense (no multiply at all).
    pub mask: Option<Tensor<2>>,
    /// A convolution's layout; `None` for a dense layer.
    #[module(skip)]
    pub(crate) conv: Option<ConvLayout>,
}

impl MaskedLinear {
    /// `W ⊙ M` (or `W` for a dense layer).
    fn effective_weight(&self) -> Tensor<2> {
        match &self.mask {
            Some(m) => self.weight.val() * m.clone(),
            None => self.weight.val(),
        }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        layer_forward(
            x,
            self.effective_weight(),
            self.bias.as_ref().map(Param::val),
            self.conv.as_ref(),
        )
    }

    /// Stored weight multiplied by the mask, kept a trainable leaf (a tracked product would
    /// silently get no gradient: burn-probe.md).
    fn remasked(self) -> Self {
        let Some(m) = self.mask.clone() else {
            return self;
        };
        MaskedLinear {
            weight: self.weight.map(|w| {
                let trainable = w.is_require_grad();
                let t = (w * m).detach();
                if trainable { t.require_grad() } else { t }
            }),
            ..self
        }
    }
}

/// The `[in, out]` 0/1 mask tensor of one layer, `None` when the layer is dense.
fn mask_tensor(keep: &[bool], fan_out: usize, fan_in: usize, device: &Device) -> Option<Tensor<2>> {
    let dense = keep.iter().all(|&k| k);
    (!dense).then(|| {
        let m: Vec<f32> = keep.iter().map(|&k| if k { 1.0 } else { 0.0 }).collect();
        Tensor::from_data(
            TensorData::new(transpose(&m, fan_out, fan_in), [fan_in, fan_out]),
            device,
        )
    })
}

/// ReLU network of masked dense and convolution layers with a linear output.
#[derive(Module, Debug)]
pub struct MaskedMlp {
    pub layers: Vec<MaskedLinear>,
}

impl MaskedMlp {
    /// Uploads `net` with `mask` applied (pruned weights stored as exact zeros).
    pub fn from_host(net: &Network, mask: &Mask, device: &Device) -> Result<Self, CoreError> {
        mask.check_shapes(&net.shapes())?;
        let layers = net
            .layers
            .iter()
            .zip(mask.layers())
            .map(|(layer, keep)| {
                let (fan_out, fan_in) = (layer.shape.fan_out(), layer.shape.fan_in());
                let masked: Vec<f32> = layer
                    .weight
                    .iter()
                    .zip(keep)
                    .map(|(&w, &k)| if k { w } else { 0.0 })
                    .collect();
                let weight = Param::from_data(
                    TensorData::new(transpose(&masked, fan_out, fan_in), [fan_in, fan_out]),
                    device,
                );
                let bias = layer
                    .bias
                    .as_ref()
                    .map(|b| Param::from_data(TensorData::new(b.clone(), [fan_out]), device));
                let mask = mask_tensor(keep, fan_out, fan_in, device);
                MaskedLinear {
                    weight,
                    bias,
                    mask,
                    conv: ConvLayout::of(layer),
                }
            })
            .collect();
        Ok(MaskedMlp { layers })
    }

    /// The same model under a new mask: stored weights outside `mask` and on `zeroed` become
    /// exactly 0 (parameter ids kept, so optimiser state carries over for the other weights).
    pub fn with_mask(self, mask: &Mask, zeroed: Option<&Mask>, device: &Device) -> Self {
        let layers = self
            .layers
            .into_iter()
            .enumerate()
            .map(|(l, layer)| {
                let [fan_in, fan_out] = layer.weight.val().dims();
                let keep = mask.layer(l);
                let layer = match zeroed {
                    Some(z) => {
                        let kept_value: Vec<bool> = keep
                            .iter()
                            .zip(z.layer(l))
                            .map(|(&k, &z)| k && !z)
                            .collect();
                        MaskedLinear {
                            mask: mask_tensor(&kept_value, fan_out, fan_in, device),
                            ..layer
                        }
                        .remasked()
                    }
                    None => layer,
                };
                MaskedLinear {
                    mask: mask_tensor(keep, fan_out, fan_in, device),
                    ..layer
                }
                .remasked()
            })
            .collect();
        MaskedMlp { layers }
    }

    /// Stored weights multiplied by the mask again (after an optimiser step that momentum or
    /// Adam moments may have moved off zero).
    pub fn remasked(self) -> Self {
        MaskedMlp {
            layers: self
                .layers
                .into_iter()
                .map(MaskedLinear::remasked)
                .collect(),
        }
    }

    /// A copy whose weights are the current effective weights but with no mask, as fresh
    /// trainable leaves: its gradient is the dense `∂L/∂W` (RigL's growth criterion).
    pub fn unmasked_copy(&self) -> Self {
        let layers = self
            .layers
            .iter()
            .map(|l| MaskedLinear {
                weight: Param::from_tensor(l.effective_weight().detach().require_grad()),
                bias: l
                    .bias
                    .as_ref()
                    .map(|b| Param::from_tensor(b.val().detach().require_grad())),
                mask: None,
                conv: l.conv,
            })
            .collect();
        MaskedMlp { layers }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(x, |h, (l, layer)| {
            let z = layer.forward(h);
            if l == last { z } else { relu(z) }
        })
    }

    /// Number of trainable tensors (weights + biases): the gradient count every step must see.
    pub fn num_params(&self) -> usize {
        self.layers
            .iter()
            .map(|l| 1 + l.bias.is_some() as usize)
            .sum()
    }

    /// Reads the stored weights and biases back into a host network (layout `[out, in]`).
    pub fn to_host(&self, like: &Network) -> Network {
        let layers = self
            .layers
            .iter()
            .zip(&like.layers)
            .map(|(l, host)| {
                let (fan_out, fan_in) = (host.shape.fan_out(), host.shape.fan_in());
                let w = read_f32(&l.weight.val());
                Layer {
                    shape: host.shape.clone(),
                    weight: transpose(&w, fan_in, fan_out),
                    bias: l.bias.as_ref().map(|b| read_f32(&b.val())),
                    conv: host.conv,
                }
            })
            .collect();
        Network { layers }
    }
}

/// Gradients of the stored weights in host layout `[out, in]`, one vector per layer.
pub(crate) fn weight_grads(
    model: &MaskedMlp,
    grads: &burn::tensor::Gradients,
    like: &Network,
) -> Option<Vec<Vec<f32>>> {
    model
        .layers
        .iter()
        .zip(&like.layers)
        .map(|(l, host)| {
            let g = l.weight.val().grad(grads)?;
            Some(transpose(
                &read_f32(&g),
                host.shape.fan_in(),
                host.shape.fan_out(),
            ))
        })
        .collect()
}

pub(crate) fn read_f32<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    // `into`, not `to`: the downloaded buffer becomes the Vec (one copy, not two).
    t.to_data()
        .try_into_vec::<f32>()
        .expect("float tensors hold f32")
}

/// Row-major `rows × cols` → `cols × rows`.
pub(crate) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}
