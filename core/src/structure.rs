//! Channel-level structured masks for convolution layers (the structured-ticket option).
//!
//! Structured lottery tickets (Chen et al., "Coarsening the Granularity: Towards Structurally
//! Sparse Lottery Tickets", ICML 2022; filter pruning, Li et al. 2017) remove whole output
//! channels instead of single weights. ticketbench turns any method's element mask into a
//! channel mask **layer by layer, keeping every layer's count `k_l`**, so a structured ticket
//! has exactly the density (and the per-layer densities) of the method's own ticket and the
//! runner's exact-count contract holds:
//!
//! * a convolution layer with `C` output channels of `s = c_in·k_h·k_w` weights each keeps
//!   its `⌊k_l / s⌋` best channels whole and the best `k_l mod s` weights of the next channel
//!   (so at most one channel per layer is partial);
//! * channels rank by (kept weights of the element mask, descending; summed score of those
//!   kept weights, best first under [`Keep`]; channel index, ascending), so the method decides
//!   which channels survive and methods without scores (random tickets) still rank (their
//!   ties at equal counts go to the lower channel index);
//! * weights of the partial channel rank by (kept in the element mask; score; index);
//! * dense layers keep the element mask unchanged (the papers structure convolutions only).
//!
//! Biases are never masked, so a removed channel outputs the constant `ReLU(b)`.

use crate::select::Keep;
use crate::{CoreError, LayerShape, Mask, Scores};
use std::cmp::Ordering;

/// The channel-structured version of `mask` (see the module docs); `scores`, where the
/// method has them, break ties between channels and inside the partial channel.
pub fn channel_structured(
    mask: &Mask,
    scores: Option<&Scores>,
    keep: Keep,
    shapes: &[LayerShape],
) -> Result<Mask, CoreError> {
    mask.check_shapes(shapes)?;
    if let Some(s) = scores
        && (s.layers.len() != shapes.len()
            || s.layers
                .iter()
                .zip(shapes)
                .any(|(l, sh)| l.len() != sh.len()))
    {
        return Err(CoreError::ShapeMismatch(
            "scores do not match the mask's layers".into(),
        ));
    }
    // A total order: a channel's sum is NaN when its scores hold both +∞ and −∞.
    let better = |a: f64, b: f64| -> Ordering {
        let o = a.total_cmp(&b);
        match keep {
            Keep::Highest => o.reverse(),
            Keep::Lowest => o,
        }
    };
    let layers = shapes
        .iter()
        .enumerate()
        .map(|(l, shape)| {
            let kept = mask.layer(l);
            if shape.dims.len() != 4 {
                return kept.to_vec();
            }
            let score = |i: usize| scores.map_or(0.0, |s| s.layers[l][i]);
            let (channels, size) = (shape.fan_out(), shape.fan_in());
            let k = kept.iter().filter(|&&b| b).count();
            let channel = |c: usize| c * size..(c + 1) * size;
            let stats: Vec<(usize, f64)> = (0..channels)
                .map(|c| {
                    let r = channel(c);
                    let kept_here: Vec<usize> = r.filter(|&i| kept[i]).collect();
                    (kept_here.len(), kept_here.into_iter().map(score).sum())
                })
                .collect();
            let mut order: Vec<usize> = (0..channels).collect();
            order.sort_by(|&a, &b| {
                stats[b]
                    .0
                    .cmp(&stats[a].0)
                    .then(better(stats[a].1, stats[b].1))
                    .then(a.cmp(&b))
            });
            let mut out = vec![false; shape.len()];
            let (whole, rest) = (k / size, k % size);
            for &c in &order[..whole] {
                out[channel(c)].fill(true);
            }
            if rest > 0 {
                let mut taps: Vec<usize> = channel(order[whole]).collect();
                taps.sort_by(|&a, &b| {
                    kept[b]
                        .cmp(&kept[a])
                        .then(better(score(a), score(b)))
                        .then(a.cmp(&b))
                });
                for &i in &taps[..rest] {
                    out[i] = true;
                }
            }
            out
        })
        .collect();
    Ok(Mask::from_layers(layers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(c_out: usize, c_in: usize, k: usize) -> LayerShape {
        LayerShape {
            dims: vec![c_out, c_in, k, k],
        }
    }

    #[test]
    fn worked_example_whole_channels_then_one_partial() {
        // 3 channels of 4 weights; the element mask keeps 2, 3 and 1 weights: k = 6.
        let shapes = [conv(3, 1, 2)];
        let mask = Mask::from_layers(vec![vec![
            true, false, true, false, // channel 0: 2 kept
            true, true, true, false, // channel 1: 3 kept
            false, false, false, true, // channel 2: 1 kept
        ]]);
        let got = channel_structured(&mask, None, Keep::Highest, &shapes).unwrap();
        // Channel 1 whole (4), then channel 0's two kept weights.
        assert_eq!(
            got.layer(0),
            &[
                true, false, true, false, true, true, true, true, false, false, false, false
            ]
        );
    }

    #[test]
    fn scores_of_kept_weights_break_ties_in_keep_direction() {
        // Two channels of 2 weights, one kept in each (k = 2: one whole channel). The pruned
        // weights' scores (9) do not count.
        let shapes = [conv(2, 2, 1), LayerShape::dense(2, 2)];
        let mask = Mask::from_layers(vec![
            vec![true, false, true, false],
            vec![true, false, false, true],
        ]);
        let scores = Scores {
            layers: vec![vec![1.0, 9.0, 5.0, 0.0], vec![0.0; 4]],
        };
        let high = channel_structured(&mask, Some(&scores), Keep::Highest, &shapes).unwrap();
        assert_eq!(high.layer(0), &[false, false, true, true]);
        let low = channel_structured(&mask, Some(&scores), Keep::Lowest, &shapes).unwrap();
        assert_eq!(low.layer(0), &[true, true, false, false]);
        // Without scores the lower channel index wins; the dense layer is unchanged.
        let none = channel_structured(&mask, None, Keep::Highest, &shapes).unwrap();
        assert_eq!(none.layer(0), &[true, true, false, false]);
        assert_eq!(none.layer(1), mask.layer(1));
        // Count beats score: channel 0 keeps 2, channel 1 keeps 1 with a huge score.
        let counts = Mask::from_layers(vec![vec![true, true, true, false], vec![false; 4]]);
        let big = Scores {
            layers: vec![vec![0.0, 0.0, 1e9, 0.0], vec![0.0; 4]],
        };
        let got = channel_structured(&counts, Some(&big), Keep::Highest, &shapes).unwrap();
        assert_eq!(got.layer(0), &[true, true, true, false]);
    }

    #[test]
    fn infinite_scores_of_both_signs_do_not_panic() {
        let shapes = [conv(3, 2, 1)];
        // Channels 0 and 1 tie on counts; channel 0's summed score is NaN (∞ − ∞).
        let mask = Mask::from_layers(vec![vec![true, true, true, true, false, false]]);
        let scores = Scores {
            layers: vec![vec![f64::INFINITY, f64::NEG_INFINITY, 1.0, 2.0, 0.0, 0.0]],
        };
        let got = channel_structured(&mask, Some(&scores), Keep::Highest, &shapes).unwrap();
        assert_eq!(got.layer_kept(), mask.layer_kept());
    }

    #[test]
    fn counts_are_kept_and_at_most_one_channel_is_partial() {
        let shapes = [conv(8, 3, 3), conv(5, 8, 2), LayerShape::dense(20, 4)];
        let streams = crate::Streams::new(9);
        let mut rng = streams.stream("t");
        let mask = Mask::from_layers(
            shapes
                .iter()
                .map(|s| {
                    (0..s.len())
                        .map(|_| crate::sample_uniform(&mut rng, 0.0, 1.0) < 0.37)
                        .collect()
                })
                .collect(),
        );
        let got = channel_structured(&mask, None, Keep::Highest, &shapes).unwrap();
        assert_eq!(got.layer_kept(), mask.layer_kept());
        assert_eq!(got.layer(2), mask.layer(2));
        for (l, shape) in shapes[..2].iter().enumerate() {
            let partial = got
                .layer(l)
                .chunks(shape.fan_in())
                .filter(|c| c.iter().any(|&b| b) && !c.iter().all(|&b| b))
                .count();
            assert!(partial <= 1, "layer {l}: {partial} partial channels");
        }
    }

    #[test]
    fn mismatched_scores_are_an_error() {
        let shapes = [conv(2, 1, 1)];
        let mask = Mask::dense(&shapes);
        let scores = Scores {
            layers: vec![vec![1.0]],
        };
        assert!(channel_structured(&mask, Some(&scores), Keep::Highest, &shapes).is_err());
    }
}
