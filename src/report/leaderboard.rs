//! The leaderboard: one score per method with a 95% confidence interval, ranks that tie
//! within the intervals, and a history of nightly scores (docs/leaderboard.md).
//!
//! **Score.** For a method m, a cell c = (task, model, device, density) and a seed s, let
//! `m_s` be the ticket's trained performance, `r_s` that of the random ticket with the
//! ticket's own per-layer counts (`matched_random`, same θ_0 and data) and `D_s` that of the
//! dense network (`dense` row, same seed). Performance is test accuracy in points for
//! classification and −ln(test MSE) for regression (so ratios of losses become
//! differences). The cell's normaliser is the mean gap `g_c = mean_s (D_s − r_s)`, and
//!
//! ```text
//! S_s = mean over cells c of (m_s − r_s) / g_c        score = mean_s S_s
//! ```
//!
//! 0 means the mask adds nothing over a random ticket at its own layer ratios, 1 means it
//! closes the whole gap to the dense network. Each cell's fraction is clipped to
//! [`CELL_FRACTION`] = [−1, 2]: past twice the gap its size says more about a small
//! denominator than about the mask, and one such cell must not dominate the mean. Cells where `g_c < δ` (1 point, or a 5 % loss
//! change) are excluded: the ratio alone already reaches the dense network there and the
//! quotient would be noise over a near-zero gap. Seeds are the independent replicates
//! (each has its own θ_0, data and data order), so the interval is Student's t over the
//! per-seed scores `S_s` (n − 1 degrees of freedom).
//!
//! Reference rows (`dense`, `planted`) are not ranked. Scores use the trained metric of
//! every method, strong-ticket methods included.
//!
//! **Rank** = 1 + the number of methods whose interval lies entirely above this method's:
//! methods whose intervals overlap share a rank.

use super::ResultSet;
use super::sanity::{DELTA_POINTS, DELTA_RELATIVE};
use super::stats::mean_ci;
use super::table::{Cell, Table};
use crate::methods::Family;
use crate::runner::job::{JobRecord, Status};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HistoryError {
    #[error("reading leaderboard history {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}:{line}: not a leaderboard history entry ({source}); each line is one JSON object written by `ticketbench report --record-history`"
    )]
    Parse {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
}

/// One method's line of the leaderboard.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub method: String,
    pub rank: usize,
    pub score: f64,
    /// 95% t interval of the score over seeds; `None` with fewer than 2 seeds.
    pub ci: Option<(f64, f64)>,
    pub seeds: usize,
    /// Cells that entered the score, and cells excluded for a dense–random gap below δ.
    pub cells: usize,
    pub excluded: usize,
    /// Score change since the previous history entry (`None`: not in it).
    pub change: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Leaderboard {
    /// Best first.
    pub entries: Vec<Entry>,
    /// The history entry changes are measured against.
    pub previous: Option<(String, String)>,
}

/// A score as stored in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryScore {
    pub score: f64,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub rank: usize,
    pub seeds: usize,
    pub cells: usize,
}

/// One line of `history.jsonl`: one nightly run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub commit: String,
    pub suites: Vec<String>,
    pub records: usize,
    pub scores: BTreeMap<String, HistoryScore>,
}

/// Performance in additive units: accuracy points, or −ln MSE.
fn perf(classification: bool, acc: Option<f64>, loss: Option<f64>) -> Option<f64> {
    let v = if classification {
        100.0 * acc?
    } else {
        -loss.filter(|l| *l > 0.0)?.ln()
    };
    v.is_finite().then_some(v)
}

/// δ in the units of [`perf`].
/// Bounds of one cell's fraction `(m_s − r_s) / g_c` (see the module documentation).
pub const CELL_FRACTION: (f64, f64) = (-1.0, 2.0);

/// One seed's fraction of the cell's gap closed by the mask, clipped to [`CELL_FRACTION`].
fn cell_fraction(method: f64, random: f64, gap: f64) -> f64 {
    ((method - random) / gap).clamp(CELL_FRACTION.0, CELL_FRACTION.1)
}

fn delta(classification: bool) -> f64 {
    if classification {
        DELTA_POINTS
    } else {
        DELTA_RELATIVE.ln_1p()
    }
}

/// `(m_s, r_s, D_s)` of one scorable job.
type Triple = (f64, f64, f64);
/// One cell of a method: its key, whether it is a classification task, and each seed's
/// triple.
type CellTriples = (String, bool, Vec<(u64, Triple)>);

impl Leaderboard {
    /// The leaderboard of a result set; empty when no job has both a matched random ticket
    /// and a dense reference.
    pub fn compute(set: &ResultSet) -> Leaderboard {
        let classification = |r: &JobRecord| r.task_kind == "classification";
        let dense: Vec<&JobRecord> = set
            .records
            .iter()
            .filter(|r| r.method == "dense" && r.check.is_none() && r.status == Status::Ok)
            .collect();
        // method -> cell -> seed -> triple, all in first-appearance order.
        let mut methods: Vec<(String, Vec<CellTriples>)> = Vec::new();
        for r in &set.records {
            // References (dense, the planted ticket itself) are not ranked.
            let reference = r.family() == Some(Family::Reference);
            if r.check.is_some() || r.status != Status::Ok || reference {
                continue;
            }
            let Some(m) = r.matched_random.as_ref().filter(|m| !m.diverged) else {
                continue;
            };
            let Some(d) = dense.iter().find(|d| {
                d.seed == r.seed
                    && d.task_label == r.task_label
                    && d.model == r.model
                    && d.device == r.device
            }) else {
                continue;
            };
            let c = classification(r);
            let (Some(own), Some(random), Some(full)) = (
                perf(c, r.metrics.test_acc, r.metrics.test_loss),
                perf(c, m.test_acc, m.test_loss),
                perf(c, d.metrics.test_acc, d.metrics.test_loss),
            ) else {
                continue;
            };
            let cell = format!(
                "{}\u{1f}{}\u{1f}{}\u{1f}{}",
                r.task_label, r.model, r.device, r.density
            );
            let i = match methods.iter().position(|(name, _)| *name == r.method_label) {
                Some(i) => i,
                None => {
                    methods.push((r.method_label.clone(), Vec::new()));
                    methods.len() - 1
                }
            };
            let cells = &mut methods[i].1;
            let j = match cells.iter().position(|(k, _, _)| *k == cell) {
                Some(j) => j,
                None => {
                    cells.push((cell, c, Vec::new()));
                    cells.len() - 1
                }
            };
            cells[j].2.push((r.seed, (own, random, full)));
        }
        let mut entries: Vec<Entry> = methods
            .into_iter()
            .filter_map(|(method, cells)| {
                let mut per_seed: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
                let mut used = 0;
                let mut excluded = 0;
                for (_, c, seeds) in &cells {
                    let gap =
                        seeds.iter().map(|(_, (_, r, d))| d - r).sum::<f64>() / seeds.len() as f64;
                    if gap < delta(*c) {
                        excluded += 1;
                        continue;
                    }
                    used += 1;
                    for (seed, (m, r, _)) in seeds {
                        per_seed
                            .entry(*seed)
                            .or_default()
                            .push(cell_fraction(*m, *r, gap));
                    }
                }
                if per_seed.is_empty() {
                    return None;
                }
                let scores: Vec<f64> = per_seed
                    .values()
                    .map(|v| v.iter().sum::<f64>() / v.len() as f64)
                    .collect();
                let (score, lo, hi) = mean_ci(&scores, 0.95);
                Some(Entry {
                    method,
                    rank: 0,
                    score,
                    ci: (lo.is_finite() && hi.is_finite()).then_some((lo, hi)),
                    seeds: scores.len(),
                    cells: used,
                    excluded,
                    change: None,
                })
            })
            .collect();
        entries.sort_by(|a, b| b.score.total_cmp(&a.score));
        let bounds: Vec<(f64, f64)> = entries
            .iter()
            .map(|e| e.ci.unwrap_or((e.score, e.score)))
            .collect();
        for (e, rank) in entries.iter_mut().zip(ranks(&bounds)) {
            e.rank = rank;
        }
        // By rank, then score: a method can outscore one ranked above it whose interval
        // it overlaps while a third method is entirely above it.
        entries.sort_by(|a, b| a.rank.cmp(&b.rank).then(b.score.total_cmp(&a.score)));
        Leaderboard {
            entries,
            previous: None,
        }
    }

    /// Sets each method's change since the last history entry that is not the run
    /// `(date, commit)` itself (a rerun of the same nightly replaces its entry).
    pub fn compare_with(&mut self, history: &[HistoryEntry], date: &str, commit: &str) {
        let Some(prev) = history
            .iter()
            .rev()
            .find(|h| (h.date.as_str(), h.commit.as_str()) != (date, commit))
        else {
            return;
        };
        for e in &mut self.entries {
            e.change = prev.scores.get(&e.method).map(|p| e.score - p.score);
        }
        self.previous = Some((prev.date.clone(), prev.commit.clone()));
    }

    /// This leaderboard as a history line.
    pub fn history_entry(&self, set: &ResultSet, date: &str, commit: &str) -> HistoryEntry {
        let mut suites: Vec<String> = set.records.iter().map(|r| r.suite.clone()).collect();
        suites.sort();
        suites.dedup();
        HistoryEntry {
            date: date.to_string(),
            commit: commit.to_string(),
            suites,
            records: set.records.len(),
            scores: self
                .entries
                .iter()
                .map(|e| {
                    (
                        e.method.clone(),
                        HistoryScore {
                            score: e.score,
                            ci_low: e.ci.map(|c| c.0),
                            ci_high: e.ci.map(|c| c.1),
                            rank: e.rank,
                            seeds: e.seeds,
                            cells: e.cells,
                        },
                    )
                })
                .collect(),
        }
    }

    /// What the score is, for the report.
    pub fn explanation(&self) -> String {
        let since = self.previous.as_ref().map_or(String::new(), |(date, commit)| {
            format!(" Change: score difference to the previous recorded run ({date}, commit `{commit}`).")
        });
        format!(
            "Score: the fraction of the gap between a random ticket at the method's own layer counts and the dense network that the method's mask closes, averaged over (task, model, density) cells: per seed s, mean over cells of (method − matched random) / mean gap (dense − matched random), in accuracy points or −ln MSE; then the mean over seeds with a 95% t interval over seeds. 0 = no better than its layer ratios, 1 = as good as dense; each cell's fraction is clipped to [−1, 2]. Cells whose mean dense–random gap is below δ ({} point, or a {} % loss change) are excluded (counted in brackets). Methods whose intervals overlap share a rank (rank = 1 + number of methods entirely above). See docs/leaderboard.md.{since}",
            DELTA_POINTS,
            100.0 * DELTA_RELATIVE
        )
    }

    /// The leaderboard as a table.
    pub fn table(&self) -> Table {
        let mut header: Vec<String> = ["rank", "method", "score", "95% CI", "seeds", "cells"]
            .into_iter()
            .map(String::from)
            .collect();
        if let Some((date, commit)) = &self.previous {
            header.push(format!("change since {date} ({commit})"));
        }
        let rows = self
            .entries
            .iter()
            .map(|e| {
                let mut row = vec![
                    Cell::Number(e.rank as f64, e.rank.to_string()),
                    Cell::Text(e.method.clone()),
                    Cell::Number(e.score, format!("{:.3}", e.score)),
                    e.ci.map_or(Cell::Empty, |(lo, hi)| {
                        Cell::Number(lo, format!("[{lo:.3}, {hi:.3}]"))
                    }),
                    Cell::Number(e.seeds as f64, e.seeds.to_string()),
                    Cell::Number(
                        e.cells as f64,
                        if e.excluded > 0 {
                            format!("{} ({} excluded)", e.cells, e.excluded)
                        } else {
                            e.cells.to_string()
                        },
                    ),
                ];
                if self.previous.is_some() {
                    row.push(match e.change {
                        Some(c) => Cell::Number(c, format!("{c:+.3}")),
                        None => Cell::Text("new".into()),
                    });
                }
                row
            })
            .collect();
        Table::plain(
            "leaderboard".into(),
            "Leaderboard".into(),
            "score = fraction of the gap from a random ticket at the method's own layer counts to the dense network closed by the mask (higher is better), mean over seeds with 95% t interval; ties within intervals share a rank".into(),
            2,
            header,
            rows,
        )
    }
}

/// Rank of each `(lo, hi)` interval: 1 + the number of intervals entirely above it.
fn ranks(bounds: &[(f64, f64)]) -> Vec<usize> {
    bounds
        .iter()
        .map(|own| 1 + bounds.iter().filter(|b| b.0 > own.1).count())
        .collect()
}

/// The history entries of `path` (none when the file does not exist yet).
pub fn load_history(path: &Path) -> Result<Vec<HistoryEntry>, HistoryError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(HistoryError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| HistoryError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Appends `entry` to the history at `path` (written whole to a temporary file, then
/// renamed); an entry of the same date and commit is replaced instead (a rerun).
pub fn record_history(path: &Path, entry: HistoryEntry) -> Result<(), HistoryError> {
    let mut history = load_history(path)?;
    history.retain(|h| (&h.date, &h.commit) != (&entry.date, &entry.commit));
    history.push(entry);
    let io = |source| HistoryError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut text = String::new();
    for h in &history {
        text.push_str(&serde_json::to_string(h).expect("history entries serialize"));
        text.push('\n');
    }
    let tmp = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_date((secs / 86_400) as i64)
}

/// `YYYY-MM-DD` of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_fractions_are_clipped_to_minus_one_and_two() {
        assert_eq!(cell_fraction(75.0, 70.0, 10.0), 0.5);
        // 8 points over a 1.2-point gap would count 6.7 times the gap.
        assert_eq!(cell_fraction(78.0, 70.0, 1.2), 2.0);
        assert_eq!(cell_fraction(50.0, 70.0, 10.0), -1.0);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(20_454), "2026-01-01");
    }

    #[test]
    fn overlapping_intervals_share_a_rank() {
        assert_eq!(ranks(&[(0.8, 1.0), (0.7, 0.95), (0.2, 0.4)]), [1, 1, 3]);
        // A point estimate (one seed) is its own interval.
        assert_eq!(ranks(&[(0.5, 0.5), (0.4, 0.6), (0.1, 0.1)]), [1, 1, 3]);
    }
}
