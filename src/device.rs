//! Compute devices: which burn backend a job runs on.
//!
//! `cpu` is burn-flex (the maintained pure-Rust CPU backend); `ndarray` is burn's deprecated
//! ndarray backend, kept as a cross-check (cargo feature `ndarray`, on by default); `cuda[:N]`
//! needs the opt-in cargo feature `cuda` and a visible NVIDIA GPU. Asking for a device this
//! build or machine cannot give is an error that names the fix, never a panic.

use burn::prelude::Device;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A device as written on the command line or in a suite (`cpu`, `ndarray`, `cuda:0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// burn-flex on the CPU (default).
    Cpu,
    /// burn-ndarray on the CPU.
    NdArray,
    /// burn-cuda on GPU `N`.
    Cuda(usize),
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum DeviceError {
    #[error("unknown device `{0}`; valid devices: cpu, ndarray, cuda, cuda:N")]
    Unknown(String),
    #[error(
        "device `{0}` needs the `{1}` cargo feature, which this build lacks; rebuild with `cargo build --release --features {1}`"
    )]
    FeatureMissing(String, &'static str),
    #[error(
        "no CUDA device {index}: {found} found; is the NVIDIA driver (libcuda) installed and the GPU visible?"
    )]
    NoCudaDevice { index: usize, found: usize },
}

impl DeviceSpec {
    /// Opens the device with autodiff enabled (training needs gradients).
    pub fn open(self) -> Result<Device, DeviceError> {
        let device = match self {
            DeviceSpec::Cpu => Device::flex(),
            DeviceSpec::NdArray => open_ndarray(self)?,
            DeviceSpec::Cuda(index) => open_cuda(self, index)?,
        };
        Ok(device.autodiff())
    }

    /// Name of the burn backend behind the device, recorded in results.
    pub fn backend(self) -> &'static str {
        match self {
            DeviceSpec::Cpu => "burn-flex",
            DeviceSpec::NdArray => "burn-ndarray",
            DeviceSpec::Cuda(_) => "burn-cuda",
        }
    }
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)] // burn marks ndarray deprecated in favour of flex; we keep it as a cross-check.
fn open_ndarray(_: DeviceSpec) -> Result<Device, DeviceError> {
    Ok(Device::ndarray())
}

#[cfg(not(feature = "ndarray"))]
fn open_ndarray(spec: DeviceSpec) -> Result<Device, DeviceError> {
    Err(DeviceError::FeatureMissing(spec.to_string(), "ndarray"))
}

/// Probes before opening: the first op on `Device::cuda(i)` without a driver panics inside
/// the driver loader, while enumeration returns an empty list.
#[cfg(feature = "cuda")]
fn open_cuda(_: DeviceSpec, index: usize) -> Result<Device, DeviceError> {
    let found = Device::enumerate(burn::tensor::DeviceType::Cuda)
        .into_iter()
        .count();
    if index >= found {
        return Err(DeviceError::NoCudaDevice { index, found });
    }
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(spec: DeviceSpec, _: usize) -> Result<Device, DeviceError> {
    Err(DeviceError::FeatureMissing(spec.to_string(), "cuda"))
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" | "flex" => Ok(DeviceSpec::Cpu),
            "ndarray" => Ok(DeviceSpec::NdArray),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| DeviceError::Unknown(s.to_string())),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = DeviceError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::NdArray => f.write_str("ndarray"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_round_trips() {
        for (s, d) in [
            ("cpu", DeviceSpec::Cpu),
            ("ndarray", DeviceSpec::NdArray),
            ("cuda:1", DeviceSpec::Cuda(1)),
        ] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap(), d);
            assert_eq!(d.to_string(), s);
        }
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert!(
            "gpu"
                .parse::<DeviceSpec>()
                .unwrap_err()
                .to_string()
                .contains("valid devices")
        );
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        let err = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
