use super::{
    DataNeeds, Family, MethodError, MethodInfo, PruneContext, PruneOutcome, Pruner, at_least_one,
    parse_params, to_value,
};
use serde::{Deserialize, Serialize};
use ticketbench_core::select::{Keep, top_k_global};
use ticketbench_core::{
    CoreError, Density, Mask, Network, Scores, StreamRng, Streams, sample_uniform, target_count,
};

/// PHEW, paths with higher edge weights (methods.md §1.8): a data-free mask built from random
/// walks through the initial network, biased by |θ_0|.
///
/// For dense layer `l` with weights `W_l[i, j]` (out `i`, in `j`), a **forward** step from
/// unit `j` picks output unit `i` with probability `|W_l[i, j]| / Σ_i' |W_l[i', j]|`, a
/// **backward** step from unit `i` picks input unit `j` with probability
/// `|W_l[i, j]| / Σ_j' |W_l[i, j']|` (uniform when that column/row is all zero). Walks
/// alternate: walk `2t` starts at input unit `t mod n_0` and goes forward to an output unit,
/// walk `2t + 1` starts at output unit `t mod n_L` and goes backward to an input unit. Every
/// traversed edge is kept. One global budget `K = round_half_up(D·N)`; the layer allocation
/// emerges from the walks; weights keep θ_0. All draws come from the stream `phew/walks`.
///
/// ticketbench deviations: (1) the reference stops once the number of kept edges is `≥ K`
/// (overshooting by up to `L − 1`); here the final walk stops as soon as the count reaches
/// `K`, so the count is exact and that walk's edges may dangle (up to `L − 1` of them, see
/// the tests). (2) Guard against endless walking: when `stall_walks` consecutive walks add no
/// new edge (e.g. every edge the walks can reach at a useful rate is already kept), walking
/// stops and the rest of the budget is filled with the largest-|θ_0| edges not yet kept (ties
/// to the lower flat index); the number of edges so filled is recorded as the event
/// `phew_filled` (0 in ordinary runs), the number of walks as `phew_walks`. (3) `D = 1`
/// returns the dense mask without walking. Biases are never pruned, so the reference's bias
/// mask has no counterpart. Data-free.
///
/// Convolutions (§1.8(a): "pick the (out, in) channel pair by kernel L1 norms, then a kernel
/// tap ∝ |w|"): the units of a convolution layer are channels, on both sides. A step from
/// input channel `c` draws `(o, t)` ∝ `|W[o, c, t]|` over all output channels `o` and taps
/// `t` — the pair `(o, c)` with probability `‖W[o, c]‖₁ / Σ_o' ‖W[o', c]‖₁`, then the tap
/// `∝ |W[o, c, t]|` — keeps kernel entry `W[o, c, t]` and moves to channel `o`; backward from
/// output channel `o` likewise over `(c, t)`, moving to channel `c`. The walks start at the
/// input channels (round-robin) when the first layer is a convolution. Where a convolution
/// (`P = out_h·out_w` positions per channel) feeds a dense layer, whose input `u` is channel
/// `⌊u / P⌋` in CHW order: forward from channel `c`, the step treats the channel's block of
/// columns `cP..(c+1)P` as one unit and draws an edge `(i, u)` ∝ `|W[i, u]|` over all rows `i`
/// and the block's columns `u`, moving to dense unit `i`; backward from dense unit `i`, it
/// draws the column `u` ∝ `|W[i, u]|` as usual and moves to channel `⌊u / P⌋`. A dense layer
/// feeding a convolution is grouped the same way on its output side (`in_h·in_w` rows per
/// channel). An all-zero block is walked uniformly. Between dense layers every unit is its
/// own block, which is the per-unit rule above.
/// Patil & Dovrolis 2021, arXiv 2010.11354 (ICML 2021).
pub struct Phew {
    params: PhewParams,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PhewParams {
    /// Consecutive walks without a new edge after which the budget is filled by |θ_0|.
    stall_walks: usize,
}

impl Default for PhewParams {
    fn default() -> Self {
        PhewParams {
            stall_walks: 100_000,
        }
    }
}

pub(super) const INFO: MethodInfo = MethodInfo {
    name: "phew",
    family: Family::AtInit,
    data: DataNeeds::None,
    summary: "random walks biased by |θ_0|, alternating input→output and output→input, every traversed edge kept",
    citation: "Patil & Dovrolis 2021, arXiv 2010.11354",
    build: |p| {
        let params: PhewParams = parse_params(INFO.name, p)?;
        at_least_one(INFO.name, "stall_walks", params.stall_walks)?;
        Ok(Box::new(Phew { params }))
    },
};

/// Direction of a walk step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// From an input unit `j` of the layer to one of its output units `i`.
    Forward,
    /// From an output unit `i` of the layer to one of its input units `j`.
    Backward,
}

/// How layer `l`'s weight matrix (`[fan_out, fan_in]`, a convolution's `[c_out, c_in·k_h·k_w]`)
/// groups into walk units: `(in_group, out_group)`, the columns per input unit and the rows
/// per output unit. A convolution's units are channels (`k_h·k_w` columns per input channel,
/// one row per output channel); a dense layer after a convolution reads one unit per channel
/// (`positions` CHW columns), a dense layer before a convolution writes one per channel
/// (`in_h·in_w` rows); otherwise a unit is one column or row.
fn unit_groups(net: &Network, l: usize) -> (usize, usize) {
    let layer = &net.layers[l];
    if layer.conv.is_some() {
        return (layer.shape.dims[2..].iter().product(), 1);
    }
    let in_group = match l.checked_sub(1).map(|p| &net.layers[p]) {
        Some(prev) if prev.conv.is_some() => prev.positions(),
        _ => 1,
    };
    let out_group = match net.layers.get(l + 1).and_then(|next| next.conv.as_ref()) {
        Some(c) => c.in_h * c.in_w,
        None => 1,
    };
    (in_group, out_group)
}

/// Transition probabilities of one step through layer `layer` from `unit` over the next
/// units (§1.8(a)): forward `|W[i, unit]| / Σ_i' |W[i', unit]|` over outputs `i`, backward
/// `|W[unit, j]| / Σ_j' |W[unit, j']|` over inputs `j`; uniform when all are zero. Grouped
/// units ([`unit_groups`]: channels) sum the magnitudes of their block, e.g. the kernel L1
/// norms of a convolution's `(out, in)` channel pairs. The walks draw from running sums of
/// the same magnitudes ([`WalkLayer`]); this direct form is the spec's check.
#[cfg(test)]
pub(crate) fn transition_probabilities(
    net: &Network,
    layer: usize,
    unit: usize,
    direction: Direction,
) -> Vec<f64> {
    let l = &net.layers[layer];
    let (fan_out, fan_in) = (l.shape.fan_out(), l.shape.fan_in());
    let (gi, go) = unit_groups(net, layer);
    let block_sum = |rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| -> f64 {
        rows.map(|i| {
            cols.clone()
                .map(|j| (l.weight[i * fan_in + j] as f64).abs())
                .sum::<f64>()
        })
        .sum()
    };
    let mags: Vec<f64> = match direction {
        Direction::Forward => (0..fan_out / go)
            .map(|i| block_sum(i * go..(i + 1) * go, unit * gi..(unit + 1) * gi))
            .collect(),
        Direction::Backward => (0..fan_in / gi)
            .map(|j| block_sum(unit * go..(unit + 1) * go, j * gi..(j + 1) * gi))
            .collect(),
    };
    let total: f64 = mags.iter().sum();
    if total > 0.0 {
        mags.iter().map(|m| m / total).collect()
    } else {
        vec![1.0 / mags.len() as f64; mags.len()]
    }
}

/// Cumulative |W| tables of one layer, so a step costs one uniform draw and a binary search.
///
/// A step from a unit draws one edge of the unit's block ∝ |W| (uniform when the block is all
/// zero): forward from input unit `j`, the edges `(i, u)` of its columns `u` (all rows `i`),
/// `u`-major; backward from output unit `i`, the edges `(r, u)` of its rows `r` (all columns
/// `u`), row-major. The unit reached holds the edge's row (forward) or column (backward).
/// For ungrouped units this is the rule of §1.8(a); for a convolution it is §1.8(a)'s
/// "(out, in) channel pair by kernel L1 norm, then a tap ∝ |w|" in one draw
/// (`P(o, c) · P(t | o, c) = (‖W[o, c]‖₁ / Σ) · (|W[o, c, t]| / ‖W[o, c]‖₁)`).
struct WalkLayer {
    fan_in: usize,
    fan_out: usize,
    /// Columns per input unit and rows per output unit ([`unit_groups`]).
    in_group: usize,
    out_group: usize,
    /// Input unit `j`: `in_group·fan_out` running sums at `j·in_group·fan_out..`.
    forward: Vec<f64>,
    /// Output unit `i`: `out_group·fan_in` running sums at `i·out_group·fan_in..`.
    backward: Vec<f64>,
}

/// Running sums of `mags`; `1, 2, …, n` (uniform) when they are all zero.
fn cumulative(mags: impl Iterator<Item = f64>, out: &mut Vec<f64>) {
    let start = out.len();
    let mut acc = 0.0;
    for m in mags {
        acc += m;
        out.push(acc);
    }
    if acc.is_nan() || acc <= 0.0 {
        for (r, c) in out[start..].iter_mut().enumerate() {
            *c = (r + 1) as f64;
        }
    }
}

/// One draw from the categorical distribution with running sums `cdf` (positive last entry).
fn draw(cdf: &[f64], rng: &mut StreamRng) -> usize {
    let total = *cdf.last().expect("a layer has at least one unit");
    let u = sample_uniform(rng, 0.0, total);
    let pick = cdf.partition_point(|&c| c <= u);
    if pick < cdf.len() {
        pick
    } else {
        // `u` rounded up to `total`: the last entry of positive width.
        cdf.partition_point(|&c| c < total)
    }
}

impl WalkLayer {
    fn new(net: &Network, layer: usize) -> Self {
        let l = &net.layers[layer];
        let (fan_out, fan_in) = (l.shape.fan_out(), l.shape.fan_in());
        let (in_group, out_group) = unit_groups(net, layer);
        let mag = |i: usize, u: usize| (l.weight[i * fan_in + u] as f64).abs();
        let mut forward = Vec::with_capacity(fan_in * fan_out);
        for j in 0..fan_in / in_group {
            let cols = j * in_group..(j + 1) * in_group;
            cumulative(
                cols.flat_map(|u| (0..fan_out).map(move |i| mag(i, u))),
                &mut forward,
            );
        }
        let mut backward = Vec::with_capacity(fan_in * fan_out);
        for i in 0..fan_out / out_group {
            let block = i * out_group * fan_in..(i + 1) * out_group * fan_in;
            cumulative(
                l.weight[block].iter().map(|&w| (w as f64).abs()),
                &mut backward,
            );
        }
        WalkLayer {
            fan_in,
            fan_out,
            in_group,
            out_group,
            forward,
            backward,
        }
    }

    /// Input and output units.
    fn units(&self) -> (usize, usize) {
        (self.fan_in / self.in_group, self.fan_out / self.out_group)
    }

    /// The running sums of a step from `unit`.
    fn cdf(&self, unit: usize, direction: Direction) -> &[f64] {
        let len = match direction {
            Direction::Forward => self.in_group * self.fan_out,
            Direction::Backward => self.out_group * self.fan_in,
        };
        let table = match direction {
            Direction::Forward => &self.forward,
            Direction::Backward => &self.backward,
        };
        &table[unit * len..(unit + 1) * len]
    }

    /// Entry `q` of `unit`'s block: the unit reached and the row-major index of the edge.
    fn locate(&self, unit: usize, direction: Direction, q: usize) -> (usize, usize) {
        match direction {
            Direction::Forward => {
                let (u, i) = (unit * self.in_group + q / self.fan_out, q % self.fan_out);
                (i / self.out_group, i * self.fan_in + u)
            }
            Direction::Backward => {
                let edge = unit * self.out_group * self.fan_in + q;
                ((edge % self.fan_in) / self.in_group, edge)
            }
        }
    }

    /// One step from `unit`: the unit reached and the row-major index of the edge traversed.
    fn step(&self, unit: usize, direction: Direction, rng: &mut StreamRng) -> (usize, usize) {
        self.locate(unit, direction, draw(self.cdf(unit, direction), rng))
    }

    /// Every edge of a step from `unit` with the unit it reaches and its probability.
    #[cfg(test)]
    fn edge_probabilities(&self, unit: usize, direction: Direction) -> Vec<(usize, usize, f64)> {
        let cdf = self.cdf(unit, direction);
        let total = cdf.last().expect("a layer has at least one unit");
        let mut prev = 0.0;
        cdf.iter()
            .enumerate()
            .map(|(q, &c)| {
                let (next, edge) = self.locate(unit, direction, q);
                let p = (c - prev) / total;
                prev = c;
                (edge, next, p)
            })
            .collect()
    }
}

/// The walks of one PHEW mask and what it took to build it.
pub(crate) struct PhewRun {
    pub mask: Mask,
    /// Walks started (the last one possibly cut short).
    pub walks: u64,
    /// Edges added by the |θ_0| fallback after `stall_walks` walks without a new edge.
    pub filled: usize,
}

/// PHEW's mask of `k` edges. `truncate = false` lets the final walk finish (the reference's
/// behaviour, up to `L − 1` edges over `k`); it exists for the invariant tests.
pub(crate) fn phew_mask(
    net: &Network,
    k: usize,
    streams: &Streams,
    stall_walks: usize,
    truncate: bool,
) -> Result<PhewRun, CoreError> {
    let shapes = net.shapes();
    let total = net.num_prunable();
    if k > total {
        return Err(CoreError::NotEnoughCandidates {
            requested: k,
            available: total,
        });
    }
    if k == total {
        return Ok(PhewRun {
            mask: Mask::dense(&shapes),
            walks: 0,
            filled: 0,
        });
    }
    let layers: Vec<WalkLayer> = (0..net.layers.len())
        .map(|l| WalkLayer::new(net, l))
        .collect();
    let (n_in, n_out) = (
        layers[0].units().0,
        layers.last().expect("at least one layer").units().1,
    );
    let mut keep: Vec<Vec<bool>> = shapes.iter().map(|s| vec![false; s.len()]).collect();
    let mut count = 0usize;
    let mut rng = streams.stream("phew/walks");
    let mut walks = 0u64;
    let mut stale = 0usize;
    'walking: while count < k && stale < stall_walks {
        let before = count;
        let t = (walks / 2) as usize;
        let (direction, mut unit) = if walks.is_multiple_of(2) {
            (Direction::Forward, t % n_in)
        } else {
            (Direction::Backward, t % n_out)
        };
        walks += 1;
        for s in 0..layers.len() {
            let l = match direction {
                Direction::Forward => s,
                Direction::Backward => layers.len() - 1 - s,
            };
            let (next, edge) = layers[l].step(unit, direction, &mut rng);
            if !keep[l][edge] {
                keep[l][edge] = true;
                count += 1;
                if truncate && count == k {
                    break 'walking;
                }
            }
            unit = next;
        }
        stale = if count > before { 0 } else { stale + 1 };
    }
    let mut filled = 0;
    if count < k {
        // Fallback: the largest |θ_0| among the edges the walks left out.
        let left: Vec<Vec<bool>> = keep
            .iter()
            .map(|l| l.iter().map(|&b| !b).collect())
            .collect();
        let scores = Scores {
            layers: net
                .layers
                .iter()
                .map(|l| l.weight.iter().map(|&w| (w as f64).abs()).collect())
                .collect(),
        };
        filled = k - count;
        let extra = top_k_global(
            &scores,
            filled,
            Some(&Mask::from_layers(left)),
            Keep::Highest,
        )?;
        for (l, layer) in keep.iter_mut().enumerate() {
            for (b, &e) in layer.iter_mut().zip(extra.layer(l)) {
                *b |= e;
            }
        }
    }
    Ok(PhewRun {
        mask: Mask::from_layers(keep),
        walks,
        filled,
    })
}

impl Pruner for Phew {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }
    fn params(&self) -> serde_json::Value {
        to_value(&self.params)
    }
    fn prune(
        &self,
        ctx: &mut PruneContext<'_>,
        density: Density,
    ) -> Result<PruneOutcome, MethodError> {
        let k = target_count(density, ctx.net.num_prunable())?;
        let run = phew_mask(ctx.net, k, ctx.streams, self.params.stall_walks, true)?;
        if run.filled > 0 {
            (ctx.progress)(format!(
                "phew: walks stalled after {} walks; {} edges filled by |θ_0|",
                run.walks, run.filled
            ));
        }
        let mut outcome = PruneOutcome::new(run.mask);
        outcome
            .log
            .events
            .insert("phew_walks".into(), run.walks as f64);
        outcome
            .log
            .events
            .insert("phew_filled".into(), run.filled as f64);
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceSpec;
    use crate::engine::Engine;
    use crate::train::TrainRecipe;
    use ticketbench_core::{InitScheme, Layer, LayerShape};
    use ticketbench_planted::tasks;

    /// §1.8(e): W = [[1, 2], [3, 2]] (out × in), bias-free, one layer.
    fn worked_layer() -> Network {
        Network::from_layers(vec![Layer {
            shape: LayerShape::dense(2, 2),
            weight: vec![1.0, 2.0, 3.0, 2.0],
            bias: None,
            conv: None,
        }])
        .unwrap()
    }

    fn mlp(widths: &[usize], seed: u64) -> Network {
        Network::mlp(widths, true, InitScheme::KaimingNormal, &Streams::new(seed)).unwrap()
    }

    /// Surviving weights after the effective-sparsity fixed point (methods.md §0).
    fn effective_kept(mask: &Mask, net: &Network) -> usize {
        let mut keep: Vec<Vec<bool>> = mask.layers().to_vec();
        let widths = net.widths();
        let n_layers = keep.len();
        loop {
            let mut changed = false;
            // Hidden units h = 1..L−1 sit between weight layers h−1 (in) and h (out).
            for h in 1..n_layers {
                let units = widths[h];
                let (fan_in_prev, fan_in_next) = (widths[h - 1], widths[h]);
                for u in 0..units {
                    let has_in = (0..fan_in_prev).any(|j| keep[h - 1][u * fan_in_prev + j]);
                    let has_out = (0..widths[h + 1]).any(|o| keep[h][o * fan_in_next + u]);
                    if !has_in || !has_out {
                        for j in 0..fan_in_prev {
                            changed |= std::mem::take(&mut keep[h - 1][u * fan_in_prev + j]);
                        }
                        for o in 0..widths[h + 1] {
                            changed |= std::mem::take(&mut keep[h][o * fan_in_next + u]);
                        }
                    }
                }
            }
            if !changed {
                return keep.iter().flatten().filter(|&&b| b).count();
            }
        }
    }

    #[test]
    fn worked_transition_probabilities() {
        let net = worked_layer();
        assert_eq!(
            transition_probabilities(&net, 0, 0, Direction::Forward),
            vec![0.25, 0.75]
        );
        assert_eq!(
            transition_probabilities(&net, 0, 1, Direction::Backward),
            vec![0.6, 0.4]
        );
        // All-zero column: uniform.
        let mut zero = net.clone();
        zero.layers[0].weight[0] = 0.0;
        zero.layers[0].weight[2] = 0.0;
        assert_eq!(
            transition_probabilities(&zero, 0, 0, Direction::Forward),
            vec![0.5, 0.5]
        );
    }

    #[test]
    fn worked_transitions_empirically() {
        let net = worked_layer();
        let layer = WalkLayer::new(&net, 0);
        let mut rng = Streams::new(3).stream("phew/test");
        let n = 100_000;
        let mut fwd = [0usize; 2];
        let mut bwd = [0usize; 2];
        for _ in 0..n {
            let (i, edge) = layer.step(0, Direction::Forward, &mut rng);
            assert_eq!(edge, i * 2); // edge (i, 0)
            fwd[i] += 1;
            let (j, edge) = layer.step(1, Direction::Backward, &mut rng);
            assert_eq!(edge, 2 + j); // edge (1, j)
            bwd[j] += 1;
        }
        // Binomial sd ≈ 0.0014 (p = 0.75) and 0.0015 (p = 0.6): 4 sd tolerance.
        let p_fwd = fwd[1] as f64 / n as f64;
        let p_bwd = bwd[0] as f64 / n as f64;
        assert!((p_fwd - 0.75).abs() < 0.006, "{p_fwd}");
        assert!((p_bwd - 0.6).abs() < 0.007, "{p_bwd}");
    }

    #[test]
    fn zero_weights_are_never_walked_but_zero_columns_are_uniform() {
        let mut net = worked_layer();
        net.layers[0].weight = vec![0.0, 0.0, 5.0, 0.0]; // column 1 all zero
        let layer = WalkLayer::new(&net, 0);
        let mut rng = Streams::new(0).stream("phew/test");
        let mut from1 = [0usize; 2];
        for _ in 0..2000 {
            assert_eq!(layer.step(0, Direction::Forward, &mut rng).0, 1);
            assert_eq!(layer.step(1, Direction::Backward, &mut rng).0, 0);
            from1[layer.step(1, Direction::Forward, &mut rng).0] += 1;
        }
        assert!(from1.iter().all(|&c| c > 900), "{from1:?}");
    }

    #[test]
    fn exact_count_at_several_densities() {
        let net = mlp(&[3, 20, 16, 4], 0);
        let total = net.num_prunable();
        for d in [1.0, 0.9, 0.5, 0.1, 0.013, 0.002] {
            let k = target_count(Density::new(d).unwrap(), total).unwrap();
            let run = phew_mask(&net, k, &Streams::new(1), 100_000, true).unwrap();
            assert_eq!(run.mask.kept(), k, "density {d}");
            run.mask.check_shapes(&net.shapes()).unwrap();
        }
    }

    #[test]
    fn kept_edges_lie_on_input_output_paths() {
        // methods.md §1.8(e): untruncated, effective = direct density; truncated, only the
        // final walk's edges (at most L − 1 of them) may dangle.
        for (widths, seed) in [
            (vec![4, 12, 10, 8, 3], 0),
            (vec![4, 12, 10, 8, 3], 1),
            (vec![2, 12, 3], 2),
        ] {
            let net = mlp(&widths, seed);
            let l = net.layers.len();
            let total = net.num_prunable();
            for d in [0.02, 0.1, 0.3, 0.6] {
                let k = target_count(Density::new(d).unwrap(), total).unwrap();
                let streams = Streams::new(seed);
                let full = phew_mask(&net, k, &streams, 100_000, false).unwrap();
                assert_eq!(full.filled, 0);
                assert!(full.mask.kept() >= k && full.mask.kept() < k + l);
                assert_eq!(effective_kept(&full.mask, &net), full.mask.kept());
                let cut = phew_mask(&net, k, &streams, 100_000, true).unwrap();
                assert_eq!(cut.mask.kept(), k);
                let dangling = k - effective_kept(&cut.mask, &net);
                assert!(dangling < l, "{widths:?} d {d}: {dangling} dangling");
                // The truncated mask is the untruncated one minus the final walk's tail.
                assert_eq!(cut.mask.intersect(&full.mask), cut.mask);
            }
        }
    }

    #[test]
    fn truncation_can_leave_l_minus_one_dangling() {
        // methods.md §1.8(e) allows L − 2 dangling edges, but the bound is L − 1: with
        // k = L − 1 the first walk (forward, every edge new) is cut one step before the
        // output, so its L − 1 edges reach no output and all of them dangle.
        let net = mlp(&[4, 12, 10, 8, 3], 0);
        let l = net.layers.len();
        let run = phew_mask(&net, l - 1, &Streams::new(0), 100_000, true).unwrap();
        assert_eq!(run.walks, 1);
        assert_eq!(run.mask.layer_kept(), vec![1, 1, 1, 0]);
        assert_eq!(effective_kept(&run.mask, &net), 0);
    }

    #[test]
    fn stalled_walks_fill_by_magnitude() {
        // W = [[1, 2], [3, 0], [0, 5]] (out × in): edges (1, 1) and (2, 0) have weight 0 and
        // no walk can take them, so k = 5 of 6 stalls after the 4 reachable edges; the fifth
        // comes from |θ_0| (a 0–0 tie, to the lower flat index 3).
        let net = Network::from_layers(vec![Layer {
            shape: LayerShape::dense(2, 3),
            weight: vec![1.0, 2.0, 3.0, 0.0, 0.0, 5.0],
            bias: None,
            conv: None,
        }])
        .unwrap();
        let run = phew_mask(&net, 5, &Streams::new(0), 1000, true).unwrap();
        assert_eq!(run.filled, 1);
        assert_eq!(run.mask.layer(0), &[true, true, true, true, false, true]);
        assert!(run.walks >= 1000);
    }

    #[test]
    fn same_seed_same_mask_other_seed_other_mask() {
        let net = mlp(&[3, 20, 16, 4], 0);
        let a = phew_mask(&net, 100, &Streams::new(5), 100_000, true).unwrap();
        let b = phew_mask(&net, 100, &Streams::new(5), 100_000, true).unwrap();
        let c = phew_mask(&net, 100, &Streams::new(6), 100_000, true).unwrap();
        assert_eq!(a.mask, b.mask);
        assert_eq!(a.walks, b.walks);
        assert_ne!(a.mask, c.mask);
    }

    #[test]
    fn walks_prefer_large_weights() {
        // Mean |θ_0| of kept edges beats the network's mean at low density.
        let net = mlp(&[8, 64, 64, 4], 7);
        let run = phew_mask(&net, 200, &Streams::new(7), 100_000, true).unwrap();
        let (mut kept, mut all) = ((0.0, 0usize), (0.0, 0usize));
        for (l, m) in net.layers.iter().zip(run.mask.layers()) {
            for (&w, &b) in l.weight.iter().zip(m) {
                all = (all.0 + w.abs() as f64, all.1 + 1);
                if b {
                    kept = (kept.0 + w.abs() as f64, kept.1 + 1);
                }
            }
        }
        assert!(kept.0 / kept.1 as f64 > 1.2 * all.0 / all.1 as f64);
    }

    /// A hand-made 2-channel conv net: input 2×3×3, conv 2 channels 2×2 (stride 1, no
    /// padding: 2×2 = 4 positions), dense 8 → 2. Conv kernels `W[o, c]` (taps row-major):
    /// `W[0, 0] = [1, 2, 3, 4]` (L1 10), `W[0, 1] = [1, 1, 1, 1]` (4),
    /// `W[1, 0] = [0, 0, −5, −25]` (30), `W[1, 1] = [2, 0, 0, 2]` (4).
    fn two_channel_net() -> Network {
        let conv = Layer {
            shape: LayerShape {
                dims: vec![2, 2, 2, 2],
            },
            weight: vec![
                1.0, 2.0, 3.0, 4.0, 1.0, 1.0, 1.0, 1.0, //
                0.0, 0.0, -5.0, -25.0, 2.0, 0.0, 0.0, 2.0,
            ],
            bias: Some(vec![0.1, 0.2]),
            conv: Some(ticketbench_core::Conv2d {
                in_h: 3,
                in_w: 3,
                stride: 1,
                padding: 0,
            }),
        };
        let dense = Layer {
            shape: LayerShape::dense(8, 2),
            weight: (1..=16)
                .map(|v| v as f32 * if v % 3 == 0 { -1.0 } else { 1.0 })
                .collect(),
            bias: None,
            conv: None,
        };
        Network::from_layers(vec![conv, dense]).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn conv_transition_probabilities_on_a_two_channel_example() {
        let net = two_channel_net();
        assert_eq!(unit_groups(&net, 0), (4, 1));
        assert_eq!(unit_groups(&net, 1), (4, 1));
        // Channel pairs by kernel L1 norm: from input channel 0, (0, 0) 10 and (1, 0) 30.
        assert_eq!(
            transition_probabilities(&net, 0, 0, Direction::Forward),
            vec![0.25, 0.75]
        );
        // Backward from output channel 1: (1, 0) 30 and (1, 1) 4.
        let back = transition_probabilities(&net, 0, 1, Direction::Backward);
        assert!(
            close(back[0], 30.0 / 34.0) && close(back[1], 4.0 / 34.0),
            "{back:?}"
        );
        // Then a tap ∝ |w| within the pair's kernel: P(edge) = P(pair) · |w| / L1.
        let conv = WalkLayer::new(&net, 0);
        assert_eq!(conv.units(), (2, 2));
        let l1 = [[10.0, 4.0], [30.0, 4.0]];
        let fwd = conv.edge_probabilities(0, Direction::Forward);
        assert_eq!(fwd.len(), 8);
        for &(edge, next, p) in &fwd {
            let (o, c, t) = (edge / 8, (edge % 8) / 4, edge % 4);
            assert_eq!((c, next), (0, o), "edge {edge}");
            let want = [0.25, 0.75][o] * (net.layers[0].weight[edge].abs() as f64 / l1[o][0]);
            assert!(close(p, want), "edge {edge} (tap {t}): {p} vs {want}");
        }
        let bwd = conv.edge_probabilities(1, Direction::Backward);
        assert_eq!(bwd.len(), 8);
        for &(edge, next, p) in &bwd {
            let (o, c) = (edge / 8, (edge % 8) / 4);
            assert_eq!((o, next), (1, c), "edge {edge}");
            let want = back[c] * (net.layers[0].weight[edge].abs() as f64 / l1[1][c]);
            assert!(close(p, want), "edge {edge}: {p} vs {want}");
        }
        // Into the dense layer from channel 1: the block of columns 4..8, every row, ∝ |W|.
        let w2 = &net.layers[1].weight;
        let block: f64 = (0..2)
            .flat_map(|i| (4..8).map(move |u| w2[i * 8 + u].abs() as f64))
            .sum();
        assert_eq!(
            transition_probabilities(&net, 1, 1, Direction::Forward),
            vec![
                (4..8).map(|u| w2[u].abs() as f64).sum::<f64>() / block,
                (4..8).map(|u| w2[8 + u].abs() as f64).sum::<f64>() / block,
            ]
        );
        let dense = WalkLayer::new(&net, 1);
        assert_eq!(dense.units(), (2, 2));
        for (edge, next, p) in dense.edge_probabilities(1, Direction::Forward) {
            let (i, u) = (edge / 8, edge % 8);
            assert!((4..8).contains(&u) && next == i, "edge {edge}");
            assert!(close(p, w2[edge].abs() as f64 / block), "edge {edge}");
        }
        // Back from dense unit 0: column u ∝ |W[0, u]|, the walk lands on channel u / 4.
        let row: f64 = w2[..8].iter().map(|w| w.abs() as f64).sum();
        for (edge, next, p) in dense.edge_probabilities(0, Direction::Backward) {
            assert!(edge < 8 && next == edge / 4, "edge {edge}");
            assert!(close(p, w2[edge].abs() as f64 / row), "edge {edge}");
        }
        // The sampler draws from the same table: pair (1, 0) w.p. 0.75, its tap 3 w.p. 5/6.
        let mut rng = Streams::new(1).stream("phew/test");
        let n = 40_000;
        let (mut pair, mut tap3) = (0usize, 0usize);
        for _ in 0..n {
            let (o, edge) = conv.step(0, Direction::Forward, &mut rng);
            if o == 1 {
                pair += 1;
                tap3 += usize::from(edge == 8 + 3);
            }
        }
        let p_pair = pair as f64 / n as f64;
        let p_tap = tap3 as f64 / pair as f64;
        assert!((p_pair - 0.75).abs() < 0.01, "{p_pair}");
        assert!((p_tap - 5.0 / 6.0).abs() < 0.012, "{p_tap}");
    }

    fn conv_net(seed: u64) -> Network {
        let spec = ticketbench_core::ConvNetSpec {
            input: [2, 6, 6],
            convs: vec![
                ticketbench_core::ConvSpec::k3(3, 1),
                ticketbench_core::ConvSpec::k3(4, 2),
            ],
            hidden: vec![8],
            outputs: 3,
        };
        Network::conv_net(&spec, true, InitScheme::KaimingNormal, &Streams::new(seed)).unwrap()
    }

    #[test]
    fn conv_walks_chain_channels_across_the_boundary() {
        // k = L: the first walk (forward from input channel 0) is the whole mask; its edges
        // chain channel to channel, then channel block to dense unit to output.
        let net = conv_net(0);
        let run = phew_mask(&net, 4, &Streams::new(2), 100_000, true).unwrap();
        assert_eq!((run.walks, run.mask.layer_kept()), (1, vec![1, 1, 1, 1]));
        let edge = |l: usize| run.mask.layer(l).iter().position(|&b| b).unwrap();
        let (e0, e1, e2, e3) = (edge(0), edge(1), edge(2), edge(3));
        assert_eq!((e0 % 18) / 9, 0, "starts at input channel 0");
        assert_eq!((e1 % 27) / 9, e0 / 18, "conv 1 reads conv 0's channel");
        let positions = net.layers[1].positions();
        assert_eq!(positions, 9);
        assert_eq!(
            (e2 % 36) / positions,
            e1 / 27,
            "dense reads conv 1's channel block"
        );
        assert_eq!(e3 % 8, e2 / 36, "output layer reads the dense unit");
        // Backward from an output, through the layers' steps: dense unit, then a column of
        // the dense layer, whose channel the conv layers continue from.
        let layers: Vec<WalkLayer> = (0..4).map(|l| WalkLayer::new(&net, l)).collect();
        let mut rng = Streams::new(3).stream("phew/test");
        for start in 0..3 {
            let (i, e3) = layers[3].step(start, Direction::Backward, &mut rng);
            assert_eq!((e3 / 8, e3 % 8), (start, i));
            let (c, e2) = layers[2].step(i, Direction::Backward, &mut rng);
            assert_eq!((e2 / 36, (e2 % 36) / positions), (i, c));
            let (c0, e1) = layers[1].step(c, Direction::Backward, &mut rng);
            assert_eq!((e1 / 27, (e1 % 27) / 9), (c, c0));
            let (x, e0) = layers[0].step(c0, Direction::Backward, &mut rng);
            assert_eq!((e0 / 18, (e0 % 18) / 9), (c0, x));
            assert!(x < 2);
        }
    }

    #[test]
    fn conv_exact_count_and_same_seed_same_mask() {
        let net = conv_net(1);
        let total = net.num_prunable();
        for d in [1.0, 0.6, 0.2, 0.05, 0.01] {
            let k = target_count(Density::new(d).unwrap(), total).unwrap();
            let run = phew_mask(&net, k, &Streams::new(4), 100_000, true).unwrap();
            assert_eq!(run.mask.kept(), k, "density {d}");
            run.mask.check_shapes(&net.shapes()).unwrap();
            if d < 1.0 {
                assert_eq!(run.filled, 0, "density {d}");
                assert!(run.mask.layer_kept().iter().all(|&c| c > 0), "density {d}");
            }
        }
        let a = phew_mask(&net, 120, &Streams::new(5), 100_000, true).unwrap();
        let b = phew_mask(&net, 120, &Streams::new(5), 100_000, true).unwrap();
        let c = phew_mask(&net, 120, &Streams::new(6), 100_000, true).unwrap();
        assert_eq!((&a.mask, a.walks), (&b.mask, b.walks));
        assert_ne!(a.mask, c.mask);
    }

    #[test]
    fn pruner_is_data_free() {
        // Same net and seed, two different training sets: identical masks through the trait.
        let engine = Engine::new(DeviceSpec::Cpu).unwrap();
        let streams = Streams::new(0);
        let net = mlp(&[2, 16, 16, 4], 0);
        let recipe = TrainRecipe::default();
        let pruner = (INFO.build)(&Default::default()).unwrap();
        let mut masks = Vec::new();
        for samples in [100, 300] {
            let params = serde_json::json!({ "samples": samples });
            let task = tasks::build("circle", params.as_object().unwrap())
                .unwrap()
                .generate(&streams);
            let data = engine.upload(task.clone());
            let mut trained = None;
            let mut ctx = PruneContext {
                engine: &engine,
                net: &net,
                data: &data,
                recipe: &recipe,
                streams: &streams,
                trained_dense: &mut trained,
                cache: &mut crate::methods::MethodCache::new(),
                progress: &mut |_| {},
                planted: None,
                job: Default::default(),
            };
            let out = pruner.prune(&mut ctx, Density::new(0.1).unwrap()).unwrap();
            assert_eq!(out.log.events["phew_filled"], 0.0);
            assert!(out.start.is_none());
            masks.push(out.mask);
        }
        assert_eq!(masks[0], masks[1]);
        assert_eq!(masks[0].kept(), 35); // round_half_up(0.1 · 352)
    }
}
