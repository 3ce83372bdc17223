//! An online, consistent copy of the SQLite database, taken while the service runs.
//!
//! Copying the file itself is not safe: in WAL mode the latest commits live in `-wal` until a
//! checkpoint, and a copy taken mid-write can be torn. `VACUUM INTO` runs inside one read
//! transaction on a connection of its own, so the copy holds every table as of one instant and
//! never blocks the service's writers (WAL readers and writers do not wait for each other). It
//! needs no part of the service: not its pool, and not the `<db>.lock` that keeps a second
//! service off the file (a backup only reads).

use std::path::{Path, PathBuf};

use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};

/// What a finished backup holds.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    /// Rows per table, by table name.
    pub tables: Vec<(String, i64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} exists; pass --force to replace it")]
    Exists(PathBuf),
    #[error("no database at {0}")]
    NoDatabase(PathBuf),
    #[error("{0}")]
    Failed(String),
}

#[derive(QueryableByName)]
struct TableName {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Copies the database at `source` to `dest` (replacing it only with `force`) and counts the
/// copy's rows. Blocking: call it off the async runtime.
pub fn backup_sqlite(source: &Path, dest: &Path, force: bool) -> Result<BackupReport, BackupError> {
    // Opening a missing file would create an empty database and "back it up".
    if !source.is_file() {
        return Err(BackupError::NoDatabase(source.to_path_buf()));
    }
    if dest.exists() && !force {
        return Err(BackupError::Exists(dest.to_path_buf()));
    }
    let failed =
        |what: &str, e: &dyn std::fmt::Display| BackupError::Failed(format!("{what}: {e}"));
    // Written beside the target, then moved into place: a half-written backup never carries the
    // name of a good one, and an old backup is replaced only by a complete new one.
    let mut partial = dest.as_os_str().to_owned();
    partial.push(format!(".partial-{}", std::process::id()));
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    // The copy holds sealed tokens and every seller's data: it is created for its owner alone
    // (0600) before SQLite writes a byte. `VACUUM INTO` fills an existing empty file and keeps
    // its mode; a chmod afterwards would leave a window in which the copy is readable.
    create_private(&partial)
        .map_err(|e| failed(&format!("cannot create {}", partial.display()), &e))?;

    let source_url = source.to_string_lossy();
    let mut conn = SqliteConnection::establish(&source_url)
        .map_err(|e| failed(&format!("cannot open {}", source.display()), &e))?;
    // The service may hold the write lock for a moment; wait for it rather than fail.
    diesel::sql_query("PRAGMA busy_timeout = 10000")
        .execute(&mut conn)
        .map_err(|e| failed("cannot set busy_timeout", &e))?;
    let copied = diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(partial.to_string_lossy().into_owned())
        .execute(&mut conn)
        .map_err(|e| failed(&format!("cannot copy into {}", partial.display()), &e));
    drop(conn);
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let placed = if force {
        std::fs::rename(&partial, dest)
    } else {
        // A hard link fails when the name exists, so a file created meanwhile is never replaced.
        std::fs::hard_link(&partial, dest).and_then(|()| std::fs::remove_file(&partial))
    };
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&partial);
        return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
            BackupError::Exists(dest.to_path_buf())
        } else {
            failed(&format!("cannot write {}", dest.display()), &e)
        });
    }
    let bytes = std::fs::metadata(dest)
        .map_err(|e| failed(&format!("cannot read {}", dest.display()), &e))?
        .len();
    let tables = count_rows(dest).map_err(|e| failed("cannot count the copy's rows", &e))?;
    Ok(BackupReport {
        path: dest.to_path_buf(),
        bytes,
        tables,
    })
}

/// An empty file only its owner may read or write.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

/// Rows per table in the SQLite file at `path`, read from the file itself (what a restore gets).
pub fn count_rows(path: &Path) -> diesel::QueryResult<Vec<(String, i64)>> {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())
        .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
    let names: Vec<TableName> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .load(&mut conn)?;
    let mut tables = Vec::with_capacity(names.len());
    for TableName { name } in names {
        // Names come from sqlite_master, not from a user; quoted as identifiers all the same.
        let sql = format!(
            "SELECT COUNT(*) AS n FROM \"{}\"",
            name.replace('"', "\"\"")
        );
        let count: Count = diesel::sql_query(sql).get_result(&mut conn)?;
        tables.push((name, count.n));
    }
    Ok(tables)
}
