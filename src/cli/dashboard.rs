//! `ads-stats dashboard hash-password`: the argon2id PHC string for `dashboard.admin_password_hash`.
//!
//! The password comes from stdin, not an argument, so it stays out of the shell history and the
//! process list: `ads-stats dashboard hash-password < file`, or type it and press Enter.

use std::io::BufRead;

use clap::Subcommand;

use super::EXIT_CONFIG;

#[derive(Debug, Subcommand)]
pub enum DashboardCommand {
    /// Read a password from stdin (one line) and print its argon2id PHC string, for
    /// dashboard.admin_password_hash.
    HashPassword,
}

/// Runs the subcommand; the exit code.
pub fn run(command: &DashboardCommand) -> i32 {
    match command {
        DashboardCommand::HashPassword => hash_password(std::io::stdin().lock()),
    }
}

fn hash_password(mut input: impl BufRead) -> i32 {
    let mut line = String::new();
    if let Err(e) = input.read_line(&mut line) {
        eprintln!("ads-stats: cannot read the password from stdin: {e}");
        return EXIT_CONFIG;
    }
    // Only the line ending goes: spaces may be part of a password.
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    if password.is_empty() {
        eprintln!("ads-stats: the password on stdin is empty; type one, e.g. `ads-stats dashboard hash-password` then the password and Enter");
        return EXIT_CONFIG;
    }
    match crate::password::hash(password) {
        Ok(phc) => {
            println!("{phc}");
            0
        }
        Err(e) => {
            eprintln!("ads-stats: {e}");
            1
        }
    }
}
