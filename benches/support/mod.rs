//! What every benchmark does first: run its measurement on an embedded SQLite file, then on
//! PostgreSQL in a schema of its own when `BENCH_DATABASE_URL` names a server.

use std::future::Future;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

/// Runs `measure(backend, database_url)` on SQLite and, with `BENCH_DATABASE_URL`, on PostgreSQL;
/// the temporary file and schema are removed afterwards.
pub fn on_each_backend<F, Fut>(name: &str, measure: F)
where
    F: Fn(&'static str, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!(
            "ads-stats-bench-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        measure(
            "sqlite",
            format!("sqlite://{}", dir.join("bench.db").display()),
        )
        .await;
        let _ = std::fs::remove_dir_all(&dir);

        let Ok(server) = std::env::var("BENCH_DATABASE_URL") else {
            println!("(set BENCH_DATABASE_URL to measure PostgreSQL too)");
            return;
        };
        let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
        let mut admin = AsyncPgConnection::establish(&server)
            .await
            .expect("BENCH_DATABASE_URL reachable");
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("schema");
        let sep = if server.contains('?') { '&' } else { '?' };
        measure(
            "postgres",
            format!("{server}{sep}options=-csearch_path%3D{schema}"),
        )
        .await;
        admin
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .expect("drop");
    });
}
