//! Hand-written SQL that is prepared once per connection and reused.
//!
//! diesel never caches a `sql_query` (it cannot know the text is one of a few), so each run pays
//! a parse and plan on the server and, on PostgreSQL, an extra round trip to prepare an unnamed
//! statement. The queries a job runs thousands of times a tick (catalogue reads, the fold, the
//! rollup, claims) have fixed text, so [`prepared`] marks them safe to cache: diesel then keys
//! the prepared statement by its text and bind types, as it does for its own query builder.
//!
//! Only wrap SQL built from a fixed set of texts: every distinct text stays prepared on each
//! pooled connection for the connection's life.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::QueryResult;

/// `query` (a `sql_query` with its binds), cached as a prepared statement by its text.
pub fn prepared<Q>(query: Q) -> Prepared<Q> {
    Prepared(query)
}

#[derive(Debug, Clone)]
pub struct Prepared<Q>(Q);

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

// No static id: the cache key is then the SQL text and the bind types.
impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB: Backend, Q: QueryFragment<DB>> QueryFragment<DB> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}
