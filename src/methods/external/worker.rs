//! A persistent plugin process: started once, then one JSON line in on stdin and one JSON line
//! out on stdout per request, so a plugin's start-up (`import torch`) is paid once per worker,
//! not once per job. Its stderr is kept as a ring of the last lines for error messages.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Lines of a plugin's stderr kept for error messages, and characters kept of each.
const STDERR_LINES: usize = 20;
const STDERR_LINE_CHARS: usize = 400;
/// Thread-count variables of the numeric libraries plugins use (OpenMP, hence PyTorch's
/// intra-op pool; OpenBLAS, MKL, Accelerate and numexpr behind numpy), set to the job's
/// threads unless the user has set them. Unset, each plugin starts one thread per core, and
/// `--jobs 2` on 2 cores measured 100–280 ms per numpy SNIP request instead of 17 ms.
const THREAD_VARIABLES: [&str; 5] = [
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
];
/// How long a plugin may take to exit after its stdin closes before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Why a request got no answer.
#[derive(Debug)]
pub(super) enum Failure {
    /// The process could not be started.
    Spawn(std::io::Error),
    /// Writing the request failed (the process had gone).
    Write(std::io::Error),
    /// The process ended before answering.
    Exited(Option<ExitStatus>),
    /// No answer within the timeout; the process was killed.
    Timeout(Duration),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Spawn(e) => write!(f, "could not start the plugin: {e}"),
            Failure::Write(e) => write!(f, "could not send the request: {e}"),
            Failure::Exited(Some(s)) => write!(f, "the plugin exited before answering ({s})"),
            Failure::Exited(None) => write!(f, "the plugin closed its stdout before answering"),
            Failure::Timeout(t) => write!(
                f,
                "no answer within timeout_s = {} s; the plugin was killed (raise `timeout_s:` if it needs longer)",
                t.as_secs_f64()
            ),
        }
    }
}

pub(super) struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<std::io::Result<String>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts `argv` in `cwd` with piped stdin, stdout and stderr, its thread pools sized to
    /// `threads` (see [`THREAD_VARIABLES`]).
    pub(super) fn spawn(argv: &[String], cwd: &Path, threads: usize) -> Result<Worker, Failure> {
        let (program, args) = argv.split_first().expect("a command has a program");
        let mut command = Command::new(program);
        for name in THREAD_VARIABLES {
            if std::env::var_os(name).is_none() {
                command.env(name, threads.to_string());
            }
        }
        // Its own process group, so a timeout kills what it started too (`sh -c …`).
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Failure::Spawn)?;
        let stdout = child.stdout.take().expect("piped");
        let stderr_pipe = child.stderr.take().expect("piped");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let failed = line.is_err();
                if tx.send(line).is_err() || failed {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let ring = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).split(b'\n') {
                let Ok(line) = line else { break };
                // Progress bars redraw with \r: keep the last state, and at most a screenful.
                let last = line.rsplit(|&b| b == b'\r').find(|p| !p.is_empty());
                let text: String = String::from_utf8_lossy(last.unwrap_or(&[]))
                    .chars()
                    .take(STDERR_LINE_CHARS)
                    .collect();
                let mut ring = ring.lock().expect("stderr ring");
                if ring.len() == STDERR_LINES {
                    ring.pop_front();
                }
                ring.push_back(text);
            }
        });
        Ok(Worker {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            stderr_reader: Some(stderr_reader),
        })
    }

    /// Whether the process is still running and has no unread line left from an earlier
    /// request (a plugin that printed two lines for one request is out of step: its next
    /// "answer" would be the stray line). A worker that is not is replaced, not asked.
    pub(super) fn is_ready(&mut self) -> bool {
        let running = matches!(self.child.try_wait(), Ok(None));
        running
            && matches!(
                self.lines.try_recv(),
                Err(std::sync::mpsc::TryRecvError::Empty)
            )
    }

    /// Sends one request line and waits up to `timeout` for one answer line. The stderr
    /// ring starts empty for each request, so a failure shows this request's lines.
    pub(super) fn ask(&mut self, request: &str, timeout: Duration) -> Result<String, Failure> {
        self.stderr.lock().expect("stderr ring").clear();
        let stdin = self.stdin.as_mut().expect("open until drop");
        stdin
            .write_all(format!("{request}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(Failure::Write)?;
        match self.lines.recv_timeout(timeout) {
            Ok(Ok(line)) => Ok(line),
            Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => {
                let status = self.wait_exit(EXIT_GRACE);
                Err(Failure::Exited(status))
            }
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                Err(Failure::Timeout(timeout))
            }
        }
    }

    /// The last lines the plugin wrote to stderr (complete once the process has ended).
    pub(super) fn stderr_tail(&mut self) -> Vec<String> {
        if self.child.try_wait().ok().flatten().is_some()
            && let Some(reader) = self.stderr_reader.take()
        {
            // A grandchild may hold the pipe open: wait briefly, never forever.
            let until = Instant::now() + Duration::from_millis(500);
            while !reader.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.stderr
            .lock()
            .expect("stderr ring")
            .iter()
            .cloned()
            .collect()
    }

    fn wait_exit(&mut self, grace: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    self.kill();
                    return None;
                }
            }
        }
    }

    /// Kills the plugin's whole process group (it is the group's leader), then reaps it.
    fn kill(&mut self) {
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    /// Closes stdin (the plugin's loop ends on EOF) and reaps the process, killing it after a
    /// grace period.
    fn drop(&mut self) {
        drop(self.stdin.take());
        self.wait_exit(EXIT_GRACE);
    }
}
