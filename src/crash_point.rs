//! Test-only crash points: stop the process at an event it reports, not after a guessed delay.
//!
//! Crash-safety tests (tests/scale.rs) must not depend on how fast a machine is. Instead of
//! killing a run after some milliseconds, they set one of two environment variables, which
//! ordinary runs never set:
//!
//! * `TICKETBENCH_TEST_ABORT_AFTER=<event>:<n>` — at the n-th occurrence of `event` the
//!   process calls [`std::process::abort`]: no unwinding, no destructors, no flush, like a
//!   SIGKILL;
//! * `TICKETBENCH_TEST_HANG_AFTER=<event>:<n>` — at the n-th occurrence it prints
//!   `ticketbench: test hang at <event> <n>` to stderr and sleeps forever, so a test can send
//!   a real SIGKILL at a known point.
//!
//! Events ([`Event`]): `record` (a job's record appended and fsynced), `record-write` (half of
//! a record's line written and fsynced, the other half not), `report` (half of `report.md`
//! written), `merge` (the merged file written to its temporary name, not yet renamed).
//!
//! A malformed value is a usage error (exit 2) at the first crash point, so a test never
//! passes because its hook was silently ignored. Documented in docs/scaling.md.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// A point a crash-safety test can stop the process at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A record was appended to `results.jsonl` and fsynced.
    Record,
    /// Half of a record's line is on disk (a kill in the middle of a write).
    RecordWrite,
    /// Half of `report.md` is written.
    Report,
    /// A merge's output is complete under its temporary name, before the rename.
    Merge,
}

impl Event {
    const ALL: [Event; 4] = [
        Event::Record,
        Event::RecordWrite,
        Event::Report,
        Event::Merge,
    ];

    fn name(self) -> &'static str {
        match self {
            Event::Record => "record",
            Event::RecordWrite => "record-write",
            Event::Report => "report",
            Event::Merge => "merge",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Abort,
    Hang,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Trigger {
    action: Action,
    event: Event,
    n: u64,
}

const ABORT_VAR: &str = "TICKETBENCH_TEST_ABORT_AFTER";
const HANG_VAR: &str = "TICKETBENCH_TEST_HANG_AFTER";

fn parse(var: &str, value: &str, action: Action) -> Result<Trigger, String> {
    let usage = || {
        format!(
            "{var}={value:?} is not <event>:<n> with event one of {} and n ≥ 1 (a test-only setting; unset it for normal runs)",
            Event::ALL.map(Event::name).join(", ")
        )
    };
    let (event, n) = value.split_once(':').ok_or_else(usage)?;
    let event = Event::ALL
        .into_iter()
        .find(|e| e.name() == event.trim())
        .ok_or_else(usage)?;
    let n: u64 = n.trim().parse().map_err(|_| usage())?;
    if n == 0 {
        return Err(usage());
    }
    Ok(Trigger { action, event, n })
}

fn trigger() -> Option<Trigger> {
    static TRIGGER: OnceLock<Option<Trigger>> = OnceLock::new();
    *TRIGGER.get_or_init(|| {
        let mut found = None;
        for (var, action) in [(ABORT_VAR, Action::Abort), (HANG_VAR, Action::Hang)] {
            if let Ok(value) = std::env::var(var) {
                match parse(var, &value, action) {
                    Ok(t) => found = Some(t),
                    Err(message) => {
                        eprintln!("error: {message}");
                        std::process::exit(2);
                    }
                }
            }
        }
        found
    })
}

/// A crash point that is due: the caller may finish a partial write, then calls [`Due::stop`].
#[must_use = "a due crash point must be stopped at"]
pub struct Due(Trigger);

impl Due {
    /// Aborts or hangs, as the test asked. Never returns.
    pub fn stop(self) -> ! {
        let Trigger { action, event, n } = self.0;
        match action {
            Action::Abort => std::process::abort(),
            Action::Hang => {
                eprintln!("ticketbench: test hang at {} {n}", event.name());
                loop {
                    std::thread::park();
                }
            }
        }
    }
}

/// Counts one occurrence of `event`; `Some` when the test hook asks to stop here.
pub fn due(event: Event) -> Option<Due> {
    static COUNTS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
    let t = trigger()?;
    if t.event != event {
        return None;
    }
    let count = COUNTS[event as usize].fetch_add(1, Ordering::SeqCst) + 1;
    (count == t.n).then_some(Due(t))
}

/// Stops at once when `event` is due (the crash point needs no partial write).
pub fn reached(event: Event) {
    if let Some(due) = due(event) {
        due.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_parsed_or_refused_with_the_events_named() {
        assert_eq!(
            parse(ABORT_VAR, "record-write:3", Action::Abort),
            Ok(Trigger {
                action: Action::Abort,
                event: Event::RecordWrite,
                n: 3
            })
        );
        for bad in ["record", "record:0", "recrd:1", "merge:x", ""] {
            let e = parse(HANG_VAR, bad, Action::Hang).unwrap_err();
            assert!(
                e.contains("record, record-write, report, merge") && e.contains(HANG_VAR),
                "{bad}: {e}"
            );
        }
    }
}
