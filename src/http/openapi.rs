//! The OpenAPI 3.1 document, derived from the handlers' own annotations, served at
//! `/api/openapi.json`, with an interactive page at `/api/docs/` (Swagger UI, served from the
//! binary).

use actix_web::{web, HttpResponse};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

use super::stats::params::{DEFAULT_LIMIT, MAX_LIMIT, MAX_RANGE_DAYS};
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
    modifiers(&BearerSchemes, &Constraints),
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

/// The shape `parse_day` accepts; the calendar check (no 30 February) comes on top.
pub const DATE_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$";
/// A cursor as the API gives it: hex of `YYYY-MM-DD|<id>` (see `params::encode_cursor`), digits
/// as `3x`, `-` as `2d`, `|` as `7c`; either case.
pub const CURSOR_PATTERN: &str =
    "^(3[0-9]){4}2[dD](3[0-9]){2}2[dD](3[0-9]){2}7[cC]([0-9a-fA-F]{2})*$";
/// Ids in queries and paths: no control character (refused, and PostgreSQL text holds no NUL).
pub const ID_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// What the API enforces on its inputs, stated in the document from the same constants the
/// handlers use, so generated clients (and fuzzers such as schemathesis) send what is accepted:
/// date shape, limit bounds, cursor and id shapes, the range rule, the sync body's date.
struct Constraints;

impl Modify for Constraints {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let string = |format: Option<KnownFormat>, pattern: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(format.map(SchemaFormat::KnownFormat))
                .pattern(Some(pattern))
                .build()
        };
        let range_rule = format!(
            "`from` must not be after `to`, and the range covers at most {MAX_RANGE_DAYS} days, \
             both ends included (otherwise 400 `invalid_range`)."
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let Some(operation) = item.get.as_mut() else {
                continue;
            };
            let mut has_range = false;
            for parameter in operation.parameters.iter_mut().flatten() {
                let schema: Schema = match parameter.name.as_str() {
                    "from" | "to" => {
                        has_range = true;
                        string(Some(KnownFormat::Date), DATE_PATTERN).into()
                    }
                    "limit" => ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1))
                        .maximum(Some(MAX_LIMIT))
                        .default(Some(DEFAULT_LIMIT.into()))
                        .build()
                        .into(),
                    "cursor" => string(None, CURSOR_PATTERN).into(),
                    "entityId" | "sellpageId" | "job_id" => string(None, ID_PATTERN).into(),
                    _ => continue,
                };
                parameter.schema = Some(RefOr::T(schema));
            }
            if has_range && path.starts_with("/api/") {
                operation.description = Some(match operation.description.take() {
                    Some(text) if !text.is_empty() => format!("{text}\n\n{range_rule}"),
                    _ => range_rule.clone(),
                });
            }
        }
        let body = openapi
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("TriggerBody"));
        if let Some(RefOr::T(Schema::Object(body))) = body {
            if let Some(RefOr::T(Schema::Object(date))) = body.properties.get_mut("date") {
                date.format = Some(SchemaFormat::KnownFormat(KnownFormat::Date));
                date.pattern = Some(DATE_PATTERN.to_string());
            }
        }
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
