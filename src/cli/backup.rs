//! `ads-stats backup --to FILE`: an online copy of the SQLite database (see `db::backup`), with
//! its size and row counts; PostgreSQL has its own tools.

use std::path::Path;

use crate::config::{DatabaseUrl, Settings};
use crate::db::backup::{backup_sqlite, BackupError};

use super::EXIT_CONFIG;

/// Runs the backup; the exit code (0 done, 1 failed, 2 wrong backend or target exists).
pub fn run(settings: &Settings, to: &Path, force: bool) -> i32 {
    let source = match settings.database_url() {
        DatabaseUrl::Sqlite(path) => path,
        DatabaseUrl::Postgres(_) => {
            eprintln!(
                "ads-stats: backup copies SQLite files; on PostgreSQL use pg_dump \
                 (e.g. pg_dump --format=custom --file=ads-stats.dump \"$DATABASE_URL\")"
            );
            return EXIT_CONFIG;
        }
    };
    let started = std::time::Instant::now();
    match backup_sqlite(&source, to, force) {
        Ok(report) => {
            println!(
                "backup of {} written to {} ({} bytes, {} ms)",
                source.display(),
                report.path.display(),
                report.bytes,
                started.elapsed().as_millis()
            );
            for (table, rows) in &report.tables {
                println!("  {table:<32} {rows:>10} rows");
            }
            0
        }
        Err(e @ BackupError::Exists(_)) => {
            eprintln!("ads-stats: {e}");
            EXIT_CONFIG
        }
        Err(e) => {
            eprintln!("ads-stats: backup failed: {e}");
            1
        }
    }
}
