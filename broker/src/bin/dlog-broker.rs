//! `dlog-broker`: the production broker on the real tokio runtime.
//!
//! ```text
//! dlog-broker --listen 127.0.0.1:9092 --data-dir /var/lib/dlog --config log.flush=every-batch
//! ```
//! SIGTERM or Ctrl-C: stop accepting, flush every log, mark it cleanly
//! closed, exit 0.
//!
//! `process.roles` picks what the process runs: `broker` (the default),
//! `controller` (a voter of the metadata quorum, its Raft log in
//! `<data-dir>/__raft`), or `broker,controller` (both, in one process). A
//! controller whose storage fails stops (fail-stop) and is started again
//! from disk by this process, as the simulation's supervisor does; any other
//! controller failure ends the process with an error.

#[cfg(madsim)]
fn main() {
    eprintln!("dlog-broker is the production binary: build it without --cfg madsim (make release).");
    std::process::exit(2);
}

#[cfg(not(madsim))]
fn main() -> anyhow::Result<()> {
    production::main()
}

#[cfg(not(madsim))]
mod production {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use anyhow::Context;
    use broker::clock::SystemClock;
    use broker::config::BrokerConfig;
    use broker::disk::RealDisk;
    use broker::quorum::controller::ControllerError;
    use broker::quorum::{run_controller, ControllerNodeConfig, ControllerStats};
    use broker::server::{serve, Broker};
    use clap::Parser;

    /// First pause before a failed controller is started again; doubles per
    /// consecutive failure up to the cap, so a dead disk does not flood the log.
    const CONTROLLER_RESTART_MS: u64 = 1_000;
    const CONTROLLER_RESTART_MS_MAX: u64 = 30_000;

    /// The DistributedLog broker.
    #[derive(Parser, Debug)]
    #[command(name = "dlog-broker", version, about)]
    struct Args {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9092")]
        listen: SocketAddr,
        /// Directory for topic metadata and partition logs.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// A broker setting, KEY=VALUE (repeatable), e.g. log.flush=never.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
    }

    pub fn main() -> anyhow::Result<()> {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
            )
            .with_writer(std::io::stderr)
            .init();
        let args = Args::parse();
        let mut config = BrokerConfig {
            data_dir: args.data_dir.clone(),
            advertised_host: args.listen.ip().to_string(),
            advertised_port: i32::from(args.listen.port()),
            seed: seed_from_os(),
            ..BrokerConfig::default()
        };
        config
            .apply(args.config.iter().map(String::as_str))
            .context("invalid --config")?;
        config
            .validate()
            .with_context(|| format!("invalid --config for process.roles={}", config.process_roles))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime")?;
        runtime.block_on(run(config, args.listen))
    }

    /// A seed for the broker's RNG from the OS; the one place production
    /// randomness enters.
    fn seed_from_os() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish()
    }

    async fn run(config: BrokerConfig, listen: SocketAddr) -> anyhow::Result<()> {
        let roles = config.process_roles;
        // The controller starts first: the broker of this same process
        // registers with the quorum as soon as it serves.
        let mut controller = if roles.controller {
            let node = config.controller_node_config().context("invalid controller settings")?;
            tracing::info!(
                node_id = node.node_id,
                raft = %node.raft_listen,
                api = %node.api_listen,
                dir = %node.data_dir.display(),
                "controller starting"
            );
            Some(tokio::spawn(supervise_controller(node)))
        } else {
            None
        };
        let mut broker = None;
        let mut serving = None;
        if roles.broker {
            let opened = Broker::open(config, Arc::new(RealDisk), Arc::new(SystemClock)).context("opening the broker")?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            tracing::info!(%listen, "dlog-broker listening");
            serving = Some(tokio::spawn(serve(opened.clone(), listener)));
            broker = Some(opened);
        }
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let outcome: anyhow::Result<()> = tokio::select! {
            served = join_or_pending(serving.as_mut()) => match served {
                Ok(Ok(())) => Err(anyhow::anyhow!("the broker stopped serving")),
                Ok(Err(error)) => Err(anyhow::Error::new(error).context("serving")),
                Err(error) => Err(anyhow::Error::new(error).context("the broker task failed")),
            },
            stopped = join_or_pending(controller.as_mut()) => match stopped {
                Ok(error) => Err(error),
                Err(error) => Err(anyhow::Error::new(error).context("the controller task failed")),
            },
            _ = terminate.recv() => {
                tracing::info!("SIGTERM: shutting down");
                Ok(())
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("interrupt: shutting down");
                Ok(())
            }
        };
        // Stop accepting connections, then flush. Connections already open
        // end when the runtime is dropped after this returns, as before the
        // controller role existed. The controller needs no flush: it syncs
        // its log before answering anything (with raft.fsync=true).
        if let Some(task) = &serving {
            task.abort();
        }
        if let Some(task) = &controller {
            task.abort();
        }
        if let Some(broker) = broker {
            broker.shutdown();
        }
        if outcome.is_ok() {
            tracing::info!("clean shutdown complete");
        }
        outcome
    }

    /// A task's result, or never when there is no task (that role is off).
    async fn join_or_pending<T>(task: Option<&mut tokio::task::JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
        match task {
            Some(task) => task.await,
            None => std::future::pending().await,
        }
    }

    /// Runs the controller until it fails for good, restarting it from disk
    /// after each storage failure (the controller stops on one: fail-stop).
    /// What cannot heal by itself ends it: a bad recovered log or snapshot,
    /// or a port that is taken when the process starts. Returns why.
    async fn supervise_controller(node: ControllerNodeConfig) -> anyhow::Error {
        let stats = Arc::new(ControllerStats::default());
        let mut restart_ms = CONTROLLER_RESTART_MS;
        let mut started_once = false;
        loop {
            let started = tokio::time::Instant::now();
            let run = run_controller(node.clone(), Arc::new(RealDisk), Arc::new(SystemClock), stats.clone()).await;
            // A controller that ran a while failed afresh: back to the short pause.
            if started.elapsed() >= Duration::from_millis(CONTROLLER_RESTART_MS_MAX) {
                restart_ms = CONTROLLER_RESTART_MS;
            }
            let error = match run {
                Ok(()) => return anyhow::anyhow!("the controller stopped"),
                Err(error) => error,
            };
            let retry = match &error {
                ControllerError::Storage(_) => true,
                // After a restart the old listener may not be released yet.
                ControllerError::Bind { .. } => started_once,
                ControllerError::Raft(_) | ControllerError::Metadata(_) => false,
            };
            if !retry {
                return anyhow::Error::new(error).context("the controller cannot run");
            }
            started_once = true;
            tracing::error!(%error, restart_ms, "controller stopped; restarting it from disk");
            tokio::time::sleep(Duration::from_millis(restart_ms)).await;
            restart_ms = (restart_ms * 2).min(CONTROLLER_RESTART_MS_MAX);
        }
    }
}
