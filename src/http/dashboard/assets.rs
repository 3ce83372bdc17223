//! The stylesheet, compiled into the binary: the dashboard loads nothing from anywhere else.

use actix_web::http::header;
use actix_web::HttpResponse;

pub const STYLESHEET_PATH: &str = "/dashboard/assets/dashboard.css";
const STYLESHEET: &str = include_str!("dashboard.css");

/// Served without a session so the login page is styled; it holds nothing private.
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(STYLESHEET)
}
