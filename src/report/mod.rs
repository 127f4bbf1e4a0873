//! Reports from result directories: one comparison table per (task, model, device), and
//! for planted hosts a recovery table beside it; with `transfer`, one table per pair of
//! tasks.
//!
//! Rows are methods (in suite order), columns densities (descending), cells mean ± sample
//! std over seeds with n; the best mean of each column is bold. Classification tables show
//! test accuracy in percent (higher is better), regression tables test MSE (lower is better),
//! recovery tables the Jaccard index of found vs planted mask (higher is better).
//! Only computed numbers appear: an empty cell means no finished run.

pub mod csv;
pub mod html;
pub mod latex;
pub mod leaderboard;
pub mod markdown;
pub mod plots;
pub mod sanity;
pub mod stats;
pub mod table;

use crate::crash_point::{self, Event};
use crate::methods::Family;
use crate::runner::job::{JobRecord, Status};
use crate::runner::store::{self, BadLine, StoreError};
use leaderboard::{HistoryError, Leaderboard};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const REPORT_FILE: &str = "report.md";
/// The standalone LaTeX document; each table is also its own file under [`TEX_DIR`].
pub const TEX_FILE: &str = "report.tex";
pub const TEX_DIR: &str = "tex";
/// Tidy CSV, one row per job.
pub const CSV_FILE: &str = "results.csv";
pub const HTML_FILE: &str = "index.html";
pub const PLOTS_DIR: &str = "plots";
/// The leaderboard of this report as JSON (the history entry it would record).
pub const LEADERBOARD_FILE: &str = "leaderboard.json";

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
    /// A fraction in [0, 1] (precision, recall, AUROC); higher is better.
    Fraction,
    /// A ratio to the random expectation (recall lift); higher is better.
    Lift,
    /// A distance to the planted ticket (layer-budget TV); lower is better.
    Distance,
    /// A layer's kept fraction; neither better nor worse.
    LayerDensity,
}

impl Metric {
    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            Metric::AccuracyPercent
                | Metric::Jaccard
                | Metric::AccuracyGain
                | Metric::Fraction
                | Metric::Lift
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            Metric::AccuracyPercent => "test accuracy (%)",
            Metric::Mse => "test MSE",
            Metric::AccuracyGain => "test accuracy difference (points)",
            Metric::LogMseRatio => "log10 test MSE ratio",
            Metric::Fraction => "fraction",
            Metric::Lift => "lift over a random mask",
            Metric::Distance => "distance",
            Metric::LayerDensity => "layer density",
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
            _ => None,
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
            } else if recs.iter().any(|r| r.family() == Some(Family::Strong)) {
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

/// The Markdown report of a result set (what `run` prints and writes).
pub fn render_markdown(set: &ResultSet) -> String {
    let board = Leaderboard::compute(set);
    markdown::document_markdown(&table::document(set, Some(&board)), &[])
}

/// Writes `out/report.md` (and `sanity.tex` when there are verdicts) for the results in
/// `dirs` and returns the Markdown; what `ticketbench run` does after a suite.
pub fn write_report(dirs: &[PathBuf], out: &Path) -> Result<String, StoreError> {
    let set = ResultSet::load(dirs)?;
    let text = render_markdown(&set);
    let io = |path: PathBuf| move |source| StoreError::Io { path, source };
    std::fs::create_dir_all(out).map_err(io(out.to_path_buf()))?;
    let path = out.join(REPORT_FILE);
    // Through a temporary name and a rename: a run killed while writing its report leaves
    // the previous report whole, and the next run writes it again.
    let tmp = out.join(format!(".{REPORT_FILE}.{}", std::process::id()));
    if let Some(due) = crash_point::due(Event::Report) {
        std::fs::write(&tmp, &text.as_bytes()[..text.len() / 2]).map_err(io(tmp.clone()))?;
        due.stop();
    }
    std::fs::write(&tmp, &text).map_err(io(tmp.clone()))?;
    std::fs::rename(&tmp, &path).map_err(io(path.clone()))?;
    let verdicts = table::verdict_tables(&sanity::verdicts(&set));
    if !verdicts.is_empty() {
        let path = out.join(SANITY_TEX_FILE);
        std::fs::write(&path, latex::tables_latex(&verdicts)).map_err(io(path.clone()))?;
    }
    Ok(text)
}

/// An output format of `ticketbench report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `report.md`.
    Md,
    /// `report.tex`, `tex/<table>.tex`, `sanity.tex`.
    Tex,
    /// `results.csv` (tidy) and the merged raw `results.jsonl`.
    Csv,
    /// `plots/<figure>.svg`.
    Svg,
    /// `plots/<figure>.png`.
    Png,
    /// `index.html`.
    Html,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Md,
        Format::Tex,
        Format::Csv,
        Format::Svg,
        Format::Png,
        Format::Html,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Md => "md",
            Format::Tex => "tex",
            Format::Csv => "csv",
            Format::Svg => "svg",
            Format::Png => "png",
            Format::Html => "html",
        }
    }

    /// `md,tex,csv` (or `all`) as formats, in the order given, without repeats.
    pub fn parse_list(s: &str) -> Result<Vec<Format>, ReportError> {
        let mut out: Vec<Format> = Vec::new();
        for part in s.split(',').map(str::trim) {
            let found: Vec<Format> = if part == "all" {
                Format::ALL.to_vec()
            } else {
                let f = Format::ALL
                    .into_iter()
                    .find(|f| f.name() == part)
                    .ok_or_else(|| ReportError::UnknownFormat(part.to_string()))?;
                vec![f]
            };
            for f in found {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "unknown report format `{0}`; valid formats: md, tex, csv, svg, png, html (comma-separated) or all"
    )]
    UnknownFormat(String),
    #[error("`{0}` is not a date; write YYYY-MM-DD")]
    BadDate(String),
    #[error(
        "{path} already holds results that are not among the report's inputs; pass its directory as an input too, or choose another --out"
    )]
    ForeignResults { path: PathBuf },
    #[error("--record-history needs --history FILE")]
    RecordWithoutHistory,
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Plot(#[from] plots::PlotError),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing CSV: {0}")]
    Csv(#[from] ::csv::Error),
}

impl ReportError {
    /// Whether the error is the user's input (exit code 2) rather than a failure.
    pub fn is_bad_input(&self) -> bool {
        match self {
            ReportError::Store(e) => !matches!(e, StoreError::Io { .. }),
            ReportError::History(e) => matches!(e, HistoryError::Parse { .. }),
            ReportError::UnknownFormat(_)
            | ReportError::BadDate(_)
            | ReportError::ForeignResults { .. }
            | ReportError::RecordWithoutHistory => true,
            ReportError::Plot(_) | ReportError::Io { .. } | ReportError::Csv(_) => false,
        }
    }
}

/// What `ticketbench report` writes, and the leaderboard history it reads and updates.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub formats: Vec<Format>,
    /// `history.jsonl` to compare the leaderboard with.
    pub history: Option<PathBuf>,
    /// Append this run's leaderboard to `history`.
    pub record_history: bool,
    /// Commit of this run [default: the results' `provenance.git_commit`].
    pub commit: Option<String>,
    /// Date of this run, `YYYY-MM-DD` [default: today, UTC].
    pub date: Option<String>,
}

/// What a report run produced.
pub struct ReportSummary {
    pub files: Vec<PathBuf>,
    /// The Markdown report, when `md` was asked for.
    pub markdown: Option<String>,
    pub leaderboard: Leaderboard,
    /// The history file the leaderboard was appended to.
    pub recorded: Option<PathBuf>,
}

fn valid_date(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && d.chars()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && (1..=12).contains(&d[5..7].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&d[8..10].parse::<u32>().unwrap_or(0))
}

/// The commit the results were produced at, when they agree on one.
fn results_commit(set: &ResultSet) -> Option<String> {
    let mut commits: Vec<&str> = set
        .records
        .iter()
        .filter_map(|r| r.provenance.git_commit.as_deref())
        .collect();
    commits.sort_unstable();
    commits.dedup();
    match commits.as_slice() {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Writes the report of the results in `dirs` to `out` in every format of `opts`, and
/// reads and updates the leaderboard history. Files under `out/tex/` and `out/plots/`
/// that this report did not write (a previous report's tables) are removed.
pub fn write_reports(
    dirs: &[PathBuf],
    out: &Path,
    opts: &ReportOptions,
) -> Result<ReportSummary, ReportError> {
    if opts.record_history && opts.history.is_none() {
        return Err(ReportError::RecordWithoutHistory);
    }
    if let Some(d) = opts.date.as_ref().filter(|d| !valid_date(d)) {
        return Err(ReportError::BadDate(d.clone()));
    }
    let set = ResultSet::load(dirs)?;
    let raw = out.join(store::RESULTS_FILE);
    let out_is_input = dirs.iter().any(|d| same_dir(d, out));
    if opts.formats.contains(&Format::Csv) && !out_is_input && raw.exists() {
        return Err(ReportError::ForeignResults { path: raw });
    }
    let mut board = Leaderboard::compute(&set);
    let mut recorded = None;
    if let Some(path) = &opts.history {
        let date = opts.date.clone().unwrap_or_else(leaderboard::today);
        let commit = opts
            .commit
            .clone()
            .or_else(|| results_commit(&set))
            .unwrap_or_else(|| "unknown".into());
        board.compare_with(&leaderboard::load_history(path)?, &date, &commit);
        if opts.record_history && !board.entries.is_empty() {
            leaderboard::record_history(path, board.history_entry(&set, &date, &commit))?;
            recorded = Some(path.clone());
        }
    }
    let doc = table::document(&set, Some(&board));
    let mut files = Vec::new();
    let mut write = |path: PathBuf, bytes: &[u8]| -> Result<(), ReportError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ReportError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, bytes).map_err(|source| ReportError::Io {
            path: path.clone(),
            source,
        })?;
        files.push(path);
        Ok(())
    };
    let wants = |f: Format| opts.formats.contains(&f);
    let figures = if wants(Format::Svg) || wants(Format::Png) || wants(Format::Html) {
        plots::figures(&set)
    } else {
        Vec::new()
    };
    let mut svgs: Vec<(String, String)> = Vec::new();
    if wants(Format::Svg) || wants(Format::Html) {
        for fig in &figures {
            svgs.push((fig.id.clone(), plots::svg(fig)?));
        }
    }
    let mut plot_files: Vec<String> = Vec::new();
    let mut png_files: Vec<PathBuf> = Vec::new();
    if wants(Format::Svg) {
        for (id, svg) in &svgs {
            write(
                out.join(PLOTS_DIR).join(format!("{id}.svg")),
                svg.as_bytes(),
            )?;
            plot_files.push(format!("{id}.svg"));
        }
    }
    if wants(Format::Png) {
        let dir = out.join(PLOTS_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| ReportError::Io {
            path: dir.clone(),
            source,
        })?;
        for fig in &figures {
            let path = dir.join(format!("{}.png", fig.id));
            plots::png(fig, &path)?;
            png_files.push(path);
            plot_files.push(format!("{}.png", fig.id));
        }
    }
    let mut markdown = None;
    for format in &opts.formats {
        match format {
            Format::Md => {
                let text = markdown::document_markdown(&doc, &plot_files);
                write(out.join(REPORT_FILE), text.as_bytes())?;
                markdown = Some(text);
            }
            Format::Tex => {
                for t in doc.tables() {
                    write(
                        out.join(TEX_DIR).join(format!("{}.tex", t.id)),
                        latex::table_latex(t).as_bytes(),
                    )?;
                }
                write(
                    out.join(TEX_FILE),
                    latex::document_latex(&doc, &plot_files).as_bytes(),
                )?;
                let verdicts = table::verdict_tables(&sanity::verdicts(&set));
                if !verdicts.is_empty() {
                    write(
                        out.join(SANITY_TEX_FILE),
                        latex::tables_latex(&verdicts).as_bytes(),
                    )?;
                }
            }
            Format::Csv => {
                write(
                    out.join(CSV_FILE),
                    csv::records_csv(&set.records)?.as_bytes(),
                )?;
                if !out_is_input {
                    let mut lines = String::new();
                    for r in &set.records {
                        lines.push_str(&serde_json::to_string(r).expect("records serialize"));
                        lines.push('\n');
                    }
                    write(raw.clone(), lines.as_bytes())?;
                }
            }
            Format::Html => write(
                out.join(HTML_FILE),
                html::document_html(&doc, &svgs).as_bytes(),
            )?,
            Format::Svg | Format::Png => {}
        }
    }
    if !board.entries.is_empty() {
        let entry = board.history_entry(
            &set,
            &opts.date.clone().unwrap_or_else(leaderboard::today),
            &opts
                .commit
                .clone()
                .or_else(|| results_commit(&set))
                .unwrap_or_else(|| "unknown".into()),
        );
        let json = serde_json::to_string_pretty(&entry).expect("history entries serialize");
        write(out.join(LEADERBOARD_FILE), json.as_bytes())?;
    }
    files.extend(png_files);
    remove_stale(&out.join(TEX_DIR), &["tex"], &files);
    remove_stale(&out.join(PLOTS_DIR), &["svg", "png"], &files);
    Ok(ReportSummary {
        files,
        markdown,
        leaderboard: board,
        recorded,
    })
}

/// Removes files of `dir` with one of `extensions` that are not in `keep` (tables and
/// plots of an earlier report into the same directory).
fn remove_stale(dir: &Path, extensions: &[&str], keep: &[PathBuf]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let ours = path
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| extensions.contains(&x));
        if ours && !keep.contains(&path) {
            // Best effort: a file that cannot be removed is only clutter.
            let _ = std::fs::remove_file(&path);
        }
    }
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
