//! The one gate every seller route passes: a valid token (401 otherwise) for a seller that exists
//! and is ACTIVE (403 `forbidden` otherwise). Reads, CSV, job status and sync all take
//! [`ActiveSeller`], so no route can forget the check.
//!
//! A seller's status is read from the database at most once per [`STATUS_TTL`] per seller and
//! kept in the gate (part of `AppState`, not a global): a suspension takes effect within that
//! time, and a busy seller costs one small query per TTL rather than one per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::bearer::AuthenticatedSeller;
use super::{ApiError, AppState};
use crate::db;

/// How long a seller's status is trusted before it is read again. The README promises that a
/// status change takes effect within 10 s; this leaves room for a slow query.
pub const STATUS_TTL: Duration = Duration::from_secs(5);

/// Past this many cached sellers, expired entries are dropped (tokens may name any seller id,
/// so the map must not grow without bound).
const MAX_ENTRIES: usize = 10_000;

/// The status the database last gave for each seller asked about: `None` for no such seller.
#[derive(Default)]
pub struct SellerGate {
    statuses: Mutex<HashMap<String, (Instant, Option<String>)>>,
}

impl SellerGate {
    pub fn new() -> Self {
        Self::default()
    }

    fn cached(&self, seller_id: &str) -> Option<Option<String>> {
        let statuses = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        statuses
            .get(seller_id)
            .filter(|(at, _)| at.elapsed() < STATUS_TTL)
            .map(|(_, status)| status.clone())
    }

    fn remember(&self, seller_id: &str, status: Option<String>) {
        let mut statuses = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        if statuses.len() >= MAX_ENTRIES {
            statuses.retain(|_, (at, _)| at.elapsed() < STATUS_TTL);
            if statuses.len() >= MAX_ENTRIES {
                statuses.clear();
            }
        }
        statuses.insert(seller_id.to_string(), (Instant::now(), status));
    }

    /// Ok when `seller_id` exists and is ACTIVE; 403 otherwise; 503 when the database cannot say.
    pub async fn admit(&self, state: &AppState, seller_id: &str) -> Result<(), ApiError> {
        let status = match self.cached(seller_id) {
            Some(status) => status,
            None => {
                let (db, id) = (state.db.clone(), seller_id.to_string());
                let status = state
                    .on_main_runtime(async move {
                        let mut conn = db.conn().await?;
                        Ok(db::catalog::seller_status(&mut conn, &id).await?)
                    })
                    .await?;
                self.remember(seller_id, status.clone());
                status
            }
        };
        match status.as_deref() {
            Some("ACTIVE") => Ok(()),
            None => Err(ApiError::Forbidden(
                "the token's seller does not exist".into(),
            )),
            Some(other) => Err(ApiError::Forbidden(format!(
                "the token's seller is {other}"
            ))),
        }
    }
}

/// The seller a valid token speaks for, admitted by the [`SellerGate`]: 401 for any token
/// problem, 403 `forbidden` for a seller that does not exist or is not ACTIVE.
pub struct ActiveSeller(pub String);

impl FromRequest for ActiveSeller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let authenticated = AuthenticatedSeller::from_request(req, payload).into_inner();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let AuthenticatedSeller(seller_id) = authenticated?;
            let state =
                state.ok_or_else(|| ApiError::Internal("application state missing".into()))?;
            state
                .seller_gate
                .admit(&state, &seller_id)
                .await
                .inspect_err(|e| {
                    if let ApiError::Forbidden(why) = e {
                        tracing::debug!(seller.id = %seller_id, reason = %why, "request refused by the seller gate");
                    }
                })?;
            Ok(ActiveSeller(seller_id))
        })
    }
}
