//! `dlog-groups`: an operator's view of consumer groups.
//!
//! ```text
//! dlog-groups --bootstrap 127.0.0.1:9092 list              # every group, its state and protocol type
//! dlog-groups --bootstrap 127.0.0.1:9092 describe GROUP    # its state, assignor and members with their partitions
//! dlog-groups --bootstrap 127.0.0.1:9092 lag GROUP         # per partition: committed offset, log end, lag
//! ```
//! It speaks the Kafka protocol (ListGroups to every broker, DescribeGroups
//! and OffsetFetch to the group's coordinator, Fetch for each partition's
//! end), so it works against any Kafka-compatible cluster. Exit status 0,
//! or 1 with the reason on stderr.

#[cfg(madsim)]
fn main() {
    eprintln!("dlog-groups is a production binary: build it without --cfg madsim.");
    std::process::exit(2);
}

#[cfg(not(madsim))]
fn main() -> anyhow::Result<()> {
    admin::main()
}

#[cfg(not(madsim))]
mod admin {
    use std::collections::BTreeMap;

    use anyhow::Context;
    use broker::client::{list_groups, Cluster, Consumer, ConsumerConfig, GroupMember, GroupMemberConfig};
    use clap::{Parser, Subcommand};

    /// Consumer groups of a DistributedLog (or any Kafka) cluster.
    #[derive(Parser, Debug)]
    #[command(name = "dlog-groups", version, about)]
    struct Args {
        /// `host:port` of brokers, comma-separated.
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
        /// Per-request timeout.
        #[arg(long, default_value_t = 5_000)]
        timeout_ms: u64,
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand, Debug)]
    enum Command {
        /// Every group, its state and protocol type.
        List,
        /// A group's state, assignor and members with their partitions.
        Describe {
            /// The group.
            group: String,
        },
        /// Per partition of a group: committed offset, log end offset, lag.
        Lag {
            /// The group.
            group: String,
        },
    }

    fn admin_of(args: &Args, group: &str) -> GroupMember {
        GroupMember::new(GroupMemberConfig {
            bootstrap: args.bootstrap.clone(),
            client_id: "dlog-groups".into(),
            group_id: group.into(),
            topics: Vec::new(),
            session_timeout_ms: 0,
            rebalance_timeout_ms: 0,
            request_timeout_ms: args.timeout_ms,
            assignors: Vec::new(),
        })
    }

    pub fn main() -> anyhow::Result<()> {
        let args = Args::parse();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the tokio runtime")?;
        runtime.block_on(run(&args))
    }

    async fn run(args: &Args) -> anyhow::Result<()> {
        match &args.command {
            Command::List => {
                let mut cluster = Cluster::new(&args.bootstrap, "dlog-groups", args.timeout_ms);
                let groups = list_groups(&mut cluster).await.context("listing groups")?;
                println!("{:<32} {:<20} PROTOCOL-TYPE", "GROUP", "STATE");
                for (group, state, protocol_type) in groups {
                    println!("{group:<32} {state:<20} {protocol_type}");
                }
            }
            Command::Describe { group } => {
                let description = admin_of(args, group).describe().await.with_context(|| format!("describing group {group}"))?;
                println!("group {group}: state {}, assignor {}, {} member(s)", description.state, if description.protocol.is_empty() { "-" } else { &description.protocol }, description.members.len());
                if !description.members.is_empty() {
                    println!("{:<56} {:<24} {:<16} PARTITIONS", "MEMBER-ID", "CLIENT-ID", "HOST");
                }
                for member in description.members {
                    let partitions: Vec<String> = member.assignment.iter().map(ToString::to_string).collect();
                    let host = if member.client_host.is_empty() { "-" } else { &member.client_host };
                    println!("{:<56} {:<24} {:<16} {}", member.member_id, member.client_id, host, partitions.join(","));
                }
            }
            Command::Lag { group } => {
                let committed = admin_of(args, group).committed_all().await.with_context(|| format!("reading group {group}'s offsets"))?;
                let partitions: Vec<_> = committed.keys().cloned().collect();
                let mut ends = Consumer::new(ConsumerConfig {
                    bootstrap: args.bootstrap.clone(),
                    client_id: "dlog-groups".into(),
                    request_timeout_ms: args.timeout_ms,
                    fetch_wait_ms_max: 0,
                    reset_to_earliest: false,
                    isolation_level: 0,
                    ..ConsumerConfig::default()
                });
                ends.assign(&partitions);
                // One fetch at the latest offset learns each partition's end.
                ends.poll().await.context("reading partition ends")?;
                let end_of: BTreeMap<_, _> = partitions.iter().filter_map(|tp| ends.high_watermark(tp).map(|hw| (tp.clone(), hw))).collect();
                println!("{:<32} {:>9} {:>12} {:>12} {:>8}", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG");
                let mut total = 0;
                for (tp, offset) in committed {
                    let end = end_of.get(&tp).copied();
                    let lag = end.map(|e| (e - offset.max(0)).max(0));
                    total += lag.unwrap_or(0);
                    let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
                    println!("{:<32} {:>9} {:>12} {:>12} {:>8}", tp.topic, tp.partition, offset, show(end), show(lag));
                }
                println!("total lag {total}");
            }
        }
        Ok(())
    }
}
