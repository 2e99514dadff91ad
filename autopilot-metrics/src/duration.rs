//! PromQL durations (`30s`, `5m`, `1h30m`): the only values a template accepts for `interval`.

use std::fmt::{self, Display};
use std::str::FromStr;
use std::time::Duration;

/// A value is not a PromQL duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a PromQL duration (like 30s, 1m, 1h30m): {reason}")]
pub struct DurationError {
    /// The refused value.
    pub value: String,
    /// Why.
    pub reason: &'static str,
}

/// A validated PromQL duration such as `30s`, `5m` or `1h30m`: units `y w d h m s ms`, each at most once,
/// largest first, and not zero.
///
/// ```
/// use autopilot_metrics::PromDuration;
/// use std::time::Duration;
///
/// let d: PromDuration = "1h30m".parse().unwrap();
/// assert_eq!(d.as_duration(), Duration::from_secs(5400));
/// assert_eq!(PromDuration::try_from(Duration::from_secs(90)).unwrap().to_string(), "1m30s");
/// assert!("1m]) or vector(1)".parse::<PromDuration>().is_err());
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct PromDuration(Duration);

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

impl PromDuration {
    /// The duration as a std [`Duration`].
    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl FromStr for PromDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason| DurationError {
            value: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(fail("empty"));
        }
        let mut rest = s;
        let mut next_unit = 0; // units must come largest first, each once
        let mut millis: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(fail("expected a number"));
            }
            let number: u64 = rest[..digits]
                .parse()
                .map_err(|_| fail("number too large"))?;
            rest = &rest[digits..];
            let unit = if rest.starts_with("ms") {
                "ms"
            } else {
                rest.get(..1).unwrap_or("")
            };
            let index = UNITS
                .iter()
                .position(|(name, _)| *name == unit)
                .ok_or_else(|| fail("expected a unit: y, w, d, h, m, s or ms"))?;
            if index < next_unit {
                return Err(fail("units must appear once each, largest first"));
            }
            next_unit = index + 1;
            rest = &rest[unit.len()..];
            millis = number
                .checked_mul(UNITS[index].1)
                .and_then(|m| millis.checked_add(m))
                .ok_or_else(|| fail("too large"))?;
        }
        if millis == 0 {
            return Err(fail("must not be zero"));
        }
        Ok(Self(Duration::from_millis(millis)))
    }
}

impl TryFrom<String> for PromDuration {
    type Error = DurationError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PromDuration> for String {
    fn from(d: PromDuration) -> Self {
        d.to_string()
    }
}

impl TryFrom<Duration> for PromDuration {
    type Error = DurationError;

    /// Whole milliseconds only; zero is refused.
    fn try_from(d: Duration) -> Result<Self, Self::Error> {
        if d.as_millis() == 0 || !d.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(DurationError {
                value: format!("{d:?}"),
                reason: "must be a non-zero whole number of milliseconds",
            });
        }
        Ok(Self(d))
    }
}

impl Display for PromDuration {
    /// Formats with the units Prometheus itself prints (`1h30m`, `90ms`), never years or weeks.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut millis = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        for (unit, size) in &UNITS[2..] {
            let n = millis / size;
            if n > 0 {
                write!(f, "{n}{unit}")?;
                millis -= n * size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for ok in [
            "30s",
            "1m",
            "1h30m",
            "2d",
            "1w",
            "1y",
            "500ms",
            "1m30s500ms",
            "90s",
        ] {
            assert!(ok.parse::<PromDuration>().is_ok(), "{ok}");
        }
        for bad in [
            "", "1", "m", "1x", "0s", "1m1h", "1s1s", "1.5m", "-1m", "1m ", " 1m", "1M", "1m]",
        ] {
            assert!(bad.parse::<PromDuration>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "1h30m".parse::<PromDuration>().unwrap().as_duration(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            PromDuration::try_from(Duration::from_millis(3_723_004))
                .unwrap()
                .to_string(),
            "1h2m3s4ms"
        );
        assert!(PromDuration::try_from(Duration::ZERO).is_err());
        assert!(PromDuration::try_from(Duration::from_nanos(1_500_000)).is_err());
    }
}
