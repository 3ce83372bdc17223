//! The stats read API: a seller's daily rows, their sums per entity, and sellpage rows, as JSON
//! or (with `Accept: text/csv`) CSV. Scoped to the token's seller: another seller's entity or
//! sellpage simply matches no rows.

pub mod daily;
pub mod sellpages;
pub mod summary;

mod csv;
pub(super) mod params;

pub use params::LevelName;

/// One page of rows and where the next one starts (`null` on the last page).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T: utoipa::ToSchema> {
    pub rows: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` when this is the last one.
    pub next_cursor: Option<String>,
}

/// The answer of a paged read: the `limit + 1` rows its query returned cut to `limit`, with the
/// next page's cursor when there was one more, as CSV when asked for and JSON otherwise.
fn page_answer<D, R>(
    req: &actix_web::HttpRequest,
    mut rows: Vec<D>,
    limit: i64,
    key: impl Fn(&D) -> (chrono::NaiveDate, &str),
) -> actix_web::HttpResponse
where
    R: From<D> + csv::CsvRow + serde::Serialize + utoipa::ToSchema,
{
    let next_cursor = (rows.len() as i64 > limit).then(|| {
        rows.truncate(limit as usize);
        rows.last()
            .map(|r| {
                let (date, id) = key(r);
                params::encode_cursor(date, id)
            })
            .unwrap_or_default()
    });
    let rows: Vec<R> = rows.into_iter().map(R::from).collect();
    if csv::wants_csv(req) {
        return csv::response(&rows, next_cursor.as_deref());
    }
    csv::json(&Page { rows, next_cursor })
}
