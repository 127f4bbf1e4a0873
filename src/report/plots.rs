//! Plots (plotters), as SVG and PNG, with no system fonts: the vendored DejaVu Sans
//! (`assets/fonts/`) is compiled in and registered as `sans-serif`, so text is measured and
//! rasterised by `ab_glyph` alone.
//!
//! * `<table id>`: the task metric (accuracy, or MSE on a log axis) against density (log
//!   axis) with ± 1 sample std error bars, one line per method; random tickets (the `random`
//!   rows and each method's random ticket at its own layer counts) dashed, in the colour of
//!   their method. The same figure for the Jaccard recovery table of planted hosts.
//! * `<group>-layer-densities`: each method's per-layer density profile, one panel per
//!   density.
//!
//! Axes on a log scale are drawn as log10 of the values with ticks labelled in the original
//! unit. Colours are the Okabe–Ito colour-blind-safe palette, cycled with four markers, and
//! fixed per method across all figures of a report.

use super::table::slug;
use super::{ComparisonTable, Metric, ResultSet};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
#[error("drawing plot {id}: {message}")]
pub struct PlotError {
    pub id: String,
    pub message: String,
}

/// One line of a panel: `(x, mean, std)` points.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    /// Index into the palette (the method's position in the report).
    pub style: usize,
    pub dashed: bool,
    pub points: Vec<(f64, f64, Option<f64>)>,
}

#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_log: bool,
    pub y_log: bool,
    /// Integer x ticks (layer numbers).
    pub x_integer: bool,
    pub series: Vec<Series>,
}

/// A figure: panels in a grid of at most two columns, one legend at the right.
#[derive(Debug, Clone)]
pub struct Figure {
    pub id: String,
    pub title: String,
    pub panels: Vec<Panel>,
}

/// Okabe & Ito (2008) colour-blind-safe palette (black last).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(150, 130, 0),
    RGBColor(0, 0, 0),
];

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn ensure_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The vendored font is valid TrueType; a failure here is a corrupted checkout.
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("assets/fonts/DejaVuSans.ttf is not a valid font"));
    });
}

fn colour(style: usize) -> RGBColor {
    PALETTE[style % PALETTE.len()]
}

/// Which plot method a row label belongs to, and whether it is a random ticket.
fn row_kind(set: &ResultSet, label: &str) -> (String, bool) {
    const TWIN: &str = " · random at its layer counts";
    if let Some(base) = label.strip_suffix(TWIN) {
        return (base.to_string(), true);
    }
    let random = set
        .records
        .iter()
        .find(|r| r.method_label == label)
        .is_some_and(|r| r.method == "random");
    (label.to_string(), random)
}

/// Method labels in report order: their palette index.
fn method_order(set: &ResultSet) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for r in &set.records {
        if !order.contains(&r.method_label) {
            order.push(r.method_label.clone());
        }
    }
    order
}

fn style_of(order: &[String], method: &str) -> usize {
    order
        .iter()
        .position(|m| m == method)
        .unwrap_or(order.len())
}

/// The figure of one comparison table: metric against density.
fn comparison_figure(set: &ResultSet, t: &ComparisonTable, order: &[String]) -> Option<Figure> {
    let series: Vec<Series> = t
        .rows
        .iter()
        .filter_map(|(label, cells)| {
            let (method, dashed) = row_kind(set, label);
            let points: Vec<(f64, f64, Option<f64>)> = t
                .densities
                .iter()
                .zip(cells)
                .filter_map(|(&d, c)| {
                    let c = c.as_ref().filter(|c| c.n > 0 && c.mean.is_finite())?;
                    Some((d, c.mean, c.std))
                })
                .collect();
            (!points.is_empty()).then(|| Series {
                label: label.clone(),
                style: style_of(order, &method),
                dashed,
                points,
            })
        })
        .collect();
    if series.is_empty() {
        return None;
    }
    let y_log = match t.metric {
        Metric::Mse => true,
        Metric::Jaccard => series
            .iter()
            .flat_map(|s| &s.points)
            .any(|p| p.1 > 0.0 && p.1 < 0.05),
        _ => false,
    };
    let y_label = match t.metric {
        Metric::AccuracyPercent => "test accuracy (%)",
        Metric::Mse => "test MSE",
        Metric::Jaccard => "Jaccard vs planted ticket",
        _ => t.metric.describe(),
    };
    let view = t.view.as_deref().unwrap_or("");
    Some(Figure {
        id: slug(&[&t.task, &t.model, &t.device, view]),
        title: format!(
            "{} · {} · {}{}",
            t.task,
            t.model,
            t.device,
            if view.is_empty() {
                String::new()
            } else {
                format!(" · {view}")
            }
        ),
        panels: vec![Panel {
            title: String::new(),
            x_label: "density (fraction of weights kept)".into(),
            y_label: format!("{y_label}, mean ± std over seeds"),
            x_log: true,
            y_log,
            x_integer: false,
            series,
        }],
    })
}

/// Per-layer density profiles of one (task, model, device): one panel per density.
fn layer_figure(set: &ResultSet, t: &ComparisonTable, order: &[String]) -> Option<Figure> {
    let recs: Vec<_> = set
        .records
        .iter()
        .filter(|r| r.task_label == t.task && r.model == t.model && r.device == t.device)
        .filter(|r| r.check.is_none() && r.method != "dense" && r.layer_densities.len() > 1)
        .collect();
    let mut densities: Vec<f64> = Vec::new();
    for r in &recs {
        if !densities.contains(&r.density) {
            densities.push(r.density);
        }
    }
    densities.sort_by(|a, b| b.total_cmp(a));
    let panels: Vec<Panel> = densities
        .iter()
        .map(|&d| {
            let mut labels: Vec<&str> = Vec::new();
            for r in recs.iter().filter(|r| r.density == d) {
                if !labels.contains(&r.method_label.as_str()) {
                    labels.push(&r.method_label);
                }
            }
            let series = labels
                .iter()
                .map(|&label| {
                    let mine: Vec<&&crate::runner::job::JobRecord> = recs
                        .iter()
                        .filter(|r| r.density == d && r.method_label == label)
                        .collect();
                    let layers = mine
                        .iter()
                        .map(|r| r.layer_densities.len())
                        .max()
                        .unwrap_or(0);
                    let points = (0..layers)
                        .filter_map(|l| {
                            let values: Vec<f64> = mine
                                .iter()
                                .filter_map(|r| r.layer_densities.get(l).copied())
                                .collect();
                            let c = super::CellStats::from_values(&values, 0)?;
                            Some(((l + 1) as f64, c.mean, c.std))
                        })
                        .collect();
                    let (method, dashed) = row_kind(set, label);
                    Series {
                        label: label.to_string(),
                        style: style_of(order, &method),
                        dashed,
                        points,
                    }
                })
                .collect();
            Panel {
                title: format!("d = {}", super::density_text(d)),
                x_label: "layer".into(),
                y_label: "layer density".into(),
                x_log: false,
                y_log: true,
                x_integer: true,
                series,
            }
        })
        .collect();
    (!panels.is_empty()).then(|| Figure {
        id: slug(&[&t.task, &t.model, &t.device, "layer-densities"]),
        title: format!("{} · {} · {} · layer densities", t.task, t.model, t.device),
        panels,
    })
}

/// Every figure of a result set: per comparison table without a view and per recovery
/// table, then one layer-density figure per (task, model, device).
pub fn figures(set: &ResultSet) -> Vec<Figure> {
    let order = method_order(set);
    let tables = set.tables();
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        if t.view.is_none() || t.view.as_deref() == Some("recovery") {
            out.extend(comparison_figure(set, t, &order));
        }
        let last_of_group = tables
            .get(i + 1)
            .is_none_or(|n| (&n.task, &n.model, &n.device) != (&t.task, &t.model, &t.device));
        if last_of_group {
            out.extend(layer_figure(set, t, &order));
        }
    }
    out
}

/// `(lo, hi)` of values with a margin; on a log axis, of their log10 (positive values only).
fn axis_range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let v: Vec<f64> = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .map(|v| if log { v.log10() } else { v })
        .collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { 0.06 * (hi - lo) } else { 0.5 };
    (lo - pad, hi + pad)
}

/// A tick label of a log10 axis value, in the original unit (2 significant digits).
fn log_tick(v: f64) -> String {
    let x = 10f64.powf(v);
    if (1e-3..1e4).contains(&x) {
        let digits = (1 - x.log10().floor() as i32).max(0) as usize;
        format!("{x:.digits$}")
    } else {
        format!("{x:.1e}")
    }
}

const LEGEND_WIDTH: u32 = 260;
const PANEL_HEIGHT: u32 = 380;

/// Figure size in pixels.
fn size(fig: &Figure) -> (u32, u32) {
    let columns = fig.panels.len().min(2) as u32;
    let rows = fig.panels.len().div_ceil(2) as u32;
    (560 * columns + LEGEND_WIDTH, 40 + PANEL_HEIGHT * rows)
}

type DrawResult<E> = Result<(), DrawingAreaErrorKind<E>>;

fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    style: usize,
) -> DrawResult<DB::ErrorType> {
    let c = colour(style);
    let (x, y) = at;
    match (style / PALETTE.len()) % 4 {
        0 => area.draw(&Circle::new(at, 4, c.filled())),
        1 => area.draw(&TriangleMarker::new(at, 5, c.filled())),
        2 => area.draw(&Rectangle::new(
            [(x - 4, y - 4), (x + 4, y + 4)],
            c.filled(),
        )),
        _ => area.draw(&Cross::new(at, 4, c.stroke_width(2))),
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
) -> DrawResult<DB::ErrorType> {
    let points = || panel.series.iter().flat_map(|s| s.points.iter());
    let x_range = axis_range(points().map(|p| p.0), panel.x_log);
    let y_values = points().flat_map(|&(_, m, s)| {
        let s = s.unwrap_or(0.0);
        [m, m - s, m + s]
    });
    let mut y_range = axis_range(y_values, panel.y_log);
    if panel.y_log {
        // Error bars reaching zero or below are clipped, not allowed to stretch the axis.
        let (lo, _) = axis_range(points().map(|p| p.1), true);
        y_range.0 = y_range.0.max(lo - 1.0);
    }
    let tx = |x: f64| if panel.x_log { x.log10() } else { x };
    let ty = |y: f64| {
        if panel.y_log {
            y.max(10f64.powf(y_range.0)).log10()
        } else {
            y
        }
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(42)
        .y_label_area_size(62)
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)?;
    let x_fmt = |v: &f64| {
        if panel.x_log {
            log_tick(*v)
        } else if panel.x_integer {
            format!("{}", v.round() as i64)
        } else {
            format!("{v}")
        }
    };
    let y_fmt = |v: &f64| {
        if panel.y_log {
            log_tick(*v)
        } else {
            format!("{v:.0}")
        }
    };
    let x_ticks = if panel.x_integer {
        (x_range.1 - x_range.0).round().max(1.0) as usize + 1
    } else {
        8
    };
    chart
        .configure_mesh()
        .x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .x_labels(x_ticks)
        .y_labels(8)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .light_line_style(RGBColor(235, 235, 235))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()?;
    for s in &panel.series {
        let c = colour(s.style);
        let line: Vec<(f64, f64)> = s.points.iter().map(|&(x, y, _)| (tx(x), ty(y))).collect();
        if s.dashed {
            chart.draw_series(DashedLineSeries::new(line.clone(), 7, 5, c.stroke_width(2)))?;
        } else {
            chart.draw_series(LineSeries::new(line.clone(), c.stroke_width(2)))?;
        }
        chart.draw_series(s.points.iter().filter_map(|&(x, y, sd)| {
            let sd = sd?;
            Some(ErrorBar::new_vertical(
                tx(x),
                ty(y - sd),
                ty(y),
                ty(y + sd),
                c.stroke_width(1),
                8,
            ))
        }))?;
        let pts = line.iter().copied();
        match (s.style / PALETTE.len()) % 4 {
            0 => chart.draw_series(pts.map(|p| Circle::new(p, 4, c.filled())))?,
            1 => chart.draw_series(pts.map(|p| TriangleMarker::new(p, 5, c.filled())))?,
            2 => {
                chart.draw_series(pts.map(|p| {
                    EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], c.filled())
                }))?
            }
            _ => chart.draw_series(pts.map(|p| Cross::new(p, 4, c.stroke_width(2))))?,
        };
    }
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fig: &Figure,
) -> DrawResult<DB::ErrorType> {
    let mut seen: Vec<(&str, usize, bool)> = Vec::new();
    for s in fig.panels.iter().flat_map(|p| &p.series) {
        if !seen.iter().any(|(l, _, _)| *l == s.label) {
            seen.push((&s.label, s.style, s.dashed));
        }
    }
    let text = ("sans-serif", 13).into_font().color(&BLACK);
    for (i, (label, style, dashed)) in seen.iter().enumerate() {
        let y = 50 + 20 * i as i32;
        let c = colour(*style);
        if *dashed {
            for k in 0..3 {
                area.draw(&PathElement::new(
                    vec![(8 + 10 * k, y), (14 + 10 * k, y)],
                    c.stroke_width(2),
                ))?;
            }
        } else {
            area.draw(&PathElement::new(vec![(8, y), (36, y)], c.stroke_width(2)))?;
        }
        draw_marker(area, (22, y), *style)?;
        let shown: String = if label.chars().count() > 34 {
            label.chars().take(33).collect::<String>() + "…"
        } else {
            label.to_string()
        };
        area.draw(&Text::new(shown, (44, y - 7), text.clone()))?;
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    fig: &Figure,
) -> DrawResult<DB::ErrorType> {
    root.fill(&WHITE)?;
    let titled = root.titled(&fig.title, ("sans-serif", 20))?;
    let (w, _) = titled.dim_in_pixel();
    let (charts, legend) = titled.split_horizontally(w - LEGEND_WIDTH);
    let columns = fig.panels.len().min(2);
    let rows = fig.panels.len().div_ceil(2);
    let areas = charts.split_evenly((rows, columns));
    for (area, panel) in areas.iter().zip(&fig.panels) {
        draw_panel(area, panel)?;
    }
    draw_legend(&legend, fig)?;
    root.present()?;
    Ok(())
}

/// The figure as an SVG document.
pub fn svg(fig: &Figure) -> Result<String, PlotError> {
    ensure_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size(fig)).into_drawing_area();
        draw(root, fig).map_err(|e| PlotError {
            id: fig.id.clone(),
            message: e.to_string(),
        })?;
    }
    Ok(out)
}

/// Writes the figure as a PNG file.
pub fn png(fig: &Figure, path: &Path) -> Result<(), PlotError> {
    ensure_font();
    let root = BitMapBackend::new(path, size(fig)).into_drawing_area();
    draw(root, fig).map_err(|e| PlotError {
        id: fig.id.clone(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_read_in_the_original_unit() {
        assert_eq!(log_tick(-2.0), "0.010");
        assert_eq!(log_tick(0.0), "1.0");
        assert_eq!(log_tick(-1.5), "0.032");
        assert_eq!(log_tick(-6.0), "1.0e-6");
    }

    #[test]
    fn svg_has_every_series_label() {
        let fig = Figure {
            id: "t".into(),
            title: "circle · mlp · cpu".into(),
            panels: vec![Panel {
                title: String::new(),
                x_label: "density".into(),
                y_label: "acc".into(),
                x_log: true,
                y_log: false,
                x_integer: false,
                series: vec![
                    Series {
                        label: "snip".into(),
                        style: 0,
                        dashed: false,
                        points: vec![(0.1, 80.0, Some(2.0)), (0.5, 90.0, None)],
                    },
                    Series {
                        label: "random".into(),
                        style: 1,
                        dashed: true,
                        points: vec![(0.1, 60.0, Some(1.0)), (0.5, 85.0, Some(1.0))],
                    },
                ],
            }],
        };
        let svg = svg(&fig).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        assert!(svg.contains("snip") && svg.contains("random"));
        assert!(svg.contains("circle · mlp · cpu"));
    }
}
