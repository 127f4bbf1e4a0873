//! `ticketbench report`: every format from the same results, numbers that agree across
//! Markdown, LaTeX and CSV, LaTeX that compiles, an HTML page that renders, the leaderboard
//! and its history, and bad input.

mod common;

use common::{ok, ticketbench};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A real smoke-suite run (68 jobs, planted hosts, classification and regression).
fn smoke() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/report/smoke")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn report(dirs: &[&Path], out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["report"];
    args.extend(dirs.iter().map(|d| s(d)));
    args.extend(["--out", s(out)]);
    args.extend(extra);
    ok(ticketbench(&args))
}

/// `0.1`, or `5.243e-3` when the plain decimal is long (the reports' density labels).
fn density_text(d: f64) -> String {
    let short = d.to_string();
    if short.len() <= 6 {
        short
    } else {
        format!("{d:.3e}")
    }
}

/// The cells of the first pipe table after the heading `## {title}`: header → column of
/// row label → cell text.
fn md_table(md: &str, title: &str) -> BTreeMap<(String, String), String> {
    let start = md
        .find(&format!("## {title}\n"))
        .unwrap_or_else(|| panic!("no section {title}"));
    let lines: Vec<&str> = md[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .collect();
    let split = |l: &str| -> Vec<String> {
        l.trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().to_string())
            .collect()
    };
    let header = split(lines[0]);
    let mut out = BTreeMap::new();
    for l in &lines[2..] {
        let cells = split(l);
        for (h, c) in header.iter().zip(&cells).skip(1) {
            out.insert((cells[0].clone(), h.clone()), c.clone());
        }
    }
    out
}

/// The cells of a booktabs table file, keyed like [`md_table`].
fn tex_table(tex: &str) -> BTreeMap<(String, String), String> {
    let body = &tex[tex.find("\\toprule").unwrap()..tex.find("\\bottomrule").unwrap()];
    let rows: Vec<Vec<String>> = body
        .lines()
        .filter(|l| l.ends_with("\\\\"))
        .map(|l| {
            l.trim_end_matches("\\\\")
                .split(" & ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    let mut out = BTreeMap::new();
    for row in &rows[1..] {
        for (h, c) in rows[0].iter().zip(row).skip(1) {
            out.insert((row[0].clone(), h.clone()), c.clone());
        }
    }
    out
}

/// The numbers of a cell as written, markup removed: `["97.45", "0.49", "2"]`.
fn numbers(cell: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in cell.chars().chain(std::iter::once(' ')) {
        let part_of_number = ch.is_ascii_digit()
            || ch == '.'
            || (ch == 'e' && !cur.is_empty())
            || ((ch == '-' || ch == '+') && (cur.is_empty() || cur.ends_with('e')));
        if part_of_number {
            cur.push(ch);
        } else {
            let t = cur.trim_matches(|c| c == '.' || c == 'e' || c == '-' || c == '+');
            if t.chars().any(|c| c.is_ascii_digit()) {
                out.push(cur.clone());
            }
            cur.clear();
        }
    }
    out
}

/// Mean and sample std of values, formatted like the report's trained-metric cells.
fn expected(values: &[f64], classification: bool) -> Vec<String> {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let f = |v: f64| {
        if classification {
            format!("{v:.2}")
        } else {
            format!("{v:.3e}")
        }
    };
    let mut out = vec![f(mean)];
    if values.len() > 1 {
        out.push(f(sd));
    }
    out
}

#[test]
fn markdown_latex_and_csv_agree_on_every_number() {
    let out = tempfile::tempdir().unwrap();
    report(&[&smoke()], out.path(), &["--format", "md,tex,csv"]);
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    let mut csv = csv::Reader::from_path(out.path().join("results.csv")).unwrap();
    let header = csv.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 68, "one CSV row per job");
    let mut compared = 0;
    for (task, classification) in [("circle", true), ("relu", false)] {
        let title = format!("{task} · pns-host · cpu");
        let md_cells = md_table(&md, &title);
        let tex = std::fs::read_to_string(out.path().join(format!("tex/{task}-pns-host-cpu.tex")))
            .unwrap();
        let tex_cells = tex_table(&tex);
        assert_eq!(md_cells.len(), tex_cells.len(), "{title}: same cells");
        let mut groups: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        for r in rows.iter().filter(|r| &r[col("task_label")] == task) {
            let metric = if classification {
                "test_acc"
            } else {
                "test_loss"
            };
            let v: f64 = r[col(metric)].parse().unwrap();
            let density: f64 = r[col("density")].parse().unwrap();
            let column = if density >= 1.0 {
                "dense (1.0)".to_string()
            } else {
                format!("d = {}", density_text(density))
            };
            let scale = if classification { 100.0 } else { 1.0 };
            groups
                .entry((r[col("method_label")].to_string(), column))
                .or_default()
                .push(scale * v);
        }
        for ((method, column), values) in &groups {
            let key = (method.clone(), column.clone());
            let md_cell = md_cells
                .get(&key)
                .unwrap_or_else(|| panic!("{title}: no Markdown cell {key:?}"));
            let tex_key = (method.replace('_', "\\_"), column.clone());
            let tex_cell = tex_cells
                .get(&tex_key)
                .unwrap_or_else(|| panic!("{title}: no LaTeX cell {tex_key:?}"));
            let want = expected(values, classification);
            let md_numbers = numbers(md_cell);
            assert_eq!(
                md_numbers[..want.len()],
                want[..],
                "{title} {key:?}: {md_cell}"
            );
            assert_eq!(
                md_numbers[want.len()],
                values.len().to_string(),
                "n in {md_cell}"
            );
            assert_eq!(
                numbers(tex_cell)[..want.len()],
                want[..],
                "{title} {key:?}: {tex_cell}"
            );
            // Bold in one format is bold in the other.
            assert_eq!(
                md_cell.starts_with("**"),
                tex_cell.starts_with("\\textbf"),
                "{md_cell} vs {tex_cell}"
            );
            assert_eq!(
                md_cell.starts_with("<ins>"),
                tex_cell.starts_with("\\underline"),
                "{md_cell} vs {tex_cell}"
            );
            compared += 1;
        }
    }
    assert!(compared >= 30, "only {compared} cells compared");
    // The raw JSONL travels with the CSV.
    assert_eq!(
        std::fs::read_to_string(out.path().join("results.jsonl"))
            .unwrap()
            .lines()
            .count(),
        68
    );
}

#[test]
fn every_format_is_written_and_plots_are_valid() {
    let out = tempfile::tempdir().unwrap();
    report(&[&smoke()], out.path(), &[]);
    for file in [
        "report.md",
        "report.tex",
        "results.csv",
        "index.html",
        "sanity.tex",
    ] {
        assert!(out.path().join(file).is_file(), "{file} missing");
    }
    let plots = out.path().join("plots");
    for task in ["circle", "relu"] {
        for view in ["", "-recovery", "-layer-densities"] {
            let stem = format!("{task}-pns-host-cpu{view}");
            let svg = std::fs::read_to_string(plots.join(format!("{stem}.svg"))).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.contains("synflow"),
                "{stem}.svg"
            );
            let png = std::fs::read(plots.join(format!("{stem}.png"))).unwrap();
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png");
            assert!(png.len() > 10_000, "{stem}.png is nearly empty");
        }
    }
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("![circle · pns-host · cpu](plots/circle-pns-host-cpu.svg)"));
    assert!(md.contains("· recovery metrics") && md.contains("· layer densities"));
    // Only the formats asked for; plots of an earlier report are removed.
    let only = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(only.path().join("plots")).unwrap();
    std::fs::write(only.path().join("plots/stale.svg"), "<svg/>").unwrap();
    report(&[&smoke()], only.path(), &["--format", "svg"]);
    let mut names: Vec<String> = std::fs::read_dir(only.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["plots"]);
    assert!(!only.path().join("plots/stale.svg").exists());
    assert_eq!(
        std::fs::read_dir(only.path().join("plots"))
            .unwrap()
            .count(),
        6
    );
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

#[test]
fn latex_compiles_with_pdflatex() {
    let Some(pdflatex) = which("pdflatex") else {
        println!(
            "SKIPPED latex_compiles_with_pdflatex: pdflatex not found (apt-get install texlive-latex-base texlive-latex-recommended)"
        );
        return;
    };
    let out = tempfile::tempdir().unwrap();
    report(&[&smoke()], out.path(), &["--format", "tex,png"]);
    let run = Command::new(pdflatex)
        .args(["-interaction=nonstopmode", "-halt-on-error", "report.tex"])
        .current_dir(out.path())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "pdflatex failed:\n{log}");
    assert!(!log.contains("LaTeX Warning: Float(s) lost"), "{log}");
    // Every table file was \input, and none is missing.
    let tex = std::fs::read_to_string(out.path().join("report.tex")).unwrap();
    for e in std::fs::read_dir(out.path().join("tex")).unwrap() {
        let stem = e
            .unwrap()
            .path()
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            tex.contains(&format!("\\input{{tex/{stem}}}")),
            "{stem} not input"
        );
    }
    assert!(
        std::fs::metadata(out.path().join("report.pdf"))
            .unwrap()
            .len()
            > 50_000
    );
}

#[test]
fn html_page_renders_in_chromium() {
    let Some(chromium) = which("chromium").or_else(|| which("chromium-browser")) else {
        println!(
            "SKIPPED html_page_renders_in_chromium: chromium not found (apt-get install chromium)"
        );
        return;
    };
    let out = tempfile::tempdir().unwrap();
    report(&[&smoke()], out.path(), &["--format", "html"]);
    let page = out.path().join("index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "external resources"
    );
    let profile = tempfile::tempdir().unwrap();
    let shot = out.path().join("shot.png");
    let run = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,2000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let dom = String::from_utf8_lossy(&run.stdout);
    let tables = dom.matches("<table class=\"sortable\"").count();
    let svgs = dom.matches("<svg").count();
    assert_eq!(tables, 12, "tables rendered");
    assert_eq!(svgs, 6, "every figure inlined once");
    assert!(dom.contains("circle · pns-host · cpu"));
    // The sort script ran without error and the page produced pixels.
    assert!(
        std::fs::metadata(&shot).map_or(0, |m| m.len()) > 10_000,
        "no screenshot"
    );
}

/// Records with matched random tickets and dense references whose leaderboard is known:
/// per seed s, `good` = dense − 2 + s/10, `half` = halfway from its random ticket, random
/// tickets 20 points below dense.
fn leaderboard_results(dir: &Path, shift: f64) {
    let template: Value = serde_json::from_str(
        std::fs::read_to_string(smoke().join("results.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let mut lines = Vec::new();
    for seed in 0..4u64 {
        let dense = 0.9;
        for (method, density, acc) in [
            ("dense", 1.0, Some(dense)),
            ("good", 0.1, Some(dense - 0.02 + seed as f64 / 1000.0)),
            ("half", 0.1, Some(dense - 0.1 + shift)),
            ("good", 0.5, Some(dense - 0.02 + seed as f64 / 1000.0)),
            ("half", 0.5, Some(dense - 0.1 + shift)),
        ] {
            let mut r = template.clone();
            r["suite"] = "lb".into();
            r["method"] = method.into();
            r["method_label"] = method.into();
            r["density"] = density.into();
            r["seed"] = seed.into();
            r["settings_hash"] = format!("{method}-{density}-{seed}").into();
            r["metrics"]["test_acc"] = acc.into();
            r["planted"] = Value::Null;
            r["provenance"]["grid_index"] = Value::Null;
            if method != "dense" {
                r["matched_random"] = serde_json::json!({
                    "test_acc": dense - 0.2, "test_loss": 1.0, "untrained_test_acc": 0.25,
                    "untrained_test_loss": 1.4, "diverged": false
                });
            }
            lines.push(serde_json::to_string(&r).unwrap());
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("results.jsonl"), lines.join("\n") + "\n").unwrap();
}

#[test]
fn leaderboard_scores_ranks_and_history() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    leaderboard_results(&results, 0.0);
    let history = tmp.path().join("leaderboard/history.jsonl");
    let out = tmp.path().join("out");
    let args = |commit: &'static str, date: &'static str| {
        vec![
            "--format".to_string(),
            "md,html".into(),
            "--history".into(),
            s(&history).into(),
            "--record-history".into(),
            "--commit".into(),
            commit.into(),
            "--date".into(),
            date.into(),
        ]
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        report(&[&results], &out, &a)
    };
    let md = run(args("c1", "2026-01-01"));
    // good: (88 − 70 + s/10) / 20 per seed → mean over s = 0..3 of 0.9 + s/200 = 0.9075;
    // half: (80 − 70) / 20 = 0.5 on every seed.
    let entries: Vec<Value> = std::fs::read_to_string(&history)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 1);
    let good = &entries[0]["scores"]["good"];
    assert!(
        (good["score"].as_f64().unwrap() - 0.9075).abs() < 1e-12,
        "{good}"
    );
    assert_eq!(good["rank"], 1);
    assert_eq!(good["seeds"], 4);
    assert_eq!(good["cells"], 2);
    assert!(
        good["ci_low"].as_f64().unwrap() < 0.9075 && good["ci_high"].as_f64().unwrap() > 0.9075
    );
    let half = entries[0]["scores"]["half"]["score"].as_f64().unwrap();
    assert!((half - 0.5).abs() < 1e-12, "{half}");
    assert_eq!(entries[0]["scores"]["half"]["rank"], 2);
    assert_eq!(entries[0]["commit"], "c1");
    assert!(md.contains("| 1 ") && md.contains("| good "), "{md}");

    // The next night: `half` improves by 2 points (+0.1); the table shows the change.
    leaderboard_results(&results, 0.02);
    let md = run(args("c2", "2026-01-02"));
    assert!(md.contains("change since 2026-01-01 (c1)"), "{md}");
    let row = md.lines().find(|l| l.contains("| half ")).unwrap();
    assert!(row.contains("+0.100"), "{row}");
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("<table class=\"sortable\" id=\"t-leaderboard\">"));
    // A rerun of the same night replaces its entry instead of adding one.
    run(args("c2", "2026-01-02"));
    let text = std::fs::read_to_string(&history).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().nth(1).unwrap().contains("\"commit\":\"c2\""));
}

#[test]
fn bad_report_input_exits_2_with_the_fix() {
    let out = tempfile::tempdir().unwrap();
    let input = smoke();
    let base = ["report", s(&input), "--out", s(out.path())];
    let cases: [(&[&str], &str); 4] = [
        (
            &["--format", "md,docx"],
            "valid formats: md, tex, csv, svg, png, html",
        ),
        (&["--record-history"], "--history"),
        (
            &["--history", "h.jsonl", "--date", "2026-13-01"],
            "YYYY-MM-DD",
        ),
        (
            &["--format", "md", "--history", "BAD"],
            "not a leaderboard history entry",
        ),
    ];
    let bad = out.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"date\": 1}\n").unwrap();
    for (extra, message) in cases {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(extra.iter().map(|a| if *a == "BAD" { s(&bad) } else { a }));
        let run = ticketbench(&args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A CSV export never overwrites another run's results.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("results.jsonl"), "").unwrap();
    let run = ticketbench(&[
        "report",
        s(&smoke()),
        "--out",
        s(other.path()),
        "--format",
        "csv",
    ]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("not among the report's inputs"));
}
