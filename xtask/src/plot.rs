//! A small SVG line chart: one polyline per series, log-scaled axes where the data spans decades.
//!
//! Hand-written because plotters cannot lay out text without a system font
//! library, and the charts here need only axes, ticks, lines, a legend and a caption.

use std::fmt::Write as _;

/// A named series of (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// How an axis maps values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Logarithmic when every value is positive and they span at least [`LOG_DECADES`] decades.
    Auto,
    Linear,
    /// Logarithmic when every value is positive (the y axis of throughput charts).
    LogIfPositive,
}

/// A sweep spanning this many decades (max / min ≥ 10^LOG_DECADES) is drawn on a log axis by [`Scale::Auto`].
pub const LOG_DECADES: f64 = 2.0;

/// One axis: what is measured, in which unit, on which scale.
pub struct Axis<'a> {
    pub label: &'a str,
    /// Shown in brackets after the label; empty for a plain number (a count, a fraction).
    pub unit: &'a str,
    pub scale: Scale,
}

/// Everything drawn besides the series.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x: Axis<'a>,
    pub y: Axis<'a>,
    /// A line under the chart: what the data is compared with and where it was measured
    /// (`peer: hnswlib 0.8.0 · machine: Intel Xeon, 2 vCPU`); empty for none.
    pub caption: &'a str,
}

const COLOURS: &[&str] =
    &["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// Whether `values` go on a log axis under `scale`.
pub fn is_log(scale: Scale, values: &[f64]) -> bool {
    let positive = !values.is_empty() && values.iter().all(|&v| v > 0.0);
    match scale {
        Scale::Linear => false,
        Scale::LogIfPositive => positive,
        Scale::Auto => {
            let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            positive && (hi / lo).log10() >= LOG_DECADES - 1e-9
        }
    }
}

/// Tick values of a log axis over `[lo, hi]` (values, not logarithms): every power of ten in range,
/// and 2× and 5× of each decade too when fewer than three powers of ten fall inside.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (first, last) = (lo.log10().floor() as i32 - 1, hi.log10().ceil() as i32 + 1);
    let inside = |v: f64| v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9);
    let decades: Vec<f64> = (first..=last).map(|k| 10f64.powi(k)).filter(|&v| inside(v)).collect();
    if decades.len() >= 3 {
        return decades;
    }
    (first..=last).flat_map(|k| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(k))).filter(|&v| inside(v)).collect()
}

/// Tick values of a linear axis over `[lo, hi]`: multiples of 1, 2 or 5 × 10^k, four to ten of them.
pub fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 5.0;
    if raw.is_nan() || raw <= 0.0 || !raw.is_finite() {
        return vec![lo];
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|&s| s >= raw).unwrap_or(10.0 * magnitude);
    let start = (lo / step).ceil() as i64;
    let end = (hi / step).floor() as i64;
    (start..=end).map(|i| i as f64 * step).collect()
}

/// A tick label: 1, 10, 100, 1k, 10k, 1M, 1G, and 0.5, 0.01 below one; no trailing zeros.
pub fn tick_label(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    // Three decimals, more below 0.01 (0.001, 0.0005): always two significant digits.
    let decimals = if a > 0.0 && a < 0.01 { (2 - a.log10().floor() as i32) as usize } else { 3 };
    let text = format!("{scaled:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    let text = if text == "-0" { "0" } else { text };
    format!("{text}{suffix}")
}

/// An axis title: `label (unit)`, with `, log scale` inside the brackets when it is one.
pub fn axis_title(axis: &Axis, log: bool) -> String {
    match (axis.unit.is_empty(), log) {
        (true, false) => axis.label.to_string(),
        (true, true) => format!("{} (log scale)", axis.label),
        (false, false) => format!("{} ({})", axis.label, axis.unit),
        (false, true) => format!("{} ({}, log scale)", axis.label, axis.unit),
    }
}

/// One axis's mapping from values to [0, 1] of the plot area, with padding.
struct Mapping {
    log: bool,
    lo: f64,
    hi: f64,
}

impl Mapping {
    fn new(log: bool, values: &[f64], pad: f64) -> Mapping {
        let t = |v: f64| if log { v.log10() } else { v };
        let (mut lo, mut hi) = values.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(t(v)), b.max(t(v))));
        if hi - lo < 1e-9 {
            lo -= 0.5;
            hi += 0.5;
        }
        let p = (hi - lo) * pad;
        Mapping { log, lo: lo - p, hi: hi + p }
    }

    fn frac(&self, v: f64) -> f64 {
        let t = if self.log { v.log10() } else { v };
        (t - self.lo) / (self.hi - self.lo)
    }

    /// The range shown, as values.
    fn range(&self) -> (f64, f64) {
        if self.log { (10f64.powf(self.lo), 10f64.powf(self.hi)) } else { (self.lo, self.hi) }
    }

    fn ticks(&self) -> Vec<f64> {
        let (lo, hi) = self.range();
        if self.log { log_ticks(lo, hi) } else { linear_ticks(lo, hi) }
    }
}

/// Renders `series` as an SVG document.
pub fn line_chart(chart: &Chart, series: &[Series]) -> String {
    // The legend's column grows with its longest name; the plot area stays 470 px wide.
    let longest = series.iter().map(|s| s.name.chars().count()).max().unwrap_or(0) as f64;
    let right = (52.0 + 6.8 * longest).max(170.0).round();
    let (left, top, bottom) = (80.0, 40.0, 80.0);
    let (w, h) = (550.0 + right, 500.0);
    // A long title gets a smaller font rather than running off the edges.
    let title_size = (15.0f64).min(((w - 20.0) / (0.55 * chart.title.chars().count().max(1) as f64)).floor());
    let all: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    let mut svg = String::new();
    writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    )
    .ok();
    writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#).ok();
    writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="{title_size}">{}</text>"#,
        w / 2.0,
        escape(chart.title)
    )
    .ok();
    if !chart.caption.is_empty() {
        writeln!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" font-size="11" fill="#444">{}</text>"##,
            w / 2.0,
            h - 10.0,
            escape(chart.caption)
        )
        .ok();
    }
    if all.is_empty() {
        writeln!(svg, r#"<text x="{}" y="{}" text-anchor="middle">no data</text></svg>"#, w / 2.0, h / 2.0).ok();
        return svg;
    }
    let xs: Vec<f64> = all.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = all.iter().map(|p| p.1).collect();
    let (log_x, log_y) = (is_log(chart.x.scale, &xs), is_log(chart.y.scale, &ys));
    let (mx, my) = (Mapping::new(log_x, &xs, 0.05), Mapping::new(log_y, &ys, 0.08));
    let (pw, ph) = (w - left - right, h - top - bottom);
    let px = |x: f64| left + mx.frac(x) * pw;
    let py = |y: f64| top + ph - my.frac(y) * ph;

    writeln!(svg, r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##).ok();
    for x in mx.ticks() {
        let sx = px(x);
        writeln!(svg, r##"<line x1="{sx:.1}" y1="{}" x2="{sx:.1}" y2="{}" stroke="#ddd"/>"##, top, top + ph).ok();
        writeln!(svg, r#"<text x="{sx:.1}" y="{}" text-anchor="middle">{}</text>"#, top + ph + 18.0, tick_label(x))
            .ok();
    }
    for y in my.ticks() {
        let sy = py(y);
        writeln!(svg, r##"<line x1="{left}" y1="{sy:.1}" x2="{}" y2="{sy:.1}" stroke="#ddd"/>"##, left + pw).ok();
        writeln!(svg, r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#, left - 6.0, sy + 4.0, tick_label(y))
            .ok();
    }
    writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        left + pw / 2.0,
        top + ph + 40.0,
        escape(&axis_title(&chart.x, log_x))
    )
    .ok();
    writeln!(
        svg,
        r#"<text transform="translate(18 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + ph / 2.0,
        escape(&axis_title(&chart.y, log_y))
    )
    .ok();
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_x || *x > 0.0) && (!log_y || *y > 0.0))
            .collect();
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

/// `cargo xtask progress`'s plot: each week's score (as a percentage of its maximum) against the run number.
pub fn progress_chart(entries: &[autograder::history::Entry]) -> String {
    use autograder::history::{best_run, by_week};
    let weeks = by_week(entries);
    let mut series = Vec::new();
    let mut bests = Vec::new();
    for (week, runs) in &weeks {
        let percent =
            |e: &autograder::history::Entry| if e.max_score > 0.0 { 100.0 * e.score / e.max_score } else { 0.0 };
        let points = runs.iter().enumerate().map(|(i, e)| ((i + 1) as f64, percent(e))).collect();
        series.push(Series { name: week.to_string(), points });
        if let Some(b) = best_run(runs) {
            bests.push(format!("{week} {:.0} % (run {})", percent(runs[b]), b + 1));
        }
    }
    let caption = format!("best: {}", bests.join(", "));
    let chart = Chart {
        title: "Grading history (.grade-history.jsonl)",
        x: Axis { label: "graded run", unit: "", scale: Scale::Linear },
        y: Axis { label: "score", unit: "% of the week's points", scale: Scale::Linear },
        caption: &caption,
    };
    line_chart(&chart, &series)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart<'a>(caption: &'a str) -> Chart<'a> {
        Chart {
            title: "t",
            x: Axis { label: "recall", unit: "", scale: Scale::Auto },
            y: Axis { label: "throughput", unit: "queries/s", scale: Scale::LogIfPositive },
            caption,
        }
    }

    #[test]
    fn chart_has_one_polyline_per_series_and_escapes_text() {
        let series = vec![
            Series { name: "a<b".into(), points: vec![(0.9, 1000.0), (0.99, 300.0)] },
            Series { name: "c".into(), points: vec![(0.95, 800.0)] },
        ];
        let svg = line_chart(&chart("peer: hnswlib 0.8.0 · machine: Intel Xeon, 2 vCPU"), &series);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a&lt;b"));
        assert!(svg.contains(">throughput (queries/s, log scale)<"), "{svg}");
        assert!(svg.contains(">recall<"), "{svg}");
        assert!(svg.contains(">peer: hnswlib 0.8.0 · machine: Intel Xeon, 2 vCPU<"), "{svg}");
        assert!(line_chart(&chart(""), &[]).contains("no data"));
    }

    #[test]
    fn progress_chart_draws_a_line_per_week_in_percent() {
        let entry = |week: &str, score: f64, max_score: f64| autograder::history::Entry {
            timestamp: 0,
            week: week.into(),
            score,
            max_score,
            tasks: Default::default(),
        };
        let entries = [entry("c4w3", 10.0, 20.0), entry("c3w1", 5.0, 5.0), entry("c4w3", 20.0, 20.0)];
        let svg = progress_chart(&entries);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">best: c3w1 100 % (run 1), c4w3 100 % (run 2)<"), "{svg}");
        assert!(svg.contains(">score (% of the week's points)<"), "{svg}");
    }

    #[test]
    fn axes_go_log_only_where_positive_values_span_decades() {
        let cases: &[(Scale, &[f64], bool)] = &[
            (Scale::Auto, &[1.0, 10.0, 100.0], true),
            (Scale::Auto, &[16.0, 64.0, 4096.0], true),
            (Scale::Auto, &[10_000.0, 546_347.0], false), // 1.7 decades
            (Scale::Auto, &[1.0, 8.0, 32.0], false),
            (Scale::Auto, &[0.0, 10.0, 1000.0], false), // zero has no logarithm
            (Scale::Auto, &[], false),
            (Scale::Linear, &[1.0, 1e6], false),
            (Scale::LogIfPositive, &[2.0, 3.0], true),
            (Scale::LogIfPositive, &[-1.0, 3.0], false),
        ];
        for (scale, values, expected) in cases {
            assert_eq!(is_log(*scale, values), *expected, "{scale:?} {values:?}");
        }
    }

    #[test]
    fn ticks_are_decades_or_round_steps() {
        let check = |ticks: Vec<f64>, expected: &[&str]| {
            let labels: Vec<String> = ticks.into_iter().map(tick_label).collect();
            assert_eq!(labels, expected);
        };
        check(log_ticks(0.8, 12_000.0), &["1", "10", "100", "1k", "10k"]);
        check(log_ticks(0.5, 2e6), &["1", "10", "100", "1k", "10k", "100k", "1M"]);
        // Under three decades inside: 1-2-5 steps.
        check(log_ticks(12.0, 4500.0), &["20", "50", "100", "200", "500", "1k", "2k"]);
        check(log_ticks(0.3, 4.0), &["0.5", "1", "2"]);
        check(log_ticks(1e-3, 0.2), &["0.001", "0.01", "0.1"]);
        check(log_ticks(2e-4, 3e-3), &["0.0002", "0.0005", "0.001", "0.002"]);
        check(linear_ticks(0.0, 100.0), &["0", "20", "40", "60", "80", "100"]);
        check(linear_ticks(0.83, 1.01), &["0.85", "0.9", "0.95", "1"]);
        check(linear_ticks(-3.0, 12_500.0), &["0", "5k", "10k"]);
    }

    #[test]
    fn tick_labels_are_short() {
        for (v, expected) in [
            (1.0, "1"),
            (10.0, "10"),
            (1000.0, "1k"),
            (2500.0, "2.5k"),
            (1e6, "1M"),
            (3e9, "3G"),
            (0.25, "0.25"),
            (0.0, "0"),
            (-0.0, "0"),
        ] {
            assert_eq!(tick_label(v), expected, "{v}");
        }
    }

    #[test]
    fn axis_titles_carry_units_and_scale() {
        let axis = |unit| Axis { label: "batch size", unit, scale: Scale::Auto };
        assert_eq!(axis_title(&axis("sentences"), false), "batch size (sentences)");
        assert_eq!(axis_title(&axis("sentences"), true), "batch size (sentences, log scale)");
        assert_eq!(axis_title(&axis(""), true), "batch size (log scale)");
        assert_eq!(axis_title(&axis(""), false), "batch size");
    }

    #[test]
    fn log_x_places_decades_evenly() {
        let series = [Series { name: "s".into(), points: vec![(1.0, 1.0), (10.0, 2.0), (100.0, 3.0)] }];
        let c = Chart {
            title: "t",
            x: Axis { label: "x", unit: "", scale: Scale::Auto },
            y: Axis { label: "y", unit: "", scale: Scale::Linear },
            caption: "",
        };
        let svg = line_chart(&c, &series);
        let line = svg.lines().find(|l| l.starts_with("<polyline")).unwrap();
        let xs: Vec<f64> = line
            .split("points=\"")
            .nth(1)
            .unwrap()
            .trim_end_matches("\"/>")
            .split(' ')
            .map(|p| p.split(',').next().unwrap().parse().unwrap())
            .collect();
        assert!(((xs[1] - xs[0]) - (xs[2] - xs[1])).abs() < 0.2, "{xs:?}");
        assert!(svg.contains(">x (log scale)<"));
    }
}
