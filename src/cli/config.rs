//! `ads-stats config`: the settings a process would run with, after every layer, each value
//! with its source; `--check` only validates (for a unit's `ExecStartPre=`).

use std::path::Path;

use crate::config::{effective, Settings};

use super::EXIT_CONFIG;

/// Prints the effective settings (or, with `check`, only whether they are valid); the exit code.
pub fn run(explicit_file: Option<&Path>, check: bool) -> i32 {
    // The same loading and checks as `serve`, so a configuration that passes here starts.
    let settings = match Settings::load(explicit_file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ads-stats: {e}");
            return EXIT_CONFIG;
        }
    };
    if check {
        println!("configuration ok (ADS_STATS_ENV={})", settings.environment);
        return 0;
    }
    let rendered = Settings::layers(explicit_file)
        .map_err(|e| e.to_string())
        .and_then(|(figment, env)| effective::render(&figment, &env));
    match rendered {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("ads-stats: {e}");
            EXIT_CONFIG
        }
    }
}
