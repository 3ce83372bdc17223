//! The bearer extractor: the caller, from `Authorization: Bearer <JWT>` (verified by
//! [`crate::auth`]).

use std::future::{ready, Ready};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};

use super::{ApiError, AppState};

/// The seller a valid token speaks for. Extracting it answers 401 for any token problem.
pub struct AuthenticatedSeller(pub String);

impl FromRequest for AuthenticatedSeller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<AuthenticatedSeller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    let token = bearer_token(req).map_err(|why| {
        tracing::debug!(reason = why, "request refused: no usable bearer token");
        ApiError::Unauthorized
    })?;
    match state.verifier.verify(token) {
        Ok(claims) => Ok(AuthenticatedSeller(claims.seller_id)),
        Err(why) => {
            tracing::debug!(reason = %why, "request refused: token rejected");
            Err(ApiError::Unauthorized)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// (RFC 7235), and any run of spaces may separate it from the token.
pub(super) fn bearer_token(req: &HttpRequest) -> Result<&str, &'static str> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or("missing Authorization header")?
        .to_str()
        .map_err(|_| "Authorization header is not visible ASCII")?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or("Authorization is not `Bearer <token>`")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("Authorization scheme is not Bearer");
    }
    let token = token.trim();
    if token.is_empty() {
        return Err("empty bearer token");
    }
    Ok(token)
}
