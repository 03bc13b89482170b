//! The `hepcap` command.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use std::time::Duration;

use hepcap::capture;
use hepcap::cli::{
    CheckArgs, Cli, Command, HepMode, LogFormat, PipelineArgs, ReplayArgs, RunArgs, SinkArgs,
};
use hepcap::hep::HepEncoder;
use hepcap::hep::{IdentityRewrite, Limits};
use hepcap::pipeline::{BreakerConfig, Pipeline, PipelineConfig, RateLimit, WhenFull};
use hepcap::replay::{self, ReplayOptions};
use hepcap::run::{self, RunOptions};
use hepcap::sink::{FailoverSink, HepTransport, JsonlSink, Sink, TcpHepSink, UdpHepSink};
use hepcap::source::hep_listen::{IntakeConfig, UdpConfig};
use hepcap::summary;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let result = match cli.command {
        Command::Replay(args) => run_replay(args, cli.quiet),
        Command::Run(args) => run_agent(args, cli.quiet),
        Command::Check(args) => run_check(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hepcap: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(cli: &Cli) {
    let default = match (cli.quiet, cli.verbose, cli.log_level.as_deref()) {
        (true, _, _) => "error",
        (false, 0, Some(level)) => level,
        (false, 0, None) => "warn,hepcap=info",
        (false, 1, _) => "debug",
        (false, _, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}

/// Starts `--metrics` when given; the server lives as long as the process.
fn start_metrics(args: &PipelineArgs) -> anyhow::Result<()> {
    if let Some(addr) = args.metrics {
        hepcap::telemetry::serve_metrics(addr).context("--metrics")?;
    }
    Ok(())
}

/// Serves the final metric values for `--metrics-hold` seconds.
fn hold_metrics(args: &PipelineArgs) {
    if args.metrics.is_some() && args.metrics_hold > 0 {
        hepcap::telemetry::metrics::run_probes();
        std::thread::sleep(Duration::from_secs(args.metrics_hold));
    }
}

/// The pipeline's sizes and policies from the command line.
fn pipeline_config(
    ring_capacity: usize,
    when_full: WhenFull,
    args: &PipelineArgs,
) -> PipelineConfig {
    PipelineConfig {
        ring_capacity,
        when_full,
        batch_size: args.batch_size.max(1),
        batch_timeout: Duration::from_micros(args.batch_timeout_us),
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
        hep_rate_limit: args.hep_rate_limit.map(|per_second| RateLimit {
            per_second,
            policy: args.hep_rate_policy,
        }),
        breaker: (args.breaker_failures > 0).then(|| BreakerConfig {
            failures: args.breaker_failures,
            cool_down: Duration::from_millis(args.breaker_cool_down_ms),
        }),
        ..PipelineConfig::default()
    }
}

fn build_sinks(args: &SinkArgs) -> anyhow::Result<Vec<Box<dyn Sink>>> {
    build_sinks_with(args, &IdentityRewrite::default())
}

/// Sinks for `args`; relayed HEP leaves HEP sinks with `relay` applied.
fn build_sinks_with(
    args: &SinkArgs,
    relay: &IdentityRewrite,
) -> anyhow::Result<Vec<Box<dyn Sink>>> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    for target in &args.hep {
        let encoder = HepEncoder::new(args.identity()).with_relay_rewrite(relay.clone());
        let sink: Box<dyn Sink> = match target.transport {
            HepTransport::Udp => Box::new(
                UdpHepSink::new(target, encoder).with_context(|| format!("hep sink {target}"))?,
            ),
            HepTransport::Tcp => {
                let sink = TcpHepSink::new(target, encoder)
                    .with_context(|| format!("hep sink {target}"))?;
                Box::new(with_spool(sink, args, target)?)
            }
            HepTransport::Tls => {
                if args.tls_insecure {
                    tracing::warn!(sink = %target, "--tls-insecure: the collector's certificate is not verified");
                } else if args.tls_ca.is_none() {
                    anyhow::bail!(
                        "{target}: give --tls-ca FILE (the collector's CA) or --tls-insecure"
                    );
                }
                let config = hepcap::tls::client_config(args.tls_ca.as_deref(), args.tls_insecure)?;
                let sink = TcpHepSink::new_tls(target, encoder, config)
                    .with_context(|| format!("hep sink {target}"))?;
                Box::new(with_spool(sink, args, target)?)
            }
        };
        sinks.push(sink);
    }
    if args.hep_mode == HepMode::Failover && sinks.len() > 1 {
        sinks = vec![Box::new(FailoverSink::new(sinks))];
    }
    // JSON lines on standard output unless some other sink was asked for.
    let jsonl = match (&args.jsonl, sinks.is_empty()) {
        (Some(path), _) => Some(path.as_str()),
        (None, true) => Some("-"),
        (None, false) => None,
    };
    if let Some(path) = jsonl {
        let sink =
            JsonlSink::new(path, args.identity()).with_context(|| format!("jsonl sink {path}"))?;
        sinks.push(Box::new(sink));
    }
    Ok(sinks)
}

/// Gives a stream sink its spool under `--spool-dir`, one directory per destination.
fn with_spool(
    sink: TcpHepSink,
    args: &SinkArgs,
    target: &hepcap::sink::HepTarget,
) -> anyhow::Result<TcpHepSink> {
    let Some(dir) = &args.spool_dir else {
        return Ok(sink);
    };
    let name: String = target
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let dir = dir.join(name);
    let config = hepcap::spool::SpoolConfig::with_max_bytes(args.spool_max_bytes);
    let (spool, recovery) = hepcap::spool::Spool::open(&dir, config)
        .with_context(|| format!("spool {}", dir.display()))?;
    if recovery.discarded_bytes > 0 {
        tracing::warn!(
            spool = %dir.display(),
            discarded_bytes = recovery.discarded_bytes,
            kept_records = recovery.records,
            "spool: torn tail discarded after an unclean stop"
        );
    }
    Ok(sink.with_spool(spool))
}

fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("install signal handler")?;
    }
    Ok(stop)
}

fn run_replay(args: ReplayArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    start_metrics(&args.pipeline)?;
    let sinks = build_sinks(&args.sinks)?;
    let stop = stop_flag()?;
    // By default replay waits for its sinks (`block`): nothing is dropped for lack of room.
    let config = pipeline_config(args.ring_capacity, args.when_full, &args.pipeline);
    let pipeline = Pipeline::start(&config, sinks).context("start pipeline")?;
    hepcap::telemetry::metrics::set_ready(true);
    let opts = ReplayOptions {
        files: args.files,
        pace: args.pace || args.speed.is_some(),
        speed: args.speed.unwrap_or(1.0),
        restamp: args.restamp,
        loops: args.loops,
        decoder: args.decode.config(),
        correlate: args.correlate.config(),
        dedup: args.correlate.dedup(false),
    };
    let stats = replay::run(&opts, &pipeline, &stop);
    let pipeline_stats = pipeline.finish();
    if !quiet {
        eprint!("{}", summary::replay_summary(&stats, &pipeline_stats));
    }
    hold_metrics(&args.pipeline);
    // A script must be able to tell a replay whose records did not reach a sink.
    let lost: u64 = pipeline_stats
        .sinks
        .iter()
        .flat_map(|(_, s)| s.dropped.iter())
        .filter(|(reason, _)| !matches!(**reason, "oversize" | "rate_limited" | "encode"))
        .map(|(_, n)| *n)
        .sum();
    Ok(if !stats.file_errors.is_empty() {
        ExitCode::FAILURE
    } else if lost > 0 {
        eprintln!("hepcap replay: {lost} record(s) not delivered to a sink (see the summary)");
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

fn run_check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let opts = args
        .live
        .options_with(capture::Mode::Auto, &args.decode, Default::default(), None);
    let report = capture::check::run(&opts);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    let any_mode = ["mode_ebpf", "mode_xdp", "mode_pcap"]
        .iter()
        .any(|m| report.get(m).is_some_and(|i| i.ok));
    Ok(if any_mode {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_agent(args: RunArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let RunArgs {
        capture: capture_mode,
        live,
        decode,
        correlate,
        hep_listen,
        hep_listen_password,
        hep_listen_rcvbuf,
        hep_listen_max_connections,
        hep_listen_idle_timeout,
        hep_listen_max_inflated,
        tls_cert,
        tls_key,
        relay_node_id,
        relay_node_name,
        relay_password,
        replace_token,
        ring_capacity,
        when_full,
        sinks,
        pipeline,
    } = args;
    let pipeline_args = pipeline.clone();
    if when_full == WhenFull::Block {
        anyhow::bail!(
            "--when-full block is for replay only: live capture and listeners must never wait \
             for a sink"
        );
    }
    let tls = match (&tls_cert, &tls_key) {
        (Some(cert), Some(key)) => Some(hepcap::tls::server_config(cert, key)?),
        (None, None) => None,
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    };
    let relay = IdentityRewrite {
        node_id: relay_node_id,
        node_name: relay_node_name,
        password: relay_password
            .or_else(|| replace_token.then(|| sinks.node_password.clone()).flatten()),
    };
    if replace_token && sinks.node_password.is_none() {
        anyhow::bail!("--replace-token needs --node-password");
    }

    // Privileged start-up first, on this thread, before any other thread exists: capabilities
    // are per thread, and every thread started later inherits the dropped set.
    let mode = capture_mode.live();
    let opened = match mode {
        None => None,
        Some(mode) => {
            let opts = live.options(mode, &decode, &correlate);
            match capture::open(&opts) {
                Ok(o) => Some(o),
                // Auto with HEP listeners still has a job without capture.
                Err(e) if mode == capture::Mode::Auto && !hep_listen.is_empty() => {
                    tracing::warn!(error = %e, "no live capture possible; running HEP listeners only");
                    None
                }
                Err(e) => return Err(e).context(format!("cannot start {} capture", mode.as_str())),
            }
        }
    };
    if opened.is_none() && hep_listen.is_empty() {
        anyhow::bail!("nothing to run: live capture is off and no --hep-listen was given");
    }
    if opened.is_some() || live.user.is_some() {
        capture::privilege::drop_all(live.user.as_deref()).context("drop privileges")?;
        tracing::info!(user = live.user.as_deref(), "capabilities dropped");
    }

    start_metrics(&pipeline)?;
    let built = build_sinks_with(&sinks, &relay)?;
    let config = pipeline_config(ring_capacity, when_full, &pipeline);
    let pipeline = Pipeline::start(&config, built).context("start pipeline")?;
    let opts = RunOptions {
        listen: hep_listen,
        intake: IntakeConfig {
            limits: Limits {
                max_inflated_len: hep_listen_max_inflated,
            },
            password: hep_listen_password,
        },
        udp: UdpConfig {
            rcvbuf: hep_listen_rcvbuf,
            ..UdpConfig::default()
        },
        max_connections: hep_listen_max_connections,
        idle_timeout: Duration::from_secs(hep_listen_idle_timeout.max(1)),
        tls,
    };
    let outcome = run::run(&opts, opened, &pipeline);
    let pipeline_stats = pipeline.finish();
    let outcome = outcome?;
    if !quiet {
        eprint!(
            "{}",
            summary::run_summary(outcome.live.as_ref(), &outcome.listeners, &pipeline_stats)
        );
    }
    hold_metrics(&pipeline_args);
    Ok(ExitCode::SUCCESS)
}
