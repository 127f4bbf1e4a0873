//! `ticketbench repro`: every job of a suite on two devices or backends, compared.
//!
//! Initial weights, data, data order and every random choice are made on the host from the
//! job's seed, so both devices start from identical bytes. What may differ is floating-point
//! arithmetic inside the backends (summation order, fused operations), and training amplifies
//! such differences. Hence the contract ([`Tolerances`]):
//!
//! * a **data-free** method (its mask depends only on θ_0 and the seed: random tickets, ratio
//!   rules, SynFlow, PHEW, the planted and dense references) must give the *identical* mask on
//!   both devices; anything else is a reproducibility bug and fails the command;
//! * with identical masks, the untrained ticket's metric (one forward pass) must agree within
//!   [`Tolerances::untrained`];
//! * a data-dependent method's masks are compared by Jaccard index, and the trained metrics
//!   by their difference; both are reported against the tolerances, which state what
//!   ticketbench promises, not a property of every job (see docs/reproducibility.md).

use super::job::{self, GroupState, Job, JobError, JobOutput, JobSite};
use super::suite::Suite;
use super::{RunError, run_in_group};
use crate::device::DeviceSpec;
use crate::engine::Engine;
use crate::methods::DataNeeds;
use serde::Serialize;
use ticketbench_planted::OutputKind;

/// Agreement a repro run expects between two devices. Accuracy differences are in points,
/// MSE differences in |log10| of the ratio.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tolerances {
    /// Untrained ticket (one forward pass) with identical masks: half a point allows one
    /// arg-max flip on a near tie in a test set of 200 or more.
    pub untrained_points: f64,
    /// … and 0.23 % in MSE.
    pub untrained_log10: f64,
    /// Trained ticket: training amplifies rounding differences.
    pub trained_points: f64,
    /// … and 12 % in MSE.
    pub trained_log10: f64,
    /// Smallest Jaccard index of a data-dependent method's two masks.
    pub jaccard: f64,
}

/// The stated tolerances (docs/reproducibility.md gives the measurements behind them).
pub const TOLERANCES: Tolerances = Tolerances {
    untrained_points: 0.5,
    untrained_log10: 1e-3,
    trained_points: 2.0,
    trained_log10: 0.05,
    jaccard: 0.9,
};

impl Tolerances {
    fn untrained(&self, classification: bool) -> f64 {
        if classification {
            self.untrained_points
        } else {
            self.untrained_log10
        }
    }

    fn trained(&self, classification: bool) -> f64 {
        if classification {
            self.trained_points
        } else {
            self.trained_log10
        }
    }
}

/// How one job's two runs compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Agreement {
    /// Identical masks and metrics.
    Identical,
    /// Within the tolerances.
    Within,
    /// A data-dependent job outside the tolerances (reported, not a failure).
    Outside,
    /// A data-free method gave two different masks, or identical masks gave untrained
    /// metrics beyond the tolerance: a reproducibility bug.
    Broken,
    /// The job failed on one of the devices.
    Failed,
}

/// One job on both devices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReproRow {
    pub task: String,
    pub model: String,
    pub method: String,
    pub check: Option<String>,
    pub density: f64,
    pub seed: u64,
    /// Accuracy (true) or MSE (false) in the metric fields.
    pub classification: bool,
    pub data_free: bool,
    pub identical_mask: bool,
    pub jaccard: Option<f64>,
    /// Accuracy in percent, or test MSE, on the two devices (untrained ticket, then trained).
    pub untrained: [Option<f64>; 2],
    pub trained: [Option<f64>; 2],
    /// Differences in points, or |log10| of the MSE ratio.
    pub untrained_diff: Option<f64>,
    pub trained_diff: Option<f64>,
    pub agreement: Agreement,
    pub error: Option<String>,
}

/// A finished comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Repro {
    pub suite: String,
    pub devices: [String; 2],
    pub tolerances: Tolerances,
    pub rows: Vec<ReproRow>,
}

impl Repro {
    pub fn count(&self, agreement: Agreement) -> usize {
        self.rows
            .iter()
            .filter(|r| r.agreement == agreement)
            .count()
    }

    /// Whether every job reproduced as the contract requires (no `Broken` or `Failed`).
    pub fn holds(&self) -> bool {
        self.count(Agreement::Broken) + self.count(Agreement::Failed) == 0
    }
}

/// (untrained, trained) metric of a run: accuracy in percent, or MSE.
fn metrics(out: &JobOutput) -> (Option<f64>, Option<f64>) {
    let m = &out.record.metrics;
    match m.untrained_test_acc {
        Some(acc) => (Some(acc * 100.0), m.test_acc.map(|a| a * 100.0)),
        None => (Some(m.untrained_test_loss), m.test_loss),
    }
}

fn difference(classification: bool, a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    let d = if classification {
        (a - b).abs()
    } else if a == b {
        0.0
    } else {
        (a / b).log10().abs()
    };
    d.is_finite().then_some(d)
}

fn compare(
    suite: &Suite,
    job: &Job,
    a: Result<JobOutput, JobError>,
    b: Result<JobOutput, JobError>,
) -> ReproRow {
    let task = &suite.tasks[job.task];
    let method = &suite.methods[job.method];
    let data_free = method.pruner.data_needs() == DataNeeds::None;
    let classification = matches!(task.task.output(), OutputKind::Classes(_));
    let mut row = ReproRow {
        task: task.label.clone(),
        model: suite.models[job.model].label(),
        method: method.label.clone(),
        check: job.check.map(|c| c.name().to_string()),
        density: job.density.get(),
        seed: job.seed,
        classification,
        data_free,
        identical_mask: false,
        jaccard: None,
        untrained: [None, None],
        trained: [None, None],
        untrained_diff: None,
        trained_diff: None,
        agreement: Agreement::Failed,
        error: None,
    };
    let (a, b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            row.error = Some(e.to_string());
            return row;
        }
    };
    let (ua, ta) = metrics(&a);
    let (ub, tb) = metrics(&b);
    row.untrained = [ua, ub];
    row.trained = [ta, tb];
    row.identical_mask = a.mask == b.mask;
    row.jaccard = Some(a.mask.jaccard(&b.mask));
    row.untrained_diff = difference(classification, ua, ub);
    row.trained_diff = difference(classification, ta, tb);
    let t = TOLERANCES;
    let within = |d: Option<f64>, tol: f64| d.is_some_and(|d| d <= tol);
    row.agreement = if (data_free && !row.identical_mask)
        || (row.identical_mask && !within(row.untrained_diff, t.untrained(classification)))
    {
        Agreement::Broken
    } else if row.identical_mask && row.untrained_diff == Some(0.0) && row.trained_diff == Some(0.0)
    {
        Agreement::Identical
    } else if row.jaccard.is_some_and(|j| j >= t.jaccard)
        && within(row.trained_diff, t.trained(classification))
    {
        Agreement::Within
    } else {
        Agreement::Outside
    };
    row
}

/// Runs every job of `suite` on both engines (each with its own group data, `threads`
/// backend threads) and compares them; `progress` sees each row as it is done.
pub fn repro(
    suite: &Suite,
    engines: [&Engine; 2],
    threads: usize,
    progress: &mut dyn FnMut(usize, usize, &ReproRow),
) -> Result<Repro, RunError> {
    let devices: [DeviceSpec; 2] = engines.map(|e| e.spec());
    let jobs = job::expand(suite, devices[0]);
    let twins = job::expand(suite, devices[1]);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| RunError::Threads {
            threads,
            message: e.to_string(),
        })?;
    let mut groups: [Option<GroupState>; 2] = [None, None];
    // External methods' request directories (removed as each request succeeds).
    let scratch = std::env::temp_dir().join(format!("ticketbench-repro-{}", std::process::id()));
    let site = JobSite {
        threads,
        shard: None,
        scratch: &scratch,
    };
    let mut rows = Vec::with_capacity(jobs.len());
    for (i, (a, b)) in jobs.iter().zip(&twins).enumerate() {
        let [ga, gb] = &mut groups;
        let (ra, rb) = pool.install(|| {
            (
                run_in_group(suite, a, engines[0], ga, site, &|_| {}),
                run_in_group(suite, b, engines[1], gb, site, &|_| {}),
            )
        });
        let row = compare(suite, a, ra, rb);
        progress(i + 1, jobs.len(), &row);
        rows.push(row);
    }
    Ok(Repro {
        suite: suite.name.clone(),
        devices: devices.map(|d| d.to_string()),
        tolerances: TOLERANCES,
        rows,
    })
}

fn cell(v: Option<f64>, classification: bool) -> String {
    match v {
        None => "–".into(),
        Some(v) if classification => format!("{v:.2}"),
        Some(v) => format!("{v:.4e}"),
    }
}

impl std::fmt::Display for Repro {
    /// A Markdown table, one row per job, then the counts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b] = &self.devices;
        let t = &self.tolerances;
        writeln!(
            f,
            "# repro: {} on {a} vs {b}\n\nMetrics: accuracy % (classification) or test MSE; Δ in points or |log10 MSE ratio|. Tolerances: data-free masks identical; untrained Δ ≤ {} points or {} for identical masks; trained Δ ≤ {} points or {} and mask Jaccard ≥ {} for data-dependent methods.\n",
            self.suite,
            t.untrained_points,
            t.untrained_log10,
            t.trained_points,
            t.trained_log10,
            t.jaccard
        )?;
        writeln!(
            f,
            "| task | model | method | check | density | seed | mask | Jaccard | untrained {a} / {b} | trained {a} / {b} | Δ trained | agreement |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
        for r in &self.rows {
            let c = r.classification;
            writeln!(
                f,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {} | {:?}{} |",
                r.task,
                r.model,
                r.method,
                r.check.as_deref().unwrap_or(""),
                r.density,
                r.seed,
                if r.identical_mask {
                    "identical"
                } else if r.data_free {
                    "DIFFERENT"
                } else {
                    "different"
                },
                r.jaccard.map_or("–".into(), |j| format!("{j:.3}")),
                cell(r.untrained[0], c),
                cell(r.untrained[1], c),
                cell(r.trained[0], c),
                cell(r.trained[1], c),
                r.trained_diff.map_or("–".into(), |d| format!("{d:.2e}")),
                r.agreement,
                r.error.as_ref().map_or(String::new(), |e| format!(": {e}"))
            )?;
        }
        write!(
            f,
            "\n{} jobs: {} identical, {} within tolerance, {} outside (data-dependent, reported), {} broken, {} failed",
            self.rows.len(),
            self.count(Agreement::Identical),
            self.count(Agreement::Within),
            self.count(Agreement::Outside),
            self.count(Agreement::Broken),
            self.count(Agreement::Failed)
        )
    }
}
