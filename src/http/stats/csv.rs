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

/// True when the client asked for CSV (`Accept: text/csv`).
pub fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/csv"))
        })
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
