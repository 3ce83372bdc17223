//! What a sync learns about ad accounts: due account reads, what a provider failure says about
//! the connection, and the pauses a near-limit answer asks for.

use std::collections::HashSet;
use std::time::Instant;

use crate::db::{self, DbError};
use crate::domain::{AdAccount, EntityBudget};
use crate::providers::ProviderError;

use super::{Pipeline, PipelineError, SyncRequest};

impl Pipeline {
    /// Reads the accounts whose read is due (`account_read_due_at`) before their insights: their
    /// zone and currency are stored, and an account that is not active makes its connection
    /// `REVOKED` and its entities are left out of this job. A failed read fails the job as a
    /// failed insights request would, and the read is due again at once.
    pub(super) async fn read_due_accounts(
        &self,
        request: &SyncRequest,
        mut entities: Vec<EntityBudget>,
        mut accounts: Vec<AdAccount>,
    ) -> Result<(Vec<EntityBudget>, Vec<AdAccount>), PipelineError> {
        let now = db::now_utc();
        let due: Vec<usize> = (0..accounts.len())
            .filter(|i| accounts[*i].account_read_due_at.is_some_and(|at| at <= now))
            .collect();
        if due.is_empty() {
            return Ok((entities, accounts));
        }
        let next = now
            + chrono::Duration::from_std(self.account_refresh).unwrap_or(chrono::Duration::days(1));
        let mut revoked = HashSet::new();
        for i in due {
            let account = &mut accounts[i];
            let claimed = {
                let mut conn = self.db.conn().await?;
                db::connections::claim_account_read(&mut conn, &account.connection_id, now, next)
                    .await
                    .map_err(DbError::from)?
            };
            if !claimed {
                continue;
            }
            let asked_at = Instant::now();
            let info = self.provider.read_account(account).await;
            // `Ok(None)`: the provider had nothing to ask (the mock), so no request to count.
            if !matches!(info, Ok(None)) {
                self.count_request(asked_at, &info);
            }
            let info = match info {
                Ok(Some(info)) => info,
                Ok(None) => continue,
                Err(e) => {
                    let again = async {
                        let mut conn = self.db.conn().await?;
                        db::connections::schedule_account_read(
                            &mut conn,
                            &account.connection_id,
                            now,
                        )
                        .await?;
                        Ok::<_, DbError>(())
                    }
                    .await;
                    if let Err(db_error) = again {
                        tracing::error!(error = %db_error, "could not schedule the account read again");
                    }
                    return Err(self.provider_failed(e).await);
                }
            };
            let read = {
                let mut conn = self.db.conn().await?;
                db::connections::record_account_read(
                    &mut conn,
                    &account.connection_id,
                    &info.timezone,
                    &info.currency,
                    info.inactive_reason.as_deref(),
                    next,
                )
                .await
                .map_err(DbError::from)?
            };
            let Some(read) = read else { continue };
            log_account_read(&account.connection_id, &info, &read);
            account.timezone = info.timezone.clone();
            if read.status != db::connections::ACTIVE {
                revoked.insert(account.connection_id.clone());
            }
        }
        if !revoked.is_empty() {
            let before = entities.len();
            entities.retain(|e| !revoked.contains(&e.connection_id));
            accounts.retain(|a| !revoked.contains(&a.connection_id));
            tracing::warn!(
                seller.id = %request.seller_id, level = %request.level,
                skipped = before - entities.len(),
                "entities left out of the sync: their ad account is not active"
            );
        }
        Ok((entities, accounts))
    }

    /// Records what a provider failure says about the connection (a pause, an expired token)
    /// before the job's outcome is recorded: the next jobs must see it. These writes touch only
    /// `ad_connections`, never the stats tables.
    pub(super) async fn provider_failed(&self, e: ProviderError) -> PipelineError {
        let marked = async {
            let mut conn = self.db.conn().await?;
            match &e {
                ProviderError::Throttled {
                    connection_id,
                    until: Some(until),
                    ..
                } => {
                    db::connections::pause_until(&mut conn, connection_id, *until).await?;
                    tracing::warn!(connection.id = %connection_id, paused_until = %until, "ad account paused by the provider's limits");
                }
                ProviderError::AppThrottled {
                    connection_id,
                    until,
                    ..
                } => {
                    let paused = db::connections::pause_provider_until(
                        &mut conn,
                        crate::providers::meta::META,
                        *until,
                    )
                    .await?;
                    tracing::warn!(connection.id = %connection_id, paused_until = %until, connections = paused, "the provider's limit for the whole app: every connection of the provider paused");
                }
                ProviderError::PermissionDenied {
                    connection_id,
                    sealed_token,
                    detail,
                } => {
                    let reason = format!("permission error: {detail}");
                    let marked = db::connections::mark_revoked(
                        &mut conn,
                        connection_id,
                        sealed_token.expose(),
                        &reason,
                    )
                    .await?;
                    if marked == 1 {
                        tracing::warn!(connection.id = %connection_id, reason = %reason, "the token lacks a permission on the ad account; connection marked REVOKED");
                    } else {
                        tracing::warn!(connection.id = %connection_id, reason = %reason, "the token lacks a permission, but the connection has a new token or is no longer ACTIVE; status left as it is");
                    }
                }
                ProviderError::TokenExpired {
                    connection_id,
                    sealed_token,
                    ..
                } => {
                    let marked = db::connections::mark_expired(
                        &mut conn,
                        connection_id,
                        sealed_token.expose(),
                    )
                    .await?;
                    if marked == 1 {
                        tracing::warn!(connection.id = %connection_id, "access token expired or revoked; connection marked EXPIRED");
                    } else {
                        tracing::warn!(connection.id = %connection_id, "access token expired or revoked, but the connection has a new token or is no longer ACTIVE; status left as it is");
                    }
                }
                _ => {}
            }
            Ok::<_, DbError>(())
        }
        .await;
        if let Err(db_error) = marked {
            tracing::error!(error = %db_error, "could not record the provider's verdict on a connection");
        }
        PipelineError::Provider(e)
    }

    /// Records the pauses a complete answer asked for (usage near the limit on its last page):
    /// the data is kept, the account's next jobs wait. A failure to record is logged only; the
    /// next answer's usage headers will say the same.
    pub(super) async fn record_pauses(&self, pauses: &[crate::providers::AccountPause]) {
        if pauses.is_empty() {
            return;
        }
        let recorded = async {
            let mut conn = self.db.conn().await?;
            for p in pauses {
                db::connections::pause_until(&mut conn, &p.connection_id, p.until).await?;
                tracing::warn!(connection.id = %p.connection_id, paused_until = %p.until, "ad account near the provider's usage limit; its next jobs wait");
            }
            Ok::<_, DbError>(())
        }
        .await;
        if let Err(db_error) = recorded {
            tracing::error!(error = %db_error, "could not record an ad account's pause");
        }
    }
}

/// One line per account read: the zone and currency at info, a change of zone or a status
/// change at warn (a day's numbers move to another date; syncs stop or resume).
pub fn log_account_read(
    connection_id: &str,
    info: &crate::providers::AccountInfo,
    read: &db::connections::AccountRead,
) {
    if read.old_timezone != info.timezone {
        tracing::warn!(
            connection.id = %connection_id, old_timezone = %read.old_timezone,
            timezone = %info.timezone, "ad account's time zone changed; the provider's zone replaces ours"
        );
    }
    if read.old_currency != info.currency {
        tracing::warn!(
            connection.id = %connection_id, old_currency = %read.old_currency,
            currency = %info.currency, "ad account's currency changed"
        );
    }
    if read.old_status != read.status {
        tracing::warn!(
            connection.id = %connection_id, old_status = %read.old_status, status = %read.status,
            reason = info.inactive_reason.as_deref().unwrap_or("account active"),
            "connection status changed by the ad account's status"
        );
    }
    tracing::info!(
        connection.id = %connection_id, timezone = %info.timezone, currency = %info.currency,
        status = %read.status, "ad account read"
    );
}
