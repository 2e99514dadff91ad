//! Basic authentication against a real Prometheus that requires it (`basic_auth_users` in its web config).

mod support;

use autopilot_metrics::{ClientOptions, PrometheusClient, QueryError};
use support::{Prometheus, Setup};

/// bcrypt (cost 4) of the password `pa:ss`; a colon in the password must survive the encoding.
const WEB_CONFIG: &str =
    "basic_auth_users:\n  alice: $2b$04$pTKmJr0qSzYdsQ9QZjBVmONy/Iftufkb/K3e6daIDe0nAnOymlRGu\n";

#[tokio::test]
async fn basic_auth_opens_a_protected_prometheus_and_bad_credentials_are_http_401() {
    let prometheus = Prometheus::spawn(&Setup {
        web_config: Some(WEB_CONFIG.to_owned()),
        ..Setup::default()
    });
    let alice =
        prometheus.client(ClientOptions::default().basic_auth("alice", Some("pa:ss".to_owned())));
    prometheus.wait_ready(&alice).await;
    assert_eq!(
        alice.query_value("vector(3)", None).await.unwrap(),
        Some(3.0)
    );

    for (who, options) in [
        ("anonymous", ClientOptions::default()),
        (
            "wrong password",
            ClientOptions::default().basic_auth("alice", Some("pass".to_owned())),
        ),
        (
            "bearer instead",
            ClientOptions::default().bearer_token("pa:ss"),
        ),
    ] {
        let client = PrometheusClient::new(&prometheus.url, options).unwrap();
        match client.query("vector(1)", None).await.unwrap_err() {
            QueryError::HttpStatus { status, .. } => assert_eq!(status.as_u16(), 401, "{who}"),
            other => panic!("{who}: expected HTTP 401, got {other:?}"),
        }
    }
}
