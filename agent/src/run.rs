//! `hepcap run`: the long-running agent. Its sources are live capture (see `crate::capture`)
//! and HEP listeners.
//!
//! Sources never wait on sinks: they push into the pipeline's ring under a dropping policy.
//! On SIGINT or SIGTERM capture stops, the listeners stop accepting, the pipeline drains to
//! the sinks and flushes them, and the process exits 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::collections::BTreeMap;

use anyhow::Context;

use crate::capture::{LiveCapture, LiveSummary, Opened};
use crate::pipeline::Pipeline;
use crate::record::HepListener;
use crate::source::hep_listen::{
    Intake, IntakeConfig, ListenAddr, ListenKind, ListenerTotals, StreamConfig, UdpConfig,
    spawn_stream_listener, spawn_udp_listener,
};
use crate::telemetry::metrics;

/// Everything `run` needs besides the pipeline.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub listen: Vec<ListenAddr>,
    pub intake: IntakeConfig,
    pub udp: UdpConfig,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// What `run` did, for the exit summary.
#[derive(Debug, Default)]
pub struct RunOutcome {
    pub listeners: Vec<(String, ListenerTotals)>,
    pub live: Option<LiveSummary>,
}

/// Starts live capture (already opened, see [`crate::capture::open`]) and the listeners,
/// waits for SIGINT/SIGTERM, stops them.
pub fn run(
    opts: &RunOptions,
    capture: Option<Opened>,
    pipeline: &Pipeline,
) -> anyhow::Result<RunOutcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hepcap-rt")
        .enable_all()
        .build()
        .context("start tokio runtime")?;
    runtime.block_on(serve(opts, capture, pipeline))
}

async fn serve(
    opts: &RunOptions,
    capture: Option<Opened>,
    pipeline: &Pipeline,
) -> anyhow::Result<RunOutcome> {
    let live = match capture {
        Some(opened) => Some(
            opened
                .start(&tokio::runtime::Handle::current(), pipeline.ring())
                .context("start live capture")?,
        ),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let mut intakes = Vec::new();
    let mut probed = Vec::new();
    let mut threads = Vec::new();
    let mut tasks = Vec::new();

    for listen in &opts.listen {
        let kind = match listen.kind {
            ListenKind::Udp => HepListener::Udp,
            ListenKind::Tcp => HepListener::Tcp,
            ListenKind::Tls => HepListener::Tls,
        };
        let intake = Arc::new(Intake::new(
            kind,
            listen.to_string(),
            opts.intake.clone(),
            pipeline.ring(),
        ));
        intakes.push(Arc::clone(&intake));
        probed.push((kind, Arc::clone(&intake)));
        match listen.kind {
            ListenKind::Udp => {
                let (_, t) = spawn_udp_listener(listen.addr, opts.udp, intake, Arc::clone(&stop))
                    .with_context(|| format!("listen on {listen}"))?;
                threads.push(t);
            }
            ListenKind::Tcp | ListenKind::Tls => {
                let tls = match listen.kind {
                    ListenKind::Tls => Some(
                        opts.tls
                            .clone()
                            .context("tls:// listener needs --tls-cert and --tls-key")?,
                    ),
                    _ => None,
                };
                let config = StreamConfig {
                    max_connections: opts.max_connections,
                    idle_timeout: opts.idle_timeout,
                    tls,
                };
                let (_, t) =
                    spawn_stream_listener(listen.addr, config, intake, shutdown_rx.clone())
                        .await
                        .with_context(|| format!("listen on {listen}"))?;
                tasks.push(t);
            }
        }
    }
    register_listener_probe(probed);
    metrics::set_ready(true);
    tracing::info!(
        capture = live.as_ref().map_or("none", LiveCapture::mode),
        listeners = opts.listen.len(),
        "hepcap running; Ctrl-C or SIGTERM stops it"
    );

    wait_for_signal().await?;
    tracing::info!("stopping: no new messages accepted, draining to the sinks");
    let live = match live {
        Some(l) => Some(l.stop().await),
        None => None,
    };
    stop.store(true, Ordering::Relaxed);
    let _ = shutdown_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    for t in threads {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    Ok(RunOutcome {
        listeners: intakes
            .iter()
            .map(|i| (i.label().to_string(), i.stats().totals()))
            .collect(),
        live,
    })
}

/// Copies the listeners' counters into the metrics registry before each scrape. Listeners of
/// one kind are summed: the label is the kind, never the address.
fn register_listener_probe(intakes: Vec<(HepListener, Arc<Intake>)>) {
    metrics::add_probe(Box::new(move || {
        let mut by_kind: BTreeMap<&'static str, ListenerTotals> = BTreeMap::new();
        for (kind, intake) in &intakes {
            let t = intake.stats().totals();
            let sum = by_kind.entry(kind.as_str()).or_default();
            sum.received += t.received;
            sum.bytes += t.bytes;
            sum.relayed += t.relayed;
            sum.kernel_drops += t.kernel_drops;
            for (reason, n) in t.rejected {
                *sum.rejected.entry(reason).or_default() += n;
            }
        }
        for (source, t) in by_kind {
            ::metrics::counter!(metrics::LISTENER_RECEIVED, "source" => source)
                .absolute(t.received);
            ::metrics::counter!(metrics::LISTENER_RECEIVED_BYTES, "source" => source)
                .absolute(t.bytes);
            ::metrics::counter!(metrics::LISTENER_RELAYED, "source" => source).absolute(t.relayed);
            ::metrics::counter!(metrics::SOCKET_KERNEL_DROPS, "source" => source)
                .absolute(t.kernel_drops);
            for (reason, n) in t.rejected {
                ::metrics::counter!(metrics::LISTENER_REJECTED, "source" => source, "reason" => reason)
                    .absolute(n);
            }
        }
    }));
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
