//! What was built: the package version and the git commit (from `build.rs`), for `--version`,
//! `/health` and the start-up log line, so an operator can tell which build answers.

/// The package version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The full git commit hash the binary was built from, or `unknown` when built outside a checkout.
pub const COMMIT: &str = env!("BUILD_GIT_COMMIT");

/// `0.1.0 (commit 1a2b…)`: what `ads-stats --version` prints after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BUILD_GIT_COMMIT"),
    ")"
);
