//! `results.jsonl`: one JSON object per finished job, appended as whole, fsynced lines.
//!
//! A run killed mid-write can leave a truncated last line; readers report and skip lines
//! that do not parse, and the writer starts a fresh line first, so a fragment never merges
//! with the next record.

use super::job::JobRecord;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const RESULTS_FILE: &str = "results.jsonl";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no results file ({RESULTS_FILE}); run a suite with --out {} first", path.display(), path.display())]
    NoResults { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A line of a results file that could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct BadLine {
    pub path: PathBuf,
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: skipped unreadable result line ({})",
            self.path.display(),
            self.line,
            self.reason
        )
    }
}

/// Records of one results file, plus the lines that were skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub records: Vec<JobRecord>,
    pub bad_lines: Vec<BadLine>,
}

/// Reads `dir/results.jsonl`. A missing file is an empty result set.
pub fn load(dir: &Path) -> Result<Loaded, StoreError> {
    let path = dir.join(RESULTS_FILE);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(io(&path)(e)),
    };
    let mut loaded = Loaded::default();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io(&path))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<JobRecord>(&line) {
            Ok(r) => loaded.records.push(r),
            Err(e) => loaded.bad_lines.push(BadLine {
                path: path.clone(),
                line: i + 1,
                reason: e.to_string(),
            }),
        }
    }
    Ok(loaded)
}

/// Appends records to `dir/results.jsonl`.
pub struct ResultsWriter {
    path: PathBuf,
    file: File,
}

impl ResultsWriter {
    /// Opens (creating `dir` and the file if needed) for appending.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(RESULTS_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(io(&path))?;
        // A killed run may have left a partial line: terminate it so it stays its own (bad) line.
        let len = file.metadata().map_err(io(&path))?.len();
        if len > 0 {
            let mut last = [0u8];
            file.seek(SeekFrom::Start(len - 1)).map_err(io(&path))?;
            file.read_exact(&mut last).map_err(io(&path))?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(io(&path))?;
            }
        }
        Ok(ResultsWriter { path, file })
    }

    /// Writes one record as a single line and fsyncs it before returning.
    pub fn append(&mut self, record: &JobRecord) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(record).expect("records serialize");
        line.push(b'\n');
        self.file.write_all(&line).map_err(io(&self.path))?;
        self.file.sync_data().map_err(io(&self.path))
    }
}

/// Settings hashes already recorded in `loaded` (jobs a rerun skips).
pub fn done_hashes(loaded: &Loaded) -> HashSet<String> {
    loaded
        .records
        .iter()
        .map(|r| r.settings_hash.clone())
        .collect()
}
