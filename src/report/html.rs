//! HTML writer: `index.html`, one self-contained page (inline CSS, inline SVG plots, a
//! few lines of inline JavaScript that sort a table by the clicked column), readable from
//! the file system without a server. What the nightly workflow publishes.

use super::table::{Cell, Document, Markup, Table, render_inline, stats_text};
use std::fmt::Write;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Free text with `**bold**` and `` `code` `` spans.
fn inline(s: &str) -> String {
    render_inline(
        s,
        escape,
        |c| format!("<code>{c}</code>"),
        |b| format!("<strong>{b}</strong>"),
    )
}

const MARKUP: Markup = Markup {
    pm: "±",
    bold: |s| format!("<strong>{s}</strong>"),
    second: |s| format!("<u>{s}</u>"),
    n_only_if_not: None,
};

/// A `<td>`; numbers carry their value in `data-v` for sorting.
fn cell_html(cell: &Cell) -> String {
    match cell {
        Cell::Empty => "<td></td>".into(),
        Cell::Text(t) => format!("<td>{}</td>", escape(t)),
        Cell::Number(v, t) => format!("<td class=\"num\" data-v=\"{v}\">{}</td>", escape(t)),
        Cell::Stats {
            stats,
            metric,
            mark,
        } => format!(
            "<td class=\"num\" data-v=\"{}\">{}</td>",
            stats.mean,
            stats_text(*metric, stats, *mark, &MARKUP)
        ),
    }
}

fn table_html(table: &Table) -> String {
    let mut out = format!(
        "<table class=\"sortable\" id=\"t-{}\">\n<caption>",
        table.id
    );
    out.push_str(&inline(&table.caption));
    if let Some(seeds) = table.seeds {
        let _ = write!(
            out,
            "; mean ± sample std over seeds, (n) finished runs; seeds: {seeds}"
        );
        if let Some(scope) = &table.rank_scope {
            let _ = write!(
                out,
                "; <strong>bold</strong>: best mean, <u>underlined</u>: second best, {}",
                escape(scope)
            );
        }
    }
    out.push_str(". Click a column header to sort.</caption>\n<thead><tr>");
    for h in &table.header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for c in row {
            out.push_str(&cell_html(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1400px;padding:1em 2em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc;padding-bottom:.2em}
nav{columns:2;font-size:.9em;background:#f6f6f6;padding:.6em 1em;border-radius:4px}nav a{display:block}
.wrap{overflow-x:auto}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em;font-variant-numeric:tabular-nums}
caption{caption-side:top;text-align:left;color:#555;padding-bottom:.4em;max-width:100em}
th,td{padding:.25em .7em;border-top:1px solid #ddd;text-align:left;vertical-align:top}
thead th{border-top:2px solid #222;border-bottom:1px solid #222;cursor:pointer;white-space:nowrap;user-select:none}
thead th:hover{background:#eef}th.asc::after{content:' \\25B2'}th.desc::after{content:' \\25BC'}
tbody tr:last-child td{border-bottom:2px solid #222}td.num{text-align:right;white-space:nowrap}
figure.plot{margin:1em 0}figure.plot svg{max-width:100%;height:auto}
code{background:#f2f2f2;padding:0 .2em}";

/// Sorts a table by the clicked header: numerically by `data-v` where every non-empty cell
/// has one, else by text; empty cells last. A second click reverses.
const SCRIPT: &str = "document.querySelectorAll('table.sortable').forEach(function(t){
var ths=t.tHead.rows[0].cells;
Array.prototype.forEach.call(ths,function(th,i){th.addEventListener('click',function(){
var desc=th.classList.contains('asc');Array.prototype.forEach.call(ths,function(h){h.classList.remove('asc','desc')});
th.classList.add(desc?'desc':'asc');var b=t.tBodies[0];var rows=Array.prototype.slice.call(b.rows);
var num=rows.every(function(r){var c=r.cells[i];return !c||c.textContent===''||c.hasAttribute('data-v')});
rows.sort(function(x,y){var a=x.cells[i],c=y.cells[i];var ea=!a||a.textContent==='',ec=!c||c.textContent==='';
if(ea||ec)return ea-ec;var r=num?parseFloat(a.getAttribute('data-v'))-parseFloat(c.getAttribute('data-v')):a.textContent.localeCompare(c.textContent);
return desc?-r:r});rows.forEach(function(r){b.appendChild(r)})})})});";

/// The page. `plots` are `(id, svg text)` pairs, inlined under the table with that plot id.
pub fn document_html(doc: &Document, plots: &[(String, String)]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"generator\" content=\"ticketbench {}\">\n<title>{}</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        crate::VERSION,
        escape(&doc.title),
        escape(&doc.title)
    );
    for p in &doc.paragraphs {
        let _ = writeln!(out, "<p>{}</p>", inline(p));
    }
    out.push_str("<nav>\n");
    for (i, s) in doc.sections.iter().enumerate() {
        if s.level <= 2 {
            let _ = writeln!(out, "<a href=\"#s{i}\">{}</a>", escape(&s.heading));
        }
    }
    out.push_str("</nav>\n");
    for (i, section) in doc.sections.iter().enumerate() {
        let level = section.level.clamp(2, 4);
        let _ = writeln!(
            out,
            "<section id=\"s{i}\">\n<h{level}>{}</h{level}>",
            escape(&section.heading)
        );
        for p in &section.paragraphs {
            let _ = writeln!(out, "<p>{}</p>", inline(p));
        }
        if let Some(table) = &section.table {
            for note in &table.notes {
                let _ = writeln!(out, "<p>{}</p>", inline(note));
            }
            let _ = write!(out, "<div class=\"wrap\">\n{}</div>\n", table_html(table));
            if let Some((_, svg)) = table
                .plot
                .as_ref()
                .and_then(|id| plots.iter().find(|(p, _)| p == id))
            {
                let _ = writeln!(
                    out,
                    "<figure class=\"plot\" id=\"plot-{}\">\n{svg}\n</figure>",
                    table.plot.as_deref().unwrap_or_default()
                );
            }
        }
        if !section.bullets.is_empty() {
            out.push_str("<ul>\n");
            for b in &section.bullets {
                let _ = writeln!(out, "<li>{}</li>", inline(b));
            }
            out.push_str("</ul>\n");
        }
        out.push_str("</section>\n");
    }
    let _ = write!(out, "<script>\n{SCRIPT}\n</script>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_inline_markup() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(
            inline("**IMP** uses `x<y`"),
            "<strong>IMP</strong> uses <code>x&lt;y</code>"
        );
    }
}
