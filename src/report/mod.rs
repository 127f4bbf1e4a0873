//! Reports from result directories: one comparison table per (task, model, device), and
//! for planted hosts a recovery table beside it; with `transfer`, one table per pair of
//! tasks.
//!
//! Rows are methods (in suite order), columns densities (descending), cells mean ± sample
//! std over seeds with n; the best mean of each column is bold. Classification tables show
//! test accuracy in percent (higher is better), regression tables test MSE (lower is better),
//! recovery tables the Jaccard index of found vs planted mask (higher is better).
//! Only computed numbers appear: an empty cell means no finished run.

mod markdown;
pub mod sanity;
pub mod stats;

use crate::methods::Family;
use crate::runner::job::{JobRecord, Status};
use crate::runner::store::{self, BadLine, StoreError};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use markdown::render_markdown;

pub const REPORT_FILE: &str = "report.md";

/// Summary statistics of one table cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CellStats {
    pub mean: f64,
    /// Sample standard deviation (n − 1); `None` for a single value.
    pub std: Option<f64>,
    /// Finished (non-diverged) runs.
    pub n: usize,
    /// Runs whose training diverged (not in the mean).
    pub diverged: usize,
}

impl CellStats {
    pub fn from_values(values: &[f64], diverged: usize) -> Option<CellStats> {
        let n = values.len();
        if n == 0 && diverged == 0 {
            return None;
        }
        let mean = if n == 0 {
            f64::NAN
        } else {
            values.iter().sum::<f64>() / n as f64
        };
        let std = (n > 1).then(|| {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        });
        Some(CellStats {
            mean,
            std,
            n,
            diverged,
        })
    }
}

/// The metric a table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Test accuracy in percent; higher is better.
    AccuracyPercent,
    /// Test MSE; lower is better.
    Mse,
    /// Jaccard index of the found mask against the planted mask; higher is better.
    Jaccard,
    /// Difference of two accuracies in points; higher is better.
    AccuracyGain,
    /// log10 of a ratio of two MSEs (0 = equal); lower is better.
    LogMseRatio,
}

impl Metric {
    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            Metric::AccuracyPercent | Metric::Jaccard | Metric::AccuracyGain
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            Metric::AccuracyPercent => "test accuracy (%)",
            Metric::Mse => "test MSE",
            Metric::AccuracyGain => "test accuracy difference (points)",
            Metric::LogMseRatio => "log10 test MSE ratio",
            Metric::Jaccard => {
                "Jaccard index |F∩P|/|F∪P| of the found mask F against the planted ticket P (1 = the planted ticket itself)"
            }
        }
    }
}

/// Which number of a job a table shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantity<'a> {
    /// The task metric after training.
    Trained,
    /// The task metric of the mask on its starting weights, no training, after the planted
    /// host's output rescaling (strong ticket).
    StrongRescaled,
    /// The task metric after training on another task (`transfer`).
    Transfer(&'a str),
    /// Jaccard index against the planted ticket.
    Jaccard,
    /// The task metric of the mask on its starting weights, no training (strong ticket).
    Untrained,
    /// The task metric of the random ticket with the same per-layer counts, after training.
    MatchedRandom,
    /// Per seed, the ticket's trained metric minus its matched random ticket's (accuracy, in
    /// points), or log10 of their ratio (MSE: ratios average on a log scale).
    VsMatchedRandom,
}

impl Quantity<'_> {
    /// Whether the run this quantity reads diverged (the matched random ticket has its own
    /// training run; a paired difference needs both).
    fn diverged(self, r: &JobRecord) -> bool {
        let matched = r.matched_random.as_ref().is_some_and(|m| m.diverged);
        match self {
            Quantity::MatchedRandom => matched,
            Quantity::VsMatchedRandom => matched || r.status == Status::Diverged,
            _ => r.status == Status::Diverged,
        }
    }

    fn of(self, metric: Metric, r: &JobRecord) -> Option<f64> {
        let planted = r.planted.as_ref();
        let (acc, loss) = match self {
            Quantity::Jaccard => return planted.map(|p| p.recovery.jaccard),
            Quantity::Trained => (r.metrics.test_acc, r.metrics.test_loss),
            Quantity::StrongRescaled => {
                let v = planted.map(|p| p.untrained_rescaled);
                (v, v)
            }
            Quantity::Untrained => (
                r.metrics.untrained_test_acc,
                Some(r.metrics.untrained_test_loss),
            ),
            Quantity::MatchedRandom => r
                .matched_random
                .as_ref()
                .map_or((None, None), |m| (m.test_acc, m.test_loss)),
            Quantity::VsMatchedRandom => {
                let own = Quantity::Trained.of(metric, r)?;
                let random = Quantity::MatchedRandom.of(metric, r)?;
                return Some(match metric {
                    Metric::Mse => (own / random).log10(),
                    _ => own - random,
                });
            }
            Quantity::Transfer(label) => r
                .transfer
                .iter()
                .find(|t| t.task_label == label)
                .map_or((None, None), |t| (t.test_acc, t.test_loss)),
        };
        match metric {
            Metric::AccuracyPercent => acc.map(|a| 100.0 * a),
            Metric::Mse => loss,
            Metric::Jaccard | Metric::AccuracyGain | Metric::LogMseRatio => None,
        }
    }
}

/// One method × density table.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonTable {
    /// What the table is about beyond task · model · device (`recovery`, `transfer to …`).
    pub view: Option<String>,
    /// What a cell holds, in words.
    pub caption: String,
    pub task: String,
    pub model: String,
    pub device: String,
    pub metric: Metric,
    pub densities: Vec<f64>,
    pub rows: Vec<(String, Vec<Option<CellStats>>)>,
    pub seeds: usize,
}

impl ComparisonTable {
    /// Row `label`'s cells at `densities` (empty where this table has no such column);
    /// `None` when the table has no such row.
    fn cells_at(&self, label: &str, densities: &[f64]) -> Option<Vec<Option<CellStats>>> {
        let (_, cells) = self.rows.iter().find(|(m, _)| m == label)?;
        Some(
            densities
                .iter()
                .map(|d| {
                    let c = self.densities.iter().position(|x| x == d)?;
                    cells[c].clone()
                })
                .collect(),
        )
    }

    /// For each column, the best mean (ignoring empty and all-diverged cells).
    pub fn best_per_column(&self) -> Vec<Option<f64>> {
        (0..self.densities.len())
            .map(|c| {
                let means = self
                    .rows
                    .iter()
                    .filter_map(|(_, cells)| cells[c].as_ref())
                    .filter(|s| s.n > 0)
                    .map(|s| s.mean);
                if self.metric.higher_is_better() {
                    means.reduce(f64::max)
                } else {
                    means.reduce(f64::min)
                }
            })
            .collect()
    }
}

/// Results of one or more directories, deduplicated by settings hash.
pub struct ResultSet {
    pub records: Vec<JobRecord>,
    pub bad_lines: Vec<BadLine>,
    pub sources: Vec<PathBuf>,
}

impl ResultSet {
    pub fn load(dirs: &[PathBuf]) -> Result<ResultSet, StoreError> {
        let mut seen = HashSet::new();
        let mut set = ResultSet {
            records: Vec::new(),
            bad_lines: Vec::new(),
            sources: dirs.to_vec(),
        };
        for dir in dirs {
            if !dir.join(store::RESULTS_FILE).is_file() {
                return Err(StoreError::NoResults { path: dir.clone() });
            }
            let loaded = store::load(dir)?;
            set.bad_lines.extend(loaded.bad_lines);
            set.records.extend(
                loaded
                    .records
                    .into_iter()
                    .filter(|r| seen.insert(r.settings_hash.clone())),
            );
        }
        // Suite order, whatever order shards or parallel jobs wrote the lines in (records
        // older than `grid_index` keep their file order).
        let mut suites: Vec<String> = Vec::new();
        for r in &set.records {
            if !suites.contains(&r.suite) {
                suites.push(r.suite.clone());
            }
        }
        set.records.sort_by_key(|r| {
            let suite = suites.iter().position(|s| *s == r.suite);
            (suite, r.provenance.grid_index.unwrap_or(usize::MAX))
        });
        Ok(set)
    }

    /// Per (task, model, device), in order of first appearance: the task-metric table, then
    /// for planted hosts the recovery table, then one transfer table per other task.
    pub fn tables(&self) -> Vec<ComparisonTable> {
        let mut keys: Vec<(String, String, String)> = Vec::new();
        for r in &self.records {
            let k = (r.task_label.clone(), r.model.clone(), r.device.clone());
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let mut tables = Vec::new();
        for (task, model, device) in keys {
            // Sanity-check runs have their own tables; these compare the methods' own tickets.
            let recs: Vec<&JobRecord> = self
                .records
                .iter()
                .filter(|r| r.task_label == task && r.model == model && r.device == device)
                .filter(|r| r.check.is_none())
                .collect();
            let kind_metric = |kind: &str| {
                if kind == "classification" {
                    Metric::AccuracyPercent
                } else {
                    Metric::Mse
                }
            };
            let metric = kind_metric(&recs[0].task_kind);
            let table = |view: Option<String>, metric: Metric, quantity: Quantity| {
                build_table(
                    &recs,
                    (task.clone(), model.clone(), device.clone()),
                    view,
                    metric,
                    quantity,
                )
            };
            let mut main = table(None, metric, Quantity::Trained);
            if recs.iter().any(|r| r.matched_random.is_some()) {
                let matched = table(None, metric, Quantity::MatchedRandom);
                let columns = main.densities.clone();
                main.rows = main
                    .rows
                    .into_iter()
                    .flat_map(|(m, cells)| {
                        let twin = matched
                            .cells_at(&m, &columns)
                            .map(|c| (format!("{m} · random at its layer counts"), c));
                        std::iter::once((m, cells)).chain(twin)
                    })
                    .collect();
                main.caption = format!(
                    "{}; rows marked `· random at its layer counts` are uniformly random tickets with the same per-layer counts as the method's own, trained the same way",
                    main.caption
                );
                tables.push(main);
                let mut gain = table(
                    Some("vs. random ticket at the method's own layer counts".into()),
                    metric,
                    Quantity::VsMatchedRandom,
                );
                gain.metric = if metric == Metric::Mse {
                    Metric::LogMseRatio
                } else {
                    Metric::AccuracyGain
                };
                gain.caption = match metric {
                    Metric::Mse => "per seed, log10 of the ticket's test MSE over that of a random ticket with the same per-layer counts, then averaged (below 0: the method's mask beats its own layerwise ratios; −1 = ten times lower MSE; lower is better)".into(),
                    _ => "per seed, the ticket's test accuracy minus that of a random ticket with the same per-layer counts, in points, then averaged (above 0: the method's mask beats its own layerwise ratios; higher is better)".into(),
                };
                tables.push(gain);
            } else {
                tables.push(main);
            }
            if recs.iter().any(|r| r.planted.is_some()) {
                tables.push(table(
                    Some("recovery".into()),
                    Metric::Jaccard,
                    Quantity::Jaccard,
                ));
                tables.push(table(
                    Some("strong ticket (no training, output rescaled)".into()),
                    metric,
                    Quantity::StrongRescaled,
                ));
            } else if recs
                .iter()
                .any(|r| crate::methods::info(&r.method).is_ok_and(|m| m.family == Family::Strong))
            {
                tables.push(table(
                    Some("strong ticket (no training)".into()),
                    metric,
                    Quantity::Untrained,
                ));
            }
            let mut others: Vec<&str> = Vec::new();
            for r in &recs {
                for t in &r.transfer {
                    if !others.contains(&t.task_label.as_str()) {
                        others.push(&t.task_label);
                    }
                }
            }
            for other in others {
                tables.push(table(
                    Some(format!("transfer to {other}")),
                    metric,
                    Quantity::Transfer(other),
                ));
            }
        }
        tables
    }

    /// The planted reference of a (task, model, device): planted density and the target
    /// network's own test metric over seeds.
    pub fn planted_reference(&self, table: &ComparisonTable) -> Option<(f64, CellStats)> {
        let recs: Vec<&JobRecord> = self
            .records
            .iter()
            .filter(|r| {
                r.task_label == table.task && r.model == table.model && r.device == table.device
            })
            .collect();
        let density = recs.iter().find_map(|r| r.planted.as_ref())?.density;
        let mut per_seed: Vec<(u64, f64)> = Vec::new();
        for r in &recs {
            if let Some(p) = &r.planted
                && !per_seed.iter().any(|(s, _)| *s == r.seed)
            {
                let scale = if table.metric == Metric::AccuracyPercent {
                    100.0
                } else {
                    1.0
                };
                per_seed.push((r.seed, scale * p.target_metric));
            }
        }
        let values: Vec<f64> = per_seed.into_iter().map(|(_, v)| v).collect();
        Some((density, CellStats::from_values(&values, 0)?))
    }
}

/// One table over `recs`: methods × densities of `quantity`, formatted as `metric`.
fn build_table(
    recs: &[&JobRecord],
    (task, model, device): (String, String, String),
    view: Option<String>,
    metric: Metric,
    quantity: Quantity,
) -> ComparisonTable {
    let mut densities: Vec<f64> = Vec::new();
    let mut methods: Vec<String> = Vec::new();
    for r in recs {
        if quantity.of(metric, r).is_none() && !quantity.diverged(r) {
            continue;
        }
        if !densities.contains(&r.density) {
            densities.push(r.density);
        }
        if !methods.contains(&r.method_label) {
            methods.push(r.method_label.clone());
        }
    }
    densities.sort_by(|a, b| b.total_cmp(a));
    let seeds = recs.iter().map(|r| r.seed).collect::<HashSet<_>>().len();
    let rows = methods
        .into_iter()
        .map(|m| {
            let cells = densities
                .iter()
                .map(|&d| {
                    let cell: Vec<&&JobRecord> = recs
                        .iter()
                        .filter(|r| r.method_label == m && r.density == d)
                        .collect();
                    let values: Vec<f64> = cell
                        .iter()
                        .filter(|r| !quantity.diverged(r))
                        .filter_map(|r| quantity.of(metric, r))
                        .collect();
                    let diverged = cell.iter().filter(|r| quantity.diverged(r)).count();
                    CellStats::from_values(&values, diverged)
                })
                .collect();
            (m, cells)
        })
        .collect();
    let what = match quantity {
        Quantity::Trained => format!("{} after training", metric.describe()),
        Quantity::StrongRescaled => format!(
            "{} of the mask on its starting weights without training, after the output rescaling of planting.md §4.6",
            metric.describe()
        ),
        Quantity::Transfer(other) => {
            format!("{} after training the ticket on {other}", metric.describe())
        }
        Quantity::Jaccard | Quantity::VsMatchedRandom => metric.describe().to_string(),
        Quantity::Untrained => format!(
            "{} of the mask on its starting weights, without training (what strong-ticket methods optimise; Gem-Miner's ticket is its flag set, which can be denser than the weights active in its last forward pass, event `active_density`)",
            metric.describe()
        ),
        Quantity::MatchedRandom => format!(
            "{} of a random ticket with the method's per-layer counts, after training",
            metric.describe()
        ),
    };
    let better = if metric.higher_is_better() {
        "higher"
    } else {
        "lower"
    };
    let caption = format!("{what} ({better} is better)");
    ComparisonTable {
        view,
        caption,
        task,
        model,
        device,
        metric,
        densities,
        rows,
        seeds,
    }
}

/// Writes `out/report.md` for the results in `dirs` and returns its text.
pub fn write_report(dirs: &[PathBuf], out: &Path) -> Result<String, StoreError> {
    let set = ResultSet::load(dirs)?;
    let text = render_markdown(&set);
    std::fs::create_dir_all(out).map_err(|source| StoreError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let path = out.join(REPORT_FILE);
    std::fs::write(&path, &text).map_err(|source| StoreError::Io { path, source })?;
    let cells = sanity::verdicts(&set);
    if !cells.is_empty() {
        let path = out.join(SANITY_TEX_FILE);
        std::fs::write(&path, markdown::sanity_latex(&cells))
            .map_err(|source| StoreError::Io { path, source })?;
    }
    Ok(text)
}

/// `0.1`, or `5.243e-3` when the plain decimal is long (the planted density).
fn density_text(d: f64) -> String {
    let short = d.to_string();
    if short.len() <= 6 {
        short
    } else {
        format!("{d:.3e}")
    }
}

/// The sanity-check verdict tables as LaTeX (booktabs), beside `report.md`.
pub const SANITY_TEX_FILE: &str = "sanity.tex";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_stats_mean_and_sample_std() {
        let c = CellStats::from_values(&[1.0, 2.0, 3.0], 0).unwrap();
        assert_eq!(c.mean, 2.0);
        assert_eq!(c.std, Some(1.0));
        assert_eq!(CellStats::from_values(&[4.0], 0).unwrap().std, None);
        assert!(CellStats::from_values(&[], 0).is_none());
        let d = CellStats::from_values(&[], 2).unwrap();
        assert_eq!((d.n, d.diverged), (0, 2));
    }
}
