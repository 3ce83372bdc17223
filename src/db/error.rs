//! Why the database could not be used, sorted into what a retry may fix (unavailable, busy) and
//! what it will not (an error in the query).
//!
//! diesel reports neither SQLite's SQLITE_BUSY nor PostgreSQL's SQLSTATE codes as kinds of their
//! own, so "busy" is recognised by the engines' messages. PostgreSQL's are English unless the
//! server's `lc_messages` says otherwise (ads-stats cannot change it: it is a superuser setting);
//! with translated messages a statement timeout answers 500 instead of 503.

use diesel::result::{DatabaseErrorKind, Error};

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be opened in time: the server is down or unreachable.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database works but is saturated right now: every pooled connection is in use, SQLite's
    /// write lock stayed taken past the busy timeout, or PostgreSQL cancelled a statement on its
    /// statement or lock timeout. Retrying shortly is the right answer.
    #[error("database busy: {0}")]
    Busy(String),
    #[error(transparent)]
    Query(Error),
    #[error("migration failed: {0}")]
    Migration(String),
}

impl From<Error> for DbError {
    fn from(e: Error) -> Self {
        match e {
            // A connection that broke under a query (diesel-async reports a PostgreSQL connection
            // closed or reset as "unable to send command") is the database being unreachable,
            // not a mistake in the query.
            Error::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection,
                info,
            ) => DbError::Unavailable(info.message().to_string()),
            e if is_busy(&e) => DbError::Busy(e.to_string()),
            e => DbError::Query(e),
        }
    }
}

impl DbError {
    /// True for errors a retry may fix (busy or unreachable), false for errors in the query.
    pub fn is_transient(&self) -> bool {
        matches!(self, DbError::Busy(_) | DbError::Unavailable(_))
    }
}

/// Errors that mean "too busy right now", by the message each engine gives: diesel reports
/// neither SQLite's SQLITE_BUSY nor PostgreSQL's SQLSTATE 57014 / 55P03 as a kind of its own.
fn is_busy(e: &Error) -> bool {
    let Error::DatabaseError(_, info) = e else {
        return false;
    };
    let message = info.message().to_ascii_lowercase();
    [
        "database is locked",
        "database table is locked",
        "database is busy",
        "canceling statement due to statement timeout",
        "canceling statement due to lock timeout",
        "could not obtain lock",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, SqliteConnection};

    #[test]
    fn a_connection_that_broke_is_unavailable_not_a_query_error() {
        for kind in [
            DatabaseErrorKind::UnableToSendCommand,
            DatabaseErrorKind::ClosedConnection,
        ] {
            let broken = Error::DatabaseError(kind, Box::new("connection closed".to_string()));
            let e = DbError::from(broken);
            assert!(matches!(e, DbError::Unavailable(_)), "{e:?}");
            assert!(e.is_transient());
        }
    }
    #[test]
    fn sqlite_locked_is_busy_and_a_bad_query_is_not() {
        let dir = std::env::temp_dir().join(format!("ads-stats-busy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("busy.db");
        let path = path.to_string_lossy();
        let mut holder = SqliteConnection::establish(&path).unwrap();
        holder
            .batch_execute("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER); BEGIN IMMEDIATE")
            .unwrap();
        let mut other = SqliteConnection::establish(&path).unwrap();
        other.batch_execute("PRAGMA busy_timeout = 0").unwrap();
        let locked = other.batch_execute("BEGIN IMMEDIATE").unwrap_err();
        assert!(matches!(DbError::from(locked), DbError::Busy(_)));
        let wrong = other.batch_execute("SELECT * FROM missing").unwrap_err();
        let wrong = DbError::from(wrong);
        assert!(matches!(wrong, DbError::Query(_)));
        assert!(!wrong.is_transient());
        drop((holder, other));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
