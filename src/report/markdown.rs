//! Markdown rendering of comparison tables (tabled, GitHub-flavoured pipes).

use super::sanity::{self, VerdictCell};
use super::{CellStats, ComparisonTable, Metric, ResultSet, density_text};
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
    if d >= 1.0 {
        "dense (1.0)".into()
    } else {
        format!("d = {}", density_text(d))
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
    let cells = sanity::verdicts(set);
    if !cells.is_empty() {
        out.push_str(&sanity_markdown(set, &cells));
    }
    out
}

/// The (task, model, device) groups of verdict cells, in order, each with its methods ×
/// densities rows and its check columns.
type VerdictGroup<'a> = (
    (String, String, String),
    Vec<(String, f64)>,
    Vec<String>,
    Vec<&'a VerdictCell>,
);

fn verdict_groups(cells: &[VerdictCell]) -> Vec<VerdictGroup<'_>> {
    let mut groups: Vec<VerdictGroup<'_>> = Vec::new();
    for c in cells {
        let key = (c.task.clone(), c.model.clone(), c.device.clone());
        let i = match groups.iter().position(|g| g.0 == key) {
            Some(i) => i,
            None => {
                groups.push((key, Vec::new(), Vec::new(), Vec::new()));
                groups.len() - 1
            }
        };
        let g = &mut groups[i];
        let row = (c.method.clone(), c.density);
        if !g.1.contains(&row) {
            g.1.push(row);
        }
        if !g.2.contains(&c.check) {
            g.2.push(c.check.clone());
        }
        g.3.push(c);
    }
    for g in &mut groups {
        g.2.sort_by_key(|c| sanity::check_rank(c)); // stable: suite rows keep their order
    }
    groups
}

fn find<'a>(
    cells: &[&'a VerdictCell],
    row: &(String, f64),
    check: &str,
) -> Option<&'a VerdictCell> {
    cells
        .iter()
        .find(|c| c.method == row.0 && c.density == row.1 && c.check == check)
        .copied()
}

/// The sanity-check section: one verdict table per task · model · device, then one
/// sentence per method.
fn sanity_markdown(set: &ResultSet, cells: &[VerdictCell]) -> String {
    let mut out = format!(
        "\n## Sanity checks\n\nPer seed s, Δ_s = checked − original (same θ_0, data and data order). Cells: verdict and what it means for this check, mean Δ [95% CI], Holm-adjusted one-sided paired t-test p (H1: the check makes the ticket worse), effect size d_z = mean Δ / sd Δ, (n) seed pairs. Δ is in accuracy points (δ = {}) for classification, for regression the loss factor L_check / L_orig (judged as a log ratio, δ = a {} % change); strong-ticket methods are judged without weight training. **sensitive**: significantly worse after Holm and mean Δ ≤ −δ (the method uses what the check destroys); **insensitive**: TOST equivalence within ±δ at α = {} (any effect of the check is smaller than δ, which does not mean none); **inconclusive**: neither; fewer than 5 seeds are not judged. Holm runs over all judged cells of one table.\n",
        sanity::DELTA_POINTS,
        100.0 * sanity::DELTA_RELATIVE,
        sanity::ALPHA
    );
    for ((task, model, device), rows, checks, mine) in verdict_groups(cells) {
        out.push_str(&format!(
            "\n### {} · {} · {device}\n\n",
            escape(&task),
            escape(&model)
        ));
        let mut builder = Builder::default();
        let mut header = vec!["method".to_string(), "density".to_string()];
        header.extend(checks.iter().cloned());
        builder.push_record(header);
        for row in &rows {
            let mut line = vec![escape(&row.0), density_text(row.1)];
            line.extend(checks.iter().map(|check| {
                find(&mine, row, check).map_or(String::new(), |c| escape(&sanity::cell_text(c)))
            }));
            builder.push_record(line);
        }
        out.push_str(&builder.build().with(Style::markdown()).to_string());
        out.push('\n');
    }
    out.push_str("\n### Per method\n\n");
    for sentence in sanity::method_sentences(set, cells) {
        out.push_str(&format!("- {}\n", escape(&sentence)));
    }
    out
}

/// LaTeX escaping of free text (`_`, `%`, `&`, `#`, `$`, braces).
fn latex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '_' | '%' | '&' | '#' | '$' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '\\' => out.push_str("\\textbackslash{}"),
            _ => out.push(ch),
        }
    }
    out
}

/// The verdict tables as booktabs LaTeX, one `table` per task · model · device.
pub(super) fn sanity_latex(cells: &[VerdictCell]) -> String {
    let mut out =
        String::from("% ticketbench sanity-check verdicts; needs \\usepackage{booktabs}\n");
    for ((task, model, device), rows, checks, mine) in verdict_groups(cells) {
        let cols = "ll".to_string() + &"l".repeat(checks.len());
        out.push_str(&format!(
            "\\begin{{table}}\n\\centering\n\\caption{{Sanity checks on {} ({}, {}): verdict, mean $\\Delta$ [95\\% CI], Holm-adjusted one-sided $p$, $n$ seed pairs.}}\n\\begin{{tabular}}{{{cols}}}\n\\toprule\n",
            latex_escape(&task),
            latex_escape(&model),
            latex_escape(&device)
        ));
        let mut header = vec!["method".to_string(), "$d$".to_string()];
        header.extend(checks.iter().map(|c| latex_escape(c)));
        out.push_str(&format!("{} \\\\\n\\midrule\n", header.join(" & ")));
        for row in &rows {
            let mut line = vec![latex_escape(&row.0), density_text(row.1)];
            line.extend(checks.iter().map(|check| {
                find(&mine, row, check)
                    .map_or(String::new(), |c| latex_escape(&sanity::cell_text(c)))
            }));
            out.push_str(&format!("{} \\\\\n", line.join(" & ")));
        }
        out.push_str("\\bottomrule\n\\end{tabular}\n\\end{table}\n\n");
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
