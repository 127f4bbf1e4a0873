//! LaTeX writer (booktabs) of the [`Table`] model: one table per file under `tex/`, ready
//! to `\input` into a paper, and `report.tex`, a standalone document that inputs them all
//! (what the pdflatex test compiles).
//!
//! Tables need `\usepackage{booktabs,graphicx,array,longtable}`: a table that fits on a
//! page is a `table` float, scaled to the line width with `\resizebox` when wider; a table
//! of more than 40 rows, or of long text cells (verdicts), is a `longtable` that breaks
//! across pages with its header repeated, text wrapped in `p` columns, three text columns
//! per part. Text is escaped, including the Unicode the reports use (`±`, `·`, `Δ`, `∩`,
//! …), so the files compile with pdflatex and any font encoding.

use super::table::{Cell, Document, Markup, Table, render_inline, stats_text};

/// Escapes LaTeX specials and maps the report's Unicode symbols to LaTeX.
pub fn latex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        let rep: &str = match ch {
            '_' => "\\_",
            '%' => "\\%",
            '&' => "\\&",
            '#' => "\\#",
            '$' => "\\$",
            '{' => "\\{",
            '}' => "\\}",
            '\\' => "\\textbackslash{}",
            '~' => "\\textasciitilde{}",
            '^' => "\\textasciicircum{}",
            '<' => "\\textless{}",
            '>' => "\\textgreater{}",
            '|' => "\\textbar{}",
            '±' => "$\\pm$",
            '×' => "$\\times$",
            '·' => "$\\cdot$",
            '−' => "$-$",
            '≤' => "$\\le$",
            '≥' => "$\\ge$",
            '≈' => "$\\approx$",
            '→' => "$\\to$",
            '∩' => "$\\cap$",
            '∪' => "$\\cup$",
            '⊆' => "$\\subseteq$",
            'Δ' => "$\\Delta$",
            'δ' => "$\\delta$",
            'θ' => "$\\theta$",
            'α' => "$\\alpha$",
            'ε' => "$\\varepsilon$",
            'λ' => "$\\lambda$",
            'Σ' => "$\\Sigma$",
            '½' => "$\\frac12$",
            '₀' => "$_0$",
            '§' => "\\S{}",
            '–' => "--",
            '—' => "---",
            '…' => "\\ldots{}",
            '’' => "'",
            '“' => "``",
            '”' => "''",
            _ => {
                out.push(ch);
                continue;
            }
        };
        out.push_str(rep);
    }
    out
}

/// Free text with `**bold**` and `` `code` `` spans, escaped.
pub fn latex_inline(s: &str) -> String {
    render_inline(
        s,
        latex_escape,
        |c| format!("\\texttt{{{c}}}"),
        |b| format!("\\textbf{{{b}}}"),
    )
}

fn cell_latex(cell: &Cell, seeds: Option<usize>) -> String {
    match cell {
        Cell::Empty => String::new(),
        Cell::Text(t) | Cell::Number(_, t) => latex_escape(t),
        Cell::Stats {
            stats,
            metric,
            mark,
        } => {
            let markup = Markup {
                pm: "$\\pm$",
                bold: |s| format!("\\textbf{{{s}}}"),
                second: |s| format!("\\underline{{{s}}}"),
                n_only_if_not: seeds,
            };
            stats_text(*metric, stats, *mark, &markup)
        }
    }
}

/// Printed width of a cell in characters (markup and `$…$` not counted), to decide between
/// natural width, wrapped text columns and scaling.
fn printed_len(cell: &Cell) -> usize {
    match cell {
        Cell::Empty => 0,
        Cell::Text(t) | Cell::Number(_, t) => t.chars().count(),
        Cell::Stats { .. } => 20,
    }
}

/// Characters per line of a `\small` table at the default article text width.
const LINE_CHARS: usize = 100;
/// Text cells longer than this wrap in `p` columns.
const WRAP_CHARS: usize = 30;
/// Wrapped text columns side by side in one part of a long table.
const WRAP_COLUMNS: usize = 3;
/// Tables with more rows than this break across pages (`longtable`).
const LONG_ROWS: usize = 40;

/// One table as a `table` environment (booktabs): caption with units, n and the meaning of
/// bold and underline; `tab:<id>` label.
pub fn table_latex(table: &Table) -> String {
    let widths: Vec<usize> = (0..table.header.len())
        .map(|c| {
            let body = table.rows.iter().map(|r| r.get(c).map_or(0, printed_len));
            body.chain(std::iter::once(table.header[c].chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let labels = table.label_columns.clamp(1, table.header.len());
    let value_columns = table.header.len() - labels;
    let wrap = widths[labels..].iter().any(|&w| w > WRAP_CHARS);
    let mut caption = format!(
        "{}: {}",
        latex_escape(&table.title),
        latex_inline(&table.caption)
    );
    if let Some(seeds) = table.seeds {
        caption.push_str(&format!(
            ". Mean $\\pm$ sample std over $n = {seeds}$ seeds; (k): only k finished runs"
        ));
        if let Some(scope) = &table.rank_scope {
            caption.push_str(&format!(
                "; \\textbf{{bold}}: best mean, \\underline{{underlined}}: second best, {}",
                latex_escape(scope)
            ));
        }
    }
    caption.push('.');
    let line = |columns: &[usize], row: &dyn Fn(usize) -> String| -> String {
        let cells: Vec<String> = (0..labels)
            .chain(columns.iter().copied())
            .map(row)
            .collect();
        format!("{} \\\\\n", cells.join(" & "))
    };
    let header = |columns: &[usize]| line(columns, &|c| latex_escape(&table.header[c]));
    let body = |columns: &[usize]| -> String {
        table
            .rows
            .iter()
            .map(|r| {
                line(columns, &|c| {
                    r.get(c)
                        .map_or(String::new(), |x| cell_latex(x, table.seeds))
                })
            })
            .collect()
    };
    let mut out = format!(
        "% {} -- generated by ticketbench {}; needs \\usepackage{{booktabs,graphicx,array,longtable}}\n",
        table.id,
        crate::VERSION,
    );
    if !wrap && table.rows.len() <= LONG_ROWS {
        // A float of natural width, scaled down when wider than the line.
        let all: Vec<usize> = (labels..table.header.len()).collect();
        let scale = widths.iter().map(|w| w + 2).sum::<usize>() > LINE_CHARS;
        out.push_str(&format!(
            "\\begin{{table}}[htbp]\n\\centering\n\\small\n\\caption{{{caption}}}\n\\label{{tab:{}}}\n",
            table.id
        ));
        if scale {
            out.push_str("\\resizebox{\\linewidth}{!}{%\n");
        }
        out.push_str(&format!(
            "\\begin{{tabular}}{{{}{}}}\n\\toprule\n{}\\midrule\n{}\\bottomrule\n\\end{{tabular}}\n",
            "l".repeat(labels),
            "r".repeat(value_columns),
            header(&all),
            body(&all)
        ));
        if scale {
            out.push_str("}\n");
        }
        out.push_str("\\end{table}\n");
        return out;
    }
    // Long or wordy tables: longtables that break across pages (header repeated), text
    // cells wrapped in `p` columns, at most WRAP_COLUMNS of them side by side (the label
    // columns repeat in each part).
    let value: Vec<usize> = (labels..table.header.len()).collect();
    let parts: Vec<&[usize]> = if wrap {
        value.chunks(WRAP_COLUMNS).collect()
    } else {
        vec![&value[..]]
    };
    let label_em: usize = widths[..labels].iter().map(|w| w / 2 + 2).sum();
    out.push_str(if wrap {
        "\\begingroup\\scriptsize\n"
    } else {
        "\\begingroup\\small\n"
    });
    for (i, part) in parts.iter().enumerate() {
        let columns = if wrap {
            format!(
                "*{{{n}}}{{>{{\\raggedright\\arraybackslash}}p{{\\dimexpr(0.98\\linewidth-{label_em}em)/{n}\\relax}}}}",
                n = part.len()
            )
        } else {
            "r".repeat(part.len())
        };
        let which = if parts.len() > 1 {
            format!(
                " (columns {}--{} of {value_columns})",
                part[0] - labels + 1,
                part[part.len() - 1] - labels + 1
            )
        } else {
            String::new()
        };
        let label = if i == 0 {
            format!("\\label{{tab:{}}}", table.id)
        } else {
            String::new()
        };
        let head = header(part);
        out.push_str(&format!(
            "\\begin{{longtable}}{{{}{columns}}}\n\\caption{{{caption}{which}}}{label}\\\\\n\\toprule\n{head}\\midrule\n\\endfirsthead\n\\toprule\n{head}\\midrule\n\\endhead\n\\bottomrule\n\\endfoot\n{}\\end{{longtable}}\n",
            "l".repeat(labels),
            body(part)
        ));
    }
    out.push_str("\\endgroup\n");
    out
}

/// Tables concatenated into one file (`sanity.tex`).
pub fn tables_latex<'a>(tables: impl IntoIterator<Item = &'a Table>) -> String {
    tables
        .into_iter()
        .map(table_latex)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `report.tex`: a standalone article with the document's text that `\input`s each table
/// from `tex/<id>.tex` and includes the PNG plots named in `plots` (`plots/<id>.png`).
pub fn document_latex(doc: &Document, plots: &[String]) -> String {
    let mut out = String::from(
        "% generated by ticketbench; compile with pdflatex in this directory\n\\documentclass[a4paper,10pt]{article}\n\\usepackage[T1]{fontenc}\n\\usepackage[utf8]{inputenc}\n\\usepackage{booktabs,graphicx,array,longtable}\n\\setlength{\\textwidth}{17cm}\n\\setlength{\\oddsidemargin}{-0.46cm}\n\\setlength{\\textheight}{24cm}\n\\setlength{\\topmargin}{-1.5cm}\n\\setcounter{totalnumber}{6}\n\\renewcommand{\\textfraction}{0.05}\n\\renewcommand{\\topfraction}{0.95}\n\\renewcommand{\\floatpagefraction}{0.8}\n",
    );
    out.push_str(&format!(
        "\\title{{{}}}\n\\date{{}}\n\\begin{{document}}\n\\maketitle\n",
        latex_escape(&doc.title)
    ));
    for p in &doc.paragraphs {
        out.push_str(&format!("{}\n\n", latex_inline(p)));
    }
    let mut floats = 0;
    for section in &doc.sections {
        let command = if section.level <= 2 {
            "section*"
        } else {
            "subsection*"
        };
        out.push_str(&format!(
            "\\{command}{{{}}}\n",
            latex_escape(&section.heading)
        ));
        for p in &section.paragraphs {
            out.push_str(&format!("{}\n\n", latex_inline(p)));
        }
        if let Some(table) = &section.table {
            for note in &table.notes {
                out.push_str(&format!("{}\n\n", latex_inline(note)));
            }
            out.push_str(&format!("\\input{{tex/{}}}\n", table.id));
            if let Some(id) = &table.plot
                && plots.iter().any(|p| *p == format!("{id}.png"))
            {
                out.push_str(&format!(
                    "\\begin{{figure}}[htbp]\n\\centering\n\\includegraphics[width=0.8\\linewidth]{{plots/{id}.png}}\n\\caption{{{}}}\n\\end{{figure}}\n",
                    latex_escape(&table.title)
                ));
            }
            floats += 1 + usize::from(out.ends_with("\\end{figure}\n"));
            // Flush floats now and then: LaTeX holds at most 18 unplaced ones.
            if floats >= 4 {
                out.push_str("\\clearpage\n");
                floats = 0;
            }
        }
        if !section.bullets.is_empty() {
            out.push_str("\\begin{itemize}\n");
            for b in &section.bullets {
                out.push_str(&format!("\\item {}\n", latex_inline(b)));
            }
            out.push_str("\\end{itemize}\n");
        }
    }
    out.push_str("\\end{document}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_specials_and_unicode() {
        assert_eq!(latex_escape("a_b 5% #1 {x}"), "a\\_b 5\\% \\#1 \\{x\\}");
        assert_eq!(latex_escape("±·−"), "$\\pm$$\\cdot$$-$");
        assert_eq!(latex_escape("a|b<c"), "a\\textbar{}b\\textless{}c");
        assert_eq!(
            latex_inline("**IMP** (`x_y`)"),
            "\\textbf{IMP} (\\texttt{x\\_y})"
        );
    }
}
