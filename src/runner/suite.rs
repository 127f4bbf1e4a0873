//! Suite files (YAML): parsing and validation with file/line/column errors.
//!
//! ```yaml
//! name: smoke                      # optional; default: the file stem
//! tasks: [circle, {name: relu, noise_std: 0.02}]
//!   # a task entry may override fields of the suite's `train:` for its own jobs:
//!   # - {name: smc-modchain, train: {lr: 0.003, epochs: 200, batch_size: 128}}
//! models:                          # optional; default: one MLP with hidden [100, 100, 100]
//!   - {hidden: [100, 100, 100], init: kaiming-normal, bias: true}
//!   - {name: host, hidden: [100, 100, 100], init: he-scaled, plant: pns}  # planted host
//!   - {hidden: [64, 64], tasks: [circle]}  # `tasks`: only these tasks (name or label)
//!   - {conv: [16, {channels: 32, stride: 2}], hidden: [64], tasks: [digits]}  # image tasks
//! methods: [dense, random, {name: random, rule: erk}, magnitude, snip, synflow]
//! densities: [0.5, 0.1, planted]  # `planted`: the planted ticket's density (planted models)
//! seeds: 3                         # or a list: [0, 1, 2]
//! transfer: false                  # true: also train each ticket on the other tasks of the
//!                                  # same input width and output kind
//! matched_random: false            # true: beside every ticket, train a random ticket with
//!                                  # the same per-layer counts (the key sanity baseline)
//! checks: [layer_shuffle, reinit]  # sanity checks (methods.md §3.1), one job per ticket each
//! train: {optimizer: adam, lr: 0.001, epochs: 10, batch_size: 32}
//! device: cpu                      # cpu | ndarray | cuda[:N]; --device overrides
//! ```

use crate::device::DeviceSpec;
use crate::methods::{self, Params, Pruner, Schedule};
use crate::train::TrainRecipe;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::{Location, Spanned};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use ticketbench_baselines::SanityCheck;
use ticketbench_core::{
    ConvNetSpec, ConvSpec, CoreError, Density, InitScheme, LayerShape, Network, target_count,
};
use ticketbench_planted::tasks::{self as task_registry, Task};
use ticketbench_planted::{PlantKind, TargetNet};

/// A suite file that could not be loaded. Displayed as `path:line:column: message`.
#[derive(Debug, Error)]
pub enum SuiteError {
    #[error("cannot read suite file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
}

/// A task, method or model entry: a bare name or a map with `name` and parameters.
#[derive(Debug, Clone, PartialEq)]
struct NamedSpec {
    name: String,
    params: Params,
}

impl<'de> Deserialize<'de> for NamedSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NamedVisitor;
        impl<'de> Visitor<'de> for NamedVisitor {
            type Value = NamedSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name, or a map with a `name` key and parameters")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NamedSpec, E> {
                Ok(NamedSpec {
                    name: v.to_string(),
                    params: Default::default(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NamedSpec, A::Error> {
                let mut params = serde_json::Map::new();
                let mut name = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "name" {
                        name = Some(map.next_value::<String>()?);
                    } else {
                        let value = map.next_value::<serde_json::Value>()?;
                        if params.insert(key.clone(), value).is_some() {
                            return Err(de::Error::custom(format!("duplicate key `{key}`")));
                        }
                    }
                }
                let name = name.ok_or_else(|| de::Error::missing_field("name"))?;
                Ok(NamedSpec { name, params })
            }
        }
        deserializer.deserialize_any(NamedVisitor)
    }
}

/// `seeds: 3` (seeds 0, 1, 2) or `seeds: [0, 5, 9]`.
#[derive(Debug, Clone, PartialEq)]
struct SeedsSpec(Vec<u64>);

/// Largest seed count accepted: far beyond any study, small enough to allocate (a count
/// like `seeds: 3000000000` is a typo that would exhaust memory before any check).
const MAX_SEED_COUNT: u64 = 100_000;

fn seed_range<E: de::Error>(n: u64) -> Result<SeedsSpec, E> {
    if n > MAX_SEED_COUNT {
        return Err(E::custom(format!(
            "seeds {n} exceeds the limit of {MAX_SEED_COUNT} seeds; give a smaller count or a list of seeds"
        )));
    }
    Ok(SeedsSpec((0..n).collect()))
}

impl<'de> Deserialize<'de> for SeedsSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeedsVisitor;
        impl<'de> Visitor<'de> for SeedsVisitor {
            type Value = SeedsSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of seeds (e.g. 5) or a list of non-negative integer seeds")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<SeedsSpec, E> {
                seed_range(n)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<SeedsSpec, E> {
                let n = u64::try_from(n).map_err(|_| {
                    E::custom(format!(
                        "seeds {n} is negative; give a count ≥ 1 or a list of seeds ≥ 0"
                    ))
                })?;
                seed_range(n)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SeedsSpec, A::Error> {
                let mut seeds = Vec::new();
                while let Some(s) = seq.next_element::<u64>()? {
                    seeds.push(s);
                }
                Ok(SeedsSpec(seeds))
            }
        }
        deserializer.deserialize_any(SeedsVisitor)
    }
}

fn default_init() -> InitScheme {
    InitScheme::KaimingNormal
}

fn default_bias() -> bool {
    true
}

/// One convolution of a model entry: a channel count (`16`: kernel 3, stride 1, padding 1)
/// or a map `{channels: 32, kernel: 3, stride: 2, padding: 1}` with those defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ConvEntry(pub ConvSpec);

impl<'de> Deserialize<'de> for ConvEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            channels: usize,
            #[serde(default = "three")]
            kernel: usize,
            #[serde(default = "one")]
            stride: usize,
            #[serde(default = "one")]
            padding: usize,
        }
        fn three() -> usize {
            3
        }
        fn one() -> usize {
            1
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Entry {
            Channels(usize),
            Full(Full),
        }
        let spec = match Entry::deserialize(deserializer).map_err(|_| {
            de::Error::custom(
                "a convolution is a channel count (e.g. 16) or a map {channels, kernel, stride, padding}",
            )
        })? {
            Entry::Channels(channels) => ConvSpec::k3(channels, 1),
            Entry::Full(f) => ConvSpec {
                channels: f.channels,
                kernel: f.kernel,
                stride: f.stride,
                padding: f.padding,
            },
        };
        Ok(ConvEntry(spec))
    }
}

/// A model entry: an MLP (hidden widths; input and output widths come from the task), or,
/// with `conv`, a convolutional net on an image task (convolutions with ReLU, flattened CHW
/// into the dense layers; `core::ConvNetSpec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Display name; default `mlp-<hidden widths joined by x>` (`cnn-<channels>-<hidden>`
    /// for a convolutional net, `s2` marking a stride of 2).
    #[serde(default)]
    pub name: Option<String>,
    /// Convolutions before the dense layers (image tasks only); empty for an MLP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conv: Vec<ConvEntry>,
    pub hidden: Vec<usize>,
    #[serde(default = "default_init")]
    pub init: InitScheme,
    #[serde(default = "default_bias")]
    pub bias: bool,
    /// Plant the task's target into the host (planting.md §3): `pns`.
    #[serde(default)]
    pub plant: Option<PlantKind>,
    /// Task labels this model runs on; default every task of the suite.
    #[serde(default)]
    pub tasks: Option<Vec<String>>,
}

impl ModelSpec {
    /// Whether this model runs on `task` (listed by its label or its task name).
    pub fn runs_on(&self, task: &SuiteTask) -> bool {
        self.tasks
            .as_ref()
            .is_none_or(|t| t.iter().any(|l| task.is_called(l)))
    }

    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let h: Vec<String> = self.hidden.iter().map(|w| w.to_string()).collect();
            if !self.conv.is_empty() {
                let c: Vec<String> = self
                    .conv
                    .iter()
                    .map(|ConvEntry(c)| match c.stride {
                        1 => c.channels.to_string(),
                        s => format!("{}s{s}", c.channels),
                    })
                    .collect();
                let mut label = format!("cnn-{}", c.join("x"));
                if !h.is_empty() {
                    label = format!("{label}-{}", h.join("x"));
                }
                label
            } else if h.is_empty() {
                "linear".into()
            } else {
                format!("mlp-{}", h.join("x"))
            }
        })
    }

    /// The convolutional architecture on `task`: `None` for an MLP, an error when the task
    /// has no image shape or the convolutions do not fit it.
    pub fn conv_net(&self, task: &dyn Task) -> Result<Option<ConvNetSpec>, String> {
        if self.conv.is_empty() {
            return Ok(None);
        }
        let image = task.image_shape().ok_or_else(|| {
            format!(
                "model `{}` has convolutions but task `{}` has no image shape (use an image task: digits, idx, cifar)",
                self.label(),
                task.name()
            )
        })?;
        let spec = ConvNetSpec {
            input: [image.channels, image.height, image.width],
            convs: self.conv.iter().map(|c| c.0).collect(),
            hidden: self.hidden.clone(),
            outputs: task.output().dim(),
        };
        spec.layers()
            .map_err(|e| format!("model `{}`: {e}", self.label()))?;
        Ok(Some(spec))
    }

    /// Activation widths for a task: `[inputs, hidden…, outputs]` for an MLP; for a
    /// convolutional net the flat CHW lengths of each layer's output ([`Network::widths`]).
    pub fn widths(&self, task: &dyn Task) -> Vec<usize> {
        let mut w = vec![task.input_dim()];
        if let Ok(Some(spec)) = self.conv_net(task) {
            let layers = spec.layers().expect("checked by conv_net");
            let shapes: Vec<usize> = layers
                .iter()
                .map(|(shape, conv)| {
                    let positions = conv.map_or(1, |c| {
                        let (h, w) = c
                            .out_hw(shape.dims[2], shape.dims[3])
                            .expect("checked by conv_net");
                        h * w
                    });
                    shape.fan_out() * positions
                })
                .collect();
            w.extend(shapes);
            return w;
        }
        w.extend(&self.hidden);
        w.push(task.output().dim());
        w
    }

    /// The prunable weight shapes on `task`.
    pub fn shapes(&self, task: &dyn Task) -> Result<Vec<LayerShape>, String> {
        match self.conv_net(task)? {
            Some(spec) => Ok(spec
                .layers()
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(shape, _)| shape)
                .collect()),
            None => Network::mlp_shapes(&self.widths(task)).map_err(|e| e.to_string()),
        }
    }

    /// θ_0 for a task and seed.
    pub fn init_network(
        &self,
        task: &dyn Task,
        streams: &ticketbench_core::Streams,
    ) -> Result<Network, CoreError> {
        match self.conv_net(task).map_err(CoreError::ShapeMismatch)? {
            Some(spec) => Network::conv_net(&spec, self.bias, self.init, streams),
            None => Network::mlp(&self.widths(task), self.bias, self.init, streams),
        }
    }

    /// The target this model plants for `task`, if it plants one; errors explain why a
    /// task and host do not fit.
    pub fn planted_target(&self, task: &dyn Task) -> Result<Option<TargetNet>, String> {
        let Some(kind) = self.plant else {
            return Ok(None);
        };
        if !self.conv.is_empty() {
            return Err(format!(
                "model `{}`: planting needs an MLP host; the targets are dense networks",
                self.label()
            ));
        }
        if kind != PlantKind::Pns {
            return Err(format!(
                "`plant: {}` is not available in suites: its certified ticket prunes biases, which ticketbench's pruners never do; build it with `ticketbench plant --kind strong`",
                kind.name()
            ));
        }
        let widths = self.widths(task);
        let target = task.target(widths.len()).map_err(|e| e.to_string())?;
        let tw = target.widths();
        if tw.iter().zip(&widths).any(|(t, h)| t > h) {
            return Err(format!(
                "model `{}` (widths {widths:?}) is too narrow for the {} target (widths {tw:?})",
                self.label(),
                task.name()
            ));
        }
        if !self.bias {
            return Err(format!(
                "model `{}` plants a target with biases; set `bias: true`",
                self.label()
            ));
        }
        Ok(Some(target))
    }

    /// Density of the planted ticket (target nonzeros / host weights) for `task`.
    pub fn planted_density(&self, task: &dyn Task) -> Option<Density> {
        let target = self.planted_target(task).ok()??;
        let total: usize = self.shapes(task).ok()?.iter().map(|s| s.len()).sum();
        Density::new(target.nonzero_weights() as f64 / total as f64).ok()
    }
}

/// One entry of `densities`: a number or the word `planted`.
#[derive(Deserialize)]
#[serde(untagged)]
enum DensityEntry {
    Value(f64),
    Word(String),
}

/// A density of the suite grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DensitySpec {
    Fixed(Density),
    /// The planted ticket's own density (on planted models; skipped elsewhere).
    Planted,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    #[serde(default)]
    name: Option<Spanned<String>>,
    #[serde(default)]
    description: Option<String>,
    tasks: Spanned<Vec<Spanned<NamedSpec>>>,
    #[serde(default)]
    models: Option<Spanned<Vec<Spanned<ModelSpec>>>>,
    methods: Spanned<Vec<Spanned<NamedSpec>>>,
    densities: Spanned<Vec<Spanned<DensityEntry>>>,
    seeds: Spanned<SeedsSpec>,
    #[serde(default)]
    train: Option<Spanned<TrainRecipe>>,
    #[serde(default)]
    device: Option<Spanned<String>>,
    #[serde(default)]
    transfer: Option<Spanned<bool>>,
    #[serde(default)]
    matched_random: Option<Spanned<bool>>,
    #[serde(default)]
    checks: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A task of a suite, built and validated.
pub struct SuiteTask {
    pub label: String,
    pub task: Arc<dyn Task>,
    /// The recipe this task's jobs train with: the suite's `train:` with the task entry's own
    /// `train:` fields laid over it.
    pub train: TrainRecipe,
}

impl SuiteTask {
    /// Whether `name` is this task's label or its task name (`circle` matches
    /// `circle[samples=400]`).
    pub fn is_called(&self, name: &str) -> bool {
        self.label == name || self.task.name() == name
    }
}

/// A method of a suite, built and validated.
pub struct SuiteMethod {
    pub label: String,
    pub pruner: Arc<dyn Pruner>,
}

/// A validated suite: every name resolved, every parameter checked.
pub struct Suite {
    pub name: String,
    pub description: Option<String>,
    pub tasks: Vec<SuiteTask>,
    pub models: Vec<ModelSpec>,
    pub methods: Vec<SuiteMethod>,
    pub densities: Vec<DensitySpec>,
    pub seeds: Vec<u64>,
    /// The suite-wide `train:` (each task's effective recipe is [`SuiteTask::train`]).
    pub train: TrainRecipe,
    pub device: DeviceSpec,
    /// Train every ticket also on the other tasks with the same input width and output kind.
    pub transfer: bool,
    /// Beside every pruned ticket, train a random ticket with the same per-layer counts.
    pub matched_random: bool,
    /// Sanity checks applied to every method's ticket (methods.md §3.1), each its own job.
    pub checks: Vec<SanityCheck>,
}

impl Suite {
    /// Indices of the suite's other tasks a ticket found on task `t` transfers to.
    pub fn transfer_targets(&self, t: usize) -> Vec<usize> {
        if !self.transfer {
            return Vec::new();
        }
        let a = &self.tasks[t].task;
        (0..self.tasks.len())
            .filter(|&u| {
                let b = &self.tasks[u].task;
                u != t && a.input_dim() == b.input_dim() && a.output() == b.output()
            })
            .collect()
    }
}

/// Label of a registry entry: its name, plus `[k=v, …]` for parameters that differ from the
/// defaults (so `random` and `random[rule=erk]` are separate rows of a table).
/// A suite name: letters, digits, `-`, `_` and `.`, not `.` or `..` (it names a directory).
fn plain_file_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name == "." || name == ".." || !name.chars().all(allowed) {
        return Err(format!(
            "suite name `{name}` is not a plain file name: it names the output directory results/<name>/, so use letters, digits, `-`, `_` and `.` only (not `.` or `..`), e.g. `{}`",
            suggested_name(name)
        ));
    }
    Ok(())
}

/// `name` with every character outside the allowed set replaced by `-`.
fn suggested_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "my-suite".into() } else { s }
}

fn label(name: &str, params: &serde_json::Value, defaults: &serde_json::Value) -> String {
    let (Some(p), Some(d)) = (params.as_object(), defaults.as_object()) else {
        return name.to_string();
    };
    let changed: Vec<String> = p
        .iter()
        .filter(|(k, v)| d.get(*k) != Some(v))
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.as_str().map_or_else(|| v.to_string(), str::to_string)
            )
        })
        .collect();
    if changed.is_empty() {
        name.to_string()
    } else {
        format!("{name}[{}]", changed.join(","))
    }
}

/// Builds the named entries of one list (`tasks`, `methods`) with their registry's `build`,
/// labels each against its defaults and rejects an empty list or a duplicate label.
/// `describe` gives an entry's registry name, full parameters and its own label if it names
/// itself (`label:` of an external method).
fn build_entries<T>(
    list: &Spanned<Vec<Spanned<NamedSpec>>>,
    kind: &str,
    valid: &[&str],
    build: impl Fn(&str, &Params) -> Result<T, String>,
    describe: impl Fn(&T) -> (&'static str, serde_json::Value, Option<String>),
    at: &impl Fn(&Location, String) -> SuiteError,
) -> Result<Vec<(String, T)>, SuiteError> {
    if list.value.is_empty() {
        return Err(at(
            &list.referenced,
            format!(
                "`{kind}s` is empty; list at least one of: {}",
                valid.join(", ")
            ),
        ));
    }
    let mut built: Vec<(String, T)> = Vec::new();
    for spec in &list.value {
        let entry =
            build(&spec.value.name, &spec.value.params).map_err(|e| at(&spec.referenced, e))?;
        let (name, params, own_label) = describe(&entry);
        // Entries with required parameters (file paths) have no defaults: the parameters
        // the entry writes count as changed, the others as defaults.
        let defaults = build(&spec.value.name, &Params::new()).map_or_else(
            |_| {
                let mut d = params.clone();
                if let Some(map) = d.as_object_mut() {
                    map.retain(|k, _| !spec.value.params.contains_key(k));
                }
                d
            },
            |d| describe(&d).1,
        );
        let label = own_label.unwrap_or_else(|| label(name, &params, &defaults));
        if built.iter().any(|(l, _)| *l == label) {
            return Err(at(
                &spec.referenced,
                format!("{kind} `{label}` is listed twice"),
            ));
        }
        built.push((label, entry));
    }
    Ok(built)
}

/// Makes the relative file parameters of a task entry (`TaskInfo::paths`) relative to the
/// suite file's directory `base`, so a suite runs from any working directory.
fn resolve_paths(task: &str, params: &mut Params, base: &Path) {
    let Some(info) = task_registry::info(task) else {
        return;
    };
    for key in info.paths {
        if let Some(serde_json::Value::String(p)) = params.get_mut(*key)
            && Path::new(p.as_str()).is_relative()
        {
            *p = base.join(p.as_str()).to_string_lossy().into_owned();
        }
    }
}

/// Tells an external method entry where the suite file is: its command runs there and its
/// `hash_files` are read there (the directory itself is not hashed).
fn set_suite_dir(spec: &mut NamedSpec, base: &Path) -> Result<(), String> {
    if spec.name != "external" {
        return Ok(());
    }
    let key = methods::EXTERNAL_SUITE_DIR_KEY;
    if spec.params.contains_key(key) {
        return Err(format!(
            "`{key}` is set by ticketbench (the suite file's directory); remove it"
        ));
    }
    let dir = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    let dir = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    spec.params
        .insert(key.into(), dir.to_string_lossy().into_owned().into());
    Ok(())
}

/// A task's parameters as its label shows them: without file paths and their digests, which
/// the results record in full (`task_params`).
fn label_params(task: &dyn Task) -> serde_json::Value {
    let mut params = task.params();
    if let (Some(map), Some(info)) = (params.as_object_mut(), task_registry::info(task.name())) {
        for key in info.paths.iter().chain(&["blake3"]) {
            map.remove(*key);
        }
    }
    params
}

/// `base` with the fields of a task entry's `train:` map laid over it, validated.
fn task_recipe(base: &TrainRecipe, fields: serde_json::Value) -> Result<TrainRecipe, String> {
    let serde_json::Value::Object(fields) = fields else {
        return Err(format!(
            "expected a map of recipe fields (e.g. `{{epochs: 200, lr: 0.003}}`), found `{fields}`"
        ));
    };
    let mut merged = match serde_json::to_value(base).expect("a recipe serializes") {
        serde_json::Value::Object(m) => m,
        _ => unreachable!("a recipe is a struct"),
    };
    merged.extend(fields);
    let recipe: TrainRecipe =
        serde_json::from_value(serde_json::Value::Object(merged)).map_err(|e| e.to_string())?;
    recipe.validate()?;
    Ok(recipe)
}

/// A serde-saphyr error as `path:line:column: message`, followed by its source snippet.
fn syntax_error(e: &serde_saphyr::Error, path: &Path) -> SuiteError {
    let rendered = e
        .to_string()
        .replace("<input>", &path.display().to_string());
    let rendered = rendered.strip_prefix("error: ").unwrap_or(&rendered);
    match e.location() {
        Some(loc) => {
            let prefix = format!("line {} column {}: ", loc.line(), loc.column());
            let message = rendered
                .strip_prefix(&prefix)
                .unwrap_or(rendered)
                .to_string();
            SuiteError::Invalid {
                path: path.to_path_buf(),
                line: loc.line(),
                column: loc.column(),
                message,
            }
        }
        None => SuiteError::Syntax {
            path: path.to_path_buf(),
            message: rendered.to_string(),
        },
    }
}

impl Suite {
    /// Reads and validates a suite file.
    pub fn load(path: &Path) -> Result<Suite, SuiteError> {
        let text = std::fs::read_to_string(path).map_err(|source| SuiteError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Suite::parse(&text, path)
    }

    /// Parses suite YAML; `path` names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Suite, SuiteError> {
        let mut file: SuiteFile =
            serde_saphyr::from_str(text).map_err(|e| syntax_error(&e, path))?;
        let at = |loc: &Location, message: String| SuiteError::Invalid {
            path: path.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
            message,
        };
        let nonempty = |list_len: usize, loc: &Location, key: &str, hint: &str| {
            if list_len == 0 {
                Err(at(loc, format!("`{key}` is empty; {hint}")))
            } else {
                Ok(())
            }
        };

        let train = match file.train {
            None => TrainRecipe::default(),
            Some(t) => {
                t.value
                    .validate()
                    .map_err(|e| at(&t.referenced, format!("train: {e}")))?;
                t.value
            }
        };

        // A task entry's `train:` is the suite's, not the task's: take it out before the
        // task's own parameters are checked.
        let mut task_specs = file.tasks;
        let mut task_recipes = Vec::new();
        let base = path.parent().unwrap_or(Path::new(""));
        for spec in &mut task_specs.value {
            resolve_paths(&spec.value.name, &mut spec.value.params, base);
            let recipe = match spec.value.params.remove("train") {
                None => train.clone(),
                Some(fields) => task_recipe(&train, fields).map_err(|e| {
                    at(
                        &spec.referenced,
                        format!("task `{}`: train: {e}", spec.value.name),
                    )
                })?,
            };
            task_recipes.push(recipe);
        }
        for spec in &mut file.methods.value {
            set_suite_dir(&mut spec.value, base).map_err(|e| at(&spec.referenced, e))?;
        }
        let tasks = build_entries(
            &task_specs,
            "task",
            &task_registry::task_names(),
            |name, params| task_registry::build(name, params).map_err(|e| e.to_string()),
            |task| (task.name(), label_params(task.as_ref()), None),
            &at,
        )?
        .into_iter()
        .zip(task_recipes)
        .map(|((label, task), train)| SuiteTask {
            label,
            task: Arc::from(task),
            train,
        })
        .collect::<Vec<_>>();

        let models = match file.models {
            None => vec![ModelSpec {
                name: None,
                conv: Vec::new(),
                hidden: vec![100, 100, 100],
                init: default_init(),
                bias: true,
                plant: None,
                tasks: None,
            }],
            Some(list) => {
                nonempty(
                    list.value.len(),
                    &list.referenced,
                    "models",
                    "give at least one model, e.g. `- {hidden: [100, 100]}`, or omit the key",
                )?;
                let mut models: Vec<ModelSpec> = Vec::new();
                for m in list.value {
                    if m.value.hidden.contains(&0) {
                        return Err(at(
                            &m.referenced,
                            format!(
                                "hidden widths {:?} contain 0; every layer needs at least one unit",
                                m.value.hidden
                            ),
                        ));
                    }
                    if models.iter().any(|o| o.label() == m.value.label()) {
                        return Err(at(
                            &m.referenced,
                            format!(
                                "model `{}` is listed twice; give one a `name`",
                                m.value.label()
                            ),
                        ));
                    }
                    for label in m.value.tasks.iter().flatten() {
                        if !tasks.iter().any(|t| t.is_called(label)) {
                            let known: Vec<&str> = tasks.iter().map(|t| t.label.as_str()).collect();
                            return Err(at(
                                &m.referenced,
                                format!(
                                    "model `{}` names task `{label}`, which the suite does not list; tasks: {}",
                                    m.value.label(),
                                    known.join(", ")
                                ),
                            ));
                        }
                    }
                    for t in tasks.iter().filter(|t| m.value.runs_on(t)) {
                        m.value
                            .conv_net(t.task.as_ref())
                            .map_err(|e| at(&m.referenced, format!("task {}: {e}", t.label)))?;
                        m.value
                            .planted_target(t.task.as_ref())
                            .map_err(|e| at(&m.referenced, format!("task {}: {e}", t.label)))?;
                    }
                    models.push(m.value);
                }
                models
            }
        };

        let suite_methods = build_entries(
            &file.methods,
            "method",
            &methods::method_names(),
            |name, params| methods::build(name, params).map_err(|e| e.to_string()),
            |pruner| (pruner.info().name, pruner.params(), pruner.label()),
            &at,
        )?
        .into_iter()
        .map(|(label, pruner)| SuiteMethod {
            label,
            pruner: Arc::from(pruner),
        })
        .collect::<Vec<_>>();
        if models.iter().all(|m| m.plant.is_none())
            && let Some(i) = suite_methods
                .iter()
                .position(|m| m.pruner.schedule() == Schedule::PlantedDensity)
        {
            return Err(at(
                &file.methods.value[i].referenced,
                format!(
                    "method `{}` needs a planted model, e.g. `models: [{{hidden: [100, 100, 100], init: he-scaled, plant: pns}}]`",
                    suite_methods[i].label
                ),
            ));
        }

        nonempty(
            file.densities.value.len(),
            &file.densities.referenced,
            "densities",
            "list densities in (0, 1], e.g. [0.5, 0.1, 0.01]",
        )?;
        let mut densities: Vec<DensitySpec> = Vec::new();
        for d in &file.densities.value {
            let spec = match &d.value {
                DensityEntry::Value(v) => {
                    let density = Density::new(*v).map_err(|e| at(&d.referenced, e.to_string()))?;
                    // Every density must keep at least one weight of every network.
                    for t in &tasks {
                        for m in &models {
                            let shapes = m
                                .shapes(t.task.as_ref())
                                .map_err(|e| at(&d.referenced, e))?;
                            let total = shapes.iter().map(|s| s.len()).sum();
                            target_count(density, total).map_err(|e| {
                                at(
                                    &d.referenced,
                                    format!("task {} with model {}: {e}", t.label, m.label()),
                                )
                            })?;
                        }
                    }
                    DensitySpec::Fixed(density)
                }
                DensityEntry::Word(w) if w == "planted" => {
                    if models.iter().all(|m| m.plant.is_none()) {
                        return Err(at(
                            &d.referenced,
                            "density `planted` needs a planted model, e.g. `models: [{hidden: [100, 100, 100], init: he-scaled, plant: pns}]`".into(),
                        ));
                    }
                    DensitySpec::Planted
                }
                DensityEntry::Word(w) => {
                    return Err(at(
                        &d.referenced,
                        format!("density `{w}` is neither a number in (0, 1] nor `planted`"),
                    ));
                }
            };
            if densities.contains(&spec) {
                let shown = match spec {
                    DensitySpec::Fixed(d) => d.get().to_string(),
                    DensitySpec::Planted => "planted".into(),
                };
                return Err(at(
                    &d.referenced,
                    format!("density {shown} is listed twice"),
                ));
            }
            densities.push(spec);
        }

        let seeds = file.seeds.value.0;
        nonempty(
            seeds.len(),
            &file.seeds.referenced,
            "seeds",
            "give a count (e.g. `seeds: 3`) or a list of seeds",
        )?;
        if seeds.iter().collect::<BTreeSet<_>>().len() != seeds.len() {
            return Err(at(
                &file.seeds.referenced,
                format!("seeds {seeds:?} contain a duplicate"),
            ));
        }

        let device = match file.device {
            None => DeviceSpec::Cpu,
            Some(d) => d
                .value
                .parse()
                .map_err(|e: crate::device::DeviceError| at(&d.referenced, e.to_string()))?,
        };

        let transfer = file.transfer.as_ref().is_some_and(|t| t.value);
        let mut checks: Vec<SanityCheck> = Vec::new();
        for c in file.checks.iter().flat_map(|list| &list.value) {
            let check =
                SanityCheck::parse(&c.value).map_err(|e| at(&c.referenced, e.to_string()))?;
            if checks.contains(&check) {
                return Err(at(
                    &c.referenced,
                    format!("check `{}` is listed twice", c.value),
                ));
            }
            checks.push(check);
        }
        // The name is the default output directory `results/<name>/`: one plain path
        // component, so `name: ../../x` cannot write outside `results/`.
        let name = match file.name {
            Some(n) => {
                plain_file_name(&n.value).map_err(|why| at(&n.referenced, why))?;
                n.value
            }
            None => {
                let stem = path
                    .file_stem()
                    .map_or("suite".into(), |s| s.to_string_lossy().into_owned());
                if matches!(stem.as_str(), "" | "." | "..") {
                    return Err(SuiteError::Syntax {
                        path: path.to_path_buf(),
                        message: format!(
                            "the file name gives the suite no usable name (`{stem}`); set `name:`"
                        ),
                    });
                }
                stem
            }
        };
        let suite = Suite {
            name,
            description: file.description,
            tasks,
            models,
            methods: suite_methods,
            densities,
            seeds,
            train,
            device,
            transfer,
            matched_random: file.matched_random.is_some_and(|m| m.value),
            checks,
        };
        if let Some(t) = &file.transfer
            && t.value
            && (0..suite.tasks.len()).all(|i| suite.transfer_targets(i).is_empty())
        {
            return Err(at(
                &t.referenced,
                "`transfer: true` but no two tasks share input width and output kind (e.g. list `circle` and `{name: circle, label_noise: 0.1}`)".into(),
            ));
        }
        Ok(suite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Suite, SuiteError> {
        Suite::parse(text, Path::new("test.yaml"))
    }

    const GOOD: &str = "tasks: [circle, {name: relu, noise_std: 0.02}]\nmethods: [dense, random, {name: random, rule: erk}, snip]\ndensities: [0.5, 0.1]\nseeds: 2\n";

    #[test]
    fn parses_names_params_and_defaults() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.name, "test");
        let labels: Vec<&str> = s.tasks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, vec!["circle", "relu[noise_std=0.02]"]);
        let labels: Vec<&str> = s.methods.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(labels, vec!["dense", "random", "random[rule=erk]", "snip"]);
        assert_eq!(s.seeds, vec![0, 1]);
        assert_eq!(s.models[0].label(), "mlp-100x100x100");
        assert_eq!(s.train, TrainRecipe::default());
        assert_eq!(s.device, DeviceSpec::Cpu);
    }

    #[test]
    fn a_task_entry_overrides_fields_of_the_suite_recipe() {
        let s = parse(
            "tasks: [circle, {name: relu, train: {epochs: 3, lr: 0.01}}]\nmethods: [dense]\ndensities: [0.5]\nseeds: 1\ntrain: {optimizer: sgd, momentum: 0.9, epochs: 7}\n",
        )
        .unwrap();
        assert_eq!(s.tasks[0].train, s.train);
        assert_eq!(s.train.epochs, 7);
        let relu = &s.tasks[1];
        assert_eq!(relu.label, "relu");
        assert_eq!((relu.train.epochs, relu.train.lr), (3, 0.01));
        assert_eq!(relu.train.momentum, 0.9, "other fields come from the suite");
        let e = parse("tasks: [{name: relu, train: {epoch: 3}}]\nmethods: [dense]\ndensities: [0.5]\nseeds: 1\n")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with("test.yaml:1:") && e.contains("epoch") && e.contains("epochs"),
            "{e}"
        );
        let e = parse("tasks: [{name: relu, train: {lr: -1}}]\nmethods: [dense]\ndensities: [0.5]\nseeds: 1\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("task `relu`: train: lr -1"), "{e}");
    }

    #[test]
    fn errors_name_the_line_and_the_valid_values() {
        let e = parse("tasks: [circle]\nmethods: [dense, snp]\ndensities: [0.5]\nseeds: 1\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("test.yaml:2:"), "{e}");
        assert!(
            e.contains("unknown method `snp`") && e.contains("synflow"),
            "{e}"
        );
        let e = parse("tasks: [circle]\nmethods: [dense]\ndensities: [0.5, 1.5]\nseeds: 1\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("test.yaml:3:") && e.contains("1.5"), "{e}");
        let e = parse("tasks: [circle]\nmethods: [dense]\ndensities: [0.5]\nseeds: [1, 1]\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("duplicate"), "{e}");
    }
}
