//! The stats read API: a seller's daily rows, their sums per entity, and sellpage rows, as JSON
//! or (with `Accept: text/csv`) CSV. Scoped to the token's seller: another seller's entity or
//! sellpage simply matches no rows.

pub mod daily;
pub mod sellpages;
pub mod summary;

mod csv;
mod params;

pub use params::LevelName;

/// One page of rows and where the next one starts (`null` on the last page).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T: utoipa::ToSchema> {
    pub rows: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` when this is the last one.
    pub next_cursor: Option<String>,
}
