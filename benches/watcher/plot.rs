//! A small hand-written SVG chart: detection lag against lookups per paid
//! charge, both axes logarithmic, one line per series and quantile, labelled
//! markers for chosen points. No dependency: the file is a few hundred lines of
//! text, committed beside the bench for docs/performance.md.

use std::fmt::Write as _;

/// One line: `(x, y)` points in increasing `x`.
pub(crate) struct Line {
    pub(crate) label: String,
    pub(crate) colour: &'static str,
    pub(crate) dashed: bool,
    pub(crate) points: Vec<(f64, f64)>,
}

/// One labelled point.
pub(crate) struct Marker {
    pub(crate) label: String,
    pub(crate) colour: &'static str,
    pub(crate) at: (f64, f64),
}

const W: f64 = 860.0;
const H: f64 = 520.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

/// The grid values of a log axis spanning the decades `l0..=l1` (as log10): every
/// 1-2-5 step up to `10^l1`, each with its line colour (darker on the decades).
fn ticks(l0: f64, l1: f64) -> impl Iterator<Item = (f64, &'static str)> {
    (l0 as i32..=l1 as i32)
        .flat_map(|d| [1.0, 2.0, 5.0].map(|m| (m, m * 10f64.powi(d))))
        .filter(move |(_, v)| v.log10() <= l1 + 1e-9)
        .map(|(m, v)| (v, if m == 1.0 { "#bbb" } else { "#eee" }))
}

pub(crate) fn svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[Line],
    marks: &[Marker],
) -> String {
    let all = lines
        .iter()
        .flat_map(|l| l.points.iter().copied())
        .chain(marks.iter().map(|m| m.at))
        .filter(|(x, y)| *x > 0.0 && *y > 0.0 && x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in all {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    // Whole decades, so the grid lines fall on 1, 10, 100 …
    let (lx0, lx1) = (x0.log10().floor(), x1.log10().ceil());
    let (ly0, ly1) = (y0.log10().floor(), y1.log10().ceil());
    let px = |x: f64| LEFT + (x.log10() - lx0) / (lx1 - lx0).max(1.0) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - (y.log10() - ly0) / (ly1 - ly0).max(1.0) * (H - TOP - BOTTOM);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        (W - RIGHT + LEFT) / 2.0,
        escape(title)
    );
    // Grid: every 1-2-5 step of each decade, labelled on the decades and the 2s and 5s.
    for (x, stroke) in ticks(lx0, lx1) {
        let p = px(x);
        let _ = writeln!(
            out,
            r##"<line x1="{p:.1}" y1="{TOP}" x2="{p:.1}" y2="{:.1}" stroke="{stroke}" />"##,
            H - BOTTOM,
        );
        let _ = writeln!(
            out,
            r#"<text x="{p:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            H - BOTTOM + 16.0,
            number(x)
        );
    }
    for (y, stroke) in ticks(ly0, ly1) {
        let p = py(y);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{p:.1}" x2="{:.1}" y2="{p:.1}" stroke="{stroke}" />"##,
            W - RIGHT,
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            p + 4.0,
            seconds(y)
        );
    }
    let _ = writeln!(
        out,
        r#"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="black"/>"#,
        W - LEFT - RIGHT,
        H - TOP - BOTTOM
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (W - RIGHT + LEFT) / 2.0,
        H - 18.0,
        escape(x_label)
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        (H - BOTTOM + TOP) / 2.0,
        escape(y_label)
    );
    for (i, line) in lines.iter().enumerate() {
        let path: Vec<String> = line
            .points
            .iter()
            .filter(|(x, y)| *x > 0.0 && *y > 0.0)
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let dash = if line.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            path.join(" "),
            line.colour
        );
        for p in &path {
            let (x, y) = p.split_once(',').unwrap_or_default();
            let _ = writeln!(
                out,
                r#"<circle cx="{x}" cy="{y}" r="2.5" fill="{}"/>"#,
                line.colour
            );
        }
        // Legend.
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let lx = W - RIGHT + 15.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            lx + 28.0,
            line.colour,
            lx + 34.0,
            ly + 4.0,
            escape(&line.label)
        );
    }
    for (i, m) in marks.iter().enumerate() {
        let (x, y) = (px(m.at.0), py(m.at.1));
        let _ = writeln!(
            out,
            r#"<path d="M{:.1},{:.1} l6,6 l-6,6 l-6,-6 z" fill="{}" stroke="black"/>"#,
            x,
            y - 6.0,
            m.colour
        );
        let ly = TOP + 10.0 + 20.0 * (lines.len() + i) as f64 + 10.0;
        let lx = W - RIGHT + 15.0;
        let _ = writeln!(
            out,
            r#"<path d="M{:.1},{:.1} l6,6 l-6,6 l-6,-6 z" fill="{}" stroke="black"/><text x="{}" y="{}">{}</text>"#,
            lx + 14.0,
            ly - 6.0,
            m.colour,
            lx + 34.0,
            ly + 4.0,
            escape(&m.label)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn number(x: f64) -> String {
    if x >= 1000.0 {
        format!("{}k", x / 1000.0)
    } else {
        format!("{x}")
    }
}

fn seconds(s: f64) -> String {
    format!("{s} s")
}
