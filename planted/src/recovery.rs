//! Ticket-recovery metrics (planting.md §4.7): how much of a planted ticket a found mask
//! recovers, in host index space (planted positions are known, no alignment needed).

use crate::PlantedTicket;
use serde::{Deserialize, Serialize};
use ticketbench_core::select::Keep;
use ticketbench_core::{Mask, Scores};

/// Recovery of the planted ticket `P` by a found mask `F` (weights; biases are never pruned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// `|F ∩ P| / |F|`.
    pub precision: f64,
    /// `|F ∩ P| / |P|`.
    pub recall: f64,
    pub f1: f64,
    /// `|F ∩ P| / |F ∪ P|`.
    pub jaccard: f64,
    /// `recall / density(F)`: 1 for a random mask in expectation.
    pub recall_lift: f64,
    /// `P ⊆ F`: the found mask contains the whole planted ticket.
    pub contains_planted: bool,
    /// `|F_l ∩ P_l| / |P_l|` per layer.
    pub layer_recall: Vec<f64>,
    /// Some layer keeps none of its planted edges (the failure mechanism Plant 'n' Seek names).
    pub planted_layer_collapse: bool,
    /// Some layer keeps no edge at all.
    pub layer_collapse: bool,
    /// Hidden-neuron level: a host neuron is *alive* in a mask when it keeps at least one
    /// in-edge and one out-edge. Precision, recall and Jaccard of the alive set of `F`
    /// against the planted hidden neurons.
    pub neuron_precision: f64,
    pub neuron_recall: f64,
    pub neuron_jaccard: f64,
    /// Fraction of planted neurons (hidden and output) whose planted in-edges are all kept.
    pub neurons_recovered: f64,
    /// Planted input→output paths all of whose edges are kept, over all planted paths.
    pub path_recall: f64,
    /// Allocation distance `½ Σ_l | |F_l|/|F| − |P_l|/|P| |`.
    pub layer_density_tv: f64,
    /// Profile error `mean_l |log₁₀(d_l^F + 1/n_l) − log₁₀(d_l^P + 1/n_l)|`.
    pub layer_density_log: f64,
    /// `P(score(planted) > score(unplanted))`, ties ½, for methods with scores.
    pub score_auroc: Option<f64>,
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl Recovery {
    /// Recovery metrics of `found` against `planted`; `scores` (ranked with `keep`) adds the
    /// threshold-free AUROC.
    pub fn measure(found: &Mask, planted: &PlantedTicket, scores: Option<(&Scores, Keep)>) -> Self {
        let p = &planted.mask;
        let layers = p.layers().len();
        let fan_ins = fan_ins(planted);
        let mut inter = vec![0usize; layers];
        for (l, inter_l) in inter.iter_mut().enumerate() {
            *inter_l = found
                .layer(l)
                .iter()
                .zip(p.layer(l))
                .filter(|&(&f, &q)| f && q)
                .count();
        }
        let both: usize = inter.iter().sum();
        let (nf, np) = (found.kept(), p.kept());
        let precision = ratio(both, nf);
        let recall = ratio(both, np);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        let p_layer = p.layer_kept();
        let f_layer = found.layer_kept();
        let layer_recall: Vec<f64> = inter
            .iter()
            .zip(&p_layer)
            .map(|(&i, &n)| ratio(i, n))
            .collect();

        let (neuron_precision, neuron_recall, neuron_jaccard) =
            neuron_overlap(found, planted, &fan_ins);
        let layer_density_tv = 0.5
            * f_layer
                .iter()
                .zip(&p_layer)
                .map(|(&f, &q)| (ratio(f, nf) - ratio(q, np)).abs())
                .sum::<f64>();
        let sizes: Vec<usize> = found.layers().iter().map(Vec::len).collect();
        let layer_density_log = f_layer
            .iter()
            .zip(&p_layer)
            .zip(&sizes)
            .map(|((&f, &q), &n)| {
                let floor = 1.0 / n as f64;
                ((ratio(f, n) + floor).log10() - (ratio(q, n) + floor).log10()).abs()
            })
            .sum::<f64>()
            / layers as f64;

        Recovery {
            precision,
            recall,
            f1,
            jaccard: ratio(both, nf + np - both),
            recall_lift: if nf == 0 {
                0.0
            } else {
                recall / found.density()
            },
            contains_planted: both == np,
            layer_recall,
            planted_layer_collapse: inter.iter().zip(&p_layer).any(|(&i, &n)| n > 0 && i == 0),
            layer_collapse: f_layer.contains(&0),
            neuron_precision,
            neuron_recall,
            neuron_jaccard,
            neurons_recovered: neurons_recovered(found, planted, &fan_ins),
            path_recall: path_recall(found, planted, &fan_ins),
            layer_density_tv,
            layer_density_log,
            score_auroc: scores.map(|(s, keep)| score_auroc(s, p, keep)),
        }
    }
}

/// Host neurons of hidden layer `h` (outputs of weight layer `h`) alive in `mask`.
fn alive(mask: &Mask, fan_ins: &[usize], h: usize) -> Vec<bool> {
    let (into, out) = (mask.layer(h), mask.layer(h + 1));
    let (fan_in, width) = (fan_ins[h], fan_ins[h + 1]);
    let next = out.len() / width;
    (0..width)
        .map(|k| {
            into[k * fan_in..(k + 1) * fan_in].iter().any(|&b| b)
                && (0..next).any(|o| out[o * width + k])
        })
        .collect()
}

/// Fan-in of every weight layer of the planted host.
fn fan_ins(planted: &PlantedTicket) -> Vec<usize> {
    planted
        .host
        .layers
        .iter()
        .map(|l| l.shape.fan_in())
        .collect()
}

fn neuron_overlap(found: &Mask, planted: &PlantedTicket, fan_ins: &[usize]) -> (f64, f64, f64) {
    let (mut inter, mut nf, mut np) = (0usize, 0usize, 0usize);
    for (h, planted_neurons) in planted.hidden_neurons().iter().enumerate() {
        let live = alive(found, fan_ins, h);
        nf += live.iter().filter(|&&a| a).count();
        np += planted_neurons.len();
        inter += planted_neurons.iter().filter(|&&k| live[k]).count();
    }
    (
        ratio(inter, nf),
        ratio(inter, np),
        ratio(inter, nf + np - inter),
    )
}

fn neurons_recovered(found: &Mask, planted: &PlantedTicket, fan_ins: &[usize]) -> f64 {
    let p = &planted.mask;
    let (mut ok, mut all) = (0usize, 0usize);
    for (l, placed) in planted.neurons[1..].iter().enumerate() {
        let fan_in = fan_ins[l];
        for &k in placed {
            all += 1;
            let row = k * fan_in..(k + 1) * fan_in;
            let whole = p.layer(l)[row.clone()]
                .iter()
                .zip(&found.layer(l)[row])
                .all(|(&q, &f)| !q || f);
            ok += usize::from(whole);
        }
    }
    ratio(ok, all)
}

/// Input→output paths through planted edges, counted by dynamic programming in f64
/// (exact for these sizes), restricted to edges that `found` keeps as well.
fn path_recall(found: &Mask, planted: &PlantedTicket, fan_ins: &[usize]) -> f64 {
    let count = |restrict: Option<&Mask>| -> f64 {
        let p = &planted.mask;
        let mut paths = vec![1.0f64; fan_ins[0]];
        for (l, &fan_in) in fan_ins.iter().enumerate() {
            let keep = p.layer(l);
            let width = keep.len() / fan_in;
            paths = (0..width)
                .map(|k| {
                    (0..fan_in)
                        .filter(|&i| {
                            let idx = k * fan_in + i;
                            keep[idx] && restrict.is_none_or(|m| m.layer(l)[idx])
                        })
                        .map(|i| paths[i])
                        .sum()
                })
                .collect();
        }
        paths.iter().sum()
    };
    let all = count(None);
    if all == 0.0 {
        0.0
    } else {
        count(Some(found)) / all
    }
}

/// Mann–Whitney AUROC of planted against unplanted entries, "better" meaning kept first.
fn score_auroc(scores: &Scores, planted: &Mask, keep: Keep) -> f64 {
    let mut entries: Vec<(f64, bool)> = scores
        .layers
        .iter()
        .zip(planted.layers())
        .flat_map(|(s, p)| s.iter().copied().zip(p.iter().copied()))
        .map(|(s, p)| (if keep == Keep::Highest { s } else { -s }, p))
        .collect();
    entries.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = entries.iter().filter(|e| e.1).count();
    let negatives = entries.len() - positives;
    if positives == 0 || negatives == 0 {
        return 0.5;
    }
    // Sum of midranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < entries.len() {
        let mut j = i;
        while j < entries.len() && entries[j].0.total_cmp(&entries[i].0).is_eq() {
            j += 1;
        }
        let midrank = (i + j + 1) as f64 / 2.0;
        rank_sum += midrank * entries[i..j].iter().filter(|e| e.1).count() as f64;
        i = j;
    }
    let p = positives as f64;
    (rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plant::PlantKind;
    use crate::target::relu_target;
    use ticketbench_core::{LayerShape, Network};

    /// A hand-planted ticket on widths 2-3-1: planted edges x0→h0, x1→h0, h0→y.
    fn toy() -> PlantedTicket {
        let shapes = [LayerShape::dense(2, 3), LayerShape::dense(3, 1)];
        let mut layers = Mask::empty(&shapes).layers().to_vec();
        layers[0][0] = true; // x0 → h0
        layers[0][1] = true; // x1 → h0
        layers[1][0] = true; // h0 → y
        PlantedTicket {
            host: Network::mlp(
                &[2, 3, 1],
                true,
                ticketbench_core::InitScheme::HeScaled,
                &ticketbench_core::Streams::new(0),
            )
            .unwrap(),
            mask: Mask::from_layers(layers),
            bias_mask: vec![vec![false; 3], vec![false]],
            neurons: vec![vec![0, 1], vec![0], vec![0]],
            output_scale: vec![1.0],
            target: relu_target(3).unwrap(),
            kind: PlantKind::Pns,
        }
    }

    fn mask(l0: [bool; 6], l1: [bool; 3]) -> Mask {
        Mask::from_layers(vec![l0.to_vec(), l1.to_vec()])
    }

    #[test]
    fn the_planted_mask_recovers_itself() {
        let p = toy();
        let r = Recovery::measure(&p.mask, &p, None);
        assert_eq!(
            (r.precision, r.recall, r.jaccard, r.f1),
            (1.0, 1.0, 1.0, 1.0)
        );
        assert!(r.contains_planted && !r.planted_layer_collapse);
        assert_eq!(
            (r.neuron_jaccard, r.neurons_recovered, r.path_recall),
            (1.0, 1.0, 1.0)
        );
        assert_eq!((r.layer_density_tv, r.layer_density_log), (0.0, 0.0));
    }

    #[test]
    fn known_precision_recall_and_jaccard() {
        let p = toy();
        // Keeps x0→h0 (planted), x0→h1, h0→y (planted), h1→y: |F|=4, |P|=3, |F∩P|=2.
        let f = mask(
            [true, false, true, false, false, false],
            [true, true, false],
        );
        let r = Recovery::measure(&f, &p, None);
        assert_eq!(r.precision, 0.5);
        assert!((r.recall - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(r.jaccard, 2.0 / 5.0);
        assert!((r.f1 - 4.0 / 7.0).abs() < 1e-15);
        assert!(!r.contains_planted);
        assert_eq!(r.layer_recall, vec![0.5, 1.0]);
        // Alive hidden neurons: h0 and h1; planted: h0.
        assert_eq!(
            (r.neuron_precision, r.neuron_recall, r.neuron_jaccard),
            (0.5, 1.0, 0.5)
        );
        // h0 misses x1→h0, y keeps h0→y: 1 of 2 planted neurons recovered.
        assert_eq!(r.neurons_recovered, 0.5);
        // Planted paths x0→h0→y, x1→h0→y; F keeps the first.
        assert_eq!(r.path_recall, 0.5);
        // Allocation: F puts 2/4 in each layer, P 2/3 and 1/3.
        assert!((r.layer_density_tv - (1.0 / 6.0)).abs() < 1e-15);
        // d_recall = (2/3)/(4/9).
        assert!((r.recall_lift - 1.5).abs() < 1e-12);
    }

    #[test]
    fn collapse_flags() {
        let p = toy();
        let f = mask(
            [false, false, true, true, false, false],
            [true, false, false],
        );
        let r = Recovery::measure(&f, &p, None);
        assert!(r.planted_layer_collapse && !r.layer_collapse);
        let g = mask(
            [true, true, false, false, false, false],
            [false, false, false],
        );
        assert!(Recovery::measure(&g, &p, None).layer_collapse);
    }

    #[test]
    fn auroc_of_perfect_inverted_and_tied_scores() {
        let p = toy();
        let planted_high = Scores {
            layers: vec![vec![9.0, 8.0, 1.0, 2.0, 3.0, 0.0], vec![7.0, 1.0, 0.5]],
        };
        let r = Recovery::measure(&p.mask, &p, Some((&planted_high, Keep::Highest)));
        assert_eq!(r.score_auroc, Some(1.0));
        let r = Recovery::measure(&p.mask, &p, Some((&planted_high, Keep::Lowest)));
        assert_eq!(r.score_auroc, Some(0.0));
        let tied = Scores {
            layers: vec![vec![1.0; 6], vec![1.0; 3]],
        };
        let r = Recovery::measure(&p.mask, &p, Some((&tied, Keep::Highest)));
        assert_eq!(r.score_auroc, Some(0.5));
    }
}
