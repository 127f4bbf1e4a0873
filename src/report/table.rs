//! The one table model every writer renders (Markdown, LaTeX, HTML), and the document that
//! orders tables into sections.
//!
//! A [`Table`] holds *values*, not text: statistics cells keep their [`CellStats`] and
//! [`Metric`], so every writer rounds the same number with the same [`format_value`] and
//! marks the same best and second-best cells. Writers only decide markup (`**…**`,
//! `\textbf{…}`, `<b>…</b>`) and escaping. [`document`] builds the whole report from a
//! [`ResultSet`]: the comparison tables of [`ResultSet::tables`], recovery metrics and layer
//! densities per (task, model, device), the sanity-check verdicts and the leaderboard.

use super::leaderboard::Leaderboard;
use super::sanity::{self, VerdictCell};
use super::{CellStats, ComparisonTable, Metric, ResultSet, density_text};
use crate::runner::job::JobRecord;
use std::collections::BTreeSet;

/// Best or second-best value of its column (within its rank group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    None,
    Best,
    Second,
}

/// One cell of a [`Table`].
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    /// Free text (labels, verdicts).
    Text(String),
    /// A preformatted number: `(value for sorting, text)`.
    Number(f64, String),
    /// Mean ± sample std over seeds with n, formatted per metric.
    Stats {
        stats: CellStats,
        metric: Metric,
        mark: Mark,
    },
}

/// A table as every writer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Slug, unique within a report: LaTeX label, file and plot name, HTML anchor.
    pub id: String,
    /// Heading, e.g. `circle · pns-host · cpu · recovery`.
    pub title: String,
    /// Paragraphs shown before the table (Markdown, HTML) or after the caption (LaTeX).
    pub notes: Vec<String>,
    /// What a cell holds, with units and direction (`higher is better`).
    pub caption: String,
    /// Seeds of the table: the n of a full cell (writers that show n only where it differs
    /// from this, as LaTeX does, need it).
    pub seeds: Option<usize>,
    /// Over which cells best and second best are marked (`per density`), when any are.
    pub rank_scope: Option<String>,
    /// Leading columns that name a row (method, density); the rest hold values.
    pub label_columns: usize,
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Plot of the same data (file stem under `plots/`), when there is one.
    pub plot: Option<String>,
}

impl Table {
    /// A table without seeds, marks or plot (verdicts, the leaderboard).
    pub fn plain(
        id: String,
        title: String,
        caption: String,
        label_columns: usize,
        header: Vec<String>,
        rows: Vec<Vec<Cell>>,
    ) -> Table {
        Table {
            id,
            title,
            notes: Vec::new(),
            caption,
            seeds: None,
            rank_scope: None,
            label_columns,
            header,
            rows,
            plot: None,
        }
    }

    /// Marks the best and second-best statistics cell of each column `c ≥ first`, comparing
    /// only rows with equal `group(row)` (distinct means: a tie for best is bold twice).
    fn mark_columns(&mut self, first: usize, group: impl Fn(&[Cell]) -> String) {
        let columns = self.header.len();
        for c in first..columns {
            let groups: BTreeSet<String> = self.rows.iter().map(|r| group(r)).collect();
            for g in groups {
                let mut means: Vec<f64> = Vec::new();
                let mut higher = true;
                for row in self.rows.iter().filter(|r| group(r) == g) {
                    if let Some(Cell::Stats { stats, metric, .. }) = row.get(c)
                        && stats.n > 0
                        && stats.mean.is_finite()
                    {
                        means.push(stats.mean);
                        higher = metric.higher_is_better();
                    }
                }
                means.sort_by(|a, b| {
                    if higher {
                        b.total_cmp(a)
                    } else {
                        a.total_cmp(b)
                    }
                });
                means.dedup();
                for row in self.rows.iter_mut().filter(|r| group(r) == g) {
                    if let Some(Cell::Stats { stats, mark, .. }) = row.get_mut(c)
                        && stats.n > 0
                    {
                        // One cell, or all equal: nothing stands out.
                        *mark = if means.len() < 2 {
                            Mark::None
                        } else if means.first() == Some(&stats.mean) {
                            Mark::Best
                        } else if means.get(1) == Some(&stats.mean) {
                            Mark::Second
                        } else {
                            Mark::None
                        };
                    }
                }
            }
        }
    }
}

/// A heading with its text, table and bullets.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// 2 for a top-level section, 3 below it.
    pub level: u8,
    pub heading: String,
    pub paragraphs: Vec<String>,
    pub table: Option<Table>,
    pub bullets: Vec<String>,
}

/// The whole report, writer-independent. Free text may use `**bold**` and `` `code` ``.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub title: String,
    pub paragraphs: Vec<String>,
    pub sections: Vec<Section>,
}

impl Document {
    /// Every table, in order.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.sections.iter().filter_map(|s| s.table.as_ref())
    }
}

/// A number in the unit of `metric`, rounded as every format shows it.
pub fn format_value(metric: Metric, v: f64) -> String {
    let v = v + 0.0; // −0.0 reads as 0
    match metric {
        Metric::AccuracyPercent => format!("{v:.2}"),
        Metric::AccuracyGain => format!("{v:+.2}"),
        Metric::LogMseRatio => format!("{v:+.3}"),
        Metric::Mse => format!("{v:.3e}"),
        Metric::Lift => format!("{v:.2}"),
        // Tiny tickets in big masks give values far below 0.01: keep their digits.
        Metric::Jaccard | Metric::Fraction | Metric::Distance | Metric::LayerDensity
            if v != 0.0 && v.abs() < 0.01 =>
        {
            format!("{v:.1e}")
        }
        Metric::Jaccard | Metric::Fraction | Metric::Distance | Metric::LayerDensity => {
            format!("{v:.3}")
        }
    }
}

/// A spread has no sign, even where the values do.
pub fn format_spread(metric: Metric, s: f64) -> String {
    match metric {
        Metric::AccuracyGain => format!("{s:.2}"),
        Metric::LogMseRatio => format!("{s:.3}"),
        m => format_value(m, s),
    }
}

/// Free text with `**bold**` and `` `code` `` spans in a writer's markup: `escape` for the
/// text, `code` and `bold` wrap an already escaped span.
pub(super) fn render_inline(
    s: &str,
    escape: fn(&str) -> String,
    code: fn(String) -> String,
    bold: fn(String) -> String,
) -> String {
    let mut out = String::new();
    for (i, part) in s.split("**").enumerate() {
        let mut inner = String::new();
        for (j, piece) in part.split('`').enumerate() {
            if j % 2 == 1 {
                inner.push_str(&code(escape(piece)));
            } else {
                inner.push_str(&escape(piece));
            }
        }
        out.push_str(&if i % 2 == 1 { bold(inner) } else { inner });
    }
    out
}

/// How a writer marks up a statistics cell.
pub(super) struct Markup {
    /// The ± sign (`±`, `$\pm$`).
    pub pm: &'static str,
    pub bold: fn(&str) -> String,
    pub second: fn(&str) -> String,
    /// `Some(seeds)`: show `(n)` only when n differs from `seeds`; `None`: always.
    pub n_only_if_not: Option<usize>,
}

/// `mean ± std (n)` with its mark, or `diverged (k)`.
pub(super) fn stats_text(metric: Metric, cell: &CellStats, mark: Mark, m: &Markup) -> String {
    if cell.n == 0 {
        return format!("diverged ({})", cell.diverged);
    }
    let mut text = format_value(metric, cell.mean);
    if let Some(s) = cell.std {
        text = format!("{text} {} {}", m.pm, format_spread(metric, s));
    }
    text = match mark {
        Mark::Best => (m.bold)(&text),
        Mark::Second => (m.second)(&text),
        Mark::None => text,
    };
    if m.n_only_if_not != Some(cell.n) {
        text = format!("{text} ({})", cell.n);
    }
    if cell.diverged > 0 {
        text = format!("{text}, {} diverged", cell.diverged);
    }
    text
}

fn density_header(d: f64) -> String {
    if d >= 1.0 {
        "dense (1.0)".into()
    } else {
        format!("d = {}", density_text(d))
    }
}

/// `circle-pns-host-cpu-recovery`: lower-case ASCII letters, digits and dashes.
pub fn slug(parts: &[&str]) -> String {
    let mut out = String::new();
    for ch in parts.join("-").chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// The title of a table about (task, model, device), with an optional view.
fn group_title(task: &str, model: &str, device: &str, view: Option<&str>) -> String {
    let view = view.map_or(String::new(), |v| format!(" · {v}"));
    format!("{task} · {model} · {device}{view}")
}

impl ComparisonTable {
    /// The comparison as a [`Table`]: methods × densities, best and second best marked per
    /// density.
    pub fn to_table(&self, set: &ResultSet) -> Table {
        let view = self.view.as_deref();
        let mut notes = Vec::new();
        if self.view.is_none()
            && let Some((density, target)) = set.planted_reference(self)
        {
            let value = format_value(self.metric, target.mean);
            let spread = target.std.map_or(String::new(), |s| {
                format!(" ± {}", format_value(self.metric, s))
            });
            notes.push(format!(
                "Planted host: the planted ticket has density {density:.3e}; the target network itself scores {value}{spread} ({} seeds). Row `planted` is that ticket trained from the planted host.",
                target.n
            ));
        }
        let mut header = vec!["method".to_string()];
        header.extend(self.densities.iter().map(|&d| density_header(d)));
        let rows = self
            .rows
            .iter()
            .map(|(method, cells)| {
                std::iter::once(Cell::Text(method.clone()))
                    .chain(cells.iter().map(|c| match c {
                        Some(stats) => Cell::Stats {
                            stats: stats.clone(),
                            metric: self.metric,
                            mark: Mark::None,
                        },
                        None => Cell::Empty,
                    }))
                    .collect()
            })
            .collect();
        let mut table = Table {
            id: slug(&[&self.task, &self.model, &self.device, view.unwrap_or("")]),
            title: group_title(&self.task, &self.model, &self.device, view),
            notes,
            caption: self.caption.clone(),
            seeds: Some(self.seeds),
            rank_scope: Some("per density".into()),
            label_columns: 1,
            header,
            rows,
            plot: None,
        };
        table.mark_columns(1, |_| String::new());
        table
    }
}

/// The original (unchecked) records of one (task, model, device), in result order.
fn group_records<'a>(set: &'a ResultSet, t: &ComparisonTable) -> Vec<&'a JobRecord> {
    set.records
        .iter()
        .filter(|r| r.task_label == t.task && r.model == t.model && r.device == t.device)
        .filter(|r| r.check.is_none())
        .collect()
}

/// The (method, density) rows of `recs`, in record order, each with its records.
fn method_density_rows<'a>(recs: &[&'a JobRecord]) -> Vec<((String, f64), Vec<&'a JobRecord>)> {
    let mut rows: Vec<((String, f64), Vec<&JobRecord>)> = Vec::new();
    for r in recs {
        let key = (r.method_label.clone(), r.density);
        match rows.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(r),
            None => rows.push((key, vec![r])),
        }
    }
    // Densities descending within a method, methods in first-appearance order.
    let order: Vec<String> =
        rows.iter()
            .map(|((m, _), _)| m.clone())
            .fold(Vec::new(), |mut acc, m| {
                if !acc.contains(&m) {
                    acc.push(m);
                }
                acc
            });
    rows.sort_by(|((ma, da), _), ((mb, db), _)| {
        let pa = order.iter().position(|m| m == ma);
        let pb = order.iter().position(|m| m == mb);
        pa.cmp(&pb).then(db.total_cmp(da))
    });
    rows
}

fn stats_cell(values: &[f64], metric: Metric) -> Cell {
    match CellStats::from_values(values, 0) {
        Some(stats) => Cell::Stats {
            stats,
            metric,
            mark: Mark::None,
        },
        None => Cell::Empty,
    }
}

/// The recovery columns: header, metric, value of a record.
type RecoveryColumn = (&'static str, Metric, fn(&JobRecord) -> Option<f64>);

const RECOVERY_COLUMNS: [RecoveryColumn; 8] = [
    ("Jaccard", Metric::Jaccard, |r| {
        r.planted.as_ref().map(|p| p.recovery.jaccard)
    }),
    ("precision", Metric::Fraction, |r| {
        r.planted.as_ref().map(|p| p.recovery.precision)
    }),
    ("recall", Metric::Fraction, |r| {
        r.planted.as_ref().map(|p| p.recovery.recall)
    }),
    ("recall lift", Metric::Lift, |r| {
        r.planted.as_ref().map(|p| p.recovery.recall_lift)
    }),
    ("neuron Jaccard", Metric::Fraction, |r| {
        r.planted.as_ref().map(|p| p.recovery.neuron_jaccard)
    }),
    ("path recall", Metric::Fraction, |r| {
        r.planted.as_ref().map(|p| p.recovery.path_recall)
    }),
    ("layer-budget TV", Metric::Distance, |r| {
        r.planted.as_ref().map(|p| p.recovery.layer_density_tv)
    }),
    ("score AUROC", Metric::Fraction, |r| {
        r.planted.as_ref().and_then(|p| p.recovery.score_auroc)
    }),
];

/// Recovery metrics of every method × density on a planted host (planting.md §4.7); best
/// and second best per column among rows of the same density.
fn recovery_table(set: &ResultSet, t: &ComparisonTable) -> Option<Table> {
    let recs: Vec<&JobRecord> = group_records(set, t)
        .into_iter()
        .filter(|r| r.planted.is_some() && r.method != "planted" && r.method != "dense")
        .collect();
    if recs.is_empty() {
        return None;
    }
    let rows_of = method_density_rows(&recs);
    let columns: Vec<&RecoveryColumn> = RECOVERY_COLUMNS
        .iter()
        .filter(|(_, _, f)| recs.iter().any(|r| f(r).is_some()))
        .collect();
    let mut header = vec!["method".to_string(), "density".to_string()];
    header.extend(columns.iter().map(|(h, _, _)| h.to_string()));
    let rows = rows_of
        .iter()
        .map(|((method, density), rs)| {
            let mut row = vec![
                Cell::Text(method.clone()),
                Cell::Text(density_text(*density)),
            ];
            row.extend(columns.iter().map(|(_, metric, f)| {
                let values: Vec<f64> = rs.iter().filter_map(|r| f(r)).collect();
                stats_cell(&values, *metric)
            }));
            row
        })
        .collect();
    let mut table = Table {
        id: slug(&[&t.task, &t.model, &t.device, "recovery-metrics"]),
        title: group_title(&t.task, &t.model, &t.device, Some("recovery metrics")),
        notes: Vec::new(),
        caption: "recovery of the planted ticket P by the found mask F (planting.md §4.7): Jaccard |F∩P|/|F∪P|, precision |F∩P|/|F|, recall |F∩P|/|P|, recall lift = recall / density (1 for a random mask), neuron Jaccard of alive hidden neurons, path recall (planted input→output paths kept whole), layer-budget TV = ½ Σ_l | |F_l|/|F| − |P_l|/|P| | (0 = the planted layer budget; lower is better), score AUROC of planted vs other weights (methods with scores); all others higher is better".into(),
        seeds: Some(t.seeds),
        rank_scope: Some("per column among rows of the same density".into()),
        label_columns: 2,
        header,
        rows,
        plot: None,
    };
    table.mark_columns(2, |row| match &row[1] {
        Cell::Text(d) => d.clone(),
        _ => String::new(),
    });
    Some(table)
}

/// Mean per-layer density of every method × density (the layer budget each method picks).
fn layer_density_table(set: &ResultSet, t: &ComparisonTable) -> Option<Table> {
    let recs: Vec<&JobRecord> = group_records(set, t)
        .into_iter()
        .filter(|r| r.method != "dense" && !r.layer_densities.is_empty())
        .collect();
    let layers = recs.iter().map(|r| r.layer_densities.len()).max()?;
    if layers < 2 {
        return None;
    }
    let widths = recs[0].widths.clone();
    let mut header = vec!["method".to_string(), "density".to_string()];
    header.extend(
        (0..layers).map(|l| match (widths.get(l), widths.get(l + 1)) {
            (Some(i), Some(o)) => format!("layer {} ({i}→{o})", l + 1),
            _ => format!("layer {}", l + 1),
        }),
    );
    let rows = method_density_rows(&recs)
        .iter()
        .map(|((method, density), rs)| {
            let mut row = vec![
                Cell::Text(method.clone()),
                Cell::Text(density_text(*density)),
            ];
            row.extend((0..layers).map(|l| {
                let values: Vec<f64> = rs
                    .iter()
                    .filter_map(|r| r.layer_densities.get(l).copied())
                    .collect();
                stats_cell(&values, Metric::LayerDensity)
            }));
            row
        })
        .collect();
    Some(Table {
        id: slug(&[&t.task, &t.model, &t.device, "layer-densities"]),
        title: group_title(&t.task, &t.model, &t.device, Some("layer densities")),
        notes: Vec::new(),
        caption: "fraction of each layer's weights the ticket keeps (the layer budget the method chose; the requested density is the overall fraction)".into(),
        seeds: Some(t.seeds),
        rank_scope: None,
        label_columns: 2,
        header,
        rows,
        plot: Some(slug(&[&t.task, &t.model, &t.device, "layer-densities"])),
    })
}

/// The sanity-check verdict tables, one per (task, model, device): rows method × density,
/// one column per check.
pub(super) fn verdict_tables(cells: &[VerdictCell]) -> Vec<Table> {
    let mut groups: Vec<(String, String, String)> = Vec::new();
    for c in cells {
        let key = (c.task.clone(), c.model.clone(), c.device.clone());
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    groups
        .into_iter()
        .map(|(task, model, device)| {
            let mine: Vec<&VerdictCell> = cells
                .iter()
                .filter(|c| c.task == task && c.model == model && c.device == device)
                .collect();
            let mut rows: Vec<(String, f64)> = Vec::new();
            let mut checks: Vec<String> = Vec::new();
            for c in &mine {
                let row = (c.method.clone(), c.density);
                if !rows.contains(&row) {
                    rows.push(row);
                }
                if !checks.contains(&c.check) {
                    checks.push(c.check.clone());
                }
            }
            checks.sort_by_key(|c| sanity::check_rank(c)); // stable: suite rows keep their order
            let mut header = vec!["method".to_string(), "density".to_string()];
            header.extend(checks.iter().cloned());
            let rows = rows
                .iter()
                .map(|(method, density)| {
                    let mut line = vec![Cell::Text(method.clone()), Cell::Text(density_text(*density))];
                    line.extend(checks.iter().map(|check| {
                        mine.iter()
                            .find(|c| c.method == *method && c.density == *density && c.check == *check)
                            .map_or(Cell::Empty, |c| Cell::Text(sanity::cell_text(c)))
                    }));
                    line
                })
                .collect();
            Table::plain(
                slug(&[&task, &model, &device, "sanity"]),
                group_title(&task, &model, &device, None),
                "sanity-check verdicts: verdict and its meaning, mean Δ [95% CI], Holm-adjusted one-sided p, effect size d_z, (n) seed pairs".into(),
                2,
                header,
                rows,
            )
        })
        .collect()
}

/// The report's introduction to the sanity-check section.
fn sanity_intro() -> String {
    format!(
        "Per seed s, Δ_s = checked − original (same θ_0, data and data order). Cells: verdict and what it means for this check, mean Δ [95% CI], Holm-adjusted one-sided paired t-test p (H1: the check makes the ticket worse), effect size d_z = mean Δ / sd Δ, (n) seed pairs. Δ is in accuracy points (δ = {}) for classification, for regression the loss factor L_check / L_orig (judged as a log ratio, δ = a {} % change); strong-ticket methods are judged without weight training. **sensitive**: significantly worse after Holm and mean Δ ≤ −δ (the method uses what the check destroys); **insensitive**: TOST equivalence within ±δ at α = {} (any effect of the check is smaller than δ, which does not mean none); **inconclusive**: neither; fewer than 5 seeds are not judged. Holm runs over all judged cells of one table.",
        sanity::DELTA_POINTS,
        100.0 * sanity::DELTA_RELATIVE,
        sanity::ALPHA
    )
}

/// The whole report of `set`, with the leaderboard when one could be computed.
pub fn document(set: &ResultSet, leaderboard: Option<&Leaderboard>) -> Document {
    let suites: BTreeSet<&str> = set.records.iter().map(|r| r.suite.as_str()).collect();
    let versions: BTreeSet<&str> = set.records.iter().map(|r| r.version.as_str()).collect();
    let mut paragraphs = vec![format!(
        "{} results from {}; ticketbench {}.",
        set.records.len(),
        set.sources
            .iter()
            .map(|p| format!("`{}`", p.display()))
            .collect::<Vec<_>>()
            .join(", "),
        versions.into_iter().collect::<Vec<_>>().join(", "),
    )];
    if !set.bad_lines.is_empty() {
        paragraphs.push(format!(
            "{} unreadable result lines were skipped (truncated by a killed run?).",
            set.bad_lines.len()
        ));
    }
    let mut sections = Vec::new();
    if let Some(board) = leaderboard.filter(|b| !b.entries.is_empty()) {
        sections.push(Section {
            level: 2,
            heading: "Leaderboard".into(),
            paragraphs: vec![board.explanation()],
            table: Some(board.table()),
            bullets: Vec::new(),
        });
    }
    let tables = set.tables();
    let table_section = |table: Table| Section {
        level: 2,
        heading: table.title.clone(),
        paragraphs: Vec::new(),
        table: Some(table),
        bullets: Vec::new(),
    };
    for (i, t) in tables.iter().enumerate() {
        let mut table = t.to_table(set);
        if t.view.is_none() || t.view.as_deref() == Some("recovery") {
            table.plot = Some(table.id.clone());
        }
        sections.push(table_section(table));
        let last_of_group = tables
            .get(i + 1)
            .is_none_or(|n| (&n.task, &n.model, &n.device) != (&t.task, &t.model, &t.device));
        if last_of_group {
            sections.extend(recovery_table(set, t).map(table_section));
            sections.extend(layer_density_table(set, t).map(table_section));
        }
    }
    let cells = sanity::verdicts(set);
    if !cells.is_empty() {
        sections.push(Section {
            level: 2,
            heading: "Sanity checks".into(),
            paragraphs: vec![sanity_intro()],
            table: None,
            bullets: Vec::new(),
        });
        for table in verdict_tables(&cells) {
            sections.push(Section {
                level: 3,
                heading: table.title.clone(),
                paragraphs: Vec::new(),
                table: Some(table),
                bullets: Vec::new(),
            });
        }
        sections.push(Section {
            level: 3,
            heading: "Per method".into(),
            paragraphs: Vec::new(),
            table: None,
            bullets: sanity::method_sentences(set, &cells),
        });
    }
    Document {
        title: format!(
            "ticketbench report: {}",
            suites.into_iter().collect::<Vec<_>>().join(", ")
        ),
        paragraphs,
        sections,
    }
}

/// An accuracy cell `mean ± 0.5 (n)` for the writers' tests.
#[cfg(test)]
pub(super) fn accuracy_cell(mean: f64, n: usize, mark: Mark) -> Cell {
    Cell::Stats {
        stats: CellStats {
            mean,
            std: Some(0.5),
            n,
            diverged: 0,
        },
        metric: Metric::AccuracyPercent,
        mark,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(mean: f64, n: usize) -> Cell {
        accuracy_cell(mean, n, Mark::None)
    }

    fn mark(c: &Cell) -> Mark {
        match c {
            Cell::Stats { mark, .. } => *mark,
            _ => Mark::None,
        }
    }

    #[test]
    fn best_and_second_per_column_and_group() {
        let mut t = Table {
            id: "t".into(),
            title: String::new(),
            notes: Vec::new(),
            caption: String::new(),
            seeds: Some(3),
            rank_scope: None,
            label_columns: 2,
            header: vec!["m".into(), "g".into(), "x".into()],
            rows: vec![
                vec![
                    Cell::Text("a".into()),
                    Cell::Text("1".into()),
                    stats(90.0, 3),
                ],
                vec![
                    Cell::Text("b".into()),
                    Cell::Text("1".into()),
                    stats(95.0, 3),
                ],
                vec![
                    Cell::Text("c".into()),
                    Cell::Text("1".into()),
                    stats(80.0, 3),
                ],
                vec![
                    Cell::Text("d".into()),
                    Cell::Text("2".into()),
                    stats(10.0, 3),
                ],
            ],
            plot: None,
        };
        t.mark_columns(2, |r| match &r[1] {
            Cell::Text(g) => g.clone(),
            _ => unreachable!(),
        });
        let marks: Vec<Mark> = t.rows.iter().map(|r| mark(&r[2])).collect();
        // Group "2" has a single cell: nothing to compare it with.
        assert_eq!(marks, [Mark::Second, Mark::Best, Mark::None, Mark::None]);
    }

    #[test]
    fn slugs_are_ascii() {
        assert_eq!(
            slug(&["relu[noise_std=0.02]", "pns host", "cpu", "vs. random"]),
            "relu-noise-std-0-02-pns-host-cpu-vs-random"
        );
    }
}
