//! `bench client --plot FILE.svg`: the run drawn as an SVG that any
//! browser shows, by sockit itself (pure: values in, SVG text out). A rate
//! over time for the throughput and rate tests, one point per interval; a
//! latency histogram (logarithmic bins) for the round-trip tests.

use std::fmt::Write as _;

/// What a run draws.
#[derive(Debug, Clone)]
pub enum Plot {
    /// A value per interval: (seconds since the start, value).
    Series {
        /// The chart's title.
        title: String,
        /// What the values count: `bit/s`, `datagrams/s`, ...
        unit: &'static str,
        /// One point per interval.
        points: Vec<(f64, f64)>,
    },
    /// Round-trip times, in microseconds.
    Histogram {
        /// The chart's title.
        title: String,
        /// Each round trip's time.
        values_us: Vec<f64>,
    },
}

const W: f64 = 720.0;
const H: f64 = 360.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// Text safe inside SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A value with an SI prefix: `1.25 G`, `340 k`.
fn si(v: f64) -> String {
    let (d, p) = if v >= 1e9 {
        (1e9, "G")
    } else if v >= 1e6 {
        (1e6, "M")
    } else if v >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let x = v / d;
    if x >= 100.0 || x == x.trunc() {
        format!("{x:.0} {p}")
    } else {
        format!("{x:.2} {p}")
    }
    .trim_end()
    .to_string()
}

/// A tick step near `span / 5` that is 1, 2 or 5 times a power of ten.
fn step(span: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    let m = if n < 1.5 {
        1.0
    } else if n < 3.5 {
        2.0
    } else if n < 7.5 {
        5.0
    } else {
        10.0
    };
    m * mag
}

fn frame(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        W / 2.0,
        esc(title)
    );
}

/// Axes with ticks: `xs` and `ys` are (value, position) pairs.
fn axes(out: &mut String, xs: &[(String, f64)], ys: &[(String, f64)], xlabel: &str, ylabel: &str) {
    let (x0, y0, x1, y1) = (LEFT, H - BOTTOM, W - RIGHT, TOP);
    let _ = writeln!(
        out,
        "<path d=\"M{x0} {y1} V{y0} H{x1}\" stroke=\"black\" fill=\"none\"/>"
    );
    for (label, x) in xs {
        let _ = writeln!(
            out,
            "<path d=\"M{x:.1} {y0} v5\" stroke=\"black\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            y0 + 18.0,
            esc(label)
        );
    }
    for (label, y) in ys {
        let _ = writeln!(
            out,
            "<path d=\"M{x0} {y:.1} h-5\" stroke=\"black\"/><path d=\"M{x0} {y:.1} H{x1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x0 - 8.0,
            y + 4.0,
            esc(label)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n\
         <text x=\"{x0}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        (x0 + x1) / 2.0,
        H - 12.0,
        esc(xlabel),
        y1 - 10.0,
        esc(ylabel)
    );
}

impl Plot {
    /// The chart as an SVG document.
    pub fn svg(&self) -> String {
        let mut out = String::with_capacity(4096);
        match self {
            Plot::Series {
                title,
                unit,
                points,
            } => series(&mut out, title, unit, points),
            Plot::Histogram { title, values_us } => histogram(&mut out, title, values_us),
        }
        out.push_str("</svg>\n");
        out
    }
}

fn series(out: &mut String, title: &str, unit: &str, points: &[(f64, f64)]) {
    frame(out, title);
    let xmax = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let ymax = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.1;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let px = |x: f64| LEFT + x / xmax * pw;
    let py = |y: f64| H - BOTTOM - y / ymax * ph;
    let xs: Vec<(String, f64)> = {
        let s = step(xmax);
        (0..=((xmax / s) as usize))
            .map(|i| (format!("{}", i as f64 * s), px(i as f64 * s)))
            .collect()
    };
    let ys: Vec<(String, f64)> = {
        let s = step(ymax);
        (0..=((ymax / s) as usize))
            .map(|i| (si(i as f64 * s), py(i as f64 * s)))
            .collect()
    };
    axes(out, &xs, &ys, "seconds", unit);
    if points.is_empty() {
        return;
    }
    let mut d = String::new();
    for (i, (x, y)) in points.iter().enumerate() {
        let _ = write!(
            d,
            "{}{:.1} {:.1}",
            if i == 0 { "M" } else { " L" },
            px(*x),
            py(*y)
        );
    }
    let _ = writeln!(
        out,
        "<path d=\"{d}\" stroke=\"#1f77b4\" stroke-width=\"2\" fill=\"none\"/>"
    );
    for (x, y) in points {
        let _ = writeln!(
            out,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#1f77b4\"><title>{x:.1} s: {} {}</title></circle>",
            px(*x),
            py(*y),
            si(*y),
            esc(unit)
        );
    }
}

fn histogram(out: &mut String, title: &str, values_us: &[f64]) {
    frame(out, title);
    // Logarithmic bins, four to a decade, from the fastest to the slowest.
    let lo = values_us
        .iter()
        .copied()
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let hi = values_us.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > 0.0 {
        (lo, hi)
    } else {
        (1.0, 10.0)
    };
    let first = (lo.log10() * 4.0).floor();
    let last = (hi.log10() * 4.0).floor();
    let nbins = ((last - first) as usize + 1).clamp(1, 200);
    let mut counts = vec![0u64; nbins];
    for v in values_us {
        let b = ((v.max(lo).log10() * 4.0).floor() - first) as usize;
        counts[b.min(nbins - 1)] += 1;
    }
    let cmax = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.1;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let bw = pw / nbins as f64;
    let edge = |i: usize| 10f64.powf((first + i as f64) / 4.0);
    // Ticks at the decades (every fourth edge): 10, 100, 1 k, ...
    let xs: Vec<(String, f64)> = (0..=nbins)
        .filter(|i| (first as i64 + *i as i64).rem_euclid(4) == 0)
        .map(|i| (si(edge(i)), LEFT + i as f64 * bw))
        .collect();
    let ys: Vec<(String, f64)> = {
        let s = step(cmax);
        (0..=((cmax / s) as usize))
            .map(|i| (si(i as f64 * s), H - BOTTOM - i as f64 * s / cmax * ph))
            .collect()
    };
    axes(
        out,
        &xs,
        &ys,
        "round-trip time, microseconds",
        "round trips",
    );
    for (i, c) in counts.iter().enumerate() {
        let h = *c as f64 / cmax * ph;
        let _ = writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#1f77b4\">\
             <title>{:.1} to {:.1} us: {c}</title></rect>",
            LEFT + i as f64 * bw + 1.0,
            H - BOTTOM - h,
            (bw - 2.0).max(1.0),
            edge(i),
            edge(i + 1)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_has_a_point_per_interval_and_axes() {
        let p = Plot::Series {
            title: "tcp <1 stream>".into(),
            unit: "bit/s",
            points: vec![(1.0, 2.0e9), (2.0, 2.5e9), (3.0, 2.4e9)],
        };
        let s = p.svg();
        assert!(s.starts_with("<svg ") && s.ends_with("</svg>\n"));
        assert_eq!(s.matches("<circle").count(), 3);
        assert!(s.contains("tcp &lt;1 stream&gt;"));
        assert!(s.contains(">2 G<"), "{s}");
    }

    #[test]
    fn a_histogram_counts_every_value() {
        let values: Vec<f64> = (1..=1000).map(|i| 10.0 + i as f64 / 10.0).collect();
        let s = Plot::Histogram {
            title: "rr".into(),
            values_us: values,
        }
        .svg();
        let total: u64 = s
            .split(" us: ")
            .skip(1)
            .map(|t| t.split('<').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(total, 1000);
        // Nothing to draw is still a chart.
        assert!(Plot::Histogram {
            title: "x".into(),
            values_us: vec![]
        }
        .svg()
        .contains("</svg>"));
        assert!(Plot::Series {
            title: "x".into(),
            unit: "u",
            points: vec![]
        }
        .svg()
        .contains("</svg>"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(step(10.0), 2.0);
        assert_eq!(step(3.0e9), 5.0e8);
        assert_eq!(si(1_500_000.0), "1.50 M");
        assert_eq!(si(2.0e9), "2 G");
    }
}
