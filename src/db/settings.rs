//! The `[database]` settings: where the database is and how the pool behaves. They live with the
//! database so that `db` never reads `config`; `config` loads them as its `[database]` table.

use std::time::Duration;

use serde::Deserialize;

/// `[database]`: the one pool shared by everything.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Parsed by [`super::DatabaseUrl::parse`]; the scheme picks the backend.
    pub url: String,
    pub pool_size: usize,
    #[serde(with = "crate::duration")]
    pub connect_timeout: Duration,
    #[serde(with = "crate::duration")]
    pub statement_timeout: Duration,
    pub run_migrations: bool,
}
