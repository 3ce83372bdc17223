//! CSV for the spreadsheet people: the same rows as the JSON, a header row, RFC 4180 quoting.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

/// A row that can be written as CSV: its header and its fields, in the same order as its JSON.
pub trait CsvRow {
    const HEADER: &'static [&'static str];
    fn fields(&self) -> Vec<String>;
}

/// A float written exactly as the JSON writes it (`0.0`, not `0`), so both formats agree.
pub fn float(value: f64) -> String {
    serde_json::Number::from_f64(value)
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// True when the client prefers CSV: `text/csv` listed with a quality above 0, and no JSON
/// (`application/json`) listed with a higher one; on a tie the one listed first wins. Wildcards
/// and anything else mean JSON, the default.
pub fn wants_csv(req: &HttpRequest) -> bool {
    let mut best: Option<(bool, f32)> = None;
    for media in req
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = media.split(';');
        let kind = parts.next().unwrap_or_default().trim();
        let csv = kind.eq_ignore_ascii_case("text/csv");
        if !csv && !kind.eq_ignore_ascii_case("application/json") {
            continue;
        }
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if q > 0.0 && best.is_none_or(|(_, top)| q > top) {
            best = Some((csv, q));
        }
    }
    best.is_some_and(|(csv, _)| csv)
}

/// The answer of a route that speaks JSON and CSV: caches must key it on `Accept` too.
pub fn json<T: serde::Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::VARY, "Accept"))
        .json(body)
}

/// A field quoted when it holds a comma, a quote or a line break; quotes inside are doubled.
fn field(value: &str) -> String {
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

pub fn render<R: CsvRow>(rows: &[R]) -> String {
    let mut out = R::HEADER.join(",");
    out.push_str("\r\n");
    for row in rows {
        let fields: Vec<String> = row.fields().iter().map(|f| field(f)).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A CSV response; the next page's cursor, if any, in `X-Next-Cursor`.
pub fn response<R: CsvRow>(rows: &[R], next_cursor: Option<&str>) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response.content_type("text/csv; charset=utf-8");
    response.insert_header((header::VARY, "Accept"));
    if let Some(cursor) = next_cursor {
        response.insert_header(("X-Next-Cursor", cursor.to_string()));
    }
    response.body(render(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row(&'static str, i64);
    impl CsvRow for Row {
        const HEADER: &'static [&'static str] = &["name", "n"];
        fn fields(&self) -> Vec<String> {
            vec![self.0.to_string(), self.1.to_string()]
        }
    }

    #[test]
    fn csv_only_when_preferred() {
        let wants = |accept: Option<&str>| {
            let mut req = actix_web::test::TestRequest::default();
            if let Some(a) = accept {
                req = req.insert_header((header::ACCEPT, a));
            }
            wants_csv(&req.to_http_request())
        };
        assert!(!wants(None));
        assert!(!wants(Some("*/*")));
        assert!(wants(Some("text/csv")));
        assert!(wants(Some("TEXT/CSV; charset=utf-8")));
        assert!(wants(Some("text/csv, */*")));
        assert!(!wants(Some("application/json, text/csv;q=0")));
        assert!(!wants(Some("text/csv;q=0")));
        assert!(
            !wants(Some("application/json, text/csv")),
            "a tie goes to the first"
        );
        assert!(wants(Some("text/csv, application/json")));
        assert!(wants(Some("application/json;q=0.5, text/csv;q=0.9")));
        assert!(!wants(Some("application/json;q=0.9, text/csv;q=0.5")));
    }

    #[test]
    fn quotes_only_what_rfc_4180_needs() {
        let csv = render(&[
            Row("plain", 1),
            Row("a,b", 2),
            Row("say \"hi\"", 3),
            Row("two\nlines", 4),
        ]);
        assert_eq!(
            csv,
            "name,n\r\nplain,1\r\n\"a,b\",2\r\n\"say \"\"hi\"\"\",3\r\n\"two\nlines\",4\r\n"
        );
    }
}
