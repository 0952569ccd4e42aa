//! Small bar charts drawn as inline SVG by the templates: one bar per run, oldest on the left.
//! Geometry is computed here (pure); the template only draws it. A failed run has no height to
//! show, so it is drawn as a mark under the baseline, not only in another colour.

use serde::Serialize;

pub const WIDTH: f64 = 240.0;
pub const HEIGHT: f64 = 40.0;
/// Room under the baseline for failed runs' marks.
const MARK: f64 = 6.0;

#[derive(Debug, Serialize)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub bars: Vec<Bar>,
    /// The largest value, for the chart's label.
    pub max: f64,
    /// What the chart shows, for people who cannot see it (`aria-label`).
    pub label: String,
}

#[derive(Debug, Serialize)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    /// `failed`, `partial`, `success`...: the bar's class.
    pub class: String,
    /// Shown on hover and read by screen readers.
    pub title: String,
}

/// One point: the value, the run's status, and a title for its bar.
pub struct Point {
    pub value: f64,
    pub status: String,
    pub title: String,
}

/// Bars for `points` (oldest first), scaled to the largest value.
pub fn bars(points: &[Point], what: &str) -> Chart {
    let max = points.iter().map(|p| p.value).fold(0.0_f64, f64::max);
    let slot = WIDTH / points.len().max(1) as f64;
    let w = (slot * 0.8).max(1.0);
    let bars = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let x = i as f64 * slot;
            if p.status == "failed" || p.status == "interrupted" {
                return Bar { x, y: HEIGHT + 1.0, w, h: MARK - 2.0, class: p.status.clone(), title: p.title.clone() };
            }
            // Every run that sent something shows: at least a pixel tall.
            let h = if max > 0.0 && p.value > 0.0 { (p.value / max * HEIGHT).max(1.0) } else { 0.0 };
            Bar { x, y: HEIGHT - h, w, h, class: p.status.clone(), title: p.title.clone() }
        })
        .collect();
    Chart {
        width: WIDTH,
        height: HEIGHT + MARK,
        bars,
        max,
        label: format!("{what}, last {} runs, oldest first; at most {}", points.len(), trim(max)),
    }
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(value: f64, status: &str) -> Point {
        Point { value, status: status.into(), title: format!("{value}") }
    }

    #[test]
    fn bars_scale_to_the_largest_and_failed_runs_are_marked_below() {
        let chart = bars(&[point(10.0, "success"), point(0.0, "failed"), point(40.0, "partial"), point(0.1, "success")], "rows sent");
        assert_eq!(chart.max, 40.0);
        let b = &chart.bars;
        assert_eq!(b.len(), 4);
        assert!(b[0].x < b[1].x && b[1].x < b[2].x, "oldest on the left");
        assert_eq!(b[2].h, HEIGHT);
        assert_eq!(b[0].h, HEIGHT / 4.0);
        assert_eq!(b[0].y + b[0].h, HEIGHT, "bars stand on the baseline");
        assert!(b[1].y > HEIGHT && b[1].class == "failed", "a failed run is a mark under the baseline");
        assert_eq!(b[3].h, 1.0, "a run that sent anything shows");
        assert!(chart.label.contains("last 4 runs") && chart.label.contains("40"));
        assert!(bars(&[], "x").bars.is_empty());
    }
}
