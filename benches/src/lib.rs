//! Benchmarks, and what they share.

use std::time::Duration;

/// CPU time this process has used so far (user + system), from `/proc/self/stat` in clock ticks of 10 ms;
/// zero where that file does not exist.
///
/// ```
/// let before = autopilot_benches::cpu_time();
/// let started = std::time::Instant::now();
/// while started.elapsed() < std::time::Duration::from_millis(100) {
///     std::hint::black_box(0u64);
/// }
/// // A tenth of a second of spinning shows up as at least one clock tick.
/// assert!(autopilot_benches::cpu_time() > before);
/// ```
#[must_use]
pub fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces; utime and stime are
    // the 12th and 13th of them.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}
