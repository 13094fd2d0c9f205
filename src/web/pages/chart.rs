//! Charts drawn on the server as inline SVG: nothing to download, nothing to run
//! on a cheap phone, and readable with JavaScript off. Two shapes are enough:
//! horizontal bars (a question's choices, languages, the funnel) and columns
//! (calls per hour). Sizes are in a fixed `viewBox`, so the chart scales to the
//! screen's width.

use maud::{Markup, html};

/// One horizontal bar: its label, its value, and the text shown beside it (the
/// count, maybe with a percentage).
pub struct Bar {
    pub label: String,
    pub value: u64,
    pub text: String,
    /// `data-key` of the bar's group, so scripts and tests can find it.
    pub key: String,
}

const WIDTH: u32 = 320;
const BAR_MAX: u32 = 220;
const ROW: u32 = 34;

/// Horizontal bars, the label above each bar and the text after it.
pub fn bars(title: &str, rows: &[Bar]) -> Markup {
    let max = rows.iter().map(|b| b.value).max().unwrap_or(0).max(1);
    let height = ROW * u32::try_from(rows.len()).unwrap_or(0) + 4;
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (height) } role="img" aria-label=(title) {
            @for (i, bar) in rows.iter().enumerate() {
                @let y = ROW * u32::try_from(i).unwrap_or(0);
                @let w = scaled(bar.value, max, BAR_MAX);
                g data-key=(bar.key) data-value=(bar.value) {
                    text x="0" y=(y + 12) { (bar.label) }
                    rect x="0" y=(y + 16) width=(w) height="14" rx="2" {}
                    text.n x=(w + 4) y=(y + 28) { (bar.text) }
                }
            }
        }
    }
}

/// One column of a column chart.
pub struct Column {
    /// Shown under every few columns (empty: none).
    pub label: String,
    pub value: u64,
    /// Shown on hover.
    pub title: String,
    /// Drawn darker (the broadcast's hour).
    pub mark: bool,
}

/// Columns, e.g. calls per hour; the tallest one's value is written at the top.
pub fn columns(title: &str, cols: &[Column]) -> Markup {
    let max = cols.iter().map(|c| c.value).max().unwrap_or(0).max(1);
    let n = u32::try_from(cols.len()).unwrap_or(0).max(1);
    let step = WIDTH / n;
    let top = 14;
    let plot = 100;
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (top + plot + 16) } role="img" aria-label=(title) {
            text.n x="0" y="10" { "max " (max) }
            @for (i, c) in cols.iter().enumerate() {
                @let x = step * u32::try_from(i).unwrap_or(0);
                @let h = scaled(c.value, max, plot);
                g data-value=(c.value) {
                    title { (c.title) }
                    rect class=[c.mark.then_some("mark")] x=(x + 1) y=(top + plot - h)
                        width=(step.saturating_sub(2).max(1)) height=(h) {}
                    @if !c.label.is_empty() {
                        text x=(x) y=(top + plot + 13) { (c.label) }
                    }
                }
            }
        }
    }
}

/// `value` on a scale where `max` is `full`, at least 1 for a non-zero value so
/// that a single call still shows.
fn scaled(value: u64, max: u64, full: u32) -> u32 {
    if value == 0 {
        return 0;
    }
    let w = value.saturating_mul(u64::from(full)) / max.max(1);
    u32::try_from(w).unwrap_or(full).clamp(1, full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_escape_labels() {
        let svg = bars(
            "t",
            &[
                Bar {
                    label: "<b>yes".into(),
                    value: 10,
                    text: "10".into(),
                    key: "yes".into(),
                },
                Bar {
                    label: "no".into(),
                    value: 1,
                    text: "1".into(),
                    key: "no".into(),
                },
            ],
        )
        .into_string();
        assert!(svg.contains("width=\"220\""), "{svg}");
        assert!(svg.contains("width=\"22\""), "{svg}");
        assert!(svg.contains("&lt;b&gt;yes"), "{svg}");
        assert!(!svg.contains("<b>"), "{svg}");
    }

    #[test]
    fn a_small_value_still_shows_and_zero_does_not() {
        assert_eq!(scaled(1, 1_000_000, 230), 1);
        assert_eq!(scaled(0, 10, 230), 0);
        assert_eq!(scaled(10, 10, 230), 230);
    }
}
