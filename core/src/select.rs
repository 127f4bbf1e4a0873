//! Exact-k selection, the one ranking rule every method shares (methods.md §0).
//!
//! Keep exactly `k` entries ordered by (score descending, flat index ascending); the flat
//! index concatenates layers in network order, row-major inside a layer. Reference codes
//! differ at ties (SynFlow prunes `score <= kth`, OpenLTH removes k+1); ticketbench never
//! does. Scores are f64 and ranked on the host.

use crate::{CoreError, LayerShape, Mask};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Per-layer f64 scores, one per prunable weight, same layout as [`Mask`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub layers: Vec<Vec<f64>>,
}

impl Scores {
    pub fn zeros(shapes: &[LayerShape]) -> Self {
        Scores {
            layers: shapes.iter().map(|s| vec![0.0; s.len()]).collect(),
        }
    }

    pub fn total(&self) -> usize {
        self.layers.iter().map(Vec::len).sum()
    }

    fn check_finite(&self) -> Result<(), CoreError> {
        for (layer, s) in self.layers.iter().enumerate() {
            if let Some(index) = s.iter().position(|v| v.is_nan()) {
                return Err(CoreError::NanScore {
                    layer,
                    index,
                    value: s[index],
                });
            }
        }
        Ok(())
    }
}

/// Which end of the ranking is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Keep the highest scores (SNIP, SynFlow, magnitude, …).
    Highest,
    /// Keep the lowest scores (GraSP removes the largest `S = −θ ⊙ Hg`).
    Lowest,
}

/// (score, flat index) ordering: best first; ties go to the lower flat index.
fn rank(keep: Keep) -> impl Fn(&(f64, usize), &(f64, usize)) -> Ordering {
    move |a, b| {
        let by_score =
            a.0.partial_cmp(&b.0)
                .expect("NaN scores are rejected before ranking");
        let by_score = match keep {
            Keep::Highest => by_score.reverse(),
            Keep::Lowest => by_score,
        };
        by_score.then(a.1.cmp(&b.1))
    }
}

/// Keeps the `k` best entries among `candidates` (all entries if `None`), globally across
/// layers. Entries outside `candidates` stay pruned (iterative schedules).
pub fn top_k_global(
    scores: &Scores,
    k: usize,
    candidates: Option<&Mask>,
    keep: Keep,
) -> Result<Mask, CoreError> {
    scores.check_finite()?;
    let mut pool: Vec<(f64, usize)> = Vec::with_capacity(scores.total());
    let mut offsets = Vec::with_capacity(scores.layers.len());
    let mut offset = 0;
    for (l, layer) in scores.layers.iter().enumerate() {
        offsets.push(offset);
        for (i, &s) in layer.iter().enumerate() {
            if candidates.is_none_or(|c| c.layer(l)[i]) {
                pool.push((s, offset + i));
            }
        }
        offset += layer.len();
    }
    if k > pool.len() {
        return Err(CoreError::NotEnoughCandidates {
            requested: k,
            available: pool.len(),
        });
    }
    if k < pool.len() && k > 0 {
        pool.select_nth_unstable_by(k - 1, rank(keep));
    }
    let mut layers: Vec<Vec<bool>> = scores.layers.iter().map(|l| vec![false; l.len()]).collect();
    for &(_, flat) in &pool[..k] {
        // Layer of a flat index: the last offset not above it.
        let l = offsets.partition_point(|&o| o <= flat) - 1;
        layers[l][flat - offsets[l]] = true;
    }
    Ok(Mask::from_layers(layers))
}

/// Keeps the `counts[l]` best entries of every layer `l` independently.
pub fn top_k_per_layer(scores: &Scores, counts: &[usize], keep: Keep) -> Result<Mask, CoreError> {
    scores.check_finite()?;
    if counts.len() != scores.layers.len() {
        return Err(CoreError::ShapeMismatch(format!(
            "{} layer counts for {} layers",
            counts.len(),
            scores.layers.len()
        )));
    }
    let layers = scores
        .layers
        .iter()
        .zip(counts)
        .map(|(layer, &k)| {
            let single = Scores {
                layers: vec![layer.clone()],
            };
            top_k_global(&single, k, None, keep).map(|m| m.layer(0).to_vec())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Mask::from_layers(layers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(m: &Mask) -> Vec<usize> {
        m.layers()
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, b)| **b)
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn magnitude_worked_example() {
        // methods.md §1.2(e): w = (0.1, −0.5, 0.3, −0.05), d = 0.5 keeps {1, 2}.
        let s = Scores {
            layers: vec![vec![0.1, 0.5, 0.3, 0.05]],
        };
        assert_eq!(
            flat(&top_k_global(&s, 2, None, Keep::Highest).unwrap()),
            vec![1, 2]
        );
        assert_eq!(
            flat(&top_k_global(&s, 2, None, Keep::Lowest).unwrap()),
            vec![0, 3]
        );
    }

    #[test]
    fn ties_break_by_flat_index_across_layers() {
        let s = Scores {
            layers: vec![vec![1.0, 2.0], vec![2.0, 1.0, 2.0]],
        };
        assert_eq!(
            flat(&top_k_global(&s, 2, None, Keep::Highest).unwrap()),
            vec![1, 2]
        );
        assert_eq!(
            flat(&top_k_global(&s, 4, None, Keep::Highest).unwrap()),
            vec![0, 1, 2, 4]
        );
        assert_eq!(
            flat(&top_k_global(&s, 1, None, Keep::Lowest).unwrap()),
            vec![0]
        );
    }

    #[test]
    fn candidates_exclude_pruned_entries() {
        let s = Scores {
            layers: vec![vec![5.0, 4.0, 3.0, 2.0]],
        };
        let cand = Mask::from_layers(vec![vec![false, true, true, true]]);
        assert_eq!(
            flat(&top_k_global(&s, 2, Some(&cand), Keep::Highest).unwrap()),
            vec![1, 2]
        );
        assert!(top_k_global(&s, 4, Some(&cand), Keep::Highest).is_err());
    }

    #[test]
    fn exact_counts_and_nan_rejected() {
        let s = Scores {
            layers: vec![vec![0.0; 1000], vec![1.0; 10]],
        };
        for k in [1, 9, 10, 11, 500, 1010] {
            assert_eq!(top_k_global(&s, k, None, Keep::Highest).unwrap().kept(), k);
        }
        let m = top_k_per_layer(&s, &[3, 7], Keep::Highest).unwrap();
        assert_eq!(m.layer_kept(), vec![3, 7]);
        let bad = Scores {
            layers: vec![vec![1.0, f64::NAN]],
        };
        assert!(matches!(
            top_k_global(&bad, 1, None, Keep::Highest),
            Err(CoreError::NanScore {
                layer: 0,
                index: 1,
                ..
            })
        ));
    }
}
