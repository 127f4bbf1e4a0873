//! Tidy CSV: one row per job (pandas `read_csv`, R `read.csv`), every number as recorded
//! (full precision, accuracy as a fraction), empty where a job has no such value.

use crate::runner::job::JobRecord;

/// Column names, in order.
pub const COLUMNS: [&str; 37] = [
    "suite",
    "task",
    "task_label",
    "task_kind",
    "model",
    "device",
    "method",
    "method_label",
    "ratio_rule",
    "check",
    "density",
    "seed",
    "status",
    "kept",
    "total",
    "test_acc",
    "test_loss",
    "train_loss",
    "untrained_test_acc",
    "untrained_test_loss",
    "matched_random_test_acc",
    "matched_random_test_loss",
    "matched_random_diverged",
    "planted_density",
    "target_metric",
    "strong_rescaled",
    "jaccard",
    "precision",
    "recall",
    "recall_lift",
    "neuron_jaccard",
    "path_recall",
    "layer_density_tv",
    "score_auroc",
    "layer_densities",
    "total_s",
    "settings_hash",
];

fn num(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| v.to_string())
}

/// One CSV row of a record, in [`COLUMNS`] order. `layer_densities` is `;`-separated.
fn row(r: &JobRecord) -> Vec<String> {
    let m = r.matched_random.as_ref();
    let p = r.planted.as_ref();
    let rec = p.map(|p| &p.recovery);
    vec![
        r.suite.clone(),
        r.task.clone(),
        r.task_label.clone(),
        r.task_kind.clone(),
        r.model.clone(),
        r.device.clone(),
        r.method.clone(),
        r.method_label.clone(),
        r.ratio_rule.clone().unwrap_or_default(),
        r.check.clone().unwrap_or_default(),
        r.density.to_string(),
        r.seed.to_string(),
        serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        r.kept.to_string(),
        r.total.to_string(),
        num(r.metrics.test_acc),
        num(r.metrics.test_loss),
        num(r.metrics.train_loss),
        num(r.metrics.untrained_test_acc),
        num(Some(r.metrics.untrained_test_loss)),
        num(m.and_then(|m| m.test_acc)),
        num(m.and_then(|m| m.test_loss)),
        m.map_or(String::new(), |m| m.diverged.to_string()),
        num(p.map(|p| p.density)),
        num(p.map(|p| p.target_metric)),
        num(p.map(|p| p.untrained_rescaled)),
        num(rec.map(|r| r.jaccard)),
        num(rec.map(|r| r.precision)),
        num(rec.map(|r| r.recall)),
        num(rec.map(|r| r.recall_lift)),
        num(rec.map(|r| r.neuron_jaccard)),
        num(rec.map(|r| r.path_recall)),
        num(rec.map(|r| r.layer_density_tv)),
        num(rec.and_then(|r| r.score_auroc)),
        r.layer_densities
            .iter()
            .map(f64::to_string)
            .collect::<Vec<_>>()
            .join(";"),
        r.timing.total_s.to_string(),
        r.settings_hash.clone(),
    ]
}

/// The CSV text of `records` (header line first).
pub fn records_csv(records: &[JobRecord]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS)?;
    for r in records {
        w.write_record(row(r))?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 strings is UTF-8"))
}
