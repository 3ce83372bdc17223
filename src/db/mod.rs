//! The database: one pool per process over PostgreSQL or an embedded SQLite file, the shared schema,
//! embedded migrations, and the queries everything else uses.
//!
//! Queries are plain `async fn(&mut DbConn, …) -> QueryResult<T>`; [`db_run!`] expands one query body
//! for whichever backend the connection is, so a query is written once unless the SQL really differs.

pub mod backup;
pub mod catalog;
pub mod connection_totals;
pub mod connections;
pub mod dashboard;
pub mod dashboard_jobs;
mod error;
pub mod job_actions;
pub mod job_admission;
pub mod jobs;
pub mod models;
pub mod ops;
mod prepared;
pub mod reads;
pub mod report_runs;
pub mod retention;
pub mod schema;
mod settings;
pub mod ticks;
mod url;
pub mod writes;

use std::path::Path;
use std::time::Duration;

use diesel::{Connection, SqliteConnection};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;

pub use error::DbError;
pub use prepared::prepared;
pub use settings::DatabaseSettings;
pub use url::DatabaseUrl;

pub type PgConn = AsyncPgConnection;
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// The advisory lock key migrations run under on PostgreSQL ("ads-stat" in ASCII).
const MIGRATION_LOCK: i64 = 0x6164_732d_7374_6174;

/// A snapshot of the connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open now.
    pub size: usize,
    /// Open connections idle in the pool.
    pub available: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
    /// Most connections the pool may open (`database.pool_size`).
    pub max_size: usize,
}

/// The process-wide pool; cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: DbPool,
    connect_timeout: Duration,
}

#[derive(Clone)]
enum DbPool {
    Postgres(Pool<PgConn>),
    Sqlite(Pool<SqliteConn>),
}

/// A pooled connection to either backend; hand it back (drop it) before slow or outbound work.
// Lives on the stack of one task at a time; boxing would only add an allocation per checkout.
#[allow(clippy::large_enum_variant)]
pub enum DbConn {
    Postgres(Object<PgConn>),
    Sqlite(Object<SqliteConn>),
}

/// Runs one query body on whichever backend `$conn` is. Inside the body `$conn` is
/// `&mut AsyncPgConnection` or `&mut SyncConnectionWrapper<SqliteConnection>`.
/// The second form takes a body per backend, for SQL that really differs.
#[macro_export]
macro_rules! db_run {
    ($conn:ident, $body:block) => {
        match $conn {
            $crate::db::DbConn::Postgres(pooled) => {
                let $conn: &mut $crate::db::PgConn = &mut *pooled;
                $body
            }
            $crate::db::DbConn::Sqlite(pooled) => {
                let $conn: &mut $crate::db::SqliteConn = &mut *pooled;
                $body
            }
        }
    };
    ($conn:ident, postgres $pg:block, sqlite $sqlite:block) => {
        match $conn {
            $crate::db::DbConn::Postgres(pooled) => {
                let $conn: &mut $crate::db::PgConn = &mut *pooled;
                $pg
            }
            $crate::db::DbConn::Sqlite(pooled) => {
                let $conn: &mut $crate::db::SqliteConn = &mut *pooled;
                $sqlite
            }
        }
    };
}

impl Db {
    /// Builds the pool for `settings.url`; no connection is opened until one is needed.
    pub fn connect(settings: &DatabaseSettings) -> Result<Self, DbError> {
        let url = DatabaseUrl::parse(&settings.url).map_err(DbError::Unavailable)?;
        let pool = match url {
            DatabaseUrl::Postgres(url) => {
                let statement_timeout_ms = settings.statement_timeout.as_millis();
                let mut config = ManagerConfig::<PgConn>::default();
                // No test query at each checkout (a round trip and a commit, a dozen a job): a
                // connection the server closed shows as closed and is dropped, and one that
                // fails mid-query fails that query, which callers treat as transient.
                config.recycling_method = RecyclingMethod::Fast;
                let home = RuntimeHome::current();
                config.custom_setup = Box::new(move |url| {
                    let url = url.to_string();
                    home.establish(async move {
                        let mut conn = PgConn::establish(&url).await?;
                        // Timestamps are bound as UTC wall-clock values into timestamptz columns.
                        let setup = format!(
                            "SET TIME ZONE 'UTC'; SET statement_timeout = {statement_timeout_ms}"
                        );
                        conn.batch_execute(&setup)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    })
                });
                let manager = AsyncDieselConnectionManager::new_with_config(url, config);
                DbPool::Postgres(
                    Pool::builder(manager)
                        .max_size(settings.pool_size)
                        .build()
                        .map_err(|e| DbError::Unavailable(e.to_string()))?,
                )
            }
            DatabaseUrl::Sqlite(path) => {
                ensure_parent_dir(&path)?;
                let mut config = ManagerConfig::<SqliteConn>::default();
                // A file connection cannot drop; checking it would only cost a thread hop.
                config.recycling_method = RecyclingMethod::Fast;
                let home = RuntimeHome::current();
                config.custom_setup = Box::new(move |url| {
                    let url = url.to_string();
                    home.establish(async move {
                        let mut conn = SqliteConn::establish(&url).await?;
                        conn.batch_execute(SQLITE_PRAGMAS)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    })
                });
                let manager =
                    AsyncDieselConnectionManager::new_with_config(path.to_string_lossy(), config);
                DbPool::Sqlite(
                    Pool::builder(manager)
                        .max_size(settings.pool_size)
                        .build()
                        .map_err(|e| DbError::Unavailable(e.to_string()))?,
                )
            }
        };
        Ok(Self {
            pool,
            connect_timeout: settings.connect_timeout,
        })
    }

    pub fn backend_name(&self) -> &'static str {
        match self.pool {
            DbPool::Postgres(_) => "postgres",
            DbPool::Sqlite(_) => "sqlite",
        }
    }

    /// A connection, or an error once `database.connect_timeout` has passed: [`DbError::Busy`]
    /// when every pooled connection was in use all along, [`DbError::Unavailable`] otherwise.
    pub async fn conn(&self) -> Result<DbConn, DbError> {
        let wait = async {
            match &self.pool {
                DbPool::Postgres(p) => p
                    .get()
                    .await
                    .map(DbConn::Postgres)
                    .map_err(|e| e.to_string()),
                DbPool::Sqlite(p) => p.get().await.map(DbConn::Sqlite).map_err(|e| e.to_string()),
            }
        };
        match tokio::time::timeout(self.connect_timeout, wait).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(DbError::Unavailable(e)),
            Err(_) if self.pool_exhausted() => Err(DbError::Busy(format!(
                "all {} pooled connections stayed in use for {}s",
                self.pool_size(),
                self.connect_timeout.as_secs_f32()
            ))),
            Err(_) => Err(DbError::Unavailable(format!(
                "no connection within {}s",
                self.connect_timeout.as_secs_f32()
            ))),
        }
    }

    /// The pool as it is now, for metrics: reading it takes no connection and no query.
    pub fn pool_stats(&self) -> PoolStats {
        let status = match &self.pool {
            DbPool::Postgres(p) => p.status(),
            DbPool::Sqlite(p) => p.status(),
        };
        PoolStats {
            size: status.size,
            available: status.available,
            waiting: status.waiting,
            max_size: status.max_size,
        }
    }

    /// Every connection the pool may open is open and checked out.
    fn pool_exhausted(&self) -> bool {
        let pool = self.pool_stats();
        pool.size >= pool.max_size && pool.available == 0
    }

    /// The most connections the pool opens (`database.pool_size`).
    pub fn pool_size(&self) -> usize {
        self.pool_stats().max_size
    }

    /// Opens every pooled connection now and gives them back (PostgreSQL): a connection costs a
    /// TCP connect and an authentication, which the first tick's jobs would otherwise wait for one
    /// by one. Best effort: one that cannot open now opens when a job needs it.
    pub async fn warm_up(&self) {
        if !matches!(self.pool, DbPool::Postgres(_)) {
            return;
        }
        let opened =
            futures_util::future::join_all((0..self.pool_size()).map(|_| self.conn())).await;
        let failed = opened.iter().filter(|c| c.is_err()).count();
        if failed > 0 {
            tracing::debug!(failed, "some pooled connections did not open ahead of use");
        }
    }

    /// Applies pending embedded migrations for this backend; returns how many ran.
    pub async fn run_migrations(&self, url: &DatabaseUrl) -> Result<usize, DbError> {
        let url = url.clone();
        tokio::task::spawn_blocking(move || match url {
            DatabaseUrl::Postgres(url) => {
                let mut conn: AsyncConnectionWrapper<PgConn> =
                    <AsyncConnectionWrapper<PgConn> as Connection>::establish(&url)
                        .map_err(|e| DbError::Unavailable(e.to_string()))?;
                // Instances starting together take turns: the first applies the migrations, the
                // others find nothing left to do. The lock belongs to this session, which ends
                // with `conn` whatever happens.
                let lock = format!("SELECT pg_advisory_lock({MIGRATION_LOCK})");
                diesel::connection::SimpleConnection::batch_execute(&mut conn, &lock)?;
                let applied = apply(&mut conn, PG_MIGRATIONS);
                let unlock = format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})");
                let _ = diesel::connection::SimpleConnection::batch_execute(&mut conn, &unlock);
                applied
            }
            DatabaseUrl::Sqlite(path) => {
                ensure_parent_dir(&path)?;
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(|e| DbError::Unavailable(e.to_string()))?;
                diesel::connection::SimpleConnection::batch_execute(&mut conn, SQLITE_PRAGMAS)?;
                apply(&mut conn, SQLITE_MIGRATIONS)
            }
        })
        .await
        .map_err(|e| DbError::Migration(e.to_string()))?
    }
}

/// The runtime the pool was built on, where every connection is opened.
///
/// A connection belongs to the runtime that opened it: PostgreSQL's connection driver is a task
/// there, and SQLite's blocking calls run on its thread pool. The HTTP server's worker threads
/// have runtimes of their own that end when the server stops, before the job workers have
/// drained; a connection opened there would die under a job in mid-write. Opening every
/// connection on the process's main runtime keeps them alive as long as the process.
#[derive(Clone)]
struct RuntimeHome(Option<tokio::runtime::Handle>);

impl RuntimeHome {
    fn current() -> Self {
        Self(tokio::runtime::Handle::try_current().ok())
    }

    fn establish<C: Send + 'static>(
        &self,
        open: impl std::future::Future<Output = diesel::ConnectionResult<C>> + Send + 'static,
    ) -> futures_util::future::BoxFuture<'static, diesel::ConnectionResult<C>> {
        match &self.0 {
            Some(handle) => {
                let task = handle.spawn(open);
                async move {
                    task.await.unwrap_or_else(|e| {
                        Err(diesel::ConnectionError::BadConnection(format!(
                            "opening a connection was interrupted: {e}"
                        )))
                    })
                }
                .boxed()
            }
            None => open.boxed(),
        }
    }
}

// WAL lets readers run beside the one writer; the busy timeout makes writers queue instead of fail.
// synchronous = FULL syncs the WAL at every commit, so an accepted job (202) and a SUCCEEDED
// commit survive power loss, not only a process crash (NORMAL may lose the last commits).
// The busy timeout comes first: switching the journal mode needs a lock that a connection closing
// elsewhere (its final checkpoint) may hold for a moment.
const SQLITE_PRAGMAS: &str =
    "PRAGMA busy_timeout = 15000; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;";

fn apply<C>(conn: &mut C, migrations: EmbeddedMigrations) -> Result<usize, DbError>
where
    C: MigrationHarness<<C as Connection>::Backend> + Connection,
{
    conn.run_pending_migrations(migrations)
        .map(|applied| applied.len())
        .map_err(|e| DbError::Migration(e.to_string()))
}

fn ensure_parent_dir(path: &Path) -> Result<(), DbError> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| {
                DbError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
    }
    Ok(())
}

pub use crate::domain::now_utc;

impl DbConn {
    /// Runs `work` in one transaction: committed when it returns `Ok`, rolled back otherwise.
    /// On SQLite it starts `BEGIN IMMEDIATE`, taking the write lock up front so concurrent writers
    /// wait on the busy timeout instead of failing when a read would upgrade to a write.
    /// A future dropped half-way leaves the transaction open; the pool then discards the connection.
    pub async fn transaction<T, E, F>(&mut self, work: F) -> Result<T, E>
    where
        F: AsyncFnOnce(&mut DbConn) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        use diesel_async::TransactionManager;
        match self {
            DbConn::Postgres(conn) => {
                <PgConn as AsyncConnection>::TransactionManager::begin_transaction(&mut **conn)
                    .await?
            }
            DbConn::Sqlite(conn) => {
                conn.spawn_blocking(|inner| {
                    diesel::connection::AnsiTransactionManager::begin_transaction_sql(
                        inner,
                        "BEGIN IMMEDIATE",
                    )
                })
                .await?
            }
        }
        match work(self).await {
            Ok(value) => {
                match self {
                    DbConn::Postgres(conn) => {
                        <PgConn as AsyncConnection>::TransactionManager::commit_transaction(
                            &mut **conn,
                        )
                        .await?
                    }
                    DbConn::Sqlite(conn) => {
                        <SqliteConn as AsyncConnection>::TransactionManager::commit_transaction(
                            &mut **conn,
                        )
                        .await?
                    }
                }
                Ok(value)
            }
            Err(error) => {
                // A failed rollback leaves the manager in error; the pool then drops the connection.
                let _ = match self {
                    DbConn::Postgres(conn) => {
                        <PgConn as AsyncConnection>::TransactionManager::rollback_transaction(
                            &mut **conn,
                        )
                        .await
                    }
                    DbConn::Sqlite(conn) => {
                        <SqliteConn as AsyncConnection>::TransactionManager::rollback_transaction(
                            &mut **conn,
                        )
                        .await
                    }
                };
                Err(error)
            }
        }
    }
}

/// Panics unless `$n` placeholders first appear in the order 1, 2, 3…: the only order in which
/// PostgreSQL (positional) and SQLite (named, numbered by first appearance) bind alike.
#[cfg(test)]
pub(crate) fn assert_placeholders_in_order(sql: &str) {
    let mut seen: Vec<u32> = Vec::new();
    let bytes = sql.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b != b'$' {
            continue;
        }
        let digits: String = sql[i + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(n) = digits.parse::<u32>() {
            if !seen.contains(&n) {
                assert_eq!(
                    n as usize,
                    seen.len() + 1,
                    "placeholder ${n} appears out of order in: {sql}"
                );
                seen.push(n);
            }
        }
    }
}
