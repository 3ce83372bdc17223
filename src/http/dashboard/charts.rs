//! 30-day line charts as inline SVG, drawn on the server with plotters: no script, no font files
//! (axis text is plain SVG `<text>` the browser draws), nothing fetched by the page.

use chrono::{Duration, NaiveDate};
use plotters::prelude::*;

/// Drawn size in SVG units; the stylesheet scales the chart to its column.
const SIZE: (u32, u32) = (640, 260);

/// A chart could not be drawn (a plotters error; never expected with finite data).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the {chart} chart: {cause}")]
pub struct ChartError {
    chart: &'static str,
    cause: String,
}

/// What the y axis counts, which decides its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Cents in the data, whole dollars on the axis.
    Dollars,
    /// A plain ratio such as ROAS.
    Ratio,
}

/// One line over consecutive days.
pub struct DailyChart<'a> {
    /// Names the chart in errors and in the SVG's accessible label.
    pub name: &'static str,
    pub unit: Unit,
    pub first_day: NaiveDate,
    /// One value per day from `first_day` on (dollars already divided, ratios as they are).
    pub values: &'a [f64],
    pub color: RGBColor,
}

impl DailyChart<'_> {
    /// The chart as an `<svg>` element.
    pub fn to_svg(&self) -> Result<String, ChartError> {
        let mut svg = String::new();
        self.draw(&mut svg).map_err(|cause| ChartError {
            chart: self.name,
            cause,
        })?;
        Ok(svg)
    }

    fn draw(&self, svg: &mut String) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let days = self.values.len().max(1) as i32;
        let top = self.values.iter().copied().fold(0.0_f64, f64::max);
        // Headroom above the highest point; an all-zero range still needs a non-empty axis.
        let top = if top > 0.0 { top * 1.15 } else { 1.0 };
        let first_day = self.first_day;
        let x_label = move |d: &i32| {
            (first_day + Duration::days(i64::from(*d)))
                .format("%m-%d")
                .to_string()
        };
        let unit = self.unit;
        let y_label = move |v: &f64| match unit {
            Unit::Dollars => format!("${}", thousands(v.round() as i64)),
            Unit::Ratio => format!("{v:.1}"),
        };
        let y_desc = match self.unit {
            Unit::Dollars => "USD",
            Unit::Ratio => "ROAS (revenue / spend)",
        };

        let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(72)
            .build_cartesian_2d(0..days - 1, 0.0..top)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .x_desc("date")
            .y_desc(y_desc)
            .light_line_style(RGBColor(238, 238, 238))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| err(&e))?;
        let points = self.values.iter().enumerate().map(|(d, v)| (d as i32, *v));
        chart
            .draw_series(LineSeries::new(points.clone(), self.color.stroke_width(2)))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(points.map(|p| Circle::new(p, 3, self.color.filled())))
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
        Ok(())
    }
}

/// 1234567 → "1,234,567".
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(-1234567), "-1,234,567");
    }

    #[test]
    fn a_chart_is_svg_with_axis_labels_even_when_empty() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let values: Vec<f64> = (0..30).map(|d| f64::from(d) * 10.0).collect();
        for values in [&values[..], &[0.0; 30][..]] {
            let svg = DailyChart {
                name: "spend",
                unit: Unit::Dollars,
                first_day: day,
                values,
                color: RGBColor(30, 100, 200),
            }
            .to_svg()
            .unwrap();
            assert!(svg.starts_with("<svg"), "{svg}");
            assert!(svg.contains("viewBox"));
            assert!(svg.contains("11-01"), "first day labelled");
            assert!(svg.contains("USD"));
            assert!(
                svg.contains("<polyline") || svg.contains("<path"),
                "a line is drawn"
            );
        }
    }
}
