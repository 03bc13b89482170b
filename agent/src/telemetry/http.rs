//! The `--metrics` HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (the process
//! answers) and `/readyz` (sources and sinks are started).
//!
//! A plain blocking listener on its own thread: scrapes come every few seconds, one at a
//! time, so a runtime would buy nothing. Each connection gets one response and is closed.
//! Requests are read with a timeout and at most [`MAX_REQUEST`] bytes, so a stuck or hostile
//! client cannot hold the thread for long.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use thiserror::Error;

use super::metrics;

/// Largest request head read.
const MAX_REQUEST: usize = 8192;

/// Read and write timeout of one scrape connection.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the metrics endpoint could not start.
#[derive(Debug, Error)]
pub enum MetricsError {
    /// Binding the listening socket failed.
    #[error("bind metrics listener on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// A histogram's buckets were refused or a recorder was already installed.
    #[error("install prometheus recorder: {0}")]
    Recorder(String),
    /// The server thread could not be spawned.
    #[error("spawn metrics thread")]
    Spawn(#[source] io::Error),
}

/// The running endpoint.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    handle: PrometheusHandle,
}

impl MetricsServer {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The current exposition, after running the probes.
    pub fn render(&self) -> String {
        render(&self.handle)
    }
}

/// Installs the global recorder and serves it on `addr`.
pub fn serve(addr: SocketAddr) -> Result<MetricsServer, MetricsError> {
    let handle = install_recorder()?;
    let listener = TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
    let addr = listener.local_addr().unwrap_or(addr);
    let served = handle.clone();
    std::thread::Builder::new()
        .name("hepcap-metrics".into())
        .spawn(move || accept_loop(&listener, &served))
        .map_err(MetricsError::Spawn)?;
    tracing::info!(%addr, "metrics endpoint listening");
    Ok(MetricsServer { addr, handle })
}

/// Builds and installs the Prometheus recorder with hepcap's buckets and descriptions.
pub fn install_recorder() -> Result<PrometheusHandle, MetricsError> {
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in metrics::buckets() {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_string()), &buckets)
            .map_err(|e| MetricsError::Recorder(e.to_string()))?;
    }
    let handle = builder
        .install_recorder()
        .map_err(|e| MetricsError::Recorder(e.to_string()))?;
    metrics::describe();
    Ok(handle)
}

fn render(handle: &PrometheusHandle) -> String {
    metrics::run_probes();
    handle.run_upkeep();
    handle.render()
}

fn accept_loop(listener: &TcpListener, handle: &PrometheusHandle) {
    let mut errors = super::LogLimit::default();
    for stream in listener.incoming() {
        let result = stream.and_then(|s| respond(s, handle));
        if let Err(e) = result
            && let Some(suppressed) = errors.allow(std::time::Instant::now())
        {
            tracing::debug!(error = %e, suppressed, "metrics request failed");
        }
    }
}

fn respond(mut stream: TcpStream, handle: &PrometheusHandle) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();

    let (status, content_type, body) = match (method, path) {
        (b"GET" | b"HEAD", b"/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(handle),
        ),
        (b"GET" | b"HEAD", b"/healthz") => ("200 OK", "text/plain", "ok\n".to_string()),
        (b"GET" | b"HEAD", b"/readyz") if metrics::is_ready() => {
            ("200 OK", "text/plain", "ready\n".to_string())
        }
        (b"GET" | b"HEAD", b"/readyz") => (
            "503 Service Unavailable",
            "text/plain",
            "starting\n".to_string(),
        ),
        (b"GET" | b"HEAD", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if method != b"HEAD" {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}
