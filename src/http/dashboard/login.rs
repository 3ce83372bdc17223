//! `GET /dashboard/login` (the form), `POST /dashboard/login` (sign in) and
//! `POST /dashboard/logout` (sign out, CSRF-checked).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;
use serde::Deserialize;

use super::layout::{html_response, page, see_other};
use super::{access, signed_in_post, CsrfForm};
use crate::http::{ApiError, AppState};

#[derive(Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
}

pub async fn login_form(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if access(&state)?.session(&req).is_some() {
        return Ok(see_other("/dashboard"));
    }
    Ok(form(StatusCode::OK, None))
}

pub async fn log_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    form_data: Option<web::Form<LoginForm>>,
) -> Result<HttpResponse, ApiError> {
    let access = access(&state)?;
    // The peer, or behind a trusted load balancer the address it forwarded for: a header the
    // client writes itself never buys more tries (see `http::client_ip`).
    let client = crate::http::client_ip(req.peer_addr(), req.headers(), &state.trusted_proxies)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    if let Err(wait) = access.allow_login_attempt(&client) {
        tracing::info!("dashboard login throttled");
        let mut response = form(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many attempts; wait a minute and try again."),
        );
        if let Ok(value) =
            header::HeaderValue::from_str(&(wait.as_secs_f64().ceil().max(1.0) as u64).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(response);
    }
    // argon2 takes tens of milliseconds of CPU: off the actix worker, which serves other requests.
    let accepted = match form_data {
        Some(form_data) => {
            let admin = access.admin();
            let LoginForm { user, password } = form_data.into_inner();
            web::block(move || admin.check(&user, &password))
                .await
                .map_err(|e| ApiError::Internal(format!("password check did not finish: {e}")))?
        }
        None => false,
    };
    if !accepted {
        // Neither the name nor the password is logged: a password typed into the wrong field
        // would otherwise end up in the log.
        tracing::info!("dashboard login refused");
        return Ok(form(
            StatusCode::UNAUTHORIZED,
            Some("Wrong user name or password."),
        ));
    }
    let token = access.start_session();
    tracing::info!("dashboard login");
    let mut response = see_other("/dashboard");
    response.headers_mut().insert(
        header::SET_COOKIE,
        header::HeaderValue::from_str(&access.session_cookie(&token))
            .map_err(|e| ApiError::Internal(format!("session cookie: {e}")))?,
    );
    Ok(response)
}

pub async fn log_out(
    state: web::Data<AppState>,
    req: HttpRequest,
    csrf: Option<web::Form<CsrfForm>>,
) -> Result<HttpResponse, ApiError> {
    signed_in_post(&state, &req, csrf.as_deref())?;
    let access = access(&state)?;
    access.end_session(&req);
    tracing::info!("dashboard logout");
    let mut response = see_other("/dashboard/login");
    response.headers_mut().insert(
        header::SET_COOKIE,
        header::HeaderValue::from_str(&access.expired_cookie())
            .map_err(|e| ApiError::Internal(format!("session cookie: {e}")))?,
    );
    Ok(response)
}

fn form(status: StatusCode, error: Option<&str>) -> HttpResponse {
    let body = html! {
        form.login.card method="post" action="/dashboard/login" {
            h1 { "Sign in" }
            p.muted { "ads-stats operator dashboard" }
            @if let Some(error) = error { p.error-text role="alert" { (error) } }
            label for="user" { "User" }
            input #user type="text" name="user" autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
    };
    html_response(status, page("Sign in", None, body))
}
