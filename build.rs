//! Records the git commit the binary is built from, with `-dirty` when tracked files differ
//! from it: `provenance.git_commit` of every result. Outside a git checkout (a crates.io
//! build) nothing is recorded.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Rerun when HEAD moves, and when sources change (the dirty flag); cargo recompiles the
    // crate after a source change anyway, so this costs nothing extra.
    for source in [
        "src",
        "core/src",
        "planted/src",
        "baselines/src",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        if Path::new(source).exists() {
            println!("cargo:rerun-if-changed={source}");
        }
    }
    let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) else {
        return;
    };
    for file in ["HEAD", "refs/heads", "packed-refs"] {
        let path = Path::new(&git_dir).join(file);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    if let Some(commit) = git(&["rev-parse", "HEAD"]) {
        let dirty =
            git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        let suffix = if dirty { "-dirty" } else { "" };
        println!("cargo:rustc-env=TICKETBENCH_GIT_COMMIT={commit}{suffix}");
    }
}
