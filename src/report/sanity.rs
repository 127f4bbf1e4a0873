//! Sanity-check verdicts (methods.md §3.3): every checked job is paired by seed with its
//! method's original job (same task, model, device, method, density), Δ_s = checked −
//! original in performance units, and each (method, density, check) cell gets a verdict.
//!
//! Units: classification — accuracy in points, δ = 1 point; regression — the log loss ratio
//! `ln(L_orig / L_check)`, δ = ln 1.05 (a 5 % loss change; log ratios are symmetric and keep
//! a single blow-up seed from dominating the mean, which relative changes do not), so in
//! both Δ < 0 means the check made the ticket worse. Loss cells are displayed as the factor
//! `L_check / L_orig = exp(−Δ)`. Strong-ticket methods (family `strong`) are judged on their untrained
//! metric, every other method after training. The matched random ticket of a job
//! (`matched_random: true`) is judged as the check `matched_random`, and every random-ticket
//! row of the suite (`random`, `random[rule=…]`) at the same density and seed as the check
//! `vs <row>`. Holm's correction runs
//! over every judged cell of one verdict table (task · model · device).

use super::stats::{Judgement, PairedSummary, Verdict, judge_table};
use super::{ResultSet, density_text};
use crate::methods::Family;
use crate::runner::job::{JobRecord, Status};

/// Significance level of the verdicts.
pub const ALPHA: f64 = 0.05;
/// δ for classification: accuracy points.
pub const DELTA_POINTS: f64 = 1.0;
/// δ for regression, as a relative loss change (judged on the log scale as ln(1 + δ)).
pub const DELTA_RELATIVE: f64 = 0.05;
/// The check name under which a job's matched random ticket is judged.
pub const MATCHED_RANDOM: &str = "matched_random";

/// One (task, model, device, method, density, check) cell.
#[derive(Debug, Clone)]
pub struct VerdictCell {
    pub task: String,
    pub model: String,
    pub device: String,
    pub method: String,
    pub density: f64,
    pub check: String,
    pub classification: bool,
    pub summary: PairedSummary,
    pub judgement: Judgement,
}

/// Performance of a record in the units of its task kind, before pairing: accuracy in
/// points, or the loss (converted to a relative change once paired).
fn performance(r: &JobRecord, untrained: bool) -> Option<f64> {
    if untrained {
        return match r.metrics.untrained_test_acc {
            Some(a) => Some(100.0 * a),
            None => Some(r.metrics.untrained_test_loss).filter(|l| l.is_finite()),
        };
    }
    if r.status != Status::Ok {
        return None;
    }
    match r.metrics.test_acc {
        Some(a) => Some(100.0 * a),
        None => r.metrics.test_loss,
    }
}

/// The pair `(original, checked)` in judged units: points as they are; losses as
/// `(0, ln(L_o / L_c))`.
fn pair(classification: bool, original: f64, checked: f64) -> Option<(f64, f64)> {
    if classification {
        return Some((original, checked));
    }
    (original > 0.0 && checked > 0.0).then(|| (0.0, (original / checked).ln()))
}

fn is_strong(r: &JobRecord) -> bool {
    r.family() == Some(Family::Strong)
}

/// Every verdict cell of a result set, in order of first appearance.
pub fn verdicts(set: &ResultSet) -> Vec<VerdictCell> {
    type Key = (String, String, String, String, u64, String); // task, model, device, method, density bits, check
    let mut keys: Vec<Key> = Vec::new();
    let mut pairs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut kinds: Vec<bool> = Vec::new();
    let mut push = |key: Key, classification: bool, p: Option<(f64, f64)>| {
        let i = match keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                keys.push(key);
                pairs.push(Vec::new());
                kinds.push(classification);
                keys.len() - 1
            }
        };
        pairs[i].extend(p);
    };
    for r in &set.records {
        let classification = r.task_kind == "classification";
        let untrained = is_strong(r);
        let key = |check: &str| {
            (
                r.task_label.clone(),
                r.model.clone(),
                r.device.clone(),
                r.method_label.clone(),
                r.density.to_bits(),
                check.to_string(),
            )
        };
        match &r.check {
            Some(check) => {
                let original = set.records.iter().find(|o| {
                    o.check.is_none()
                        && o.seed == r.seed
                        && o.density == r.density
                        && o.method_label == r.method_label
                        && o.task_label == r.task_label
                        && o.model == r.model
                        && o.device == r.device
                });
                let p = original
                    .and_then(|o| performance(o, untrained))
                    .zip(performance(r, untrained))
                    .and_then(|(o, c)| pair(classification, o, c));
                push(key(check), classification, p);
            }
            None => {
                // Against every random-ticket row (ratio rule) of the same cell and seed.
                if r.method != "random" {
                    for random in set.records.iter().filter(|o| {
                        o.method == "random"
                            && o.check.is_none()
                            && o.seed == r.seed
                            && o.density == r.density
                            && o.task_label == r.task_label
                            && o.model == r.model
                            && o.device == r.device
                    }) {
                        let p = performance(r, untrained)
                            .zip(performance(random, untrained))
                            .and_then(|(o, c)| pair(classification, o, c));
                        push(
                            key(&format!("vs {}", random.method_label)),
                            classification,
                            p,
                        );
                    }
                }
                if let Some(m) = &r.matched_random {
                    let random = if m.diverged {
                        None
                    } else {
                        m.test_acc.map(|a| 100.0 * a).or(m.test_loss)
                    };
                    let p = performance(r, false)
                        .zip(random)
                        .and_then(|(o, c)| pair(classification, o, c));
                    push(key(MATCHED_RANDOM), classification, p);
                }
            }
        }
    }
    let summaries: Vec<PairedSummary> = pairs
        .iter()
        .zip(&kinds)
        .map(|(p, &c)| PairedSummary::from_pairs(p, delta(c)))
        .collect();
    // Holm's family: every cell of one verdict table (task · model · device; one task kind,
    // so one δ).
    let table_of = |k: &Key| (k.0.clone(), k.1.clone(), k.2.clone());
    let mut tables: Vec<(String, String, String)> = Vec::new();
    for k in &keys {
        if !tables.contains(&table_of(k)) {
            tables.push(table_of(k));
        }
    }
    let mut judgements: Vec<Option<Judgement>> = vec![None; summaries.len()];
    for table in tables {
        let idx: Vec<usize> = (0..keys.len())
            .filter(|&i| table_of(&keys[i]) == table)
            .collect();
        let kind = kinds[idx[0]];
        let family: Vec<PairedSummary> = idx.iter().map(|&i| summaries[i].clone()).collect();
        for (i, j) in idx
            .into_iter()
            .zip(judge_table(&family, delta(kind), ALPHA))
        {
            judgements[i] = Some(j);
        }
    }
    keys.into_iter()
        .zip(summaries)
        .zip(kinds)
        .zip(judgements)
        .map(
            |(((key, summary), classification), judgement)| VerdictCell {
                task: key.0,
                model: key.1,
                device: key.2,
                method: key.3,
                density: f64::from_bits(key.4),
                check: key.5,
                classification,
                summary,
                judgement: judgement.expect("every table was judged"),
            },
        )
        .collect()
}

fn delta(classification: bool) -> f64 {
    if classification {
        DELTA_POINTS
    } else {
        DELTA_RELATIVE.ln_1p()
    }
}

/// `sensitive: uses structure beyond its layer ratios −12.3 [−15.1, −9.5] p=0.002 d_z=−3.1
/// (n=5)` for one cell (Δ in points, or in % for losses; the meaning of the verdict for this
/// check, Holm-adjusted p, effect size d_z = mean Δ / sd Δ).
pub fn cell_text(c: &VerdictCell) -> String {
    let s = &c.summary;
    // Points as they are; a log loss ratio Δ as the loss factor exp(−Δ).
    let show = |v: f64| {
        if c.classification {
            format!("{v:+.1}")
        } else {
            format!("×{:.3}", (-v).exp())
        }
    };
    let p = c
        .judgement
        .p_worse_holm
        .map_or(String::new(), |p| format!(" p={}", format_p(p)));
    let ci = if s.n >= 2 {
        // exp(−Δ) reverses the order of the bounds.
        let (lo, hi) = if c.classification {
            (s.ci95.0, s.ci95.1)
        } else {
            (s.ci95.1, s.ci95.0)
        };
        format!(" [{}, {}]", show(lo), show(hi))
    } else {
        String::new()
    };
    let verdict = match meaning(&c.check, c.judgement.verdict) {
        Some(m) => format!("{}: {m}", c.judgement.verdict.as_str()),
        None => c.judgement.verdict.as_str().to_string(),
    };
    if s.n > 0 && s.mean == 0.0 && s.sd == 0.0 {
        // Typically both arms at the same (often chance-level) value: say so.
        return format!("{verdict} (identical on all {} seeds)", s.n);
    }
    // A constant Δ has sd ≈ 0 and an unbounded d_z: cap the display.
    let effect = match s.d_z {
        d if d.is_nan() => String::new(),
        d if d.abs() >= 100.0 => format!(" d_z{}100", if d < 0.0 { "<-" } else { ">" }),
        d => format!(" d_z={d:+.1}"),
    };
    format!("{verdict} {}{ci}{p}{effect} (n={})", show(s.mean), s.n)
}

/// Column order of the verdict tables: the random ticket at the method's own counts, the
/// §3.1 checks in spec order, then the suite's random-ticket rows.
pub fn check_rank(check: &str) -> usize {
    const ORDER: [&str; 8] = [
        MATCHED_RANDOM,
        "layer_shuffle",
        "global_shuffle",
        "weight_shuffle",
        "reinit",
        "invert",
        "random_labels",
        "random_pixels",
    ];
    ORDER
        .iter()
        .position(|c| *c == check)
        .unwrap_or(ORDER.len())
}

fn format_p(p: f64) -> String {
    if p < 1e-3 {
        format!("{p:.0e}")
    } else {
        format!("{p:.3}")
    }
}

/// Mean trained performance (accuracy points or loss) of the original jobs of one row.
fn row_mean(set: &ResultSet, task: &str, method: &str, density: f64) -> Option<f64> {
    let values: Vec<f64> = set
        .records
        .iter()
        .filter(|r| {
            r.check.is_none()
                && r.task_label == task
                && r.method_label == method
                && r.density == density
        })
        .filter_map(|r| performance(r, false))
        .collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// "Within δ of random tickets at erk, igq (d = 0.1)": the random-ticket rows of the same
/// task whose mean is within δ of the method's mean at each density (not for strong-ticket
/// methods, which are judged untrained).
fn ratio_matches(set: &ResultSet, task: &str, method: &str, densities: &[f64]) -> Option<String> {
    let row = |r: &&JobRecord| r.task_label == task && r.method_label == method;
    // Strong tickets are judged untrained; random tickets are the comparison themselves.
    if set
        .records
        .iter()
        .filter(row)
        .any(|r| is_strong(r) || r.method == "random")
    {
        return None;
    }
    let mut randoms: Vec<&str> = Vec::new();
    for r in &set.records {
        if r.task_label == task
            && r.method == "random"
            && !randoms.contains(&r.method_label.as_str())
        {
            randoms.push(&r.method_label);
        }
    }
    if randoms.is_empty() {
        return None;
    }
    let classification = set
        .records
        .iter()
        .find(|r| r.task_label == task)
        .is_some_and(|r| r.task_kind == "classification");
    let parts: Vec<String> = densities
        .iter()
        .filter_map(|&d| {
            let own = row_mean(set, task, method, d)?;
            let close: Vec<&str> = randoms
                .iter()
                .filter(|rule| {
                    row_mean(set, task, rule, d).is_some_and(|m| {
                        if classification {
                            (own - m).abs() <= DELTA_POINTS
                        } else {
                            (own - m).abs() <= DELTA_RELATIVE * m
                        }
                    })
                })
                .copied()
                .collect();
            (!close.is_empty()).then(|| format!("{} at d = {}", close.join(", "), density_text(d)))
        })
        .collect();
    let unit = if classification {
        "1 point"
    } else {
        "5 % in loss"
    };
    Some(if parts.is_empty() {
        format!("its mean is not within {unit} of any random-ticket row at any density")
    } else {
        format!("its mean is within {unit} of {}", parts.join("; "))
    })
}

/// One sentence per (task, method): each check's verdicts over the densities, and which
/// random-ticket rows (ratio rules) match its mean.
pub fn method_sentences(set: &ResultSet, cells: &[VerdictCell]) -> Vec<String> {
    let mut groups: Vec<(String, String)> = Vec::new();
    for c in cells {
        let g = (c.task.clone(), c.method.clone());
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    groups
        .into_iter()
        .map(|(task, method)| {
            let mine: Vec<&VerdictCell> = cells
                .iter()
                .filter(|c| c.task == task && c.method == method)
                .collect();
            let mut checks: Vec<&str> = Vec::new();
            for c in &mine {
                if !checks.contains(&c.check.as_str()) {
                    checks.push(&c.check);
                }
            }
            checks.sort_by_key(|c| check_rank(c));
            let parts: Vec<String> = checks
                .iter()
                .map(|check| {
                    let by_verdict = |v: Verdict| -> Vec<String> {
                        mine.iter()
                            .filter(|c| c.check == *check && c.judgement.verdict == v)
                            .map(|c| density_text(c.density))
                            .collect()
                    };
                    let phrases: Vec<String> = [
                        (Verdict::Sensitive, "hurts"),
                        (Verdict::Insensitive, "makes no difference"),
                        (Verdict::Inconclusive, "is inconclusive"),
                        (Verdict::InsufficientSeeds, "has too few seeds"),
                    ]
                    .into_iter()
                    .filter_map(|(v, words)| {
                        let ds = by_verdict(v);
                        let meaning =
                            meaning(check, v).map_or(String::new(), |m| format!(" ({m})"));
                        (!ds.is_empty())
                            .then(|| format!("{words} at d = {}{meaning}", ds.join(", ")))
                    })
                    .collect();
                    format!("{} {}", check_phrase(check), phrases.join(", "))
                })
                .collect();
            let mut densities: Vec<f64> = mine.iter().map(|c| c.density).collect();
            densities.sort_by(|a, b| b.total_cmp(a));
            densities.dedup();
            let ratios = ratio_matches(set, &task, &method, &densities)
                .map_or(String::new(), |r| format!("; {r}"));
            format!("**{method}** ({task}): {}{ratios}.", parts.join("; "))
        })
        .collect()
}

/// What a verdict on a check says about the method (Su et al. 2020; Frankle et al. 2021).
fn meaning(check: &str, verdict: Verdict) -> Option<&'static str> {
    let sensitive = match verdict {
        Verdict::Sensitive => true,
        Verdict::Insensitive => false,
        _ => return None,
    };
    Some(match (check, sensitive) {
        (c, true) if c.starts_with("vs random") => "beats that random ticket",
        (c, false) if c.starts_with("vs random") => "no better than that random ticket",
        (MATCHED_RANDOM | "layer_shuffle", true) => "uses structure beyond its layer ratios",
        (MATCHED_RANDOM | "layer_shuffle", false) => "ratio only",
        ("global_shuffle", true) => "its layer ratios matter",
        ("global_shuffle", false) => "its layer ratios do not matter",
        ("weight_shuffle" | "reinit", true) => "needs its own weight values",
        ("weight_shuffle" | "reinit", false) => "weight values interchangeable",
        ("invert", true) => "its ranking matters",
        ("invert", false) => "ranking direction irrelevant",
        ("random_labels" | "random_pixels", true) => "uses the data",
        ("random_labels" | "random_pixels", false) => "data not used",
        _ => return None,
    })
}

fn check_phrase(check: &str) -> String {
    match check {
        MATCHED_RANDOM => "a random ticket at its own layer counts instead of its mask".into(),
        "layer_shuffle" => "shuffling the mask within layers".into(),
        "global_shuffle" => "shuffling the mask across layers".into(),
        "weight_shuffle" => "shuffling the kept weights".into(),
        "reinit" => "reinitialising the weights".into(),
        "invert" => "inverting the score ranking".into(),
        "random_labels" => "pruning on random labels".into(),
        "random_pixels" => "pruning on random pixels".into(),
        other => match other.strip_prefix("vs ") {
            Some(random) => format!("a {random} ticket instead"),
            None => other.replace('_', " "),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_pair_as_log_ratios() {
        assert_eq!(pair(true, 90.0, 80.0), Some((90.0, 80.0)));
        // A loss that doubles under the check is Δ = −ln 2 (worse); halving is +ln 2.
        assert_eq!(pair(false, 0.5, 1.0), Some((0.0, -(2f64.ln()))));
        assert_eq!(pair(false, 1.0, 0.5), Some((0.0, 2f64.ln())));
        assert_eq!(pair(false, 0.0, 1.0), None);
        assert!((delta(false) - 1.05f64.ln()).abs() < 1e-15);
    }
}
