//! `results.jsonl`: one JSON object per finished job, appended as whole, fsynced lines.
//!
//! A run killed mid-write can leave a truncated last line; readers report and skip lines
//! that do not parse, and the writer starts a fresh line first, so a fragment never merges
//! with the next record. One process at a time writes a results directory: [`DirLock`]
//! holds an OS file lock on `DIR/.ticketbench.lock` (released by the OS when the process
//! dies, so a killed run never leaves a stale lock).

use super::job::JobRecord;
use crate::crash_point::{self, Event};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
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
    #[error(
        "{} is being written by another ticketbench process ({holder}); wait for it to finish, or give each shard its own --out directory and combine them with `ticketbench merge`",
        dir.display()
    )]
    Locked { dir: PathBuf, holder: String },
    #[error(
        "{}: none of its {lines} lines is a ticketbench result (line {first_line}: {reason}); point at a directory written by `ticketbench run --out DIR`, or move the file away",
        path.display()
    )]
    NotResults {
        path: PathBuf,
        lines: usize,
        first_line: usize,
        reason: String,
    },
}

/// Maps an I/O error to [`StoreError::Io`] naming `path`.
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// File holding the exclusive lock of a results directory.
pub const LOCK_FILE: &str = ".ticketbench.lock";

/// Exclusive right to write a results directory, held until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Creates `dir` if needed and locks it, or fails at once with [`StoreError::Locked`]
    /// naming the holder (a second writer would interleave with the first's resume logic).
    pub fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // The holder's note is informative only; an unreadable note still locks.
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "unknown process".to_string(),
                    h => h.to_string(),
                };
                return Err(StoreError::Locked {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        let note = format!(
            "pid {} since unix time {}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        );
        file.set_len(0).map_err(io(&path))?;
        file.write_all(note.as_bytes()).map_err(io(&path))?;
        Ok(DirLock { _file: file })
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

/// Reads `dir/results.jsonl`. A missing file is an empty result set; a file with no readable
/// line at all is an error (it is not a results file, and a run must not append to it).
pub fn load(dir: &Path) -> Result<Loaded, StoreError> {
    let path = dir.join(RESULTS_FILE);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(io(&path)(e)),
    };
    let mut loaded = Loaded::default();
    // Bytes, not `lines()`: a line that is not UTF-8 is a bad line, not an I/O error.
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(io(&path))?;
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice::<JobRecord>(&line) {
            Ok(r) => loaded.records.push(r),
            Err(e) => loaded.bad_lines.push(BadLine {
                path: path.clone(),
                line: i + 1,
                reason: e.to_string(),
            }),
        }
    }
    if loaded.records.is_empty()
        && let Some(first) = loaded.bad_lines.first()
    {
        return Err(StoreError::NotResults {
            path,
            lines: loaded.bad_lines.len(),
            first_line: first.line,
            reason: first.reason.clone(),
        });
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
        if let Some(due) = crash_point::due(Event::RecordWrite) {
            let half = &line[..line.len() / 2];
            self.file.write_all(half).map_err(io(&self.path))?;
            self.file.sync_data().map_err(io(&self.path))?;
            due.stop();
        }
        self.file.write_all(&line).map_err(io(&self.path))?;
        self.file.sync_data().map_err(io(&self.path))?;
        crash_point::reached(Event::Record);
        Ok(())
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
