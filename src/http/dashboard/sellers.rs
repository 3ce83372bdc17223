//! `GET /dashboard/sellers`: every seller, linking to its page. One query.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;

use super::layout::{html_response, page, seller_href};
use super::{signed_in, to_login};
use crate::db;
use crate::http::{ApiError, AppState};

pub async fn sellers(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let Some(session) = signed_in(&state, &req)? else {
        return Ok(to_login());
    };
    let db = state.db.clone();
    let sellers = state
        .on_main_runtime(async move {
            let mut conn = db.conn().await?;
            Ok(db::dashboard::sellers(&mut conn).await?)
        })
        .await?;
    let body = html! {
        h1 { "Sellers (" (sellers.len()) ")" }
        table #sellers {
            thead { tr { th { "name" } th { "id" } th { "status" } } }
            tbody {
                @for seller in &sellers {
                    tr {
                        td { a href=(seller_href(&seller.id)) { (seller.name) } }
                        td.id { (seller.id) }
                        td { span class={ "status status-" (seller.status.to_lowercase()) } { (seller.status) } }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page("Sellers", Some(&session), body),
    ))
}
