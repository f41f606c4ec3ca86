//! Escaping and number formatting: every user string goes through [`esc`] on its way into
//! the page, so a run named `<script>` stays text.

use std::fmt::Write;
use trainyard_core::metrics::Metric;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A metric value for people: 4 decimals below 10 (recall, RMSE), fewer for large losses.
pub fn metric(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let a = x.abs();
    if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

pub fn opt_metric(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), metric)
}

/// A coordinate inside an SVG: two decimals are plenty and keep the page small.
pub fn coord(x: f64) -> String {
    let rounded = (x * 100.0).round() / 100.0;
    if rounded == 0.0 || !rounded.is_finite() {
        return "0".into();
    }
    let mut s = String::new();
    let _ = write!(s, "{rounded:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A duration as `12.3 s`, `4 min 05 s` or `1 h 02 min`.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "–".into();
    }
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let s = seconds.round() as u64;
    if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

/// The label of a results column.
pub fn metric_label(key: &str) -> String {
    match key {
        "loss" => "Loss".into(),
        "val_loss" => "Validation loss".into(),
        other => Metric::parse(other).map_or_else(|| other.to_string(), |m| m.label().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(esc("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn numbers_are_formatted_by_magnitude() {
        assert_eq!(metric(0.123456), "0.1235");
        assert_eq!(metric(12.3456), "12.35");
        assert_eq!(metric(12345.6), "12346");
        assert_eq!(metric(-0.5), "-0.5000");
        assert_eq!(metric(f64::NAN), "–");
        assert_eq!(opt_metric(None), "–");
        assert_eq!(coord(1.0), "1");
        assert_eq!(coord(1.256), "1.26");
        assert_eq!(coord(-0.001), "0");
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(245.0), "4 min 05 s");
        assert_eq!(duration(3720.0), "1 h 02 min");
        assert_eq!(duration(-1.0), "–");
    }
}
