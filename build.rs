//! Records the git commit the binary is built from, so `--version` and `/health` tell an operator
//! what runs. Outside a git checkout (a Docker build context without `.git`, a source tarball) the
//! commit is "unknown" rather than a failed build; `BUILD_GIT_COMMIT` overrides both (a
//! packaging script that knows the commit but ships no `.git`). The name avoids the
//! `ADS_STATS_` prefix on purpose: cargo also sets it for `cargo run`, and the settings loader
//! refuses unknown `ADS_STATS_*` variables.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=BUILD_GIT_COMMIT");
    let commit = std::env::var("BUILD_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it names (a commit). The
    // paths come from git because a worktree keeps them outside the source folder.
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &branch]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    if let Some(packed) = git(&["rev-parse", "--git-path", "packed-refs"]) {
        println!("cargo:rerun-if-changed={packed}");
    }
    println!("cargo:rustc-env=BUILD_GIT_COMMIT={commit}");
}
