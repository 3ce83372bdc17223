//! Where the database is: the `database.url` text parsed into the backend it names.
//!
//! `config` calls [`DatabaseUrl::parse`] while the settings load, so a bad URL stops start-up
//! with one line naming `database.url` (exit 2); `db` never reads `config`.

use std::path::PathBuf;
use std::str::FromStr;

/// Where the database lives, decided by the URL scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// Reads `postgres://…`, `postgresql://…`, `sqlite://PATH` or a bare path; the error is one
    /// phrase for the line naming `database.url`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.is_empty() {
            return Err("is empty".into());
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return tokio_postgres::Config::from_str(url)
                .map(|_| Self::Postgres(url.to_string()))
                .map_err(|e| format!("not a valid PostgreSQL URL ({e})"));
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://data/ads-stats.db".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(format!(
                "unsupported scheme `{scheme}://` (use postgres://, postgresql:// or sqlite://)"
            ));
        }
        Ok(Self::Sqlite(PathBuf::from(url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_pick_the_backend() {
        assert!(matches!(
            DatabaseUrl::parse("postgres://postgres@127.0.0.1:5432/x"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(matches!(
            DatabaseUrl::parse("postgresql://u@h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/a.db"),
            Ok(DatabaseUrl::Sqlite("data/a.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("/tmp/x.db"),
            Ok(DatabaseUrl::Sqlite("/tmp/x.db".into()))
        );
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert!(DatabaseUrl::parse("postgres://h:notaport/db").is_err());
    }
}
