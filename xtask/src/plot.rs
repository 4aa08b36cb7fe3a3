//! A small SVG line chart: one polyline per series, log-scaled y.
//!
//! Hand-written because plotters cannot lay out text without a system font
//! library, and the charts here need only axes, ticks, lines and a legend.

use std::fmt::Write as _;

/// A named series of (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const COLOURS: &[&str] =
    &["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// Renders `series` as an SVG document; y is drawn on a log scale when every y is positive.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let (w, h) = (720.0, 480.0);
    let (left, right, top, bottom) = (80.0, 170.0, 40.0, 60.0);
    let all: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    let mut svg = String::new();
    writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    )
    .ok();
    writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#).ok();
    writeln!(svg, r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#, w / 2.0, escape(title)).ok();
    if all.is_empty() {
        writeln!(svg, r#"<text x="{}" y="{}" text-anchor="middle">no data</text></svg>"#, w / 2.0, h / 2.0).ok();
        return svg;
    }
    let log_y = all.iter().all(|&(_, y)| y > 0.0);
    let ty = |y: f64| if log_y { y.log10() } else { y };
    let (mut x0, mut x1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), &(x, _)| (a.min(x), b.max(x)));
    let (mut y0, mut y1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), &(_, y)| (a.min(ty(y)), b.max(ty(y))));
    if x1 - x0 < 1e-9 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    if y1 - y0 < 1e-9 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let pad_x = (x1 - x0) * 0.05;
    let pad_y = (y1 - y0) * 0.08;
    let (x0, x1, y0, y1) = (x0 - pad_x, x1 + pad_x, y0 - pad_y, y1 + pad_y);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let px = |x: f64| left + (x - x0) / (x1 - x0) * pw;
    let py = |y: f64| top + ph - (ty(y) - y0) / (y1 - y0) * ph;

    writeln!(svg, r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##).ok();
    for i in 0..=5 {
        let x = x0 + (x1 - x0) * i as f64 / 5.0;
        let sx = px(x);
        writeln!(svg, r##"<line x1="{sx:.1}" y1="{}" x2="{sx:.1}" y2="{}" stroke="#ddd"/>"##, top, top + ph).ok();
        writeln!(svg, r#"<text x="{sx:.1}" y="{}" text-anchor="middle">{}</text>"#, top + ph + 18.0, short(x)).ok();
    }
    for i in 0..=5 {
        let t = y0 + (y1 - y0) * i as f64 / 5.0;
        let value = if log_y { 10f64.powf(t) } else { t };
        let sy = py(value);
        writeln!(svg, r##"<line x1="{left}" y1="{sy:.1}" x2="{}" y2="{sy:.1}" stroke="#ddd"/>"##, left + pw).ok();
        writeln!(svg, r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#, left - 6.0, sy + 4.0, short(value)).ok();
    }
    writeln!(svg, r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#, left + pw / 2.0, h - 16.0, escape(x_label))
        .ok();
    let y_text = if log_y { format!("{y_label} (log scale)") } else { y_label.to_string() };
    writeln!(
        svg,
        r#"<text transform="translate(18 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + ph / 2.0,
        escape(&y_text)
    )
    .ok();
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut pts: Vec<(f64, f64)> =
            s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0)).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = pts.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
        writeln!(svg, r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#, path.join(" ")).ok();
        for &(x, y) in &pts {
            writeln!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#, px(x), py(y)).ok();
        }
        let ly = top + 14.0 + 20.0 * i as f64;
        writeln!(
            svg,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/>"#,
            w - right + 12.0,
            w - right + 36.0
        )
        .ok();
        writeln!(svg, r#"<text x="{}" y="{}">{}</text>"#, w - right + 42.0, ly + 4.0, escape(&s.name)).ok();
    }
    svg.push_str("</svg>\n");
    svg
}

fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_one_polyline_per_series_and_escapes_text() {
        let series = vec![
            Series { name: "a<b".into(), points: vec![(0.9, 1000.0), (0.99, 300.0)] },
            Series { name: "c".into(), points: vec![(0.95, 800.0)] },
        ];
        let svg = line_chart("t", "recall", "qps", &series);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a&lt;b"));
        assert!(svg.contains("(log scale)"));
        assert!(line_chart("t", "x", "y", &[]).contains("no data"));
    }
}
