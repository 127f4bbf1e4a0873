//! Weak planting (Plant 'n' Seek, planting.md §3.2): hide a target inside a random host by
//! matching each target neuron to the host neuron whose random weights already look most
//! like it, then overwriting only that neuron's planted edges and bias.

use crate::{PlantError, TargetNet};
use serde::{Deserialize, Serialize};
use ticketbench_core::{Mask, Network};

/// A target hidden in a host network: the ground truth pruners are scored against.
#[derive(Debug, Clone)]
pub struct PlantedTicket {
    /// The host with the planted values written in (all other values untouched).
    pub host: Network,
    /// The planted edges: exactly the target's nonzero weights, in host index space.
    pub mask: Mask,
    /// Per layer, the host biases that carry a nonzero target bias.
    pub bias_mask: Vec<Vec<bool>>,
    /// `neurons[l][i]`: host index of target neuron `i` of layer `l` (`l = 0` is the input
    /// layer, identity; the last layer is identity after the output permutation).
    pub neurons: Vec<Vec<usize>>,
    /// λ_out: the masked host computes `λ_out ⊙ target(x)` (one positive factor per output).
    pub output_scale: Vec<f64>,
    pub target: TargetNet,
    pub kind: PlantKind,
}

/// How a ticket was planted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlantKind {
    /// Plant 'n' Seek (§3.2): exact, host values overwritten; a weak and strong ticket up to
    /// the output scale λ_out.
    Pns,
    /// Subset-sum construction (§7): host values never written, ε-approximate strong ticket
    /// with a certificate.
    SubsetSum,
}

impl PlantKind {
    pub fn name(self) -> &'static str {
        match self {
            PlantKind::Pns => "pns",
            PlantKind::SubsetSum => "subset-sum",
        }
    }
}

impl PlantedTicket {
    /// Density of the planted mask (weights only).
    pub fn density(&self) -> f64 {
        self.mask.density()
    }

    /// Planted hidden neurons per hidden layer, in host index space.
    pub fn hidden_neurons(&self) -> &[Vec<usize>] {
        let n = self.neurons.len();
        &self.neurons[1..n - 1]
    }
}

/// Plants `target` into `host` (planting.md §3.2, the release's ℓ₁ matching rule).
///
/// For each target neuron `i` of layer `l` in index order, with `J` its nonzero in-edges and
/// `θ = (b_i, w_ji/λ_{l−1}(j) for j ∈ J)`: every unused host neuron `k` gives the same
/// coordinates `m_k` from the host; `c_k = ⟨θ, m_k⟩/‖θ‖²`, admissible iff `c_k > 0` and the
/// signs of `m_k` match `θ` on its nonzero coordinates; the admissible `k` with the smallest
/// `‖m_k − c_k θ‖₁` wins (ties: smallest index). Without an admissible neuron the fallback
/// is `k = i` (or the smallest unused) with `c = |m_{k,1}/θ_1|`. Then `c·θ` is written and
/// `λ_l(i) = c`. Finally the host outputs are permuted so planted output `i` is output `i`.
///
/// Deviation from the release (planting.md §3.2 step 2, [proposal]): the search runs over
/// unused neurons only, instead of falling back to the first unused index when the best
/// neuron is taken.
pub fn plant_pns(target: &TargetNet, mut host: Network) -> Result<PlantedTicket, PlantError> {
    check_host(target, &host)?;
    let mut bias_mask: Vec<Vec<bool>> = host
        .layers
        .iter()
        .map(|l| vec![false; l.shape.fan_out()])
        .collect();
    let mut neurons = vec![(0..target.layers[0].fan_in).collect::<Vec<usize>>()];
    let mut scales = vec![1.0f64; target.layers[0].fan_in];
    let mut layer_masks: Vec<Vec<bool>> = Mask::empty(&host.shapes()).layers().to_vec();

    for (l, t) in target.layers.iter().enumerate() {
        let layer = &mut host.layers[l];
        let fan_in = layer.shape.fan_in();
        let host_out = layer.shape.fan_out();
        let prev = &neurons[l];
        let mut used = vec![false; host_out];
        let mut placed = Vec::with_capacity(t.fan_out);
        let mut new_scales = Vec::with_capacity(t.fan_out);
        for i in 0..t.fan_out {
            let sources = t.sources(i);
            let mut theta = vec![t.bias[i]];
            theta.extend(sources.iter().map(|&j| t.edge(j, i) / scales[j]));
            let coords = |k: usize| -> Vec<f64> {
                let bias = layer.bias.as_ref().map_or(0.0, |b| b[k] as f64);
                let mut m = vec![bias];
                m.extend(
                    sources
                        .iter()
                        .map(|&j| layer.weight[k * fan_in + prev[j]] as f64),
                );
                m
            };
            let norm2: f64 = theta.iter().map(|v| v * v).sum();
            let mut best: Option<(f64, usize, f64)> = None;
            for k in (0..host_out).filter(|&k| !used[k]) {
                let m = coords(k);
                let c = theta.iter().zip(&m).map(|(t, m)| t * m).sum::<f64>() / norm2;
                let signs_agree = theta
                    .iter()
                    .zip(&m)
                    .all(|(t, m)| *t == 0.0 || t.signum() == m.signum());
                if !(c > 0.0 && signs_agree) {
                    continue;
                }
                let residual: f64 = theta.iter().zip(&m).map(|(t, m)| (m - c * t).abs()).sum();
                if best.is_none_or(|(r, _, _)| residual < r) {
                    best = Some((residual, k, c));
                }
            }
            let (k, c) = match best {
                Some((_, k, c)) => (k, c),
                None => {
                    let k = if used.get(i) == Some(&false) {
                        i
                    } else {
                        (0..host_out)
                            .find(|&k| !used[k])
                            .expect("host wider than target")
                    };
                    let c = if sources.is_empty() {
                        1.0
                    } else {
                        (coords(k)[1] / theta[1]).abs()
                    };
                    (k, if c > 0.0 && c.is_finite() { c } else { 1.0 })
                }
            };
            used[k] = true;
            if let Some(b) = layer.bias.as_mut() {
                b[k] = (c * theta[0]) as f32;
            }
            bias_mask[l][k] = theta[0] != 0.0;
            for (&j, &tj) in sources.iter().zip(&theta[1..]) {
                layer.weight[k * fan_in + prev[j]] = (c * tj) as f32;
                layer_masks[l][k * fan_in + prev[j]] = true;
            }
            placed.push(k);
            new_scales.push(c);
        }
        neurons.push(placed);
        scales = new_scales;
    }

    // Output units are exchangeable: move planted output i to host output i.
    let last = host.layers.len() - 1;
    let order = neurons[last + 1].clone();
    let layer = &mut host.layers[last];
    let fan_in = layer.shape.fan_in();
    layer.weight = order
        .iter()
        .flat_map(|&k| layer.weight[k * fan_in..(k + 1) * fan_in].iter().copied())
        .collect();
    if let Some(b) = layer.bias.as_mut() {
        *b = order.iter().map(|&k| b[k]).collect();
    }
    layer_masks[last] = order
        .iter()
        .flat_map(|&k| {
            layer_masks[last][k * fan_in..(k + 1) * fan_in]
                .iter()
                .copied()
        })
        .collect();
    bias_mask[last] = order.iter().map(|&k| bias_mask[last][k]).collect();
    neurons[last + 1] = (0..order.len()).collect();
    Ok(PlantedTicket {
        host,
        mask: Mask::from_layers(layer_masks),
        bias_mask,
        neurons,
        output_scale: scales,
        target: target.clone(),
        kind: PlantKind::Pns,
    })
}

/// The host must have the target's depth, inputs and outputs, hidden layers at least as
/// wide, and biases wherever the target has nonzero ones.
fn check_host(target: &TargetNet, host: &Network) -> Result<(), PlantError> {
    let tw = target.widths();
    let hw = host.widths();
    let fits = tw.len() == hw.len()
        && tw[0] == hw[0]
        && tw.last() == hw.last()
        && tw.iter().zip(&hw).all(|(t, h)| t <= h);
    if !fits {
        return Err(PlantError::HostTooSmall {
            target: tw,
            host: hw,
        });
    }
    for (l, (t, h)) in target.layers.iter().zip(&host.layers).enumerate() {
        if h.bias.is_none() && t.bias.iter().any(|&b| b != 0.0) {
            return Err(PlantError::HostWithoutBias { layer: l });
        }
    }
    Ok(())
}

/// A masked network as per-layer edge lists, evaluated in f64: a forward pass costs
/// O(kept edges + neurons), so tickets inside wide hosts are cheap to probe.
#[derive(Debug, Clone)]
pub struct SparseTicket {
    layers: Vec<SparseLayer>,
}

#[derive(Debug, Clone)]
struct SparseLayer {
    bias: Vec<f64>,
    /// (output, input, weight) of every kept edge.
    edges: Vec<(usize, usize, f64)>,
}

impl SparseTicket {
    /// The subnetwork of `net` kept by `mask`; biases are kept where `bias_mask` is `None`
    /// (ticketbench never prunes biases) or true.
    pub fn new(net: &Network, mask: &Mask, bias_mask: Option<&[Vec<bool>]>) -> Self {
        let layers = net
            .layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let fan_in = layer.shape.fan_in();
                let bias = (0..layer.shape.fan_out())
                    .map(|o| match &layer.bias {
                        Some(b) if bias_mask.is_none_or(|bm| bm[l][o]) => b[o] as f64,
                        _ => 0.0,
                    })
                    .collect();
                let edges = mask
                    .layer(l)
                    .iter()
                    .enumerate()
                    .filter(|&(_, &keep)| keep)
                    .map(|(idx, _)| (idx / fan_in, idx % fan_in, layer.weight[idx] as f64))
                    .collect();
                SparseLayer { bias, edges }
            })
            .collect();
        SparseTicket { layers }
    }

    /// Forward pass (ReLU between layers, linear output).
    pub fn forward(&self, input: &[f64]) -> Vec<f64> {
        let last = self.layers.len() - 1;
        let mut act = input.to_vec();
        for (l, layer) in self.layers.iter().enumerate() {
            let mut out = layer.bias.clone();
            for &(o, i, w) in &layer.edges {
                out[o] += w * act[i];
            }
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
    use crate::target::{circle_target, helix_target, relu_target};
    use ticketbench_core::{InitScheme, Streams, sample_uniform};

    fn host(widths: &[usize], seed: u64) -> Network {
        Network::mlp(widths, true, InitScheme::HeScaled, &Streams::new(seed)).unwrap()
    }

    fn widths(target: &TargetNet, width: usize) -> Vec<usize> {
        let mut w = target.widths();
        let n = w.len();
        w[1..n - 1].iter_mut().for_each(|v| *v = width);
        w
    }

    #[test]
    fn planted_ticket_computes_the_scaled_target_exactly() {
        // planting.md §3.3: masked host = λ_out ⊙ target on every input (f32 weights: 1e-5).
        for depth in 3..=10 {
            for target in [
                relu_target(depth).unwrap(),
                circle_target(depth).unwrap(),
                helix_target(depth).unwrap(),
            ] {
                let planted =
                    plant_pns(&target, host(&widths(&target, 100), depth as u64)).unwrap();
                assert_eq!(planted.mask.kept(), target.nonzero_weights());
                let ticket = SparseTicket::new(&planted.host, &planted.mask, None);
                let mut rng = Streams::new(99).stream("probe");
                for _ in 0..200 {
                    let x: Vec<f64> = (0..target.layers[0].fan_in)
                        .map(|_| sample_uniform(&mut rng, -1.0, 1.0))
                        .collect();
                    let want = target.forward(&x);
                    let got = ticket.forward(&x);
                    for (o, (g, w)) in got.iter().zip(&want).enumerate() {
                        let scaled = planted.output_scale[o] * w;
                        assert!(
                            (g - scaled).abs() <= 1e-5 * (1.0 + scaled.abs()),
                            "D={depth} out {o}: {g} vs {scaled}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn planting_changes_only_planted_values() {
        let target = circle_target(5).unwrap();
        let before = host(&widths(&target, 100), 7);
        let planted = plant_pns(&target, before.clone()).unwrap();
        // Hidden layers (the output layer is permuted afterwards).
        for l in 0..target.layers.len() - 1 {
            let (b, a) = (&before.layers[l], &planted.host.layers[l]);
            let fan_in = b.shape.fan_in();
            for (idx, (wb, wa)) in b.weight.iter().zip(&a.weight).enumerate() {
                if !planted.mask.layer(l)[idx] {
                    assert_eq!(wb, wa, "layer {l} entry {idx} changed");
                }
            }
            let planted_rows = &planted.neurons[l + 1];
            for k in 0..b.shape.fan_out() {
                if !planted_rows.contains(&k) {
                    assert_eq!(b.bias.as_ref().unwrap()[k], a.bias.as_ref().unwrap()[k]);
                    let row = k * fan_in..(k + 1) * fan_in;
                    assert_eq!(b.weight[row.clone()], a.weight[row]);
                }
            }
        }
    }

    #[test]
    fn relu_planting_selects_a_positive_path_with_zero_biases() {
        // §3.3: for ReLU, c equals the host's own weight: planting keeps existing positive
        // weights along the path and writes zero biases.
        let target = relu_target(5).unwrap();
        let before = host(&[1, 100, 100, 100, 1], 3);
        let planted = plant_pns(&target, before.clone()).unwrap();
        for l in 0..4 {
            let i = planted.neurons[l][0];
            let k = planted.neurons[l + 1][0];
            let fan_in = before.layers[l].shape.fan_in();
            let w = planted.host.layers[l].weight[k * fan_in + i];
            assert!(w > 0.0);
            if l < 3 {
                assert_eq!(w, before.layers[l].weight[k * fan_in + i]);
            }
            assert_eq!(planted.host.layers[l].bias.as_ref().unwrap()[k], 0.0);
        }
        assert!(planted.bias_mask.iter().flatten().all(|&b| !b));
    }

    #[test]
    fn planting_is_deterministic_and_checks_the_host() {
        let target = helix_target(5).unwrap();
        let a = plant_pns(&target, host(&[1, 100, 100, 100, 3], 5)).unwrap();
        let b = plant_pns(&target, host(&[1, 100, 100, 100, 3], 5)).unwrap();
        assert_eq!(a.host, b.host);
        assert_eq!(a.mask, b.mask);
        assert!(plant_pns(&target, host(&[1, 100, 100, 3], 5)).is_err());
        assert!(plant_pns(&target, host(&[1, 100, 20, 100, 3], 5)).is_err());
        let no_bias = Network::mlp(
            &[1, 100, 100, 100, 3],
            false,
            InitScheme::HeScaled,
            &Streams::new(1),
        )
        .unwrap();
        assert!(matches!(
            plant_pns(&target, no_bias),
            Err(PlantError::HostWithoutBias { layer: 0 })
        ));
    }
}
