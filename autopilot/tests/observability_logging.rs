//! Log set-up: JSON lines carry the reconcile span's fields, text lines too, and the filter drops levels.

mod observability_support;

use autopilot::observability::{LogConfig, LogFormat, LoggingError, subscriber};
use observability_support::Captured;

/// tracing keeps one global level hint across the subscribers of all threads: a test whose filter drops
/// `info` could otherwise lower it while another test logs, so the tests log one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn log_inside_a_reconcile(format: LogFormat, filter: &str) -> String {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = Captured::default();
    let writer = out.clone();
    let config = LogConfig {
        format,
        filter: filter.to_owned(),
    };
    let subscriber = subscriber(&config, move || writer.clone()).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(
            "reconcile",
            kind = "Canary",
            object = "shop/podinfo",
            generation = 7,
            phase = "Waiting"
        );
        let _entered = span.enter();
        tracing::info!(weight = 20, "raised canary weight");
        tracing::debug!("a detail the filter drops");
    });
    out.text()
}

#[test]
fn json_lines_carry_object_phase_and_generation() {
    let text = log_inside_a_reconcile(LogFormat::Json, "info");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let line = &lines[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["fields"]["message"], "raised canary weight");
    assert_eq!(line["fields"]["weight"], 20);
    let span = &line["span"];
    assert_eq!(span["name"], "reconcile");
    assert_eq!(span["kind"], "Canary");
    assert_eq!(span["object"], "shop/podinfo");
    assert_eq!(span["phase"], "Waiting");
    assert_eq!(span["generation"], 7);
    assert_eq!(line["spans"][0]["object"], "shop/podinfo");
}

#[test]
fn text_lines_carry_the_span_fields_and_debug_shows_when_enabled() {
    let text = log_inside_a_reconcile(LogFormat::Text, "debug");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("INFO"), "{text}");
    assert!(
        lines[0].contains(
            r#"reconcile{kind="Canary" object="shop/podinfo" generation=7 phase="Waiting"}"#
        ),
        "{text}"
    );
    assert!(lines[1].contains("a detail the filter drops"), "{text}");
}

#[test]
fn per_target_directives_filter_by_module() {
    // This test binary's own target at warn: the info line is dropped.
    let text = log_inside_a_reconcile(LogFormat::Text, "info,observability_logging=warn");
    assert_eq!(text, "");
}

#[test]
fn bad_filter_and_format_are_rejected_with_the_value() {
    let config = LogConfig {
        format: LogFormat::Text,
        filter: "info,=[".to_owned(),
    };
    let error = subscriber(&config, std::io::sink).err().unwrap();
    assert!(matches!(error, LoggingError::Filter { .. }));
    assert!(error.to_string().contains("info,=["), "{error}");

    assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
    let error = "yaml".parse::<LogFormat>().unwrap_err();
    assert!(error.to_string().contains("yaml"), "{error}");
    let parsed: LogFormat = serde_json::from_str(r#""text""#).unwrap();
    assert_eq!(parsed, LogFormat::Text);
}
