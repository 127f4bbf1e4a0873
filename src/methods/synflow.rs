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
/// `S_l[o, i] = |W_l[o, i]| m_l[o, i] · g_l[o] · a_{l−1}[i]`. Global exact-k over all weights
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
    // Forward: a_0 = 1, a_l = |W_l ⊙ m_l| a_{l−1} + |b_l|.
    let mut acts: Vec<Vec<f64>> = vec![vec![1.0; net.layers[0].shape.fan_in()]];
    for (l, layer) in net.layers.iter().enumerate() {
        let (fan_out, fan_in) = (layer.shape.fan_out(), layer.shape.fan_in());
        let keep = mask.layer(l);
        let prev = &acts[l];
        let next: Vec<f64> = (0..fan_out)
            .map(|o| {
                let row = o * fan_in;
                let flow: f64 = (0..fan_in)
                    .filter(|&i| keep[row + i])
                    .map(|i| layer.weight[row + i].abs() as f64 * prev[i])
                    .sum();
                flow + layer.bias.as_ref().map_or(0.0, |b| b[o].abs() as f64)
            })
            .collect();
        acts.push(next);
    }
    let r: f64 = acts.last().expect("at least one layer").iter().sum();
    // Backward: g_L = 1, g_{l−1} = |W_l ⊙ m_l|ᵀ g_l.
    let mut layers = vec![Vec::new(); net.layers.len()];
    let mut g = vec![1.0; net.layers.last().expect("layers").shape.fan_out()];
    for (l, layer) in net.layers.iter().enumerate().rev() {
        let (fan_out, fan_in) = (layer.shape.fan_out(), layer.shape.fan_in());
        let keep = mask.layer(l);
        let a = &acts[l];
        let mut scores = vec![0.0; fan_out * fan_in];
        let mut g_prev = vec![0.0; fan_in];
        for o in 0..fan_out {
            let row = o * fan_in;
            for i in 0..fan_in {
                if keep[row + i] {
                    let w = layer.weight[row + i].abs() as f64;
                    scores[row + i] = w * g[o] * a[i];
                    g_prev[i] += w * g[o];
                }
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
    // Host-side computation over dense layers only (docs/decisions.md).
    fn supports_conv(&self) -> bool {
        false
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
}
