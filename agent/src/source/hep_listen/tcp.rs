//! TCP and TLS listeners: streams of back-to-back HEP3 messages (hep.md §1.8.2–1.8.3).
//!
//! One tokio task per connection reads into a [`StreamFramer`], which also resynchronises a
//! stream that goes bad instead of dropping the connection. Memory per connection is the
//! framer's fixed buffer; the number of connections is capped (extra ones are closed at once
//! and counted) and a connection silent for longer than the idle timeout is closed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use super::intake::Intake;
use crate::hep::StreamFramer;

/// Largest HEP3 message on a stream (the 16-bit length field's limit).
const MAX_MESSAGE: usize = 65_535;
/// Bytes read per call.
const READ_SIZE: usize = 64 * 1024;
/// Time a TLS client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Stream listener settings.
#[derive(Clone)]
pub struct StreamConfig {
    /// Open connections at once; more are closed on accept.
    pub max_connections: usize,
    /// A connection with nothing received for this long is closed.
    pub idle_timeout: Duration,
    /// Present for `tls://` listeners.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for StreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamConfig")
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.idle_timeout)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Binds `addr` and starts accepting. Must run inside a tokio runtime. The task ends when
/// `shutdown` turns true; open connections end with it.
pub async fn spawn_stream_listener(
    addr: SocketAddr,
    config: StreamConfig,
    intake: Arc<Intake>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(listener = %intake.label(), address = %local, tls = config.tls.is_some(),
        max_connections = config.max_connections, "hep stream listener bound");
    let task = tokio::spawn(accept_loop(listener, config, intake, shutdown));
    Ok((local, task))
}

async fn accept_loop(
    listener: TcpListener,
    config: StreamConfig,
    intake: Arc<Intake>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let acceptor = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let stats = intake.stats();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(listener = %intake.label(), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            stats.refused_connection();
            tracing::warn!(listener = %intake.label(), %peer,
                max_connections = config.max_connections, "connection refused: limit reached");
            drop(stream);
            continue;
        };
        stats.connection();
        let _ = stream.set_nodelay(true);
        let intake = Arc::clone(&intake);
        let shutdown = shutdown.clone();
        let idle = config.idle_timeout;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => serve(stream, peer, &intake, idle, shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve(tls, peer, &intake, idle, shutdown).await,
                        Ok(Err(e)) => intake.reject("tls_handshake", peer, &e),
                        Err(_) => intake.reject("tls_handshake", peer, &"handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Reads one connection until it closes, idles out, fails, or the agent shuts down.
async fn serve<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    intake: &Intake,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let stats = intake.stats();
    let mut framer = StreamFramer::new(MAX_MESSAGE, READ_SIZE);
    let mut skipped = 0u64;
    tracing::debug!(listener = %intake.label(), %peer, "connection opened");
    loop {
        let read = tokio::select! {
            _ = shutdown.changed() => break,
            r = tokio::time::timeout(idle, stream.read(framer.spare())) => r,
        };
        let n = match read {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::debug!(listener = %intake.label(), %peer, error = %e, "read failed");
                break;
            }
            Err(_) => {
                tracing::info!(listener = %intake.label(), %peer, idle_secs = idle.as_secs(),
                    "closing idle connection");
                break;
            }
        };
        framer.commit(n);
        while let Some(frame) = framer.next_frame() {
            intake.accept(peer, Bytes::copy_from_slice(frame));
        }
        let now_skipped = framer.stats().skipped_bytes;
        if now_skipped > skipped {
            stats.skipped_bytes(now_skipped - skipped);
            intake.reject(
                "resync",
                peer,
                &format_args!("skipped {} bytes", now_skipped - skipped),
            );
            skipped = now_skipped;
        }
    }
    if framer.buffered() > 0 {
        intake.reject(
            "truncated",
            peer,
            &format_args!("{} bytes left at close", framer.buffered()),
        );
    }
    tracing::debug!(listener = %intake.label(), %peer, "connection closed");
}
