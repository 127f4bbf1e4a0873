//! Sanity-check transforms (methods.md §3.1), as pure host functions.
//!
//! Each check turns a method's output ticket `(m, θ_start)`, or the data its scorer reads,
//! into a control arm; training afterwards uses the clean data and the method's own recipe
//! (the caller's job). Every random choice comes from a named stream `check/<name>/…` of the
//! job's [`Streams`], so a check is deterministic per seed and independent of every other
//! stream (θ_0, data order, method-internal streams).
//!
//! | check | stream(s) |
//! |---|---|
//! | [`layer_shuffle`] | `check/layer_shuffle/layer/<l>` |
//! | [`global_shuffle`] | `check/global_shuffle` |
//! | [`weight_shuffle`] | `check/weight_shuffle/layer/<l>` |
//! | [`reinit`] | `check/reinit` (derives the seed of a fresh `init/<l>/{w,b}` family) |
//! | [`invert`] | none (deterministic) |
//! | [`random_labels`] | `check/random_labels/labels` |
//! | [`random_pixels`] | `check/random_pixels/pixels`, `check/random_pixels/labels` |
//!
//! Shuffles use the backward Fisher–Yates shuffle with [`sample_index`] (unbiased), so the
//! bytes depend only on the seed and the stream name, never on the `rand` version.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use ticketbench_core::select::{Keep, top_k_global, top_k_per_layer};
use ticketbench_core::{CoreError, InitScheme, Mask, Network, Scores, Streams, sample_index};
use ticketbench_planted::{Dataset, OutputKind, Targets};

/// Errors of the sanity-check transforms.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CheckError {
    #[error("unknown sanity check `{name}`; valid checks: {valid}")]
    UnknownCheck { name: String, valid: String },
    #[error("sanity check `{check}`: {reason}")]
    InvalidInput { check: &'static str, reason: String },
    #[error("{0}")]
    Core(#[from] CoreError),
}

/// What a sanity check transforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStage {
    /// The method's output ticket `(m, θ_start)`, after pruning and before training.
    Ticket,
    /// The data the method's scorer reads (the training split scoring batches come from);
    /// training itself stays on clean data. Only meaningful for data-dependent scorers: for
    /// data-free methods the mask must come out bit-identical.
    ScoringData,
}

/// The sanity checks of methods.md §3.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SanityCheck {
    /// Per layer, permute the flattened mask with an independent uniform permutation; weights
    /// untouched, so different initial values become active. Preserves per-layer counts.
    /// Su et al. 2020 "rearrange"; Frankle et al. 2021 "random shuffling"; OpenLTH
    /// `randomly_prune strategy=layerwise`.
    LayerShuffle,
    /// Permute the concatenated mask across all layers. Preserves the total count only
    /// (negative control for layer ratios). OpenLTH `randomly_prune strategy=global`.
    GlobalShuffle,
    /// Keep the mask; permute the surviving weight values among the surviving positions within
    /// each layer. Preserves the mask and each layer's multiset of kept values.
    /// Su et al. 2020 "shuffle unmasked weights"; Gem-Miner "weight reshuffle".
    WeightShuffle,
    /// Keep the mask; redraw θ from the same init distribution with an independent stream.
    /// Preserves the mask. Frankle & Carbin 2019 "random reinit"; Frankle et al. 2021;
    /// OpenLTH `randomly_reinitialize`.
    Reinit,
    /// Same scope and density, but keep the lowest-ranked entries by the method's own
    /// ordering (GraSP: keep the highest S). Preserves density and scope.
    /// Frankle et al. 2021 "score inversion"; Gem-Miner "mask invert".
    Invert,
    /// Scoring data only: every training label replaced by a uniform random class (corrupt
    /// probability 1.0, fixed seed). Preserves the inputs. Su et al. 2020.
    RandomLabels,
    /// Scoring data only: per example an independent permutation of all input features, plus
    /// random labels. Preserves each example's multiset of feature values.
    /// Su et al. 2020 "shufflePixel".
    RandomPixels,
}

impl SanityCheck {
    pub const ALL: [SanityCheck; 7] = [
        SanityCheck::LayerShuffle,
        SanityCheck::GlobalShuffle,
        SanityCheck::WeightShuffle,
        SanityCheck::Reinit,
        SanityCheck::Invert,
        SanityCheck::RandomLabels,
        SanityCheck::RandomPixels,
    ];

    /// The suite-file name (same as the serde name).
    pub fn name(self) -> &'static str {
        match self {
            SanityCheck::LayerShuffle => "layer_shuffle",
            SanityCheck::GlobalShuffle => "global_shuffle",
            SanityCheck::WeightShuffle => "weight_shuffle",
            SanityCheck::Reinit => "reinit",
            SanityCheck::Invert => "invert",
            SanityCheck::RandomLabels => "random_labels",
            SanityCheck::RandomPixels => "random_pixels",
        }
    }

    /// Looks a check up by name, with the list of valid names in the error.
    pub fn parse(name: &str) -> Result<Self, CheckError> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| CheckError::UnknownCheck {
                name: name.to_string(),
                valid: Self::ALL.map(Self::name).join(", "),
            })
    }

    /// Whether the check transforms the ticket or the scoring data.
    pub fn acts_on(self) -> CheckStage {
        match self {
            SanityCheck::RandomLabels | SanityCheck::RandomPixels => CheckStage::ScoringData,
            _ => CheckStage::Ticket,
        }
    }

    /// What the transform preserves (methods.md §3.1 table).
    pub fn preserves(self) -> &'static str {
        match self {
            SanityCheck::LayerShuffle => "per-layer counts",
            SanityCheck::GlobalShuffle => "total count only",
            SanityCheck::WeightShuffle => "mask, per-layer value multiset",
            SanityCheck::Reinit => "mask",
            SanityCheck::Invert => "density, scope",
            SanityCheck::RandomLabels => "inputs",
            SanityCheck::RandomPixels => "per-example value multiset",
        }
    }

    /// Literature reference of the check (methods.md §3.1 table).
    pub fn reference(self) -> &'static str {
        match self {
            SanityCheck::LayerShuffle => {
                "Su et al. 2020 \"rearrange\"; Frankle et al. 2021 \"random shuffling\"; OpenLTH randomly_prune strategy=layerwise"
            }
            SanityCheck::GlobalShuffle => "OpenLTH randomly_prune strategy=global",
            SanityCheck::WeightShuffle => {
                "Su et al. 2020 \"shuffle unmasked weights\"; Gem-Miner \"weight reshuffle\""
            }
            SanityCheck::Reinit => {
                "Frankle & Carbin 2019 \"random reinit\"; Frankle et al. 2021; OpenLTH randomly_reinitialize"
            }
            SanityCheck::Invert => {
                "Frankle et al. 2021 \"score inversion\"; Gem-Miner \"mask invert\""
            }
            SanityCheck::RandomLabels => "Su et al. 2020 (random labels)",
            SanityCheck::RandomPixels => "Su et al. 2020 \"shufflePixel\"",
        }
    }
}

impl std::fmt::Display for SanityCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SanityCheck {
    type Err = CheckError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// In-place uniform permutation (backward Fisher–Yates with the unbiased [`sample_index`]).
fn shuffle<T, R: rand::Rng + ?Sized>(items: &mut [T], rng: &mut R) {
    for i in (1..items.len()).rev() {
        let j = sample_index(rng, i + 1);
        items.swap(i, j);
    }
}

/// `layer_shuffle`: every layer's flattened mask permuted by an independent uniform
/// permutation (stream `check/layer_shuffle/layer/<l>`). Per-layer counts are unchanged; the
/// result is a uniformly random ticket at the method's own layerwise counts.
pub fn layer_shuffle(mask: &Mask, streams: &Streams) -> Mask {
    let layers = mask
        .layers()
        .iter()
        .enumerate()
        .map(|(l, layer)| {
            let mut layer = layer.clone();
            shuffle(
                &mut layer,
                &mut streams.stream(&format!("check/layer_shuffle/layer/{l}")),
            );
            layer
        })
        .collect();
    Mask::from_layers(layers)
}

/// `global_shuffle`: the concatenated mask (layers in network order, row-major inside a
/// layer) permuted by one uniform permutation (stream `check/global_shuffle`), then split
/// back into layers. Only the total count is preserved.
pub fn global_shuffle(mask: &Mask, streams: &Streams) -> Mask {
    let mut flat: Vec<bool> = mask.layers().iter().flatten().copied().collect();
    shuffle(&mut flat, &mut streams.stream("check/global_shuffle"));
    let mut rest = flat.as_slice();
    let layers = mask
        .layers()
        .iter()
        .map(|layer| {
            let (head, tail) = rest.split_at(layer.len());
            rest = tail;
            head.to_vec()
        })
        .collect();
    Mask::from_layers(layers)
}

/// `weight_shuffle`: a copy of `start` whose kept weights (per `mask`) are permuted among the
/// kept positions of their own layer (stream `check/weight_shuffle/layer/<l>`). The mask is
/// unchanged (the caller keeps using `mask`); pruned positions and biases keep their values.
pub fn weight_shuffle(
    mask: &Mask,
    start: &Network,
    streams: &Streams,
) -> Result<Network, CheckError> {
    mask.check_shapes(&start.shapes())?;
    let mut net = start.clone();
    for (l, (layer, keep)) in net.layers.iter_mut().zip(mask.layers()).enumerate() {
        let positions: Vec<usize> = (0..keep.len()).filter(|&i| keep[i]).collect();
        let mut values: Vec<f32> = positions.iter().map(|&i| layer.weight[i]).collect();
        shuffle(
            &mut values,
            &mut streams.stream(&format!("check/weight_shuffle/layer/{l}")),
        );
        for (&i, v) in positions.iter().zip(values) {
            layer.weight[i] = v;
        }
    }
    Ok(net)
}

/// The seed of the independent stream family [`reinit`] draws from: the first `u64` of
/// stream `check/reinit`.
pub fn reinit_seed(streams: &Streams) -> u64 {
    use rand::Rng;
    streams.stream("check/reinit").next_u64()
}

/// `reinit`: all weights and biases of a network shaped like `like`, redrawn from `init` (the
/// scheme θ_0 was drawn with) through the very code path of [`Network::mlp`]
/// ([`InitScheme::init_layers`]), but under the independent seed [`reinit_seed`]: layer `l`
/// reads streams `init/<l>/w`, `init/<l>/b` of `Streams::new(reinit_seed(streams))`.
///
/// The mask is unchanged (it is only checked against the shapes). Every position is redrawn,
/// pruned ones included, so a kept weight's value does not depend on the mask; training
/// applies the mask as usual. Layers of `like` without a bias get none.
pub fn reinit(
    mask: &Mask,
    like: &Network,
    init: InitScheme,
    streams: &Streams,
) -> Result<Network, CheckError> {
    let shapes = like.shapes();
    mask.check_shapes(&shapes)?;
    let fresh = Streams::new(reinit_seed(streams));
    let mut layers = init.init_layers(&shapes, true, &fresh);
    for (layer, old) in layers.iter_mut().zip(&like.layers) {
        if old.bias.is_none() {
            layer.bias = None;
        }
    }
    Ok(Network::from_layers(layers)?)
}

/// Scope and size of a selection: `Global(k)` keeps `k` entries across all layers,
/// `PerLayer(counts)` keeps `counts[l]` in layer `l`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Global(usize),
    PerLayer(Vec<usize>),
}

impl Scope {
    /// The global scope at `mask`'s total count.
    pub fn global_of(mask: &Mask) -> Scope {
        Scope::Global(mask.kept())
    }

    /// The per-layer scope at `mask`'s layer counts.
    pub fn per_layer_of(mask: &Mask) -> Scope {
        Scope::PerLayer(mask.layer_kept())
    }

    /// Total number of kept entries.
    pub fn kept(&self) -> usize {
        match self {
            Scope::Global(k) => *k,
            Scope::PerLayer(counts) => counts.iter().sum(),
        }
    }
}

/// The opposite end of the ranking.
fn opposite(keep: Keep) -> Keep {
    match keep {
        Keep::Highest => Keep::Lowest,
        Keep::Lowest => Keep::Highest,
    }
}

/// `invert`: the same scope and counts as the method's selection, keeping the lowest-ranked
/// entries of the method's own ordering: for a `Keep::Highest` method the lowest scores, for a
/// `Keep::Lowest` method (GraSP) the highest.
///
/// Exact counts; ties follow the shared ticketbench rule of [`ticketbench_core::select`]
/// (the lower flat index wins) in the inverted ranking too, so at ties the inverted mask is
/// not necessarily the complement of the method's top `N − k`.
pub fn invert(scores: &Scores, keep: Keep, scope: &Scope) -> Result<Mask, CheckError> {
    let keep = opposite(keep);
    Ok(match scope {
        Scope::Global(k) => top_k_global(scores, *k, None, keep)?,
        Scope::PerLayer(counts) => top_k_per_layer(scores, counts, keep)?,
    })
}

/// Replaces every target of `set` using `rng`: classification labels by a uniform class in
/// `0..classes`, regression rows by the target row of a uniformly random example.
fn randomize_targets<R: rand::Rng + ?Sized>(
    targets: &mut Targets,
    n: usize,
    output: OutputKind,
    check: &'static str,
    rng: &mut R,
) -> Result<(), CheckError> {
    let invalid = |reason: String| CheckError::InvalidInput { check, reason };
    match (targets, output) {
        (Targets::Classes(y), OutputKind::Classes(classes)) => {
            if y.len() != n {
                return Err(invalid(format!("{} labels for {n} examples", y.len())));
            }
            if classes == 0 && n > 0 {
                return Err(invalid("classification task with 0 classes".into()));
            }
            for label in y.iter_mut() {
                *label = sample_index(rng, classes) as u32;
            }
        }
        (Targets::Values { values, dim }, OutputKind::Regression(_)) => {
            let dim = *dim;
            if values.len() != n * dim {
                return Err(invalid(format!(
                    "{} target values for {n} examples of dimension {dim}",
                    values.len()
                )));
            }
            let original = values.clone();
            for i in 0..n {
                let j = sample_index(rng, n);
                values[i * dim..(i + 1) * dim].copy_from_slice(&original[j * dim..(j + 1) * dim]);
            }
        }
        (targets, output) => {
            let kind = match targets {
                Targets::Classes(_) => "class labels",
                Targets::Values { .. } => "real-valued targets",
            };
            return Err(invalid(format!("{kind} for a task with output {output:?}")));
        }
    }
    Ok(())
}

/// `random_labels`: new training targets for a task with `output`, replacing every one of
/// `targets` (stream `check/random_labels/labels`). Inputs and the test split are untouched,
/// so the caller keeps sharing them.
///
/// * Classification: every label is an independent uniform class (corrupt probability 1.0,
///   so a fraction ≈ 1/C keeps its label by chance).
/// * Regression (ticketbench adaptation; the literature check is for classification): every
///   target row is replaced by the target row of an example drawn uniformly at random, with
///   replacement, from the training split: the empirical target distribution is kept and the
///   input–target link is broken.
///
/// Only the training split changes because scoring batches are drawn from it; the caller
/// scores on the result and trains on the clean data.
pub fn random_labels(
    targets: &Targets,
    output: OutputKind,
    streams: &Streams,
) -> Result<Targets, CheckError> {
    let mut out = targets.clone();
    randomize_targets(
        &mut out,
        targets.len(),
        output,
        "random_labels",
        &mut streams.stream("check/random_labels/labels"),
    )?;
    Ok(out)
}

/// `random_pixels`: the training split `train`, corrupted in place (it is the check's own
/// copy): every example gets an independent uniform permutation of its `input_dim` features
/// (one stream `check/random_pixels/pixels`, read example by example), plus random targets
/// exactly as [`random_labels`] but from stream `check/random_pixels/labels`.
pub fn random_pixels(
    mut train: Dataset,
    output: OutputKind,
    streams: &Streams,
) -> Result<Dataset, CheckError> {
    let d = train.input_dim;
    if d == 0 || !train.inputs.len().is_multiple_of(d) {
        return Err(CheckError::InvalidInput {
            check: "random_pixels",
            reason: format!(
                "{} input values do not form rows of dimension {d}",
                train.inputs.len()
            ),
        });
    }
    let mut rng = streams.stream("check/random_pixels/pixels");
    for row in train.inputs.chunks_exact_mut(d) {
        shuffle(row, &mut rng);
    }
    let n = train.len();
    randomize_targets(
        &mut train.targets,
        n,
        output,
        "random_pixels",
        &mut streams.stream("check/random_pixels/labels"),
    )?;
    Ok(train)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketbench_core::LayerShape;
    use ticketbench_planted::TaskData;

    fn flat(m: &Mask) -> Vec<usize> {
        m.layers()
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, b)| **b)
            .map(|(i, _)| i)
            .collect()
    }

    /// A mask with a fixed pseudo-random pattern and the given per-layer counts.
    fn some_mask(sizes: &[usize], counts: &[usize]) -> Mask {
        let shapes: Vec<LayerShape> = sizes
            .iter()
            .map(|&n| LayerShape { dims: vec![n] })
            .collect();
        crate::random_ticket(&shapes, counts, &Streams::new(99), "fixture")
    }

    fn std_of(xs: &[f32]) -> f64 {
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
        (xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    }

    fn sorted(mut v: Vec<f32>) -> Vec<f32> {
        v.sort_by(f32::total_cmp);
        v
    }

    #[test]
    fn names_parse_serde_and_stage() {
        for c in SanityCheck::ALL {
            assert_eq!(SanityCheck::parse(c.name()).unwrap(), c);
            assert_eq!(c.name().parse::<SanityCheck>().unwrap(), c);
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.name())
            );
            assert_eq!(
                serde_json::from_str::<SanityCheck>(&format!("\"{c}\"")).unwrap(),
                c
            );
            assert!(!c.preserves().is_empty() && !c.reference().is_empty());
        }
        let err = SanityCheck::parse("shuffle").unwrap_err().to_string();
        assert!(err.contains("`shuffle`"), "{err}");
        assert!(
            err.contains(
                "layer_shuffle, global_shuffle, weight_shuffle, reinit, invert, random_labels, random_pixels"
            ),
            "{err}"
        );
        assert_eq!(SanityCheck::Reinit.acts_on(), CheckStage::Ticket);
        assert_eq!(SanityCheck::Invert.acts_on(), CheckStage::Ticket);
        assert_eq!(SanityCheck::RandomLabels.acts_on(), CheckStage::ScoringData);
        assert_eq!(SanityCheck::RandomPixels.acts_on(), CheckStage::ScoringData);
    }

    #[test]
    fn layer_shuffle_keeps_per_layer_counts() {
        let mask = some_mask(&[200, 50, 10], &[40, 25, 3]);
        let a = layer_shuffle(&mask, &Streams::new(1));
        assert_eq!(a.layer_kept(), vec![40, 25, 3]);
        assert_eq!(a, layer_shuffle(&mask, &Streams::new(1)));
        assert_ne!(a, layer_shuffle(&mask, &Streams::new(2)));
        assert!(a.hamming(&mask) > 0);
        // Layer l's permutation depends on its own stream only.
        let other = some_mask(&[200, 50, 10], &[40, 25, 7]);
        let b = layer_shuffle(&other, &Streams::new(1));
        assert_eq!(a.layer(0), b.layer(0));
    }

    #[test]
    fn global_shuffle_keeps_only_the_total() {
        // Lopsided: layer 0 fully kept, layer 1 fully pruned.
        let mask = Mask::from_layers(vec![vec![true; 100], vec![false; 100]]);
        let a = global_shuffle(&mask, &Streams::new(3));
        assert_eq!(a.kept(), 100);
        assert_eq!(a.layers()[0].len(), 100);
        assert_eq!(a.layers()[1].len(), 100);
        assert_ne!(a.layer_kept(), vec![100, 0]);
        let [k0, k1] = a.layer_kept()[..] else {
            unreachable!()
        };
        assert!((30..=70).contains(&k0) && k0 + k1 == 100, "{k0} {k1}");
        assert_eq!(a, global_shuffle(&mask, &Streams::new(3)));
        assert_ne!(a, global_shuffle(&mask, &Streams::new(4)));
    }

    #[test]
    fn weight_shuffle_keeps_mask_and_value_multisets() {
        let start = Network::mlp(
            &[20, 15, 5],
            true,
            InitScheme::KaimingUniform,
            &Streams::new(0),
        )
        .unwrap();
        let mask = some_mask(&[300, 75], &[90, 30]);
        let out = weight_shuffle(&mask, &start, &Streams::new(5)).unwrap();
        for (l, (a, b)) in start.layers.iter().zip(&out.layers).enumerate() {
            let keep = mask.layer(l);
            let kept = |w: &[f32]| {
                sorted(
                    (0..w.len())
                        .filter(|&i| keep[i])
                        .map(|i| w[i])
                        .collect::<Vec<_>>(),
                )
            };
            assert_eq!(kept(&a.weight), kept(&b.weight), "layer {l}");
            for i in (0..keep.len()).filter(|&i| !keep[i]) {
                assert_eq!(a.weight[i].to_bits(), b.weight[i].to_bits());
            }
            assert_eq!(a.bias, b.bias);
            assert_ne!(a.weight, b.weight, "layer {l} unchanged");
        }
        assert_eq!(
            out,
            weight_shuffle(&mask, &start, &Streams::new(5)).unwrap()
        );
        assert_ne!(
            out,
            weight_shuffle(&mask, &start, &Streams::new(6)).unwrap()
        );
        assert!(weight_shuffle(&some_mask(&[300], &[9]), &start, &Streams::new(5)).is_err());
    }

    #[test]
    fn reinit_redraws_from_the_same_distribution() {
        let widths = [300, 100, 10];
        let seed = Streams::new(11);
        let theta0 = Network::mlp(&widths, true, InitScheme::KaimingNormal, &seed).unwrap();
        let mask = Mask::dense(&theta0.shapes());
        let r = reinit(&mask, &theta0, InitScheme::KaimingNormal, &seed).unwrap();
        assert_eq!(r.shapes(), theta0.shapes());
        for (l, (a, b)) in theta0.layers.iter().zip(&r.layers).enumerate() {
            let same = a
                .weight
                .iter()
                .zip(&b.weight)
                .filter(|(x, y)| x == y)
                .count();
            assert_eq!(same, 0, "layer {l}: {same} weights equal to θ_0");
            let want = (2.0 / a.shape.fan_in() as f64).sqrt();
            let got = std_of(&b.weight);
            assert!(
                (got - want).abs() / want < 0.1,
                "layer {l}: std {got} vs {want}"
            );
            assert!(b.bias.as_ref().unwrap().iter().all(|&x| x == 0.0));
        }
        assert_eq!(
            r,
            reinit(&mask, &theta0, InitScheme::KaimingNormal, &seed).unwrap()
        );
        assert_ne!(
            r,
            reinit(&mask, &theta0, InitScheme::KaimingNormal, &Streams::new(12)).unwrap()
        );
        // It is exactly `init_layers` under the derived seed.
        let fresh = Network::mlp(
            &widths,
            true,
            InitScheme::KaimingNormal,
            &Streams::new(reinit_seed(&seed)),
        )
        .unwrap();
        assert_eq!(r, fresh);
    }

    #[test]
    fn reinit_redraws_biases_and_respects_missing_ones() {
        let seed = Streams::new(2);
        let like = Network::mlp(&[8, 6, 3], true, InitScheme::KaimingUniform, &seed).unwrap();
        let mask = Mask::dense(&like.shapes());
        let r = reinit(&mask, &like, InitScheme::KaimingUniform, &seed).unwrap();
        assert_ne!(r.layers[0].bias, like.layers[0].bias);
        let bound = 1.0 / 8f32.sqrt();
        assert!(
            r.layers[0]
                .bias
                .as_ref()
                .unwrap()
                .iter()
                .all(|b| b.abs() <= bound)
        );
        let mut no_bias = like.clone();
        no_bias.layers[1].bias = None;
        let r = reinit(&mask, &no_bias, InitScheme::KaimingUniform, &seed).unwrap();
        assert!(r.layers[0].bias.is_some() && r.layers[1].bias.is_none());
        let wrong = Mask::dense(&[LayerShape::dense(8, 6)]);
        assert!(reinit(&wrong, &like, InitScheme::KaimingUniform, &seed).is_err());
    }

    #[test]
    fn invert_worked_example() {
        let s = Scores {
            layers: vec![vec![0.4, 0.1, 0.3, 0.2]],
        };
        let orig = top_k_global(&s, 2, None, Keep::Highest).unwrap();
        assert_eq!(flat(&orig), vec![0, 2]);
        let scope = Scope::global_of(&orig);
        assert_eq!(scope, Scope::Global(2));
        assert_eq!(
            flat(&invert(&s, Keep::Highest, &scope).unwrap()),
            vec![1, 3]
        );
        // A Keep::Lowest method (GraSP) keeps {1, 3}; its inverse keeps the highest.
        let grasp = top_k_global(&s, 2, None, Keep::Lowest).unwrap();
        assert_eq!(flat(&grasp), vec![1, 3]);
        assert_eq!(flat(&invert(&s, Keep::Lowest, &scope).unwrap()), vec![0, 2]);
    }

    #[test]
    fn invert_per_layer_and_ties() {
        let s = Scores {
            layers: vec![vec![0.4, 0.1, 0.3, 0.2], vec![5.0, 1.0, 1.0, 1.0, 9.0]],
        };
        let scope = Scope::PerLayer(vec![1, 2]);
        let m = invert(&s, Keep::Highest, &scope).unwrap();
        assert_eq!(m.layer_kept(), vec![1, 2]);
        // Layer 0: lowest 0.1 → index 1; layer 1: three tied 1.0, lower indices win.
        assert_eq!(flat(&m), vec![1, 5, 6]);
        let m = invert(&s, Keep::Lowest, &scope).unwrap();
        assert_eq!(flat(&m), vec![0, 4, 8]);
        // Global: exact count; the four scores below 1.0, then two of the three tied 1.0
        // (flat 5, 6, 7), lower flat index first.
        let m = invert(&s, Keep::Highest, &Scope::Global(6)).unwrap();
        assert_eq!(m.kept(), 6);
        assert_eq!(flat(&m), vec![0, 1, 2, 3, 5, 6]);
        assert!(invert(&s, Keep::Highest, &Scope::PerLayer(vec![1])).is_err());
        assert!(invert(&s, Keep::Highest, &Scope::Global(10)).is_err());
    }

    fn classification(n: usize, d: usize, classes: usize) -> TaskData {
        let mut rng = Streams::new(1234).stream("fixture/data");
        let train = Dataset {
            inputs: (0..n * d).map(|i| i as f32 * 0.5).collect(),
            input_dim: d,
            targets: Targets::Classes(
                (0..n)
                    .map(|_| sample_index(&mut rng, classes) as u32)
                    .collect(),
            ),
        };
        let test = train.rows(&(0..n / 10).collect::<Vec<_>>());
        TaskData {
            output: OutputKind::Classes(classes),
            train,
            test,
        }
    }

    fn regression(n: usize, d: usize, dim: usize) -> TaskData {
        let train = Dataset {
            inputs: (0..n * d).map(|i| i as f32).collect(),
            input_dim: d,
            targets: Targets::Values {
                values: (0..n * dim).map(|i| i as f32 * 0.25).collect(),
                dim,
            },
        };
        TaskData {
            output: OutputKind::Regression(dim),
            test: train.clone(),
            train,
        }
    }

    fn labels(t: &Targets) -> &[u32] {
        match t {
            Targets::Classes(y) => y,
            Targets::Values { .. } => panic!("expected class labels"),
        }
    }

    #[test]
    fn random_labels_classification() {
        let (n, c) = (4000, 10);
        let data = classification(n, 3, c);
        let labels_of = |seed| random_labels(&data.train.targets, data.output, &Streams::new(seed));
        let out = labels_of(7).unwrap();
        let (old, new) = (labels(&data.train.targets), labels(&out));
        assert_eq!(new.len(), n);
        assert!(new.iter().all(|&y| (y as usize) < c));
        let changed = old.iter().zip(new).filter(|(a, b)| a != b).count() as f64 / n as f64;
        // Expected 1 − 1/C = 0.9; binomial SE ≈ 0.005.
        assert!((changed - 0.9).abs() < 0.02, "changed fraction {changed}");
        let mut hist = vec![0usize; c];
        new.iter().for_each(|&y| hist[y as usize] += 1);
        assert!(hist.iter().all(|&h| (300..500).contains(&h)), "{hist:?}");
        assert_eq!(out, labels_of(7).unwrap());
        assert_ne!(out, labels_of(8).unwrap());
    }

    #[test]
    fn random_labels_regression_resamples_target_rows() {
        let (n, dim) = (500, 2);
        let data = regression(n, 3, dim);
        let labels_of = |seed| random_labels(&data.train.targets, data.output, &Streams::new(seed));
        let out = labels_of(7).unwrap();
        let (
            Targets::Values { values: old, .. },
            Targets::Values {
                values: new,
                dim: d2,
            },
        ) = (&data.train.targets, &out)
        else {
            panic!("expected values")
        };
        assert_eq!(*d2, dim);
        let old_rows: Vec<&[f32]> = old.chunks(dim).collect();
        let mut moved = 0;
        for (i, row) in new.chunks(dim).enumerate() {
            assert!(
                old_rows.contains(&row),
                "row {i} is not an original target row"
            );
            moved += (row != old_rows[i]) as usize;
        }
        assert!(moved > n * 9 / 10, "only {moved} of {n} rows moved");
        assert_eq!(out, labels_of(7).unwrap());
        assert_ne!(out, labels_of(8).unwrap());
    }

    #[test]
    fn random_labels_rejects_mismatched_targets() {
        let data = classification(10, 2, 3);
        let output = OutputKind::Regression(1);
        assert!(matches!(
            random_labels(&data.train.targets, output, &Streams::new(0)),
            Err(CheckError::InvalidInput { .. })
        ));
        assert!(matches!(
            random_pixels(data.train, output, &Streams::new(0)),
            Err(CheckError::InvalidInput { .. })
        ));
    }

    #[test]
    fn random_pixels_permutes_each_example() {
        let (n, d, c) = (2000, 12, 4);
        let data = classification(n, d, c);
        let pixels_of = |seed| random_pixels(data.train.clone(), data.output, &Streams::new(seed));
        let out = pixels_of(3).unwrap();
        let mut permuted = 0;
        for (a, b) in data.train.inputs.chunks(d).zip(out.inputs.chunks(d)) {
            assert_eq!(sorted(a.to_vec()), sorted(b.to_vec()));
            permuted += (a != b) as usize;
        }
        assert!(permuted > n * 99 / 100, "{permuted}");
        // Independent permutations: the position of feature 0 varies across examples.
        let first: std::collections::HashSet<usize> = data
            .train
            .inputs
            .chunks(d)
            .zip(out.inputs.chunks(d))
            .map(|(a, b)| b.iter().position(|&v| v == a[0]).unwrap())
            .collect();
        assert_eq!(first.len(), d);
        let (old, new) = (labels(&data.train.targets), labels(&out.targets));
        let changed = old.iter().zip(new).filter(|(a, b)| a != b).count() as f64 / n as f64;
        assert!((changed - 0.75).abs() < 0.04, "changed fraction {changed}");
        assert_eq!(out, pixels_of(3).unwrap());
        assert_ne!(out, pixels_of(4).unwrap());
        // Regression tasks get permuted inputs and resampled target rows.
        let reg = regression(50, 4, 1);
        let out = random_pixels(reg.train.clone(), reg.output, &Streams::new(3)).unwrap();
        assert_ne!(out.inputs, reg.train.inputs);
        assert_ne!(out.targets, reg.train.targets);
    }
}
