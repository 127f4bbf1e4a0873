//! `ticketbench merge`: the union of several results directories (shards) in one.
//!
//! Records are keyed by `settings_hash`. The same job in two inputs is a duplicate when its
//! numbers agree (timing and provenance aside) and is kept once; when they differ it is a
//! conflict, reported with both sources, and nothing is written unless the caller chose to
//! keep the first. Records from different ticketbench versions are refused: their hashes
//! never match, so a merged report would silently mix two builds. The output is written to
//! a temporary file, fsynced and renamed over `results.jsonl`, so a killed merge leaves the
//! old file whole; the output directory's own records come first, so merging again is a
//! no-op (idempotent).

use super::job::JobRecord;
use super::store::{self, BadLine, DirLock, RESULTS_FILE, StoreError, io};
use crate::crash_point::{self, Event};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Two records of one job whose numbers differ.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub settings_hash: String,
    pub first: PathBuf,
    pub second: PathBuf,
    /// Top-level fields that differ.
    pub fields: Vec<String>,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "job {}: {} and {} differ in {}",
            self.settings_hash,
            self.first.display(),
            self.second.display(),
            self.fields.join(", ")
        )
    }
}

#[derive(Debug, Error)]
pub enum MergeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{} holds no {RESULTS_FILE}; give the directories that `ticketbench run --out DIR` wrote",
        .0.display()
    )]
    NotAResultsDir(PathBuf),
    #[error(
        "the inputs come from different ticketbench versions ({}); results of two builds never share a settings hash, so merging them would mix two benchmarks: rerun the older shards with one build, or merge each version into its own directory",
        .0.iter().map(|(v, dirs)| format!("{v} in {}", dirs.join(", "))).collect::<Vec<_>>().join("; ")
    )]
    Versions(BTreeMap<String, Vec<String>>),
    #[error(
        "{} jobs have conflicting results (same settings, different numbers: a nondeterministic method, or shards from different machines or backends):\n  {}\nnothing was written; investigate, or rerun with --keep-first to keep the first input's record of each",
        .0.len(),
        .0.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("\n  ")
    )]
    Conflicts(Vec<Conflict>),
}

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeSummary {
    /// Records in the merged file.
    pub records: usize,
    /// Records already present (identical numbers) and kept once.
    pub duplicates: usize,
    /// Conflicts resolved by keeping the first record (`keep_first`).
    pub kept_first: Vec<Conflict>,
    /// Unreadable lines skipped in the inputs.
    pub bad_lines: Vec<BadLine>,
}

/// A record's numbers: everything but timing and provenance.
fn numbers(record: &JobRecord) -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(mut fields) =
        serde_json::to_value(record).expect("records serialize")
    else {
        unreachable!("a record serializes to an object")
    };
    fields.remove("timing");
    fields.remove("provenance");
    fields
}

fn differing_fields(a: &JobRecord, b: &JobRecord) -> Vec<String> {
    let unknown_digest = a.mask_digest.is_empty() || b.mask_digest.is_empty();
    let (mut a, mut b) = (numbers(a), numbers(b));
    // A record older than `mask_digest` leaves it empty: unknown, not different.
    if unknown_digest {
        a.remove("mask_digest");
        b.remove("mask_digest");
    }
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// Merges the results of `inputs` into `out` (created if needed; its own records first).
pub fn merge(inputs: &[PathBuf], out: &Path, keep_first: bool) -> Result<MergeSummary, MergeError> {
    if let Some(dir) = inputs.iter().find(|d| !d.join(RESULTS_FILE).is_file()) {
        return Err(MergeError::NotAResultsDir(dir.clone()));
    }
    let _lock = DirLock::acquire(out)?;
    let out_canonical = out.canonicalize().map_err(io(out))?;
    let mut sources: Vec<PathBuf> = vec![out.to_path_buf()];
    for dir in inputs {
        if dir.canonicalize().ok().as_deref() != Some(out_canonical.as_path()) {
            sources.push(dir.clone());
        }
    }

    let mut summary = MergeSummary::default();
    let mut merged: Vec<(JobRecord, PathBuf)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut conflicts = Vec::new();
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for dir in &sources {
        let loaded = store::load(dir)?;
        summary.bad_lines.extend(loaded.bad_lines);
        for record in loaded.records {
            let dirs = versions.entry(record.version.clone()).or_default();
            let name = dir.display().to_string();
            if !dirs.contains(&name) {
                dirs.push(name);
            }
            match index.get(&record.settings_hash) {
                None => {
                    index.insert(record.settings_hash.clone(), merged.len());
                    merged.push((record, dir.clone()));
                }
                Some(&i) => {
                    let fields = differing_fields(&merged[i].0, &record);
                    if fields.is_empty() {
                        summary.duplicates += 1;
                    } else {
                        conflicts.push(Conflict {
                            settings_hash: record.settings_hash.clone(),
                            first: merged[i].1.clone(),
                            second: dir.clone(),
                            fields,
                        });
                    }
                }
            }
        }
    }
    if versions.len() > 1 {
        return Err(MergeError::Versions(versions));
    }
    if !conflicts.is_empty() {
        if !keep_first {
            return Err(MergeError::Conflicts(conflicts));
        }
        summary.kept_first = conflicts;
    }
    summary.records = merged.len();
    write_atomically(out, merged.iter().map(|(r, _)| r))?;
    Ok(summary)
}

/// Writes `records` to `dir/results.jsonl` through a fsynced temporary file and a rename.
fn write_atomically<'a>(
    dir: &Path,
    records: impl Iterator<Item = &'a JobRecord>,
) -> Result<(), StoreError> {
    let path = dir.join(RESULTS_FILE);
    let tmp = dir.join(format!(".{RESULTS_FILE}.merge-{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let mut text = Vec::new();
    for r in records {
        serde_json::to_writer(&mut text, r).expect("records serialize");
        text.push(b'\n');
    }
    file.write_all(&text).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    crash_point::reached(Event::Merge);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    // The rename is durable once the directory entry is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}
