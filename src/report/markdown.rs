//! Markdown writer of a [`Document`] (tabled, GitHub-flavoured pipes).

use super::table::{Cell, Document, Markup, Table, stats_text};
use tabled::builder::Builder;
use tabled::settings::Style;

/// A pipe inside a cell would end the cell: escape it.
fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}

const MARKUP: Markup = Markup {
    pm: "±",
    bold: |s| format!("**{s}**"),
    // GitHub renders `<ins>` as underlined text.
    second: |s| format!("<ins>{s}</ins>"),
    n_only_if_not: None,
};

fn cell_text(cell: &Cell) -> String {
    match cell {
        Cell::Empty => String::new(),
        Cell::Text(t) | Cell::Number(_, t) => escape(t),
        Cell::Stats {
            stats,
            metric,
            mark,
        } => stats_text(*metric, stats, *mark, &MARKUP),
    }
}

pub(super) fn table_markdown(table: &Table) -> String {
    let mut builder = Builder::default();
    builder.push_record(table.header.iter().map(|h| escape(h)));
    for row in &table.rows {
        builder.push_record(row.iter().map(cell_text));
    }
    builder.build().with(Style::markdown()).to_string()
}

/// The legend line of a table of statistics: what a cell holds and what the marks mean.
fn cells_line(table: &Table) -> Option<String> {
    let seeds = table.seeds?;
    let marks = table.rank_scope.as_ref().map_or(String::new(), |scope| {
        format!("; **bold**: best mean, <ins>underlined</ins>: second best, {scope}")
    });
    Some(format!(
        "Cells: {}; mean ± sample std over seeds, (n) finished runs{marks}. Seeds: {seeds}.",
        table.caption
    ))
}

/// The whole document as Markdown; `plots` names the plot files written beside it
/// (`plots/<id>.svg`), which are linked under their tables.
pub fn document_markdown(doc: &Document, plots: &[String]) -> String {
    let mut out = format!("# {}\n\n{}\n", doc.title, doc.paragraphs.join("\n\n"));
    for section in &doc.sections {
        let hashes = "#".repeat(section.level.into());
        out.push_str(&format!("\n{hashes} {}\n", escape(&section.heading)));
        for p in &section.paragraphs {
            out.push_str(&format!("\n{p}\n"));
        }
        if let Some(table) = &section.table {
            for note in &table.notes {
                out.push_str(&format!("\n{note}\n"));
            }
            if let Some(line) = cells_line(table) {
                out.push_str(&format!("\n{line}\n"));
            }
            out.push_str(&format!("\n{}\n", table_markdown(table)));
            if let Some(file) = table
                .plot
                .as_ref()
                .and_then(|id| plots.iter().find(|p| p.starts_with(&format!("{id}."))))
            {
                out.push_str(&format!("\n![{}](plots/{file})\n", escape(&table.title)));
            }
        }
        if !section.bullets.is_empty() {
            out.push('\n');
            for b in &section.bullets {
                out.push_str(&format!("- {}\n", escape(b)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::table::{Mark, accuracy_cell as stats};

    #[test]
    fn marks_escape_pipes_and_blank_missing() {
        let table = Table {
            id: "t".into(),
            title: "t".into(),
            notes: Vec::new(),
            caption: String::new(),
            seeds: Some(3),
            rank_scope: None,
            label_columns: 1,
            header: vec!["method".into(), "d = 0.1".into()],
            rows: vec![
                vec![Cell::Text("a|b".into()), stats(90.0, 3, Mark::Second)],
                vec![Cell::Text("snip".into()), stats(91.0, 2, Mark::Best)],
                vec![Cell::Text("x".into()), Cell::Empty],
            ],
            plot: None,
        };
        let md = table_markdown(&table);
        assert!(md.contains("| a\\|b "), "{md}");
        assert!(md.contains("**91.00 ± 0.50** (2)"), "{md}");
        assert!(md.contains("<ins>90.00 ± 0.50</ins> (3)"), "{md}");
        assert!(md.lines().nth(1).unwrap().starts_with("|--"), "{md}");
        let last: Vec<&str> = md
            .lines()
            .last()
            .unwrap()
            .split('|')
            .map(str::trim)
            .collect();
        assert_eq!(last, ["", "x", "", ""], "{md}");
    }
}
