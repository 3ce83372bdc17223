//! Ad connections as a provider sync and the `connection` commands need them: the sealed access
//! token, the status (`EXPIRED` once the provider rejects the token), the shared usage pause and
//! the account's time zone. The plain token never reaches this module.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::ad_connections as c;
use super::DbConn;
use crate::db_run;
use crate::domain::AdAccount;

/// The status a connection takes when the provider says its token expired or was revoked; the
/// scheduler and the delivering queries only take `ACTIVE` connections, so it stops syncing.
pub const EXPIRED: &str = "EXPIRED";
/// The status of a connection that syncs.
pub const ACTIVE: &str = "ACTIVE";

type Row = (
    String,
    String,
    String,
    Option<String>,
    String,
    Option<NaiveDateTime>,
);

fn account(row: Row) -> AdAccount {
    let (connection_id, provider, external_account_id, access_token_enc, timezone, paused_until) =
        row;
    AdAccount {
        connection_id,
        provider,
        external_account_id,
        access_token_enc,
        timezone,
        paused_until,
    }
}

/// The seller's ACTIVE connections, ordered by id.
pub async fn active_accounts(conn: &mut DbConn, seller_id: &str) -> QueryResult<Vec<AdAccount>> {
    let rows: Vec<Row> = db_run!(conn, {
        c::table
            .filter(c::seller_id.eq(seller_id))
            .filter(c::status.eq("ACTIVE"))
            .order(c::id)
            .select((
                c::id,
                c::provider,
                c::external_account_id,
                c::access_token_enc,
                c::timezone,
                c::paused_until,
            ))
            .load(conn)
            .await
    })?;
    Ok(rows.into_iter().map(account).collect())
}

/// One connection's status, or `None` when there is no such connection.
pub async fn status(conn: &mut DbConn, connection_id: &str) -> QueryResult<Option<String>> {
    db_run!(conn, {
        c::table
            .find(connection_id)
            .select(c::status)
            .first::<String>(conn)
            .await
            .optional()
    })
}

/// One connection's ad account id, or `None` when there is no such connection.
pub async fn account_id(conn: &mut DbConn, connection_id: &str) -> QueryResult<Option<String>> {
    db_run!(conn, {
        c::table
            .find(connection_id)
            .select(c::external_account_id)
            .first::<String>(conn)
            .await
            .optional()
    })
}

/// Sets the ad account id; the number of rows changed (0: no such connection). The caller checks
/// the id's shape ([`crate::domain::check_account_id`]).
pub async fn set_account_id(
    conn: &mut DbConn,
    connection_id: &str,
    account_id: &str,
) -> QueryResult<usize> {
    db_run!(conn, {
        diesel::update(c::table.find(connection_id))
            .set(c::external_account_id.eq(account_id))
            .execute(conn)
            .await
    })
}

/// Stores a sealed token; the number of rows changed (0: no such connection).
pub async fn set_sealed_token(
    conn: &mut DbConn,
    connection_id: &str,
    sealed: &str,
) -> QueryResult<usize> {
    db_run!(conn, {
        diesel::update(c::table.find(connection_id))
            .set(c::access_token_enc.eq(sealed))
            .execute(conn)
            .await
    })
}

/// Sets the account's IANA time zone; the number of rows changed (0: no such connection).
pub async fn set_timezone(
    conn: &mut DbConn,
    connection_id: &str,
    zone: &str,
) -> QueryResult<usize> {
    db_run!(conn, {
        diesel::update(c::table.find(connection_id))
            .set(c::timezone.eq(zone))
            .execute(conn)
            .await
    })
}

/// Marks the connection `EXPIRED` (the provider rejected its token), but only while it is
/// `ACTIVE` and still holds `sealed`, the token the rejected request used: a token stored by
/// `set-token` meanwhile, or a `REVOKED` connection, stays as it is. The number of rows changed.
pub async fn mark_expired(
    conn: &mut DbConn,
    connection_id: &str,
    sealed: &str,
) -> QueryResult<usize> {
    db_run!(conn, {
        diesel::update(
            c::table
                .find(connection_id)
                .filter(c::status.eq(ACTIVE))
                .filter(c::access_token_enc.eq(sealed)),
        )
        .set(c::status.eq(EXPIRED))
        .execute(conn)
        .await
    })
}

/// Stores a sealed token and, when the connection was `EXPIRED`, makes it `ACTIVE` again, in one
/// transaction. Any other status (`REVOKED`, …) is left alone. The status before and after, or
/// `None` when there is no such connection.
pub async fn store_token(
    conn: &mut DbConn,
    connection_id: &str,
    sealed: &str,
) -> QueryResult<Option<(String, String)>> {
    conn.transaction(async |conn: &mut DbConn| {
        let Some(before) = status(conn, connection_id).await? else {
            return Ok(None);
        };
        set_sealed_token(conn, connection_id, sealed).await?;
        db_run!(conn, {
            diesel::update(c::table.find(connection_id).filter(c::status.eq(EXPIRED)))
                .set(c::status.eq(ACTIVE))
                .execute(conn)
                .await
        })?;
        let after = status(conn, connection_id).await?.unwrap_or_default();
        Ok(Some((before, after)))
    })
    .await
}

/// "Now" as job claiming sees it: the database's clock on PostgreSQL (claims compare `run_at`
/// with it), this machine's on SQLite. A pause compared on another clock than the claim would
/// have a deferred job claimed and deferred again and again while the clocks differ.
pub async fn clock(conn: &mut DbConn) -> QueryResult<NaiveDateTime> {
    db_run!(conn, postgres {
        diesel::select(diesel::dsl::now).get_result(conn).await
    }, sqlite {
        let _ = conn;
        Ok(super::now_utc())
    })
}

/// Pauses the account until `until`, never shortening a pause another instance recorded.
pub async fn pause_until(
    conn: &mut DbConn,
    connection_id: &str,
    until: NaiveDateTime,
) -> QueryResult<usize> {
    db_run!(conn, {
        diesel::update(
            c::table
                .find(connection_id)
                .filter(c::paused_until.is_null().or(c::paused_until.lt(until))),
        )
        .set(c::paused_until.eq(until))
        .execute(conn)
        .await
    })
}
