//! SVG charts drawn by hand: a line chart over integer x (epochs, version numbers) and the
//! stage timeline. Every chart is an `<svg data-chart="ID" id="chart-ID">`; a chart without
//! data is a visible `<p class="no-data" data-chart-empty="ID">` note instead.

use std::fmt::Write;

use crate::html::{coord, esc, metric};

/// Fixed series colors (colour-blind friendly order).
pub const PALETTE: [&str; 6] = [
    "#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2",
];

const W: f64 = 640.0;
const H: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 44.0;

/// One named line: (x, y) points; non-finite values are dropped when drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub key: String,
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    fn finite_points(&self) -> Vec<(f64, f64)> {
        self.points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    }
}

/// A series to draw: its palette index, itself, and its finite points.
type Drawn<'a> = (usize, &'a Series, Vec<(f64, f64)>);

/// A line chart over integer x values.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Stable id: the svg gets `id="chart-{id}"` and `data-chart="{id}"`.
    pub id: String,
    pub title: String,
    pub x_label: String,
    /// Put before x tick values (e.g. `#` for version numbers).
    pub x_prefix: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// An x value to mark with a vertical line (e.g. the report's own version).
    pub highlight_x: Option<f64>,
    /// Shown instead of the chart when no series has a point.
    pub empty_note: String,
}

/// "Nice" tick values covering [lo, hi] (1, 2, 5 x 10^k steps).
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let (lo, hi) = if (hi - lo).abs() < f64::EPSILON * lo.abs().max(1.0) {
        // A flat series: open a window around its value.
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad, hi + pad)
    } else {
        (lo, hi)
    };
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    let mut ticks: Vec<f64> = (first..=last.min(first + 50))
        .map(|i| i as f64 * step)
        .collect();
    for t in &mut ticks {
        if t.abs() < step * 1e-9 {
            *t = 0.0;
        }
    }
    ticks
}

pub(crate) fn tick_label(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e6 {
        format!("{v:.0}")
    } else {
        let s = metric(v);
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

/// The `<p>` shown for a chart without data.
pub fn no_data(id: &str, note: &str) -> String {
    format!(
        "<p class=\"no-data\" data-chart-empty=\"{}\">{}</p>\n",
        esc(id),
        esc(note)
    )
}

impl LineChart {
    /// True when at least one series has a finite point.
    pub fn has_data(&self) -> bool {
        self.series.iter().any(|s| !s.finite_points().is_empty())
    }

    pub fn render(&self) -> String {
        if !self.has_data() {
            return no_data(&self.id, &self.empty_note);
        }
        let drawn: Vec<Drawn> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s, s.finite_points()))
            .filter(|(_, _, p)| !p.is_empty())
            .collect();
        let all = drawn.iter().flat_map(|(_, _, p)| p.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, y) in all {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if let Some(h) = self.highlight_x.filter(|h| h.is_finite()) {
            x0 = x0.min(h);
            x1 = x1.max(h);
        }
        let yt = nice_ticks(y0, y1, 5);
        let (ylo, yhi) = (yt[0], yt[yt.len() - 1]);
        // Integer x axis; a single x value sits in the middle.
        let (xlo, xhi) = if x1 > x0 {
            (x0, x1)
        } else {
            (x0 - 1.0, x1 + 1.0)
        };
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let sx = |x: f64| LEFT + (x - xlo) / (xhi - xlo) * pw;
        let sy = |y: f64| TOP + ph - (y - ylo) / (yhi - ylo) * ph;

        let mut s = String::new();
        let id = esc(&self.id);
        let _ = writeln!(
            s,
            "<figure class=\"chart\"><figcaption>{}</figcaption>",
            esc(&self.title)
        );
        let _ = writeln!(
            s,
            "<svg id=\"chart-{id}\" data-chart=\"{id}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
            esc(&self.title)
        );
        // Grid and y ticks.
        for t in &yt {
            let y = coord(sy(*t));
            let _ = writeln!(
                s,
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\"/><text class=\"tick\" x=\"{}\" y=\"{y}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>",
                coord(W - RIGHT),
                coord(LEFT - 6.0),
                esc(&tick_label(*t))
            );
        }
        // x ticks at integers, thinned to at most ~12 labels.
        let span = (xhi - xlo).round().max(1.0) as u64;
        let every = span.div_ceil(12).max(1);
        let mut xv = xlo.ceil();
        while xv <= xhi {
            if ((xv - xlo.ceil()) as u64).is_multiple_of(every) {
                let x = coord(sx(xv));
                let _ = writeln!(
                    s,
                    "<text class=\"tick\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}{}</text>",
                    coord(TOP + ph + 16.0),
                    esc(&self.x_prefix),
                    xv as i64
                );
            }
            xv += 1.0;
        }
        let _ = writeln!(
            s,
            "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{}\"/><line class=\"axis\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>",
            coord(TOP + ph),
            coord(W - RIGHT),
            coord(TOP + ph),
            coord(TOP + ph)
        );
        let _ = writeln!(
            s,
            "<text class=\"axis-label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            coord(LEFT + pw / 2.0),
            coord(H - 6.0),
            esc(&self.x_label)
        );
        let _ = writeln!(
            s,
            "<text class=\"axis-label\" transform=\"translate(14 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            coord(TOP + ph / 2.0),
            esc(&self.y_label)
        );
        if let Some(h) = self.highlight_x.filter(|h| h.is_finite()) {
            let x = coord(sx(h));
            let _ = writeln!(
                s,
                "<line class=\"highlight\" x1=\"{x}\" x2=\"{x}\" y1=\"{TOP}\" y2=\"{}\"/>",
                coord(TOP + ph)
            );
        }
        for (i, series, points) in &drawn {
            let color = PALETTE[i % PALETTE.len()];
            let d: Vec<String> = points
                .iter()
                .enumerate()
                .map(|(j, (x, y))| {
                    format!(
                        "{}{} {}",
                        if j == 0 { "M" } else { "L" },
                        coord(sx(*x)),
                        coord(sy(*y))
                    )
                })
                .collect();
            let key = esc(&series.key);
            let _ = writeln!(
                s,
                "<path class=\"series\" data-series=\"{key}\" d=\"{}\" stroke=\"{color}\"/>",
                d.join(" ")
            );
            for (x, y) in points {
                let _ = writeln!(
                    s,
                    "<circle class=\"point\" data-series=\"{key}\" cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{color}\"><title>{} {}{}: {}</title></circle>",
                    coord(sx(*x)),
                    coord(sy(*y)),
                    esc(&series.label),
                    esc(&self.x_prefix),
                    *x as i64,
                    metric(*y)
                );
            }
        }
        s.push_str("</svg>\n<ul class=\"legend\">");
        for (i, series, points) in &drawn {
            let last = points.last().map(|p| metric(p.1)).unwrap_or_default();
            let _ = write!(
                s,
                "<li><span class=\"swatch\" style=\"background:{}\"></span>{} <span class=\"last\">{}</span></li>",
                PALETTE[i % PALETTE.len()],
                esc(&series.label),
                esc(&last)
            );
        }
        s.push_str("</ul></figure>\n");
        s
    }
}

/// One bar of the stage timeline: offsets in seconds from the first stage's start.
#[derive(Debug, Clone, PartialEq)]
pub struct StageBar {
    pub name: String,
    pub status: String,
    pub span: Option<(f64, f64)>,
}

/// Horizontal timeline of the pipeline stages (a Gantt chart); `id` as for [`LineChart`].
pub fn stage_timeline(id: &str, bars: &[StageBar], empty_note: &str) -> String {
    let end = bars
        .iter()
        .filter_map(|b| b.span.map(|(_, e)| e))
        .fold(f64::NEG_INFINITY, f64::max);
    if !end.is_finite() {
        return no_data(id, empty_note);
    }
    let row = 24.0;
    let label_w = 96.0;
    let value_w = 96.0;
    let h = TOP + row * bars.len() as f64 + 8.0;
    let pw = W - label_w - value_w;
    let scale = |t: f64| label_w + if end > 0.0 { t / end * pw } else { 0.0 };
    let id = esc(id);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<figure class=\"chart\"><figcaption>Pipeline stages (timeline)</figcaption>\n<svg id=\"chart-{id}\" data-chart=\"{id}\" viewBox=\"0 0 {W} {}\" role=\"img\" aria-label=\"Pipeline stage timeline\">",
        coord(h)
    );
    for (i, b) in bars.iter().enumerate() {
        let y = TOP + row * i as f64;
        let status = esc(&b.status);
        let _ = writeln!(
            s,
            "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>",
            coord(label_w - 8.0),
            coord(y + row / 2.0),
            esc(&b.name)
        );
        let value = match b.span {
            Some((start, stop)) => {
                // Stages finished in the same instant still get a visible sliver.
                let x = scale(start);
                let w = (scale(stop) - x).max(2.0);
                let _ = writeln!(
                    s,
                    "<rect class=\"stage {status}\" data-stage=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\"><title>{}: {}</title></rect>",
                    esc(&b.name),
                    coord(x),
                    coord(y + 4.0),
                    coord(w),
                    coord(row - 8.0),
                    esc(&b.name),
                    crate::html::duration(stop - start)
                );
                crate::html::duration(stop - start)
            }
            None => b.status.clone(),
        };
        let _ = writeln!(
            s,
            "<text class=\"tick\" x=\"{}\" y=\"{}\" dominant-baseline=\"middle\">{}</text>",
            coord(W - value_w + 8.0),
            coord(y + row / 2.0),
            esc(&value)
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<Series>) -> LineChart {
        LineChart {
            id: "loss".into(),
            title: "Loss".into(),
            x_label: "epoch".into(),
            x_prefix: String::new(),
            y_label: "loss".into(),
            series,
            highlight_x: None,
            empty_note: "no history".into(),
        }
    }

    #[test]
    fn ticks_cover_the_range_with_round_steps() {
        let t = nice_ticks(0.13, 0.87, 5);
        assert!(t[0] <= 0.13 && *t.last().unwrap() >= 0.87, "{t:?}");
        let steps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(steps.iter().all(|s| (s - 0.2).abs() < 1e-9), "{t:?}");
        // A flat series still gets a usable window.
        let flat = nice_ticks(5.0, 5.0, 5);
        assert!(flat.len() >= 2 && flat[0] < 5.0 && *flat.last().unwrap() > 5.0);
        let zero = nice_ticks(0.0, 0.0, 5);
        assert!(zero.len() >= 2);
    }

    #[test]
    fn a_line_chart_has_one_path_per_series_and_a_point_per_value() {
        let svg = chart(vec![
            Series {
                key: "loss".into(),
                label: "Loss".into(),
                points: vec![(0.0, 3.0), (1.0, 2.0), (2.0, f64::NAN), (3.0, 1.0)],
            },
            Series {
                key: "val_loss".into(),
                label: "Validation loss".into(),
                points: vec![],
            },
        ])
        .render();
        assert!(svg.contains("id=\"chart-loss\" data-chart=\"loss\""));
        assert_eq!(svg.matches("<path class=\"series\"").count(), 1);
        // NaN is dropped, the other three are drawn.
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(!svg.contains("NaN"));
        assert!(svg.contains("data-series=\"loss\" d=\"M"));
    }

    #[test]
    fn a_chart_without_points_is_a_visible_note() {
        let html = chart(vec![Series {
            key: "loss".into(),
            label: "Loss".into(),
            points: vec![(0.0, f64::INFINITY)],
        }])
        .render();
        assert!(!html.contains("<svg"));
        assert!(html.contains("data-chart-empty=\"loss\""));
        assert!(html.contains("no history"));
    }

    #[test]
    fn a_single_point_is_drawn_inside_the_plot() {
        let svg = chart(vec![Series {
            key: "loss".into(),
            label: "Loss".into(),
            points: vec![(4.0, 0.5)],
        }])
        .render();
        let cx: f64 = svg
            .split("cx=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(cx > LEFT && cx < W - RIGHT, "{cx}");
    }

    #[test]
    fn stage_timeline_draws_stages_with_times_and_labels_the_rest() {
        let bars = vec![
            StageBar {
                name: "compile".into(),
                status: "completed".into(),
                span: Some((0.0, 2.0)),
            },
            StageBar {
                name: "train".into(),
                status: "completed".into(),
                span: Some((2.0, 62.0)),
            },
            StageBar {
                name: "deploy".into(),
                status: "skipped".into(),
                span: None,
            },
        ];
        let svg = stage_timeline("stages", &bars, "none");
        assert_eq!(svg.matches("<rect class=\"stage").count(), 2);
        assert!(svg.contains("1 min 00 s"));
        assert!(svg.contains(">skipped<"));
        let none = stage_timeline(
            "stages",
            &[StageBar {
                name: "compile".into(),
                status: "pending".into(),
                span: None,
            }],
            "not started",
        );
        assert!(none.contains("data-chart-empty=\"stages\"") && !none.contains("<svg"));
    }
}
