//! Helpers shared by the end-to-end tests that drive the binary.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use serde_json::Value;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Output};

pub fn ticketbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ticketbench"))
        .args(args)
        .output()
        .unwrap()
}

/// Waits, by reading its piped stderr, until `child` reports that the test-only hook
/// `TICKETBENCH_TEST_HANG_AFTER` holds it (src/crash_point.rs); panics with that stderr when the
/// process ends first. No timing: the wait ends at an event the program prints.
pub fn wait_for_hang(child: &mut Child) {
    let mut seen = String::new();
    let stderr = child.stderr.as_mut().expect("stderr piped");
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line.starts_with("ticketbench: test hang at ") {
            return;
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    panic!(
        "the run ended ({:?}) before the hook held it:\n{seen}",
        child.wait().unwrap()
    );
}

/// The stdout of a successful run; panics with stderr otherwise.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Records of a results file, without the fields that legitimately differ between runs.
pub fn records(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("timing");
            o.remove("provenance");
            v
        })
        .collect()
}

/// [`records`] keyed by settings hash.
pub fn records_by_hash(dir: &Path) -> std::collections::BTreeMap<String, Value> {
    records(dir)
        .into_iter()
        .map(|r| (r["settings_hash"].as_str().unwrap().to_string(), r))
        .collect()
}

/// Everything a method needs outside a suite: θ_0, the task's data, the engine.
pub struct PruneSetup<'a> {
    pub engine: &'a ticketbench::engine::Engine,
    pub net: &'a ticketbench_core::Network,
    pub task: &'a ticketbench_planted::TaskData,
    pub recipe: &'a ticketbench::train::TrainRecipe,
    pub streams: &'a ticketbench_core::Streams,
    pub planted: Option<&'a ticketbench_planted::PlantedTicket>,
}

impl PruneSetup<'_> {
    /// Runs `method` at `density`.
    pub fn prune(
        &self,
        method: &dyn ticketbench::methods::Pruner,
        density: f64,
    ) -> Result<ticketbench::methods::PruneOutcome, ticketbench::methods::MethodError> {
        let data = self.engine.upload(self.task.clone());
        let mut trained = None;
        let mut ctx = ticketbench::methods::PruneContext {
            engine: self.engine,
            net: self.net,
            data: &data,
            recipe: self.recipe,
            streams: self.streams,
            trained_dense: &mut trained,
            cache: &mut ticketbench::methods::MethodCache::new(),
            progress: &mut |_| {},
            planted: self.planted,
            job: Default::default(),
        };
        method.prune(&mut ctx, ticketbench_core::Density::new(density).unwrap())
    }
}
