//! The Prometheus launcher against the real `prometheus` binary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use autopilot_testkit::prometheus::{PrometheusServer, ScrapeTarget};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves a fixed exposition on loopback; returns its address.
async fn exporter(body: &'static str) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = [0_u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    address
}

fn get(address: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test]
async fn scrapes_a_target_and_answers_queries() {
    assert!(
        PrometheusServer::is_installed(),
        "this test needs Debian's `prometheus` package (scripts/test installs it)"
    );
    let target = exporter("# TYPE demo_answer gauge\ndemo_answer 42\n").await;
    let prometheus = PrometheusServer::builder()
        .scrape(ScrapeTarget::new("demo", target.to_string()))
        .scrape_interval(Duration::from_millis(200))
        .start()
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        let address = prometheus.address();
        let body =
            tokio::task::spawn_blocking(move || get(address, "/api/v1/query?query=demo_answer"))
                .await
                .unwrap();
        if body.contains("\"42\"") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no sample scraped in time: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(answer.contains("\"job\":\"demo\""), "{answer}");
}
