//! The caller, from `Authorization: Bearer <JWT>`.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};

use super::{ApiError, AppState};
use crate::auth::AuthError;

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
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthorized("missing Authorization header (Bearer token)".into())
        })?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthorized("Authorization must be `Bearer <token>`".into()))?;
    match state.verifier.verify(token) {
        Ok(claims) => Ok(AuthenticatedSeller(claims.seller_id)),
        Err(AuthError::Expired) => Err(ApiError::Unauthorized("the token has expired".into())),
        Err(AuthError::Invalid(why)) => {
            Err(ApiError::Unauthorized(format!("invalid token: {why}")))
        }
    }
}
