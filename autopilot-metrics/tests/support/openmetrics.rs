//! Builds OpenMetrics text of steadily growing counters, for `promtool` backfill.

use std::fmt::Write as _;

/// First sample time (unix seconds), aligned to Prometheus' 2 h block boundaries.
pub const START: u64 = 1_699_999_200;
/// Last sample time.
pub const END: u64 = START + 900;
/// Seconds between samples.
pub const STEP: u64 = 15;
/// Where tests evaluate instant queries: well inside the data.
pub const EVAL: u64 = START + 600;

/// Accumulates series; call [`Backfill::finish`] for the text.
#[derive(Default)]
pub struct Backfill {
    text: String,
}

impl Backfill {
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter growing by `per_minute` every minute, from 0 at [`START`].
    pub fn counter(mut self, name: &str, labels: &[(&str, &str)], per_minute: f64) -> Self {
        let labels = render_labels(labels);
        let mut t = START;
        while t <= END {
            let value = per_minute * (t - START) as f64 / 60.0;
            writeln!(self.text, "{name}{{{labels}}} {value} {t}").unwrap();
            t += STEP;
        }
        self
    }

    /// A histogram's `_bucket` series; `buckets` are (le, cumulative count per minute), `+Inf` included.
    pub fn histogram(
        mut self,
        name: &str,
        labels: &[(&str, &str)],
        buckets: &[(&str, f64)],
    ) -> Self {
        for (le, per_minute) in buckets {
            let mut with_le = labels.to_vec();
            with_le.push(("le", le));
            self = self.counter(&format!("{name}_bucket"), &with_le, *per_minute);
        }
        self
    }

    pub fn finish(mut self) -> String {
        self.text.push_str("# EOF\n");
        self.text
    }
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    let escape = |v: &str| {
        v.replace('\\', r"\\")
            .replace('"', r#"\""#)
            .replace('\n', r"\n")
    };
    labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}
