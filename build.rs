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
    // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it names (a commit) and
    // packed-refs (where a branch can live after `git gc`). The paths come from git because a
    // worktree keeps them outside the source folder. Only existing paths are watched: cargo
    // treats a missing one as changed, which would rebuild the crate at every build.
    let mut watched = vec!["build.rs".to_string()];
    watched.extend(git(&["rev-parse", "--git-path", "HEAD"]));
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.extend(git(&["rev-parse", "--git-path", &branch]));
    }
    watched.extend(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in watched {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rustc-env=BUILD_GIT_COMMIT={commit}");
}
