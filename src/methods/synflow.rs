use super::{
    DataNeeds, Family, MethodError, MethodInfo, PruneContext, PruneOutcome, Pruner, at_least_one,
    parse_params, to_value,
};
use serde::{Deserialize, Serialize};
use ticketbench_core::select::{Keep, top_k_global};
use ticketbench_core::{Density, Mask, Network, Scores, target_count};

/// Iterative Synaptic Flow pruning (methods.md §1.6).
///
/// Every parameter is replaced by its absolute value, the all-ones input is fed through the
/// masked network (ReLU is the identity on this all-positive pass) and
/// `R = 1ᵀ f(1; |θ| ⊙ m)`. Score `S_i = |θ_i| · ∂R/∂|θ_i| ≥ 0`. For layer `l` with input
/// activity `a_{l−1}` and output sensitivity `g_l = ∂R/∂a_l`:
/// `S_l[o, i] = |W_l[o, i]| m_l[o, i] · g_l[o] · a_{l−1}[i]`. A convolution layer
/// (`Z[o, p] = Σ_t W[o, t] X[p, t]`, `X = im2col(a_{l−1})`, zero in the padding) convolves the
/// all-positive activity with the kernels `|W_l ⊙ m_l|` and adds `|b_l[o]|` at every position
/// of channel `o`; the backward pass is the transposed convolution (`∂R/∂X[p, t] =
/// Σ_o |W[o, t]| m[o, t] g_l[o, p]`, scattered back through im2col) and a kernel entry scores
/// `S_l[o, t] = |W_l[o, t]| m_l[o, t] · Σ_p g_l[o, p] X[p, t]`. Global exact-k over all weights
/// (first and last layer included, biases not pruned); `rounds` rounds (default 100) with the
/// exponential schedule `d_k = D^(k/n)` (or linear `1 − (1 − D)k/n`), re-scoring the masked
/// net each round; pruned weights stay pruned. Computed on the host in f64 (the f32 pass
/// over/underflows for deep or wide nets), so masks are identical on every device.
/// Data-free. Tanaka, Kunin, Yamins & Ganguli 2020, arXiv 2006.05467.
pub struct Synflow {
    params: SynflowParams,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Schedule {
    Exponential,
    Linear,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SynflowParams {
    rounds: usize,
    schedule: Schedule,
}

impl Default for SynflowParams {
    fn default() -> Self {
        SynflowParams {
            rounds: 100,
            schedule: Schedule::Exponential,
        }
    }
}

pub(super) const INFO: MethodInfo = MethodInfo {
    name: "synflow",
    family: Family::Iterative,
    data: DataNeeds::None,
    summary: "iterative synaptic flow |θ|·∂R/∂|θ| on the all-ones input, 100 rounds, exponential schedule",
    citation: "Tanaka, Kunin, Yamins & Ganguli 2020, arXiv 2006.05467",
    build: |p| {
        let params: SynflowParams = parse_params(INFO.name, p)?;
        at_least_one(INFO.name, "rounds", params.rounds)?;
        Ok(Box::new(Synflow { params }))
    },
};

/// SynFlow scores of the masked network and the total flow `R` (host, f64).
pub(crate) fn synflow_scores(net: &Network, mask: &Mask) -> (Scores, f64) {
    // Forward: a_0 = 1, a_l = |W_l ⊙ m_l| a_{l−1} + |b_l| (a convolution of a_{l−1} with the
    // kernels |W_l ⊙ m_l|, the channel's |b| added at every position).
    let mut acts: Vec<Vec<f64>> = vec![vec![1.0; net.layers[0].in_len()]];
    for (l, layer) in net.layers.iter().enumerate() {
        let (fan_out, fan_in) = (layer.shape.fan_out(), layer.shape.fan_in());
        let keep = mask.layer(l);
        let prev = &acts[l];
        let bias = |o: usize| layer.bias.as_ref().map_or(0.0, |b| b[o].abs() as f64);
        let next: Vec<f64> = match layer.im2col() {
            None => (0..fan_out)
                .map(|o| {
                    let row = o * fan_in;
                    let flow: f64 = (0..fan_in)
                        .filter(|&i| keep[row + i])
                        .map(|i| layer.weight[row + i].abs() as f64 * prev[i])
                        .sum();
                    flow + bias(o)
                })
                .collect(),
            Some(map) => {
                let positions = map.positions();
                let mut cols = vec![0.0; positions * fan_in];
                map.gather(prev, &mut cols);
                (0..fan_out * positions)
                    .map(|at| {
                        let (o, p) = (at / positions, at % positions);
                        let (row, x) = (o * fan_in, &cols[p * fan_in..(p + 1) * fan_in]);
                        let flow: f64 = (0..fan_in)
                            .filter(|&t| keep[row + t])
                            .map(|t| layer.weight[row + t].abs() as f64 * x[t])
                            .sum();
                        flow + bias(o)
                    })
                    .collect()
            }
        };
        acts.push(next);
    }
    let r: f64 = acts.last().expect("at least one layer").iter().sum();
    // Backward: g_L = 1, g_{l−1} = |W_l ⊙ m_l|ᵀ g_l (for a convolution the transposed
    // convolution: dX[p, t] = Σ_o |W[o, t]| g[o, p], scattered back through im2col).
    let mut layers = vec![Vec::new(); net.layers.len()];
    let mut g = vec![1.0; net.layers.last().expect("layers").out_len()];
    for (l, layer) in net.layers.iter().enumerate().rev() {
        let (fan_out, fan_in) = (layer.shape.fan_out(), layer.shape.fan_in());
        let keep = mask.layer(l);
        let a = &acts[l];
        let mut scores = vec![0.0; fan_out * fan_in];
        let mut g_prev = vec![0.0; a.len()];
        match layer.im2col() {
            None => {
                for (o, &g_o) in g.iter().enumerate() {
                    let row = o * fan_in..(o + 1) * fan_in;
                    for ((((&k, &w), s), &a_i), gp) in keep[row.clone()]
                        .iter()
                        .zip(&layer.weight[row.clone()])
                        .zip(&mut scores[row])
                        .zip(a)
                        .zip(&mut g_prev)
                    {
                        if k {
                            let w = w.abs() as f64;
                            *s = w * g_o * a_i;
                            *gp += w * g_o;
                        }
                    }
                }
            }
            Some(map) => {
                // S[o, t] = |W[o, t]| m[o, t] · Σ_p g[o, p] X[p, t].
                let positions = map.positions();
                let mut cols = vec![0.0; positions * fan_in];
                map.gather(a, &mut cols);
                let mut dcols = vec![0.0; positions * fan_in];
                for o in 0..fan_out {
                    let row = o * fan_in;
                    let g_o = &g[o * positions..(o + 1) * positions];
                    for t in (0..fan_in).filter(|&t| keep[row + t]) {
                        let w = layer.weight[row + t].abs() as f64;
                        let flow: f64 = g_o
                            .iter()
                            .enumerate()
                            .map(|(p, &gp)| gp * cols[p * fan_in + t])
                            .sum();
                        scores[row + t] = w * flow;
                        for (p, &gp) in g_o.iter().enumerate() {
                            dcols[p * fan_in + t] += w * gp;
                        }
                    }
                }
                map.scatter_add(&dcols, &mut g_prev);
            }
        }
        layers[l] = scores;
        g = g_prev;
    }
    (Scores { layers }, r)
}

impl Synflow {
    fn round_density(&self, target: Density, k: usize) -> f64 {
        let (d, n) = (target.get(), self.params.rounds as f64);
        match self.params.schedule {
            Schedule::Exponential => d.powf(k as f64 / n),
            Schedule::Linear => 1.0 - (1.0 - d) * k as f64 / n,
        }
    }
}

impl Pruner for Synflow {
    fn work(
        &self,
        _density: ticketbench_core::Density,
        _recipe: &crate::train::TrainRecipe,
        _train_examples: usize,
    ) -> super::Work {
        // One host f64 forward and backward of the all-ones input per round.
        super::Work {
            host_passes: self.params.rounds as f64,
            ..super::Work::default()
        }
    }
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }
    fn params(&self) -> serde_json::Value {
        to_value(&self.params)
    }
    fn returns_scores(&self) -> bool {
        true
    }
    fn prune(
        &self,
        ctx: &mut PruneContext<'_>,
        density: Density,
    ) -> Result<PruneOutcome, MethodError> {
        let total = ctx.net.num_prunable();
        let mut mask = Mask::dense(&ctx.net.shapes());
        let mut scores = Scores::zeros(&ctx.net.shapes());
        for k in 1..=self.params.rounds {
            // The last round lands exactly on the target: D^(n/n) = D.
            let d_k = if k == self.params.rounds {
                density.get()
            } else {
                self.round_density(density, k)
            };
            let keep = target_count(Density::new(d_k)?, total)?;
            scores = synflow_scores(ctx.net, &mask).0;
            mask = top_k_global(&scores, keep, Some(&mask), Keep::Highest)?;
            if k % 10 == 0 {
                (ctx.progress)(format!("synflow round {k}/{}", self.params.rounds));
            }
        }
        Ok(PruneOutcome {
            scores: Some(scores),
            ..PruneOutcome::new(mask)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketbench_core::{ConvNetSpec, ConvSpec, InitScheme, Streams, sample_uniform};

    #[test]
    fn worked_example_and_conservation() {
        // methods.md §1.6(e): S(W1) = [[1, 2], [12, 1]], S(W2) = [3, 13], R = 16.
        let net = Network::methods_md_worked_example();
        let (s, r) = synflow_scores(&net, &Mask::dense(&net.shapes()));
        assert_eq!(s.layers, vec![vec![1.0, 2.0, 12.0, 1.0], vec![3.0, 13.0]]);
        assert_eq!(r, 16.0);
        for layer in &s.layers {
            assert_eq!(layer.iter().sum::<f64>(), r); // layerwise conservation
        }
    }

    #[test]
    fn schedule_round_one_and_fifty() {
        let sf = Synflow {
            params: SynflowParams::default(),
        };
        let d = Density::new(0.01).unwrap();
        assert!((sf.round_density(d, 1) - 0.954993).abs() < 1e-6); // 95.4993%
        assert!((sf.round_density(d, 50) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn neuron_rescaling_invariance() {
        // methods.md §1.6(e)(4): scale hidden unit 0's in-weights by α, out-weights by 1/α.
        let net = Network::methods_md_worked_example();
        let mut scaled = net.clone();
        let alpha = 4.0f32;
        scaled.layers[0].weight[0] *= alpha;
        scaled.layers[0].weight[1] *= alpha;
        scaled.layers[1].weight[0] /= alpha;
        let m = Mask::dense(&net.shapes());
        assert_eq!(synflow_scores(&net, &m).0, synflow_scores(&scaled, &m).0);
    }

    #[test]
    fn dangling_weights_score_zero() {
        // Remove hidden unit 1's only outgoing edge: its incoming edges leave every path.
        let net = Network::methods_md_worked_example();
        let mask = Mask::from_layers(vec![vec![true; 4], vec![true, false]]);
        let (s, _) = synflow_scores(&net, &mask);
        assert_eq!(&s.layers[0][2..], &[0.0, 0.0]);
        assert!(s.layers[0][..2].iter().all(|&v| v > 0.0));
    }

    /// A 2×6×6 → conv 3ch (s1) → conv 4ch (s2) → 5 → 3 network.
    fn conv_net(bias: bool, seed: u64) -> Network {
        let spec = ConvNetSpec {
            input: [2, 6, 6],
            convs: vec![ConvSpec::k3(3, 1), ConvSpec::k3(4, 2)],
            hidden: vec![5],
            outputs: 3,
        };
        Network::conv_net(&spec, bias, InitScheme::KaimingUniform, &Streams::new(seed)).unwrap()
    }

    fn random_mask(net: &Network, keep: f64, seed: u64) -> Mask {
        let mut rng = Streams::new(seed).stream("test/synflow/mask");
        Mask::from_layers(
            net.layers
                .iter()
                .map(|l| {
                    (0..l.shape.len())
                        .map(|_| sample_uniform(&mut rng, 0.0, 1.0) < keep)
                        .collect()
                })
                .collect(),
        )
    }

    /// `R = 1ᵀ f(1; |θ| ⊙ m)` by the reference forward of the |θ|-masked network.
    fn flow_by_forward(abs: &Network) -> f64 {
        abs.forward_f64(&vec![1.0; abs.layers[0].in_len()])
            .iter()
            .sum()
    }

    #[test]
    fn conv_scores_equal_finite_differences_of_the_flow() {
        // S_i = |θ_i| ∂R/∂|θ_i|; R is linear in each |θ_i|, so central differences are exact
        // up to rounding.
        let net = conv_net(true, 3);
        let mask = random_mask(&net, 0.7, 4);
        let (s, r) = synflow_scores(&net, &mask);
        let mut abs = net.clone();
        for (l, layer) in abs.layers.iter_mut().enumerate() {
            for (w, &k) in layer.weight.iter_mut().zip(mask.layer(l)) {
                *w = if k { w.abs() } else { 0.0 };
            }
            if let Some(b) = &mut layer.bias {
                b.iter_mut().for_each(|b| *b = b.abs());
            }
        }
        let r_ref = flow_by_forward(&abs);
        assert!((r - r_ref).abs() <= 1e-12 * r_ref, "{r} vs {r_ref}");
        let mut checked = 0;
        for (l, layer) in net.layers.iter().enumerate() {
            for i in (0..layer.shape.len()).step_by(2) {
                if !mask.layer(l)[i] {
                    assert_eq!(s.layers[l][i], 0.0, "pruned weight {l}/{i}");
                    continue;
                }
                let w = abs.layers[l].weight[i];
                let (mut plus, mut minus) = (abs.clone(), abs.clone());
                // Positive both ways, so ReLU stays the identity on the all-positive pass.
                plus.layers[l].weight[i] = w * 1.25;
                minus.layers[l].weight[i] = w * 0.75;
                let step = plus.layers[l].weight[i] as f64 - minus.layers[l].weight[i] as f64;
                let fd = w as f64 * (flow_by_forward(&plus) - flow_by_forward(&minus)) / step;
                let got = s.layers[l][i];
                assert!(got > 0.0 || fd == 0.0, "layer {l} weight {i}: {got}");
                assert!(
                    (got - fd).abs() <= 1e-10 * r,
                    "layer {l} weight {i}: {got} vs {fd}"
                );
                checked += 1;
            }
        }
        assert!(checked > 80, "{checked}");
    }

    #[test]
    fn conv_layerwise_conservation_without_biases() {
        // Bias-free: every layer's scores sum to R (Euler's theorem, each layer linear).
        let net = conv_net(false, 5);
        let mask = random_mask(&net, 0.8, 6);
        let (s, r) = synflow_scores(&net, &mask);
        assert!(r > 0.0);
        for layer in &s.layers {
            let sum: f64 = layer.iter().sum();
            assert!((sum - r).abs() <= 1e-12 * r, "{sum} vs {r}");
        }
    }
}
