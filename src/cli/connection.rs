//! `ads-stats connection …`: store an ad account's access token sealed (read from stdin, so it is
//! never in the shell history or the process list) and set the account's time zone and id.
//!
//! Every command refuses (exit 2) an account id that is not `^(act_)?[0-9]+$`, given or stored:
//! the id goes into the provider's URL path, so a token must never be stored for, nor a setting
//! made on, an account that cannot be asked safely (fix it with `set --account-id`).

use std::io::Read;

use clap::Subcommand;

use super::{failed, CommandError};
use crate::config::{ProviderKind, Secret, Settings};
use crate::crypto::TokenSealer;
use crate::db::{self, Db};
use crate::domain::check_account_id;
use crate::providers::{MetaProvider, StatProvider};

#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Read an access token from stdin and store it sealed with meta.token_key (AES-256-GCM).
    /// An EXPIRED connection, or one REVOKED by the provider's verdict, becomes ACTIVE again; an
    /// operator's REVOKED (no reason recorded) is kept. With provider = "meta" the account's zone,
    /// currency and status are then read from Meta.
    SetToken {
        #[arg(long, value_name = "ID")]
        connection: String,
    },
    /// Change an ad account's settings.
    Set {
        #[arg(long, value_name = "ID")]
        connection: String,
        /// The IANA time zone the provider reports the account's days in, e.g. Europe/Berlin.
        #[arg(long, value_name = "ZONE")]
        timezone: Option<String>,
        /// The provider's ad account id: digits, optionally after `act_` (e.g. act_1234567890).
        #[arg(long, value_name = "ID")]
        account_id: Option<String>,
    },
}

pub async fn run(settings: &Settings, command: ConnectionCommand) -> Result<(), CommandError> {
    match command {
        ConnectionCommand::SetToken { connection } => set_token(settings, &connection).await,
        ConnectionCommand::Set {
            connection,
            timezone,
            account_id,
        } => {
            set(
                settings,
                &connection,
                timezone.as_deref(),
                account_id.as_deref(),
            )
            .await
        }
    }
}

async fn set_token(settings: &Settings, connection: &str) -> Result<(), CommandError> {
    let key = settings
        .meta
        .token_key_bytes()
        .map_err(|e| CommandError::Usage(e.to_string()))?
        .ok_or_else(|| {
            CommandError::Usage(
                "meta.token_key is not set; set ADS_STATS_META__TOKEN_KEY to `openssl rand -base64 32`"
                    .into(),
            )
        })?;
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| failed(format!("cannot read the token from stdin: {e}")))?;
    let token = Secret::new(input.trim());
    drop(input);
    if token.expose().is_empty() {
        return Err(CommandError::Usage(
            "no token on stdin (pipe it in: ads-stats connection set-token --connection ID < token.txt)"
                .into(),
        ));
    }
    if token.expose().chars().any(char::is_whitespace) {
        return Err(CommandError::Usage(
            "the token on stdin has whitespace inside it; give one token".into(),
        ));
    }
    let sealed = TokenSealer::new(&key)
        .seal(connection, &token)
        .map_err(failed)?;
    let db = open(settings).await?;
    let mut conn = db.conn().await.map_err(failed)?;
    valid_account(&mut conn, connection).await?;
    let (before, after) = db::connections::store_token(&mut conn, connection, &sealed)
        .await
        .map_err(failed)?
        .ok_or_else(|| CommandError::Usage(format!("no connection with id {connection}")))?;
    let note = if before == after {
        format!(" (status {after})")
    } else {
        format!(" ({before} → {after})")
    };
    println!("access token stored sealed for connection {connection}{note}");
    if matches!(settings.provider, ProviderKind::Meta) {
        read_account(settings, &mut conn, connection).await?;
    }
    Ok(())
}

/// Reads the ad account with the new token at once (zone, currency, status), so the zone is
/// right before the scheduler next computes the account's day. A failure leaves the read due:
/// the next sync of the connection reads it first.
async fn read_account(
    settings: &Settings,
    conn: &mut db::DbConn,
    connection: &str,
) -> Result<(), CommandError> {
    let provider = MetaProvider::new(&settings.meta).map_err(failed)?;
    let account = db::connections::account_of(conn, connection)
        .await
        .map_err(failed)?
        .ok_or_else(|| CommandError::Usage(format!("no connection with id {connection}")))?;
    let info = match provider.read_account(&account).await {
        Ok(Some(info)) => info,
        Ok(None) => return Ok(()),
        Err(e) => {
            return Err(failed(format!(
                "the token is stored, but the ad account could not be read ({e}); the next sync reads it again"
            )))
        }
    };
    let next = db::now_utc()
        + chrono::Duration::from_std(settings.meta.account_refresh)
            .unwrap_or(chrono::Duration::days(1));
    let read = db::connections::record_account_read(
        conn,
        connection,
        &info.timezone,
        &info.currency,
        info.inactive_reason.as_deref(),
        next,
    )
    .await
    .map_err(failed)?
    .ok_or_else(|| CommandError::Usage(format!("no connection with id {connection}")))?;
    let zone_note = if read.old_timezone == info.timezone {
        String::new()
    } else {
        format!(" (was {})", read.old_timezone)
    };
    let reason = info
        .inactive_reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    println!(
        "ad account {}: timezone = {}{zone_note}, currency = {}, connection status {}{reason}",
        info.name.as_deref().unwrap_or(&account.external_account_id),
        info.timezone,
        info.currency,
        read.status
    );
    Ok(())
}

async fn set(
    settings: &Settings,
    connection: &str,
    timezone: Option<&str>,
    account_id: Option<&str>,
) -> Result<(), CommandError> {
    if timezone.is_none() && account_id.is_none() {
        return Err(CommandError::Usage(
            "nothing to set; give --timezone ZONE or --account-id ID".into(),
        ));
    }
    let tz = timezone
        .map(|zone| {
            let zone = zone.trim();
            zone.parse::<chrono_tz::Tz>().map_err(|_| {
                CommandError::Usage(format!(
                    "--timezone `{zone}` is not an IANA time zone (e.g. UTC, Europe/Berlin)"
                ))
            })
        })
        .transpose()?;
    if let Some(id) = account_id {
        check_account_id(id).map_err(|why| CommandError::Usage(format!("--account-id: {why}")))?;
    }
    let db = open(settings).await?;
    let mut conn = db.conn().await.map_err(failed)?;
    known(&mut conn, connection).await?;
    match account_id {
        Some(id) => {
            db::connections::set_account_id(&mut conn, connection, id)
                .await
                .map_err(failed)?;
            println!("connection {connection}: account id = {id}");
        }
        None => valid_account(&mut conn, connection).await?,
    }
    if let Some(tz) = tz {
        db::connections::set_timezone(&mut conn, connection, tz.name())
            .await
            .map_err(failed)?;
        println!("connection {connection}: timezone = {}", tz.name());
        let provider = db::connections::account_of(&mut conn, connection)
            .await
            .map_err(failed)?
            .map(|a| a.provider)
            .unwrap_or_default();
        if provider.eq_ignore_ascii_case(crate::providers::meta::META) {
            println!(
                "note: Meta reports this account's zone; the next account read (set-token, or every meta.account_refresh) replaces it with Meta's"
            );
        }
    }
    Ok(())
}

/// A usage error when the connection's stored account id is not one a provider may be asked
/// with (or there is no such connection).
async fn valid_account(conn: &mut db::DbConn, connection: &str) -> Result<(), CommandError> {
    let id = db::connections::account_id(conn, connection)
        .await
        .map_err(failed)?
        .ok_or_else(|| CommandError::Usage(format!("no connection with id {connection}")))?;
    check_account_id(&id).map_err(|why| {
        CommandError::Usage(format!(
            "connection {connection}: {why}; set the right one with \
             `ads-stats connection set --connection {connection} --account-id act_<digits>`"
        ))
    })
}

pub(super) async fn open(settings: &Settings) -> Result<Db, CommandError> {
    let db = Db::connect(&settings.database).map_err(failed)?;
    if settings.database.run_migrations {
        db.run_migrations(&settings.database_url())
            .await
            .map_err(failed)?;
    }
    Ok(db)
}

/// The connection's status; a usage error when there is no such connection.
async fn known(conn: &mut db::DbConn, connection: &str) -> Result<String, CommandError> {
    db::connections::status(conn, connection)
        .await
        .map_err(failed)?
        .ok_or_else(|| CommandError::Usage(format!("no connection with id {connection}")))
}
