//! The OpenAPI 3.1 document, derived from the handlers' own annotations, served at
//! `/api/openapi.json`, with an interactive page at `/api/docs/` (Swagger UI, served from the
//! binary).

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::stats::{daily, sellpages, summary, Page};
use super::{health, metrics, sync, ErrorBody};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ads-stats",
        description = "Advertising statistics: sync triggers, job status, stats reads, health and metrics. Errors are `{\"error\": code, \"message\": text}`."
    ),
    paths(
        sync::trigger::trigger_sync,
        sync::status::sync_status,
        daily::daily_stats,
        summary::stats_summary,
        sellpages::sellpage_stats,
        health::health,
        health::health_head,
        metrics::metrics,
        openapi_json,
    ),
    components(schemas(
        ErrorBody,
        super::stats::LevelName,
        sync::trigger::TriggerBody,
        sync::trigger::SyncAccepted,
        sync::status::JobStatus,
        sync::status::RowsWritten,
        daily::StatsRow,
        Page<daily::StatsRow>,
        summary::SummaryRow,
        summary::SummaryBody,
        sellpages::SellpageRow,
        Page<sellpages::SellpageRow>,
    )),
    modifiers(&BearerSchemes),
    tags(
        (name = "sync", description = "Trigger syncs and follow their jobs"),
        (name = "stats", description = "Read the stats (JSON, or CSV with `Accept: text/csv`)"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
struct ApiDoc;

/// `bearer`: the sellers' HS256 JWTs; `metrics_token`: the optional scrape token.
struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut jwt = Http::new(HttpAuthScheme::Bearer);
        jwt.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(jwt));
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document, with this build's version; `/metrics` only when it is served.
pub fn document(metrics_enabled: bool) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    if !metrics_enabled {
        doc.paths.paths.remove("/metrics");
    }
    doc
}

/// `/api/docs` without the slash: where the page lives, `/api/docs/`.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, "/api/docs/"))
        .finish()
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = serde_json::Value))
)]
pub async fn openapi_json(doc: web::Data<String>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.get_ref().clone())
}

/// The interactive page, reading the document from `/api/openapi.json`.
pub fn swagger_ui() -> utoipa_swagger_ui::SwaggerUi {
    utoipa_swagger_ui::SwaggerUi::new("/api/docs/{_:.*}")
        .config(utoipa_swagger_ui::Config::from("/api/openapi.json"))
}
