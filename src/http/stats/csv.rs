//! CSV for the spreadsheet people: the same rows as the JSON, a header row, RFC 4180 quoting,
//! and text cells guarded against formula injection.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

/// A row that can be written as CSV: its header and its fields, in the same order as its JSON.
pub trait CsvRow {
    const HEADER: &'static [&'static str];
    fn fields(&self) -> Vec<Cell>;
}

/// One CSV cell. Text (ids, levels) comes from the platform's catalogue, so a spreadsheet must
/// not read it as a formula; numbers and timestamps are written by us and stay as they are (a
/// leading `'` would turn a negative number into text).
pub enum Cell {
    Text(String),
    Number(String),
}

impl Cell {
    pub fn text(value: impl Into<String>) -> Self {
        Cell::Text(value.into())
    }

    pub fn number(value: impl ToString) -> Self {
        Cell::Number(value.to_string())
    }

    /// The cell's text as written: OWASP's advice for CSV injection, a leading `'` on text that
    /// begins with `=`, `+`, `-`, `@`, a tab or a carriage return.
    fn written(self) -> String {
        match self {
            Cell::Text(t) if t.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{t}"),
            Cell::Text(t) | Cell::Number(t) => t,
        }
    }
}

/// A float written exactly as the JSON writes it (`0.0`, not `0`), so both formats agree.
pub fn float(value: f64) -> Cell {
    Cell::Number(
        serde_json::Number::from_f64(value)
            .map(|n| n.to_string())
            .unwrap_or_default(),
    )
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
        let fields: Vec<String> = row
            .fields()
            .into_iter()
            .map(|f| field(&f.written()))
            .collect();
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
        fn fields(&self) -> Vec<Cell> {
            vec![Cell::text(self.0), Cell::number(self.1)]
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

    #[test]
    fn text_that_a_spreadsheet_would_run_gets_a_leading_quote() {
        let csv = render(&[
            Row("=1+1", 1),
            Row("+1", 2),
            Row("-1", 3),
            Row("@SUM(A1)", 4),
            Row("\tx", 5),
            Row("\rx", 6),
            Row("a=b", 7),
        ]);
        assert_eq!(
            csv,
            "name,n\r\n'=1+1,1\r\n'+1,2\r\n'-1,3\r\n'@SUM(A1),4\r\n'\tx,5\r\n\"'\rx\",6\r\na=b,7\r\n"
        );
        // Numbers are ours: a negative one stays a number.
        struct Negative;
        impl CsvRow for Negative {
            const HEADER: &'static [&'static str] = &["n"];
            fn fields(&self) -> Vec<Cell> {
                vec![Cell::number(-5)]
            }
        }
        assert_eq!(render(&[Negative]), "n\r\n-5\r\n");
    }
}
