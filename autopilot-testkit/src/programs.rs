//! Helpers for the programs the test kit starts beside the test process (Prometheus, etcd,
//! kube-apiserver): a free loopback address to give them, and the end of their logs for errors.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

/// An address on 127.0.0.1 that nothing listens on right now (another process may still take it first).
pub(crate) fn free_loopback_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// The last `bytes` (or a little fewer, to start on a character) of the log at `path`; empty when unreadable.
pub(crate) fn log_tail(path: &Path, bytes: usize) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let start = (log.len().saturating_sub(bytes)..log.len())
        .find(|&i| log.is_char_boundary(i))
        .unwrap_or(log.len());
    log.get(start..).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_starts_on_a_character() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "aé").unwrap();
        assert_eq!(log_tail(&path, 1), "");
        assert_eq!(log_tail(&path, 2), "é");
        assert_eq!(log_tail(&path, 10), "aé");
        assert_eq!(log_tail(&dir.path().join("missing"), 10), "");
    }
}
