//! Markdown rendering of comparison tables (tabled, GitHub-flavoured pipes).

use super::{CellStats, ComparisonTable, Metric, ResultSet};
use std::collections::BTreeSet;
use tabled::builder::Builder;
use tabled::settings::Style;

/// A pipe inside a cell would end the cell: escape it.
fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}

fn format_value(metric: Metric, v: f64) -> String {
    match metric {
        Metric::AccuracyPercent => format!("{v:.2}"),
        Metric::AccuracyGain => format!("{v:+.2}"),
        Metric::LogMseRatio => format!("{v:+.3}"),
        Metric::Mse => format!("{v:.3e}"),
        // Tiny tickets in big masks give Jaccard values far below 0.01: keep their digits.
        Metric::Jaccard if v != 0.0 && v.abs() < 0.01 => format!("{v:.1e}"),
        Metric::Jaccard => format!("{v:.3}"),
    }
}

/// `mean ± std (n)`; bold when the mean is the column's best.
pub(super) fn format_cell(metric: Metric, cell: &CellStats, best: Option<f64>) -> String {
    if cell.n == 0 {
        return format!("diverged ({})", cell.diverged);
    }
    let mut text = format_value(metric, cell.mean);
    if let Some(s) = cell.std {
        // A spread has no sign, even where the values do.
        let spread = match metric {
            Metric::AccuracyGain => format!("{s:.2}"),
            Metric::LogMseRatio => format!("{s:.3}"),
            m => format_value(m, s),
        };
        text = format!("{text} ± {spread}");
    }
    if best == Some(cell.mean) {
        text = format!("**{text}**");
    }
    text = format!("{text} ({})", cell.n);
    if cell.diverged > 0 {
        text = format!("{text}, {} diverged", cell.diverged);
    }
    text
}

fn density_header(d: f64) -> String {
    let short = d.to_string();
    if d >= 1.0 {
        "dense (1.0)".into()
    } else if short.len() <= 6 {
        format!("d = {short}")
    } else {
        format!("d = {d:.3e}")
    }
}

pub(super) fn table_markdown(table: &ComparisonTable) -> String {
    let mut builder = Builder::default();
    let mut header = vec!["method".to_string()];
    header.extend(table.densities.iter().map(|&d| density_header(d)));
    builder.push_record(header);
    let best = table.best_per_column();
    for (method, cells) in &table.rows {
        let mut row = vec![escape(method)];
        row.extend(cells.iter().zip(&best).map(|(c, b)| {
            c.as_ref()
                .map_or(String::new(), |c| format_cell(table.metric, c, *b))
        }));
        builder.push_record(row);
    }
    builder.build().with(Style::markdown()).to_string()
}

/// The whole report: header, then one section per table.
pub fn render_markdown(set: &ResultSet) -> String {
    let suites: BTreeSet<&str> = set.records.iter().map(|r| r.suite.as_str()).collect();
    let versions: BTreeSet<&str> = set.records.iter().map(|r| r.version.as_str()).collect();
    let mut out = format!(
        "# ticketbench report: {}\n\n{} results from {}; ticketbench {}.\n",
        suites.into_iter().collect::<Vec<_>>().join(", "),
        set.records.len(),
        set.sources
            .iter()
            .map(|p| format!("`{}`", p.display()))
            .collect::<Vec<_>>()
            .join(", "),
        versions.into_iter().collect::<Vec<_>>().join(", "),
    );
    if !set.bad_lines.is_empty() {
        out.push_str(&format!(
            "\n{} unreadable result lines were skipped (truncated by a killed run?).\n",
            set.bad_lines.len()
        ));
    }
    for table in set.tables() {
        let view = table
            .view
            .as_ref()
            .map_or(String::new(), |v| format!(" · {}", escape(v)));
        out.push_str(&format!(
            "\n## {} · {} · {}{view}\n\n",
            escape(&table.task),
            escape(&table.model),
            table.device
        ));
        if table.view.is_none()
            && let Some((density, target)) = set.planted_reference(&table)
        {
            let value = format_value(table.metric, target.mean);
            let spread = target.std.map_or(String::new(), |s| {
                format!(" ± {}", format_value(table.metric, s))
            });
            out.push_str(&format!(
                "Planted host: the planted ticket has density {density:.3e}; the target network itself scores {value}{spread} ({} seeds). Row `planted` is that ticket trained from the planted host.\n\n",
                target.n
            ));
        }
        out.push_str(&format!(
            "Cells: {}; mean ± sample std over seeds, (n) finished runs; **bold**: best mean per density. Seeds: {}.\n\n",
            table.caption,
            table.seeds
        ));
        out.push_str(&table_markdown(&table));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ComparisonTable {
        let c = |mean, n| {
            Some(CellStats {
                mean,
                std: Some(0.5),
                n,
                diverged: 0,
            })
        };
        ComparisonTable {
            view: None,
            caption: String::new(),
            task: "circle".into(),
            model: "mlp".into(),
            device: "cpu".into(),
            metric: Metric::AccuracyPercent,
            densities: vec![1.0, 0.1],
            rows: vec![
                ("dense".into(), vec![c(97.0, 3), None]),
                ("a|b".into(), vec![None, c(90.0, 3)]),
                ("snip".into(), vec![None, c(91.0, 2)]),
            ],
            seeds: 3,
        }
    }

    #[test]
    fn bold_best_escape_pipes_and_blank_missing() {
        let md = table_markdown(&table());
        assert!(md.contains("| a\\|b "), "{md}");
        assert!(md.contains("**91.00 ± 0.50** (2)"), "{md}");
        assert!(
            md.contains("90.00 ± 0.50 (3)") && !md.contains("**90.00"),
            "{md}"
        );
        assert!(md.contains("**97.00 ± 0.50** (3)"), "{md}");
        assert!(md.lines().nth(1).unwrap().starts_with("|--"), "{md}");
    }

    #[test]
    fn lower_is_better_for_mse() {
        let mut t = table();
        t.metric = Metric::Mse;
        assert_eq!(t.best_per_column()[1], Some(90.0));
    }
}
