//! TLS against a real Prometheus serving HTTPS (`--web.config.file` with `tls_server_config`).
//!
//! `fixtures/` holds a test-only CA, a server certificate it signed for 127.0.0.1 / localhost, and an
//! unrelated CA; made with `openssl`, valid until 2126. The keys protect nothing.

mod support;

use std::path::Path;

use autopilot_metrics::{ClientOptions, PrometheusClient, QueryError};
use support::{Prometheus, Setup};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

#[tokio::test]
async fn custom_ca_and_insecure_connect_while_untrusted_certificates_are_refused() {
    let web_config = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
        fixture("server.pem"),
        fixture("server.key")
    );
    let prometheus = Prometheus::spawn(&Setup {
        web_config: Some(web_config),
        ..Setup::default()
    });
    let url = format!("https://127.0.0.1:{}", prometheus.port);

    let trusted =
        PrometheusClient::new(&url, ClientOptions::default().ca_pem(read("ca.pem"))).unwrap();
    prometheus.wait_ready(&trusted).await;
    assert_eq!(
        trusted.query_value("vector(7)", None).await.unwrap(),
        Some(7.0)
    );

    let insecure =
        PrometheusClient::new(&url, ClientOptions::default().insecure_skip_tls_verify()).unwrap();
    assert_eq!(
        insecure.query_value("vector(8)", None).await.unwrap(),
        Some(8.0)
    );

    for (name, options) in [
        ("system roots", ClientOptions::default()),
        (
            "unrelated CA",
            ClientOptions::default().ca_pem(read("other-ca.pem")),
        ),
    ] {
        let client = PrometheusClient::new(&url, options).unwrap();
        let err = client.query("vector(1)", None).await.unwrap_err();
        assert!(matches!(err, QueryError::Connect { .. }), "{name}: {err:?}");
    }
}
