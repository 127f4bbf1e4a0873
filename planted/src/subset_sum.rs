//! Strong planting with a certificate (planting.md §7): a host whose values are all random
//! and never written, which provably contains an ε-approximation of a target as a masked
//! subnetwork — the random-subset-sum construction behind the strong lottery ticket
//! existence proofs (Lueker 1998; Pensia et al. 2020, arXiv 2006.07990; Fischer, Gadhikar &
//! Burkholz 2021, arXiv 2110.11150 for nonzero biases).
//!
//! Each target layer `(W, b)` becomes two host layers:
//! * a **copy layer**: for every target input `j`, groups of neurons that keep one edge
//!   `x_j → k` with random weight `u_k` (one group per sign of `u` in the first block, whose
//!   inputs can be negative; only `u > 0` later, where inputs are post-ReLU), plus *bias
//!   neurons* that keep only a positive random bias `β_k`;
//! * a **combine layer**: output `i` keeps the edges `k → i` of subsets `S` chosen so that
//!   `Σ_{k∈S} v_ik·u_k ≈ W_ij` per group and `Σ_{k∈S^b} v_ik·β_k ≈ b_i`.
//!
//! Since `φ(u x) = u φ(x)` for `u > 0` and `= |u| φ(−x)` for `u < 0`, the two sign groups
//! realise `Ŵ⁺φ(x) − Ŵ⁻φ(−x) ≈ W x`. Targets are first rescaled per layer into `[−1, 1]`
//! (positive homogeneity); the product of the factors is the output scale `λ_out`.

use crate::plant::{PlantKind, PlantedTicket, SparseTicket};
use crate::{PlantError, TargetNet};
use serde::{Deserialize, Serialize};
use ticketbench_core::{
    Layer, LayerShape, Mask, Network, StreamRng, Streams, sample_index, sample_uniform,
};

/// Largest pool solved exactly by meet-in-the-middle (2^12 sums per half).
const EXACT_POOL: usize = 24;
/// Fresh candidates a group may add when its subset sums miss ε.
const MAX_EXTRA_PER_GROUP: usize = 200;

/// Parameters of the construction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubsetSumConfig {
    /// Candidates per sign group (ρ; 20 misses ε = 0.01 for ≈ 0.3% of weights, §7.2).
    pub copies: usize,
    /// Bias neurons per block.
    pub bias_neurons: usize,
    /// Largest allowed error of every realised (rescaled) parameter, ε_w.
    pub epsilon: f64,
    /// Pad every hidden host layer to at least this width with unused random neurons.
    pub width: usize,
    /// Uniform inputs on `[−1, 1]^{n₀}` used to measure the realised error.
    pub probes: usize,
}

impl Default for SubsetSumConfig {
    fn default() -> Self {
        SubsetSumConfig {
            copies: 20,
            bias_neurons: 20,
            epsilon: 0.01,
            width: 0,
            probes: 100_000,
        }
    }
}

/// Per target layer: the realised parameter errors and subset statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerCertificate {
    /// Target layer scale `s_l`.
    pub scale: f64,
    pub max_weight_error: f64,
    pub max_bias_error: f64,
    pub max_subset: usize,
    pub mean_subset: f64,
    /// Copy-layer candidates generated (groups, padding excluded) and extra ones added
    /// because a subset sum missed ε.
    pub candidates: usize,
    pub extra_candidates: usize,
}

/// What the generator guarantees and measured (planting.md §7.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    pub epsilon: f64,
    pub layers: Vec<LayerCertificate>,
    /// `Π_l s_l`: ticket output × this ≈ target output (the ticket's λ_out is its inverse).
    pub output_multiplier: f64,
    /// Rigorous bound on `sup_{x∈[−1,1]^{n₀}} |λ_out·ticket(x) − target(x)|` by interval
    /// propagation of the parameter errors.
    pub certified_bound: f64,
    pub probes: usize,
    pub probe_max_error: f64,
    pub probe_mean_error: f64,
    pub ticket_weights: usize,
    pub host_weights: usize,
}

/// Builds a host containing an ε-ticket of `target` and its certificate. Randomness:
/// streams `plant/ss/<block>/…` of `streams` only.
pub fn plant_subset_sum(
    target: &TargetNet,
    config: &SubsetSumConfig,
    streams: &Streams,
) -> Result<(PlantedTicket, Certificate), PlantError> {
    if config.epsilon.is_nan()
        || config.epsilon <= 0.0
        || config.copies == 0
        || config.bias_neurons == 0
    {
        return Err(PlantError::InvalidConfig(
            "subset-sum needs epsilon > 0, copies ≥ 1 and bias_neurons ≥ 1".into(),
        ));
    }
    let rescaled = Rescaled::new(target);
    let blocks = target.layers.len();
    let mut host_layers: Vec<Layer> = Vec::new();
    let mut masks: Vec<Vec<bool>> = Vec::new();
    let mut bias_masks: Vec<Vec<bool>> = Vec::new();
    let mut neurons: Vec<Vec<usize>> = vec![(0..target.layers[0].fan_in).collect()];
    let mut certs = Vec::new();
    let mut realised = Vec::new();
    let mut prev_width = target.layers[0].fan_in;
    for (l, (w, b)) in rescaled.layers.iter().enumerate() {
        let t = &target.layers[l];
        let last = l + 1 == blocks;
        let block = Block::build(
            l, t.fan_in, t.fan_out, w, b, prev_width, last, config, streams,
        )?;
        prev_width = block.combine.shape.fan_out();
        certs.push(LayerCertificate {
            scale: rescaled.scales[l],
            max_weight_error: block.max_weight_error,
            max_bias_error: block.max_bias_error,
            max_subset: block.subset_sizes.iter().copied().max().unwrap_or(0),
            mean_subset: mean(&block.subset_sizes),
            candidates: block.candidates,
            extra_candidates: block.extra,
        });
        neurons.push(block.used_copies.clone());
        neurons.push((0..t.fan_out).collect());
        realised.push(block.realised.clone());
        host_layers.push(block.copy);
        host_layers.push(block.combine);
        masks.push(block.copy_mask);
        masks.push(block.combine_mask);
        bias_masks.push(block.copy_bias_mask);
        bias_masks.push(vec![false; prev_width]);
    }
    let mut host =
        Network::from_layers(host_layers).map_err(|e| PlantError::InvalidConfig(e.to_string()))?;
    permute_hidden(
        &mut host,
        &mut masks,
        &mut bias_masks,
        &mut neurons,
        streams,
    );
    let mask = Mask::from_layers(masks);

    let output_scale: f64 = rescaled.scales.iter().product();
    let certified_bound = output_scale * error_bound(&rescaled, &realised);
    let ticket = SparseTicket::new(&host, &mask, Some(&bias_masks));
    let mut rng = streams.stream("plant/ss/check");
    let (mut max_err, mut sum_err) = (0.0f64, 0.0f64);
    for _ in 0..config.probes {
        let x: Vec<f64> = (0..target.layers[0].fan_in)
            .map(|_| sample_uniform(&mut rng, -1.0, 1.0))
            .collect();
        let want = target.forward(&x);
        let got = ticket.forward(&x);
        let err = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (output_scale * g - w).abs())
            .fold(0.0, f64::max);
        max_err = max_err.max(err);
        sum_err += err;
    }
    let certificate = Certificate {
        epsilon: config.epsilon,
        layers: certs,
        output_multiplier: output_scale,
        certified_bound,
        probes: config.probes,
        probe_max_error: max_err,
        probe_mean_error: if config.probes == 0 {
            0.0
        } else {
            sum_err / config.probes as f64
        },
        ticket_weights: mask.kept(),
        host_weights: mask.total(),
    };
    if max_err > certified_bound * (1.0 + 1e-6) + 1e-9 {
        return Err(PlantError::CertificateViolated {
            measured: max_err,
            bound: certified_bound,
        });
    }
    let n_out = target.layers[blocks - 1].fan_out;
    let planted = PlantedTicket {
        host,
        mask,
        bias_mask: bias_masks,
        neurons,
        // The ticket computes target/Π s_l: λ_out in the PlantedTicket sense is 1/Π s_l.
        output_scale: vec![1.0 / output_scale; n_out],
        target: target.clone(),
        kind: PlantKind::SubsetSum,
    };
    Ok((planted, certificate))
}

fn mean(v: &[usize]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<usize>() as f64 / v.len() as f64
    }
}

/// The target rescaled into `[−1, 1]` per layer: `s_l = max(1, max|W_l|, max|b_l|/Π_{k<l} s_k)`,
/// `W_l/s_l`, `b_l/Π_{k≤l} s_k`; layer `l` then outputs the true value over `Π_{k≤l} s_k`.
struct Rescaled {
    scales: Vec<f64>,
    /// Per layer: weights `[out][in]` row-major and biases, rescaled.
    layers: Vec<(Vec<f64>, Vec<f64>)>,
    fan_ins: Vec<usize>,
}

impl Rescaled {
    fn new(target: &TargetNet) -> Self {
        let mut product = 1.0;
        let mut scales = Vec::new();
        let mut layers = Vec::new();
        for t in &target.layers {
            let max_w = t.weight.iter().fold(0.0f64, |m, w| m.max(w.abs()));
            let max_b = t.bias.iter().fold(0.0f64, |m, b| m.max(b.abs()));
            let s = 1.0f64.max(max_w).max(max_b / product);
            product *= s;
            scales.push(s);
            layers.push((
                t.weight.iter().map(|w| w / s).collect(),
                t.bias.iter().map(|b| b / product).collect(),
            ));
        }
        Rescaled {
            scales,
            layers,
            fan_ins: target.layers.iter().map(|t| t.fan_in).collect(),
        }
    }
}

/// What a block realises: per sign `Ŵ` (`[out][in]`; the second only in the first block)
/// and `b̂`.
#[derive(Clone)]
struct Realised {
    positive: Vec<f64>,
    negative: Option<Vec<f64>>,
    bias: Vec<f64>,
}

/// `e_L` of planting.md §7.4: `B_0 = 1`, `e_0 = 0`,
/// `B_l = ‖Ŵ_l‖·B_{l−1} + ‖b̂_l‖_∞`, `e_l = ‖W_l‖·e_{l−1} + ‖Ŵ_l − W_l‖·B_{l−1} + ‖b̂_l − b_l‖_∞`
/// with `‖·‖ = max row abs-sum`; in the first block the entrywise max over both signs.
fn error_bound(rescaled: &Rescaled, realised: &[Realised]) -> f64 {
    let (mut bound, mut err) = (1.0f64, 0.0f64);
    for (l, ((w, b), r)) in rescaled.layers.iter().zip(realised).enumerate() {
        let fan_in = rescaled.fan_ins[l];
        let rows = b.len();
        let (mut w_norm, mut hat_norm, mut diff_norm) = (0.0f64, 0.0f64, 0.0f64);
        for o in 0..rows {
            let (mut a, mut h, mut d) = (0.0, 0.0, 0.0);
            for i in 0..fan_in {
                let idx = o * fan_in + i;
                let (p, n) = (
                    r.positive[idx],
                    r.negative.as_ref().map_or(r.positive[idx], |v| v[idx]),
                );
                a += w[idx].abs();
                h += p.abs().max(n.abs());
                d += (p - w[idx]).abs().max((n - w[idx]).abs());
            }
            w_norm = w_norm.max(a);
            hat_norm = hat_norm.max(h);
            diff_norm = diff_norm.max(d);
        }
        let b_hat = r.bias.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let b_diff = r
            .bias
            .iter()
            .zip(b)
            .fold(0.0f64, |m, (h, t)| m.max((h - t).abs()));
        err = w_norm * err + diff_norm * bound + b_diff;
        bound = hat_norm * bound + b_hat;
    }
    err
}

/// A random host neuron of a copy layer: its incoming weights and bias, and its outgoing
/// weights into the combine layer, all `U[−1, 1]` rounded to f32, from its own stream.
struct CopyNeuron {
    weights: Vec<f32>,
    bias: f32,
    out: Vec<f32>,
}

fn uniform_f32(rng: &mut StreamRng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| sample_uniform(rng, -1.0, 1.0) as f32)
        .collect()
}

/// One target layer realised as a copy layer and a combine layer.
struct Block {
    copy: Layer,
    combine: Layer,
    copy_mask: Vec<bool>,
    combine_mask: Vec<bool>,
    copy_bias_mask: Vec<bool>,
    used_copies: Vec<usize>,
    realised: Realised,
    max_weight_error: f64,
    max_bias_error: f64,
    subset_sizes: Vec<usize>,
    candidates: usize,
    extra: usize,
}

/// A candidate group: which input (or the bias), which sign of `u` it needs, its members.
struct Group {
    input: Option<usize>,
    positive: bool,
    members: Vec<usize>,
}

impl Group {
    fn accepts(&self, n: &CopyNeuron) -> bool {
        match self.input {
            Some(j) => (n.weights[j] > 0.0) == self.positive && n.weights[j] != 0.0,
            None => n.bias > 0.0,
        }
    }
    /// `u_k` (or `β_k`) of member `k`.
    fn factor(&self, n: &CopyNeuron) -> f64 {
        match self.input {
            Some(j) => n.weights[j] as f64,
            None => n.bias as f64,
        }
    }
}

impl Block {
    #[allow(clippy::too_many_arguments)]
    fn build(
        l: usize,
        n_in: usize,
        n_out: usize,
        w: &[f64],
        b: &[f64],
        prev_width: usize,
        last: bool,
        config: &SubsetSumConfig,
        streams: &Streams,
    ) -> Result<Block, PlantError> {
        let combine_width = if last { n_out } else { n_out.max(config.width) };
        let mut pool: Vec<CopyNeuron> = Vec::new();
        let new_neuron = |k: usize| {
            let mut rng = streams.stream(&format!("plant/ss/{l}/copy/{k}"));
            CopyNeuron {
                weights: uniform_f32(&mut rng, prev_width),
                bias: sample_uniform(&mut rng, -1.0, 1.0) as f32,
                out: uniform_f32(&mut rng, combine_width),
            }
        };
        // Groups: both signs in the first block (inputs may be negative), then the bias group.
        let used_inputs: Vec<usize> = (0..n_in)
            .filter(|&j| (0..n_out).any(|i| w[i * n_in + j] != 0.0))
            .collect();
        let mut groups: Vec<Group> = Vec::new();
        for &j in &used_inputs {
            let signs: &[bool] = if l == 0 { &[true, false] } else { &[true] };
            for &positive in signs {
                groups.push(Group {
                    input: Some(j),
                    positive,
                    members: Vec::new(),
                });
            }
        }
        groups.push(Group {
            input: None,
            positive: true,
            members: Vec::new(),
        });
        let mut taken: Vec<bool> = Vec::new();
        let want = |g: &Group| {
            if g.input.is_some() {
                config.copies
            } else {
                config.bias_neurons
            }
        };
        for g in &mut groups {
            let mut k = 0;
            while g.members.len() < want(g) {
                if k == pool.len() {
                    pool.push(new_neuron(k));
                    taken.push(false);
                }
                if !taken[k] && g.accepts(&pool[k]) {
                    taken[k] = true;
                    g.members.push(k);
                }
                k += 1;
            }
        }
        let candidates = pool.len();

        // Solve every (output, group) subset sum; add fresh members when ε is missed.
        let mut chosen: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n_out]; // (group, member k)
        let mut positive = vec![0.0; n_out * n_in];
        let mut negative = vec![0.0; n_out * n_in];
        let mut bias = vec![0.0; n_out];
        let (mut max_w_err, mut max_b_err) = (0.0f64, 0.0f64);
        let mut subset_sizes = Vec::new();
        let mut extra = 0;
        for i in 0..n_out {
            for (gi, g) in groups.iter_mut().enumerate() {
                let goal = match g.input {
                    Some(j) => w[i * n_in + j],
                    None => b[i],
                };
                let mut added = 0;
                let (subset, sum) = loop {
                    let values: Vec<f64> = g
                        .members
                        .iter()
                        .map(|&k| pool[k].out[i] as f64 * g.factor(&pool[k]))
                        .collect();
                    let (subset, sum) = best_subset(&values, goal);
                    if (sum - goal).abs() <= config.epsilon {
                        break (subset, sum);
                    }
                    if added == MAX_EXTRA_PER_GROUP {
                        return Err(PlantError::SubsetSumFailed {
                            layer: l,
                            output: i,
                            target: goal,
                            error: (sum - goal).abs(),
                        });
                    }
                    // A fresh random neuron of the group's sign, appended to the layer.
                    loop {
                        let k = pool.len();
                        pool.push(new_neuron(k));
                        taken.push(false);
                        if g.accepts(&pool[k]) {
                            taken[k] = true;
                            g.members.push(k);
                            break;
                        }
                    }
                    added += 1;
                    extra += 1;
                };
                subset_sizes.push(subset.len());
                chosen[i].extend(subset.iter().map(|&s| (gi, g.members[s])));
                match g.input {
                    Some(j) if g.positive => positive[i * n_in + j] = sum,
                    Some(j) => negative[i * n_in + j] = sum,
                    None => bias[i] = sum,
                }
                let err = (sum - goal).abs();
                if g.input.is_some() {
                    max_w_err = max_w_err.max(err);
                } else {
                    max_b_err = max_b_err.max(err);
                }
            }
        }
        if l != 0 {
            negative = positive.clone();
        }

        // Host layers: the copy layer has every generated neuron plus padding.
        let copy_width = pool.len().max(config.width);
        let mut pad_rng = streams.stream(&format!("plant/ss/{l}/pad"));
        while pool.len() < copy_width {
            pool.push(CopyNeuron {
                weights: uniform_f32(&mut pad_rng, prev_width),
                bias: sample_uniform(&mut pad_rng, -1.0, 1.0) as f32,
                out: uniform_f32(&mut pad_rng, combine_width),
            });
        }
        let mut copy_mask = vec![false; copy_width * prev_width];
        let mut copy_bias_mask = vec![false; copy_width];
        let mut combine_mask = vec![false; combine_width * copy_width];
        let mut used = vec![false; copy_width];
        for (i, picks) in chosen.iter().enumerate() {
            for &(gi, k) in picks {
                combine_mask[i * copy_width + k] = true;
                used[k] = true;
                match groups[gi].input {
                    Some(j) => copy_mask[k * prev_width + j] = true,
                    None => copy_bias_mask[k] = true,
                }
            }
        }
        let mut combine_rng = streams.stream(&format!("plant/ss/{l}/combine-bias"));
        let copy = Layer {
            shape: LayerShape::dense(prev_width, copy_width),
            weight: pool
                .iter()
                .flat_map(|n| n.weights.iter().copied())
                .collect(),
            bias: Some(pool.iter().map(|n| n.bias).collect()),
            conv: None,
        };
        let combine = Layer {
            shape: LayerShape::dense(copy_width, combine_width),
            weight: (0..combine_width)
                .flat_map(|i| pool.iter().map(move |n| n.out[i]))
                .collect(),
            bias: Some(uniform_f32(&mut combine_rng, combine_width)),
            conv: None,
        };
        Ok(Block {
            copy,
            combine,
            copy_mask,
            combine_mask,
            copy_bias_mask,
            used_copies: (0..copy_width).filter(|&k| used[k]).collect(),
            realised: Realised {
                positive,
                negative: (l == 0).then_some(negative),
                bias,
            },
            max_weight_error: max_w_err,
            max_bias_error: max_b_err,
            subset_sizes,
            candidates,
            extra,
        })
    }
}

/// Randomly permutes the neurons of every hidden host layer (streams `plant/ss/perm/<h>`),
/// so the block structure is not visible from positions.
fn permute_hidden(
    host: &mut Network,
    masks: &mut [Vec<bool>],
    bias_masks: &mut [Vec<bool>],
    neurons: &mut [Vec<usize>],
    streams: &Streams,
) {
    for h in 0..host.layers.len() - 1 {
        let width = host.layers[h].shape.fan_out();
        let mut rng = streams.stream(&format!("plant/ss/perm/{h}"));
        // perm[new] = old (Fisher–Yates).
        let mut perm: Vec<usize> = (0..width).collect();
        for i in (1..width).rev() {
            perm.swap(i, sample_index(&mut rng, i + 1));
        }
        let mut position = vec![0; width];
        for (new, &old) in perm.iter().enumerate() {
            position[old] = new;
        }
        let fan_in = host.layers[h].shape.fan_in();
        let rows = |v: &[f32]| -> Vec<f32> {
            perm.iter()
                .flat_map(|&k| v[k * fan_in..(k + 1) * fan_in].iter().copied())
                .collect()
        };
        let layer = &mut host.layers[h];
        layer.weight = rows(&layer.weight);
        if let Some(b) = layer.bias.as_mut() {
            *b = perm.iter().map(|&k| b[k]).collect();
        }
        masks[h] = perm
            .iter()
            .flat_map(|&k| masks[h][k * fan_in..(k + 1) * fan_in].iter().copied())
            .collect();
        bias_masks[h] = perm.iter().map(|&k| bias_masks[h][k]).collect();
        // Columns of the next layer.
        let next = &mut host.layers[h + 1];
        let out = next.shape.fan_out();
        next.weight = (0..out)
            .flat_map(|o| {
                perm.iter()
                    .map(|&k| next.weight[o * width + k])
                    .collect::<Vec<_>>()
            })
            .collect();
        masks[h + 1] = (0..out)
            .flat_map(|o| {
                perm.iter()
                    .map(|&k| masks[h + 1][o * width + k])
                    .collect::<Vec<_>>()
            })
            .collect();
        neurons[h + 1].iter_mut().for_each(|k| *k = position[*k]);
    }
}

/// Best subset of `values` summing to `goal`: smallest `|goal − sum|`, ties to fewer
/// elements, then the lexicographically smaller index set (planting.md §7.3). Exact
/// meet-in-the-middle for ≤ 24 values; larger pools solve the 24 most useful candidates
/// (largest `|v| ≤ 2|goal| + 1`, index order on ties) exactly, then try single swaps.
pub fn best_subset(values: &[f64], goal: f64) -> (Vec<usize>, f64) {
    if goal == 0.0 {
        return (Vec::new(), 0.0);
    }
    if values.len() <= EXACT_POOL {
        return exact_subset(values, goal);
    }
    let mut order: Vec<usize> = (0..values.len())
        .filter(|&k| values[k].abs() <= 2.0 * goal.abs() + 1.0)
        .collect();
    order.sort_by(|&a, &b| values[b].abs().total_cmp(&values[a].abs()).then(a.cmp(&b)));
    order.truncate(EXACT_POOL);
    order.sort_unstable();
    let sub: Vec<f64> = order.iter().map(|&k| values[k]).collect();
    let (picked, mut sum) = exact_subset(&sub, goal);
    let mut set: Vec<usize> = picked.iter().map(|&p| order[p]).collect();
    loop {
        let mut improved = false;
        for pos in 0..set.len() {
            for k in 0..values.len() {
                if set.contains(&k) {
                    continue;
                }
                let candidate = sum - values[set[pos]] + values[k];
                if (candidate - goal).abs() < (sum - goal).abs() {
                    set[pos] = k;
                    sum = candidate;
                    improved = true;
                }
            }
        }
        if !improved {
            break;
        }
    }
    set.sort_unstable();
    (set, sum)
}

/// Exact meet-in-the-middle over all `2^n` subsets (`n ≤ 24`).
fn exact_subset(values: &[f64], goal: f64) -> (Vec<usize>, f64) {
    let n = values.len();
    let half = n / 2;
    let sums = |lo: usize, hi: usize| -> Vec<(f64, u32)> {
        let m = hi - lo;
        (0u32..1 << m)
            .map(|bits| {
                let s = (0..m)
                    .filter(|&t| bits >> t & 1 == 1)
                    .map(|t| values[lo + t])
                    .sum();
                (s, bits)
            })
            .collect()
    };
    let left = sums(0, half);
    let mut right = sums(half, n);
    right.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let to_set = |lb: u32, rb: u32| -> Vec<usize> {
        let mut s: Vec<usize> = (0..half).filter(|&t| lb >> t & 1 == 1).collect();
        s.extend(
            (0..n - half)
                .filter(|&t| rb >> t & 1 == 1)
                .map(|t| half + t),
        );
        s
    };
    let mut best: Option<(f64, Vec<usize>, f64)> = None;
    for &(ls, lb) in &left {
        let need = goal - ls;
        let at = right.partition_point(|r| r.0 < need);
        for idx in [at.wrapping_sub(1), at] {
            let Some(&(rs, rb)) = right.get(idx) else {
                continue;
            };
            let sum = ls + rs;
            let err = (goal - sum).abs();
            let better = match &best {
                None => true,
                Some((e, set, _)) => {
                    err < *e
                        || (err == *e && {
                            let cand = to_set(lb, rb);
                            (cand.len(), &cand) < (set.len(), set)
                        })
                }
            };
            if better {
                best = Some((err, to_set(lb, rb), sum));
            }
        }
    }
    let (_, set, sum) = best.expect("at least the empty subset");
    (set, sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::{circle_target, helix_target, relu_target};

    #[test]
    fn subset_solver_matches_brute_force() {
        let mut rng = Streams::new(11).stream("ss-test");
        for case in 0..2000 {
            let n = 1 + sample_index(&mut rng, 16);
            let values: Vec<f64> = (0..n)
                .map(|_| sample_uniform(&mut rng, -1.0, 1.0))
                .collect();
            let goal = sample_uniform(&mut rng, -1.5, 1.5);
            let brute = (0u32..1 << n)
                .map(|bits| {
                    let s: f64 = (0..n)
                        .filter(|&t| bits >> t & 1 == 1)
                        .map(|t| values[t])
                        .sum();
                    (goal - s).abs()
                })
                .fold(f64::INFINITY, f64::min);
            let (set, sum) = best_subset(&values, goal);
            let recomputed: f64 = set.iter().map(|&k| values[k]).sum();
            assert!((recomputed - sum).abs() < 1e-12, "case {case}");
            assert!(
                (goal - sum).abs() <= brute + 1e-12,
                "case {case}: {} vs {brute}",
                (goal - sum).abs()
            );
        }
    }

    #[test]
    fn large_pools_still_hit_small_errors() {
        let mut rng = Streams::new(12).stream("ss-large");
        let values: Vec<f64> = (0..60)
            .map(|_| sample_uniform(&mut rng, -1.0, 1.0))
            .collect();
        let (set, sum) = best_subset(&values, 0.731);
        assert!((sum - 0.731).abs() < 1e-4, "{sum}");
        assert!((set.iter().map(|&k| values[k]).sum::<f64>() - sum).abs() < 1e-12);
    }

    fn quick() -> SubsetSumConfig {
        SubsetSumConfig {
            probes: 20_000,
            ..SubsetSumConfig::default()
        }
    }

    #[test]
    fn strong_ticket_is_within_its_certificate() {
        for target in [
            relu_target(3).unwrap(),
            circle_target(4).unwrap(),
            helix_target(4).unwrap(),
        ] {
            let (planted, cert) = plant_subset_sum(&target, &quick(), &Streams::new(3)).unwrap();
            assert_eq!(planted.host.layers.len(), 2 * target.layers.len());
            for l in &cert.layers {
                assert!(
                    l.max_weight_error <= 0.01 && l.max_bias_error <= 0.01,
                    "{l:?}"
                );
            }
            assert!(cert.probe_max_error <= cert.certified_bound, "{cert:?}");
            assert!(cert.probe_max_error > 0.0);
            // Re-measure independently of the generator's probe.
            let ticket = SparseTicket::new(&planted.host, &planted.mask, Some(&planted.bias_mask));
            let mut rng = Streams::new(77).stream("probe");
            for _ in 0..2000 {
                let x: Vec<f64> = (0..target.layers[0].fan_in)
                    .map(|_| sample_uniform(&mut rng, -1.0, 1.0))
                    .collect();
                let (got, want) = (ticket.forward(&x), target.forward(&x));
                for (g, w) in got.iter().zip(&want) {
                    assert!((cert.output_multiplier * g - w).abs() <= cert.certified_bound);
                }
            }
        }
    }

    #[test]
    fn strong_planting_never_writes_host_values() {
        // Every host value is a U[−1, 1] draw: the ticket only chooses a mask. Rebuilding
        // with another ε keeps the (seed-determined) neurons of the first block identical.
        let target = relu_target(3).unwrap();
        let (a, _) = plant_subset_sum(&target, &quick(), &Streams::new(5)).unwrap();
        let (b, _) = plant_subset_sum(&target, &quick(), &Streams::new(5)).unwrap();
        assert_eq!(a.host, b.host);
        assert_eq!(a.mask, b.mask);
        assert!(
            a.host
                .layers
                .iter()
                .all(|l| l.weight.iter().all(|w| w.abs() <= 1.0))
        );
        let wide = SubsetSumConfig {
            width: 300,
            ..quick()
        };
        let (c, _) = plant_subset_sum(&target, &wide, &Streams::new(5)).unwrap();
        assert!(
            c.host.widths()[1..c.host.layers.len()]
                .iter()
                .all(|&w| w >= 300)
        );
        assert!(
            plant_subset_sum(
                &target,
                &SubsetSumConfig {
                    epsilon: 0.0,
                    ..quick()
                },
                &Streams::new(5)
            )
            .is_err()
        );
    }
}
