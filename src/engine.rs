//! The engine: one burn device plus the operations methods and the runner need from it —
//! upload a task's data once, compute loss gradients, train and evaluate masked networks
//! (the loops are in [`crate::train`]). Methods see only this type, never burn itself.

use crate::device::{DeviceError, DeviceSpec};
use crate::model::{MaskedMlp, weight_grads};
pub use crate::native::Kernel;
use burn::nn::loss::{CrossEntropyLossConfig, MseLoss, Reduction};
use burn::prelude::{Device, Int, Tensor, TensorData};
use thiserror::Error;
use ticketbench_core::{CoreError, Mask, Network};
use ticketbench_planted::{Dataset, OutputKind, Targets, TaskData};

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The silent burn trap: a parameter that is no longer a leaf gets no gradient and the
    /// optimiser skips it. Checked every step.
    #[error(
        "step {step}: {got} of {expected} parameters received a gradient (a parameter was detached from the graph)"
    )]
    MissingGradients {
        step: usize,
        expected: usize,
        got: usize,
    },
    #[error(
        "the network has {net} inputs and {net_out} outputs but the task has {data} inputs and {data_out} outputs"
    )]
    DataShape {
        net: usize,
        net_out: usize,
        data: usize,
        data_out: usize,
    },
    #[error("invalid training recipe: {0}")]
    Recipe(String),
}

/// A burn device, opened with autodiff.
pub struct Engine {
    spec: DeviceSpec,
    device: Device,
    /// Kernels of the native CPU step (`--device cpu` only).
    kernel: Kernel,
}

/// Targets on the device.
pub(crate) enum DeviceTargets {
    Classes(Tensor<1, Int>),
    Values(Tensor<2>),
}

/// One split on the device.
pub(crate) struct DeviceSplit {
    pub x: Tensor<2>,
    pub y: DeviceTargets,
    pub len: usize,
}

impl DeviceSplit {
    /// The same split without autodiff (no copy). Inference must use it with
    /// `Module::valid()`: a forward through tracked parameters records a graph that holds
    /// its inputs until a `backward()` that never comes, which kept one copy of the test
    /// split alive per evaluation (measured: +150 MB per job on smc-facts).
    pub(crate) fn without_autodiff(&self) -> DeviceSplit {
        DeviceSplit {
            x: self.x.clone().without_autodiff(),
            y: match &self.y {
                DeviceTargets::Classes(y) => DeviceTargets::Classes(y.clone().without_autodiff()),
                DeviceTargets::Values(y) => DeviceTargets::Values(y.clone().without_autodiff()),
            },
            len: self.len,
        }
    }
}

/// A task's data, uploaded once per job and shared by pruning, training and evaluation.
pub struct DeviceData {
    pub(crate) output: OutputKind,
    pub(crate) input_dim: usize,
    pub(crate) train: DeviceSplit,
    pub(crate) test: DeviceSplit,
}

impl DeviceData {
    pub fn output(&self) -> OutputKind {
        self.output
    }
}

impl Engine {
    pub fn new(spec: DeviceSpec) -> Result<Self, EngineError> {
        Ok(Engine {
            spec,
            device: spec.open()?,
            kernel: Kernel::Auto,
        })
    }

    /// The same engine with the native CPU step forced onto `kernel` (benchmarks, tests).
    pub fn with_kernel(self, kernel: Kernel) -> Self {
        Engine { kernel, ..self }
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    pub fn spec(&self) -> DeviceSpec {
        self.spec
    }

    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    pub fn upload(&self, data: &TaskData) -> DeviceData {
        DeviceData {
            output: data.output,
            input_dim: data.train.input_dim,
            train: self.upload_split(&data.train),
            test: self.upload_split(&data.test),
        }
    }

    pub(crate) fn upload_split(&self, d: &Dataset) -> DeviceSplit {
        let n = d.len();
        let x = Tensor::from_data(
            TensorData::new(d.inputs.clone(), [n, d.input_dim]),
            &self.device,
        );
        let y = match &d.targets {
            Targets::Classes(y) => {
                let y: Vec<i64> = y.iter().map(|&c| c as i64).collect();
                DeviceTargets::Classes(Tensor::from_data(TensorData::new(y, [n]), &self.device))
            }
            Targets::Values { values, dim } => DeviceTargets::Values(Tensor::from_data(
                TensorData::new(values.clone(), [n, *dim]),
                &self.device,
            )),
        };
        DeviceSplit { x, y, len: n }
    }

    /// Checks that `net` maps the data's inputs to the task's outputs.
    pub(crate) fn check_shapes(
        net: &Network,
        input_dim: usize,
        output: OutputKind,
    ) -> Result<(), EngineError> {
        let w = net.widths();
        let (net_in, net_out) = (w[0], *w.last().expect("a network has layers"));
        if net_in != input_dim || net_out != output.dim() {
            return Err(EngineError::DataShape {
                net: net_in,
                net_out,
                data: input_dim,
                data_out: output.dim(),
            });
        }
        Ok(())
    }

    /// `∇_W L` of the mean loss on `batch` for the masked network, per layer in host layout
    /// `[out, in]` (f32). Pruned entries get exactly zero.
    pub fn loss_gradients(
        &self,
        net: &Network,
        mask: &Mask,
        batch: &Dataset,
        output: OutputKind,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        Self::check_shapes(net, batch.input_dim, output)?;
        let model = MaskedMlp::from_host(net, mask, &self.device)?;
        let split = self.upload_split(batch);
        let loss = loss(output, model.forward(split.x), &split.y);
        let grads = loss.backward();
        weight_grads(&model, &grads, net).ok_or(EngineError::MissingGradients {
            step: 0,
            expected: model.layers.len(),
            got: 0,
        })
    }
}

/// Mean loss: cross-entropy over logits for classes, MSE over all outputs for regression.
pub(crate) fn loss(
    output: OutputKind,
    prediction: Tensor<2>,
    targets: &DeviceTargets,
) -> Tensor<1> {
    match (output, targets) {
        (OutputKind::Classes(_), DeviceTargets::Classes(y)) => CrossEntropyLossConfig::new()
            .init(&prediction.device())
            .forward(prediction, y.clone()),
        (OutputKind::Regression(_), DeviceTargets::Values(y)) => {
            MseLoss::new().forward(prediction, y.clone(), Reduction::Mean)
        }
        _ => unreachable!("targets are uploaded from the task's own output kind"),
    }
}
