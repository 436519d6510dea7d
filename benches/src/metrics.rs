//! The broker's own figures, read from its Prometheus endpoint
//! (`GET /metrics` of edgemq's `[http]` listener, no credentials).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;

/// Fetches `/metrics` from `addr` (HTTP/1.0, bounded by 5 s).
pub async fn fetch(addr: SocketAddr) -> Result<String, Error> {
    let get = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
        let mut body = Vec::new();
        s.read_to_end(&mut body).await?;
        Ok::<_, Error>(String::from_utf8_lossy(&body).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(5), get)
        .await
        .map_err(|_| Error::Timeout(format!("GET http://{addr}/metrics")))??;
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => Ok(body.to_owned()),
        _ => Err(Error::Protocol(format!("GET http://{addr}/metrics: {}", text.lines().next().unwrap_or("")))),
    }
}

/// The value of the sample named exactly `series` (name and labels as
/// printed, e.g. `edgemq_messages_dropped_total{cause="queue_full"}`).
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_a_series() {
        let t = "# HELP x\nedgemq_queued_bytes 12\nedgemq_messages_dropped_total{cause=\"disk_quota\"} 3\n";
        assert_eq!(super::value(t, "edgemq_queued_bytes"), Some(12.0));
        assert_eq!(super::value(t, "edgemq_messages_dropped_total{cause=\"disk_quota\"}"), Some(3.0));
        assert_eq!(super::value(t, "edgemq_queued"), None);
    }
}
