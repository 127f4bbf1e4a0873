//! The engine: one burn device plus the operations methods and the runner need from it —
//! upload a task's data once, compute loss gradients, train and evaluate masked networks
//! (the loops are in [`crate::train`]). Methods see only this type, never burn itself.

use crate::device::{DeviceError, DeviceSpec};
use crate::model::{MaskedMlp, read_f32, weight_grads};
pub use crate::native::Kernel;
use crate::train::{EVAL_CHUNK, batch};
use burn::nn::loss::{CrossEntropyLossConfig, MseLoss, Reduction};
use burn::prelude::{Device, Int, Tensor, TensorData};
use thiserror::Error;
use ticketbench_core::Streams;
use ticketbench_core::{CoreError, Mask, Network};
use ticketbench_planted::{
    Dataset, FunctionScore, OutputKind, Targets, TaskData, function_outputs, score_outputs,
    scoring_rows,
};

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
#[derive(Clone)]
pub(crate) enum DeviceTargets {
    Classes(Tensor<1, Int>),
    Values(Tensor<2>),
}

/// One split on the device. Cloning shares the tensors (no copy of the data).
#[derive(Clone)]
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

    /// Copies the input rows `idx`, in that order, into `out` (`[idx.len(), input_dim]`).
    pub(crate) fn gather_inputs_into(&self, idx: &[usize], out: &mut [f32]) {
        // Off the autodiff graph, which kept a record of every select (measured: 1 MB per
        // epoch of the native step on smc-facts, never freed).
        let x = self.x.clone().without_autodiff();
        let rows = index_tensor(idx, &x.device());
        let batch = x.select(0, rows).into_data();
        out.copy_from_slice(batch.as_slice::<f32>().expect("float tensors hold f32"));
    }

    /// Host copy of the input rows `idx`, in that order (`[idx.len(), input_dim]`).
    pub(crate) fn gather_inputs(&self, idx: &[usize]) -> Vec<f32> {
        let mut out = vec![0.0; idx.len() * self.x.dims()[1]];
        self.gather_inputs_into(idx, &mut out);
        out
    }

    /// Host copy of the targets.
    pub(crate) fn targets(&self) -> Targets {
        host_targets(&self.without_autodiff().y)
    }

    /// Host copy of the rows `idx` (inputs and targets), in that order.
    pub(crate) fn rows(&self, idx: &[usize]) -> Dataset {
        let split = self.without_autodiff();
        let (x, y) = batch(&split, index_tensor(idx, &split.x.device()));
        Dataset {
            inputs: read_f32(&x),
            input_dim: x.dims()[1],
            targets: host_targets(&y),
        }
    }
}

/// Host copy of targets on the device.
fn host_targets(y: &DeviceTargets) -> Targets {
    match y {
        DeviceTargets::Classes(y) => {
            Targets::Classes(y.to_data().iter::<i64>().map(|c| c as u32).collect())
        }
        DeviceTargets::Values(y) => Targets::Values {
            dim: y.dims()[1],
            values: read_f32(y),
        },
    }
}

/// Row indices as an index tensor on `device`.
fn index_tensor(idx: &[usize], device: &Device) -> Tensor<1, Int> {
    let rows: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(rows, [idx.len()]), device)
}

/// A task's data, uploaded once per group and shared by pruning, training and evaluation.
/// It is the job's only copy of the data (docs/decisions.md, "One copy of the data"): host
/// code reads rows, targets or chunks from it and drops them after use. Cloning shares the
/// tensors (no copy).
#[derive(Clone)]
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

    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    /// Examples in the training split.
    pub fn train_len(&self) -> usize {
        self.train.len
    }

    /// Host copy of the training rows `idx` (inputs and targets), in that order.
    pub fn train_rows(&self, idx: &[usize]) -> Dataset {
        self.train.rows(idx)
    }

    /// Host copy of the training targets.
    pub fn train_targets(&self) -> Targets {
        self.train.targets()
    }

    /// Host copy of the whole training split (a check that corrupts the data in place),
    /// read [`EVAL_CHUNK`] rows at a time: a whole-tensor read copies twice on burn-flex
    /// (its shared storage into a byte buffer, then into a `Vec<f32>`).
    pub fn train_split(&self) -> Dataset {
        let (n, d) = (self.train.len, self.input_dim);
        let mut inputs = vec![0.0; n * d];
        for start in (0..n).step_by(EVAL_CHUNK) {
            let end = (start + EVAL_CHUNK).min(n);
            let idx: Vec<usize> = (start..end).collect();
            self.train
                .gather_inputs_into(&idx, &mut inputs[start * d..end * d]);
        }
        Dataset {
            inputs,
            input_dim: self.input_dim,
            targets: self.train_targets(),
        }
    }

    /// The scoring batch of data-dependent pruners ([`TaskData::scoring_batch`]'s rows,
    /// chosen from the targets and gathered from the device).
    pub fn scoring_batch(&self, per_class: usize, streams: &Streams, purpose: &str) -> Dataset {
        // Class-balanced batches need the labels; regression needs only the row count.
        let labels = match self.output {
            OutputKind::Classes(_) => match self.train_targets() {
                Targets::Classes(y) => Some(y),
                Targets::Values { .. } => None,
            },
            OutputKind::Regression(_) => None,
        };
        let rows = scoring_rows(
            self.train.len,
            labels.as_deref(),
            self.output,
            per_class,
            streams,
            purpose,
        );
        self.train_rows(&rows)
    }

    /// [`ticketbench_planted::score_function`] on the test split, reading
    /// [`EVAL_CHUNK`] rows to the host at a time.
    pub fn score_test(
        &self,
        output_scale: &[f64],
        f: impl Fn(&[f64]) -> Vec<f64>,
    ) -> FunctionScore {
        let n = self.test.len;
        let mut outputs = Vec::with_capacity(n);
        for start in (0..n).step_by(EVAL_CHUNK) {
            let idx: Vec<usize> = (start..(start + EVAL_CHUNK).min(n)).collect();
            let inputs = self.test.gather_inputs(&idx);
            outputs.extend(function_outputs(&inputs, self.input_dim, &f));
        }
        score_outputs(&outputs, &self.test.targets(), output_scale)
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

    /// Moves `data` onto the device (on the CPU backends the tensors take over its buffers,
    /// so no copy is made).
    pub fn upload(&self, data: TaskData) -> DeviceData {
        DeviceData {
            output: data.output,
            input_dim: data.train.input_dim,
            train: self.upload_split(data.train),
            test: self.upload_split(data.test),
        }
    }

    pub(crate) fn upload_split(&self, d: Dataset) -> DeviceSplit {
        let n = d.len();
        let x = Tensor::from_data(TensorData::new(d.inputs, [n, d.input_dim]), &self.device);
        DeviceSplit {
            x,
            y: self.upload_targets(d.targets, n),
            len: n,
        }
    }

    /// The targets of `n` examples (a count that disagrees with the targets is a bug in
    /// the task and panics in `TensorData::new`).
    fn upload_targets(&self, targets: Targets, n: usize) -> DeviceTargets {
        match targets {
            Targets::Classes(y) => {
                let y: Vec<i64> = y.iter().map(|&c| c as i64).collect();
                DeviceTargets::Classes(Tensor::from_data(TensorData::new(y, [n]), &self.device))
            }
            Targets::Values { values, dim } => DeviceTargets::Values(Tensor::from_data(
                TensorData::new(values, [n, dim]),
                &self.device,
            )),
        }
    }

    /// `data` with its training split replaced by `train` (uploaded; the test split is
    /// shared).
    pub fn with_train(&self, data: &DeviceData, train: Dataset) -> DeviceData {
        DeviceData {
            train: self.upload_split(train),
            ..data.clone()
        }
    }

    /// `data` with new training targets (uploaded; the inputs and the test split are
    /// shared, not copied).
    pub fn with_train_targets(&self, data: &DeviceData, targets: Targets) -> DeviceData {
        let mut out = data.clone();
        out.train.y = self.upload_targets(targets, data.train.len);
        out
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
        let split = self.upload_split(batch.clone());
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
