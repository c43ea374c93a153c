//! `dlog-broker`: the production broker on the real tokio runtime.
//!
//! ```text
//! dlog-broker --listen 127.0.0.1:9092 --data-dir /var/lib/dlog --config log.flush=every-batch
//! ```
//! SIGTERM or Ctrl-C: stop accepting, flush every log, mark it cleanly
//! closed, exit 0.

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

    use anyhow::Context;
    use broker::clock::SystemClock;
    use broker::config::BrokerConfig;
    use broker::disk::RealDisk;
    use broker::server::{serve, Broker};
    use clap::Parser;

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
        let broker = Broker::open(config, Arc::new(RealDisk), Arc::new(SystemClock)).context("opening the broker")?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        tracing::info!(%listen, "dlog-broker listening");
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            result = serve(broker.clone(), listener) => result.context("serving")?,
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
        }
        broker.shutdown();
        tracing::info!("clean shutdown complete");
        Ok(())
    }
}
