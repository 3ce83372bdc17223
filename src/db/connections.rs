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

/// The status a connection takes when the provider says the account cannot be used (Meta's
/// `account_status` other than ACTIVE), with the reason in `status_reason`.
pub const REVOKED: &str = "REVOKED";

type Row = (
    String,
    String,
    String,
    Option<String>,
    String,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
);

fn account(row: Row) -> AdAccount {
    let (
        connection_id,
        provider,
        external_account_id,
        access_token_enc,
        timezone,
        paused_until,
        account_read_due_at,
    ) = row;
    AdAccount {
        connection_id,
        provider,
        external_account_id,
        access_token_enc,
        timezone,
        paused_until,
        account_read_due_at,
    }
}

macro_rules! account_columns {
    () => {
        (
            c::id,
            c::provider,
            c::external_account_id,
            c::access_token_enc,
            c::timezone,
            c::paused_until,
            c::account_read_due_at,
        )
    };
}

// The seller's ACTIVE connections, ordered by id, as their account columns.
macro_rules! active_accounts_of {
    ($seller_id:expr) => {
        c::table
            .filter(c::seller_id.eq($seller_id))
            .filter(c::status.eq(ACTIVE))
            .order(c::id)
            .select(account_columns!())
    };
}

/// The seller's ACTIVE connections, ordered by id.
pub async fn active_accounts(conn: &mut DbConn, seller_id: &str) -> QueryResult<Vec<AdAccount>> {
    let rows: Vec<Row> = db_run!(conn, { active_accounts_of!(seller_id).load(conn).await })?;
    Ok(rows.into_iter().map(account).collect())
}

/// [`active_accounts`] on a shared PostgreSQL connection: polled together with another read on
/// the same connection, the two travel in one round trip (diesel-async pipelines them).
pub(super) async fn active_accounts_shared(
    conn: &super::PgConn,
    seller_id: &str,
) -> QueryResult<Vec<AdAccount>> {
    let mut shared = conn;
    let rows: Vec<Row> = active_accounts_of!(seller_id).load(&mut shared).await?;
    Ok(rows.into_iter().map(account).collect())
}

/// One connection whatever its status, or `None` when there is no such connection.
pub async fn account_of(conn: &mut DbConn, connection_id: &str) -> QueryResult<Option<AdAccount>> {
    let row: Option<Row> = db_run!(conn, {
        c::table
            .find(connection_id)
            .select(account_columns!())
            .first(conn)
            .await
            .optional()
    })?;
    Ok(row.map(account))
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

/// Stores a sealed token and, when the connection was `EXPIRED`, or `REVOKED` by the provider's
/// verdict (a `status_reason` is recorded), makes it `ACTIVE` again, in one transaction; the
/// account read is due at once (it revokes the connection again if the account is still not
/// active). A `REVOKED` without a reason (an operator's) and any other status are left alone. The
/// status before and after, or `None` when there is no such connection.
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
        let now = super::now_utc();
        db_run!(conn, {
            diesel::update(c::table.find(connection_id))
                .set(c::account_read_due_at.eq(Some(now)))
                .execute(conn)
                .await?;
            diesel::update(
                c::table.find(connection_id).filter(
                    c::status
                        .eq(EXPIRED)
                        .or(c::status.eq(REVOKED).and(c::status_reason.is_not_null())),
                ),
            )
            .set((c::status.eq(ACTIVE), c::status_reason.eq(None::<String>)))
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

/// Takes a due account read for this caller: moves `account_read_due_at` to `next` when it was due
/// at `now`. False when another job (or instance) took it first.
pub async fn claim_account_read(
    conn: &mut DbConn,
    connection_id: &str,
    now: NaiveDateTime,
    next: NaiveDateTime,
) -> QueryResult<bool> {
    let n = db_run!(conn, {
        diesel::update(
            c::table
                .find(connection_id)
                .filter(c::account_read_due_at.le(now)),
        )
        .set(c::account_read_due_at.eq(Some(next)))
        .execute(conn)
        .await
    })?;
    Ok(n == 1)
}

/// Makes the account read due at `at` (a read that failed is tried again by the next job).
pub async fn schedule_account_read(
    conn: &mut DbConn,
    connection_id: &str,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    db_run!(conn, {
        diesel::update(c::table.find(connection_id))
            .set(c::account_read_due_at.eq(Some(at)))
            .execute(conn)
            .await
    })
}

/// What an account read changed on its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRead {
    pub old_timezone: String,
    pub old_currency: String,
    pub old_status: String,
    pub status: String,
}

/// Stores what the provider said about the account: its zone and currency, and its status. An
/// account that is not active makes an `ACTIVE` (or already `REVOKED`) connection `REVOKED` with
/// `inactive_reason` kept in `status_reason`; an active account makes a connection `REVOKED` for
/// an account status `ACTIVE` again. The next read is due at `next`. `None`: no such connection.
pub async fn record_account_read(
    conn: &mut DbConn,
    connection_id: &str,
    timezone: &str,
    currency: &str,
    inactive_reason: Option<&str>,
    next: NaiveDateTime,
) -> QueryResult<Option<AccountRead>> {
    conn.transaction(async |conn: &mut DbConn| {
        let before: Option<(String, String, String)> = db_run!(conn, {
            c::table
                .find(connection_id)
                .select((c::timezone, c::currency, c::status))
                .first(conn)
                .await
                .optional()
        })?;
        let Some((old_timezone, old_currency, old_status)) = before else {
            return Ok(None);
        };
        db_run!(conn, {
            diesel::update(c::table.find(connection_id))
                .set((
                    c::timezone.eq(timezone),
                    c::currency.eq(currency),
                    c::account_read_due_at.eq(Some(next)),
                ))
                .execute(conn)
                .await?;
            match inactive_reason {
                Some(reason) => {
                    diesel::update(
                        c::table
                            .find(connection_id)
                            .filter(c::status.eq(ACTIVE).or(c::status.eq(REVOKED))),
                    )
                    .set((c::status.eq(REVOKED), c::status_reason.eq(Some(reason))))
                    .execute(conn)
                    .await
                }
                None => {
                    diesel::update(
                        c::table
                            .find(connection_id)
                            .filter(c::status.eq(REVOKED))
                            .filter(c::status_reason.like(format!("{ACCOUNT_STATUS_REASON}%"))),
                    )
                    .set((c::status.eq(ACTIVE), c::status_reason.eq(None::<String>)))
                    .execute(conn)
                    .await
                }
            }
        })?;
        let status = status(conn, connection_id).await?.unwrap_or_default();
        Ok(Some(AccountRead {
            old_timezone,
            old_currency,
            old_status,
            status,
        }))
    })
    .await
}

/// How every `status_reason` set from an account read begins.
pub const ACCOUNT_STATUS_REASON: &str = "account_status ";

/// Marks the connection `REVOKED` with `reason` (the token lacks a permission), only while it is
/// `ACTIVE` and still holds `sealed`, as [`mark_expired`] does. The number of rows changed.
pub async fn mark_revoked(
    conn: &mut DbConn,
    connection_id: &str,
    sealed: &str,
    reason: &str,
) -> QueryResult<usize> {
    db_run!(conn, {
        diesel::update(
            c::table
                .find(connection_id)
                .filter(c::status.eq(ACTIVE))
                .filter(c::access_token_enc.eq(sealed)),
        )
        .set((c::status.eq(REVOKED), c::status_reason.eq(Some(reason))))
        .execute(conn)
        .await
    })
}

/// Pauses every connection of `provider` until `until` (the provider's app-wide limit), never
/// shortening a longer pause. The number of rows changed.
pub async fn pause_provider_until(
    conn: &mut DbConn,
    provider: &str,
    until: NaiveDateTime,
) -> QueryResult<usize> {
    db_run!(conn, {
        diesel::update(
            c::table
                .filter(c::provider.eq(provider))
                .filter(c::paused_until.is_null().or(c::paused_until.lt(until))),
        )
        .set(c::paused_until.eq(until))
        .execute(conn)
        .await
    })
}
