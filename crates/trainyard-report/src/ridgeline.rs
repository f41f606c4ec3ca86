//! Ridgeline (joy) plot of histograms: one panel per group (a tower), one row per step (an
//! epoch), each row the histogram's step outline, normalized to its own highest bin and
//! overlapping the row above. Every panel has its own x axis: the towers' weights live on
//! different scales (embedding tables vs dense layers).
//!
//! The svg is `<svg data-chart="ID">` like every chart; each row is
//! `<path class="ridge" data-group=".." data-row="..">` whose outline has one horizontal
//! segment (`H`) per recorded bin.

use std::fmt::Write;

use crate::charts::{nice_ticks, no_data, tick_label};
use crate::html::{coord, esc, metric};

const W: f64 = 640.0;
const LEFT: f64 = 96.0;
const RIGHT: f64 = 16.0;
/// Room for the panel title above the first ridge.
const PANEL_HEADER: f64 = 22.0;
/// Room for the x axis ticks under the last baseline.
const PANEL_AXIS: f64 = 22.0;
const PANEL_GAP: f64 = 14.0;
/// Axis label under the last panel.
const FOOTER: f64 = 20.0;

/// One histogram: `counts.len() + 1` increasing edges.
#[derive(Debug, Clone, PartialEq)]
pub struct RidgeRow {
    /// The row's key (an epoch number): `data-row`, and the label `{row_label} {key}`.
    pub key: u32,
    pub bin_edges: Vec<f64>,
    pub counts: Vec<u64>,
}

impl RidgeRow {
    /// Why the row cannot be drawn, if it cannot.
    fn problem(&self) -> Option<String> {
        if self.counts.is_empty() {
            return Some("no bins".into());
        }
        if self.bin_edges.len() != self.counts.len() + 1 {
            return Some(format!(
                "{} bin edges for {} bins",
                self.bin_edges.len(),
                self.counts.len()
            ));
        }
        if self.bin_edges.iter().any(|e| !e.is_finite()) {
            return Some("non-finite bin edge".into());
        }
        if self.bin_edges.windows(2).any(|w| w[0] > w[1]) {
            return Some("bin edges are not increasing".into());
        }
        None
    }
}

/// The rows of one group (a tower).
#[derive(Debug, Clone, PartialEq)]
pub struct RidgePanel {
    pub name: String,
    pub rows: Vec<RidgeRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ridgeline {
    /// Stable id, as for [`crate::charts::LineChart`].
    pub id: String,
    pub title: String,
    /// What a row key is ("epoch").
    pub row_label: String,
    pub x_label: String,
    pub panels: Vec<RidgePanel>,
    /// Shown instead of the chart when no row can be drawn.
    pub empty_note: String,
}

/// A row's fill: light (first row) to dark (last row) blue, so time reads top to bottom.
fn shade(i: usize, n: usize) -> String {
    let t = if n > 1 {
        i as f64 / (n - 1) as f64
    } else {
        1.0
    };
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    // #bfdbfe -> #1d4ed8
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(191.0, 29.0),
        mix(219.0, 78.0),
        mix(254.0, 216.0)
    )
}

impl Ridgeline {
    /// Rows that will be drawn, per panel; panels without one are left out.
    fn drawable(&self) -> Vec<(&RidgePanel, Vec<&RidgeRow>)> {
        self.panels
            .iter()
            .map(|p| {
                let mut rows: Vec<&RidgeRow> =
                    p.rows.iter().filter(|r| r.problem().is_none()).collect();
                rows.sort_by_key(|r| r.key);
                (p, rows)
            })
            .filter(|(_, rows)| !rows.is_empty())
            .collect()
    }

    /// Rows left out, as "panel row key: why".
    pub fn skipped(&self) -> Vec<String> {
        self.panels
            .iter()
            .flat_map(|p| {
                p.rows.iter().filter_map(move |r| {
                    r.problem()
                        .map(|why| format!("{} {} {}: {why}", p.name, self.row_label, r.key))
                })
            })
            .collect()
    }

    pub fn render(&self) -> String {
        let panels = self.drawable();
        if panels.is_empty() {
            return no_data(&self.id, &self.empty_note);
        }
        // Rows get closer as they get more numerous; a ridge is 2.5 rows high (the overlap).
        let most = panels.iter().map(|(_, r)| r.len()).max().unwrap_or(1);
        let step = (160.0 / most as f64).clamp(6.0, 16.0);
        let ridge = (step * 2.5).max(24.0);
        let panel_h = |rows: usize| PANEL_HEADER + ridge + step * (rows - 1) as f64 + PANEL_AXIS;
        let height = panels.iter().map(|(_, r)| panel_h(r.len())).sum::<f64>()
            + PANEL_GAP * (panels.len() - 1) as f64
            + FOOTER;
        let pw = W - LEFT - RIGHT;

        let id = esc(&self.id);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<figure class=\"chart\"><figcaption>{}</figcaption>\n<svg id=\"chart-{id}\" data-chart=\"{id}\" viewBox=\"0 0 {W} {}\" role=\"img\" aria-label=\"{}\">",
            esc(&self.title),
            coord(height),
            esc(&self.title)
        );
        let mut top = 0.0;
        for (panel, rows) in &panels {
            let name = esc(&panel.name);
            let lo = rows
                .iter()
                .map(|r| r.bin_edges[0])
                .fold(f64::INFINITY, f64::min);
            let hi = rows
                .iter()
                .map(|r| r.bin_edges[r.bin_edges.len() - 1])
                .fold(f64::NEG_INFINITY, f64::max);
            let ticks = nice_ticks(lo, hi, 6);
            let (xlo, xhi) = (ticks[0], ticks[ticks.len() - 1]);
            let sx = |x: f64| LEFT + (x - xlo) / (xhi - xlo) * pw;
            let baseline = |i: usize| top + PANEL_HEADER + ridge + step * i as f64;
            let axis_y = baseline(rows.len() - 1);
            let _ = writeln!(
                s,
                "<g class=\"ridge-panel\" data-group=\"{name}\"><text class=\"axis-label\" x=\"{LEFT}\" y=\"{}\">{name}</text>",
                coord(top + 14.0)
            );
            for t in &ticks {
                let x = coord(sx(*t));
                let _ = writeln!(
                    s,
                    "<line class=\"grid\" x1=\"{x}\" x2=\"{x}\" y1=\"{}\" y2=\"{}\"/><text class=\"tick\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                    coord(top + PANEL_HEADER),
                    coord(axis_y),
                    coord(axis_y + 15.0),
                    esc(&tick_label(*t))
                );
            }
            // Top to bottom: each later row covers the tails of the one above it.
            for (i, row) in rows.iter().enumerate() {
                let base = baseline(i);
                let peak = row.counts.iter().copied().max().unwrap_or(0);
                let height = |c: u64| {
                    if peak == 0 {
                        0.0
                    } else {
                        c as f64 / peak as f64 * ridge
                    }
                };
                let mut d = format!("M{} {}", coord(sx(row.bin_edges[0])), coord(base));
                for (b, &c) in row.counts.iter().enumerate() {
                    let _ = write!(
                        d,
                        " V{} H{}",
                        coord(base - height(c)),
                        coord(sx(row.bin_edges[b + 1]))
                    );
                }
                d.push_str(&format!(" V{} Z", coord(base)));
                let total: u64 = row.counts.iter().sum();
                let _ = writeln!(
                    s,
                    "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{} {}</text>\n<path class=\"ridge\" data-group=\"{name}\" data-row=\"{}\" d=\"{d}\" fill=\"{}\"><title>{name}, {} {}: {total} values in {} bins, {} to {}</title></path>",
                    coord(LEFT - 6.0),
                    coord(base),
                    esc(&self.row_label),
                    row.key,
                    row.key,
                    shade(i, rows.len()),
                    esc(&self.row_label),
                    row.key,
                    row.counts.len(),
                    metric(row.bin_edges[0]),
                    metric(row.bin_edges[row.bin_edges.len() - 1]),
                );
            }
            let _ = writeln!(
                s,
                "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/></g>",
                coord(W - RIGHT),
                coord(axis_y),
                coord(axis_y)
            );
            top += panel_h(rows.len()) + PANEL_GAP;
        }
        let _ = writeln!(
            s,
            "<text class=\"axis-label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n</svg>",
            coord(LEFT + pw / 2.0),
            coord(height - 4.0),
            esc(&self.x_label)
        );
        let skipped = self.skipped();
        if !skipped.is_empty() {
            let _ = writeln!(
                s,
                "<p class=\"note\">Not drawn: {}.</p>",
                esc(&skipped.join("; "))
            );
        }
        s.push_str("</figure>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: u32, edges: Vec<f64>, counts: Vec<u64>) -> RidgeRow {
        RidgeRow {
            key,
            bin_edges: edges,
            counts,
        }
    }

    fn chart(panels: Vec<RidgePanel>) -> Ridgeline {
        Ridgeline {
            id: "weights-ridgeline".into(),
            title: "Weights".into(),
            row_label: "epoch".into(),
            x_label: "weight value".into(),
            panels,
            empty_note: "nothing recorded".into(),
        }
    }

    /// The `d` of every ridge path, in order.
    fn ridges(svg: &str) -> Vec<&str> {
        svg.split("<path class=\"ridge\"")
            .skip(1)
            .map(|p| p.split(" d=\"").nth(1).unwrap().split('"').next().unwrap())
            .collect()
    }

    #[test]
    fn one_ridge_per_row_with_one_segment_per_bin() {
        let svg = chart(vec![
            RidgePanel {
                name: "a".into(),
                rows: vec![
                    // Out of order on purpose: rows are drawn by key.
                    row(1, vec![-1.0, 0.0, 1.0, 2.0], vec![1, 5, 2]),
                    row(0, vec![-2.0, -1.0, 0.0], vec![4, 4]),
                ],
            },
            RidgePanel {
                name: "b".into(),
                rows: vec![row(0, (0..=7).map(f64::from).collect(), vec![1; 7])],
            },
        ])
        .render();
        let d = ridges(&svg);
        assert_eq!(d.len(), 3);
        let bins: Vec<usize> = d.iter().map(|d| d.matches('H').count()).collect();
        assert_eq!(bins, vec![2, 3, 7]);
        assert!(svg.contains("data-group=\"a\" data-row=\"0\""));
        assert_eq!(svg.matches("class=\"ridge-panel\"").count(), 2);
        // The highest bin of a row reaches the full ridge height; a zero bin stays on the
        // baseline. Row 1 of panel a: bins 1, 5, 2 -> heights 0.2, 1, 0.4 of the ridge.
        let ys: Vec<f64> = d[1]
            .split(' ')
            .filter_map(|t| t.strip_prefix('V'))
            .map(|v| v.parse().unwrap())
            .collect();
        let base = *ys.last().unwrap();
        let h: Vec<f64> = ys[..3].iter().map(|y| base - y).collect();
        assert!((h[0] / h[1] - 0.2).abs() < 0.01 && (h[2] / h[1] - 0.4).abs() < 0.01);
    }

    #[test]
    fn a_panel_shares_one_x_axis_across_its_rows() {
        let svg = chart(vec![RidgePanel {
            name: "a".into(),
            rows: vec![
                row(0, vec![0.0, 1.0], vec![3]),
                row(1, vec![4.0, 5.0], vec![3]),
            ],
        }])
        .render();
        let d = ridges(&svg);
        let start = |d: &str| -> f64 {
            d.trim_start_matches('M')
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        // Row 1 starts 4 units to the right of row 0 on the same scale.
        let (x0, x1) = (start(d[0]), start(d[1]));
        assert!(x0 >= LEFT && x1 > x0 + 200.0 && x1 < W - RIGHT, "{x0} {x1}");
    }

    #[test]
    fn unreadable_rows_are_named_and_an_empty_chart_is_a_note() {
        let html = chart(vec![RidgePanel {
            name: "a".into(),
            rows: vec![
                row(0, vec![0.0, 1.0], vec![3, 4]),
                row(1, vec![0.0, f64::NAN], vec![1]),
            ],
        }])
        .render();
        assert!(!html.contains("<svg"));
        assert!(html.contains("data-chart-empty=\"weights-ridgeline\""));
        let partial = chart(vec![RidgePanel {
            name: "a".into(),
            rows: vec![
                row(0, vec![0.0, 1.0], vec![3, 4]),
                row(1, vec![0.0, 1.0], vec![1]),
            ],
        }])
        .render();
        assert_eq!(ridges(&partial).len(), 1);
        assert!(partial.contains("Not drawn: a epoch 0: 2 bin edges for 2 bins."));
    }

    #[test]
    fn degenerate_ranges_and_empty_histograms_do_not_break_the_drawing() {
        // A tower whose weights are all zero: every edge equal, one row with no values.
        let svg = chart(vec![RidgePanel {
            name: "a".into(),
            rows: vec![
                row(0, vec![0.0, 0.0, 0.0], vec![10, 0]),
                row(1, vec![0.0, 0.0, 0.0], vec![0, 0]),
            ],
        }])
        .render();
        assert_eq!(ridges(&svg).len(), 2);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }
}
