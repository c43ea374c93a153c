//! The Rust group consumer (`broker::client::GroupConsumer`) against a
//! standalone broker served over TCP in this process (real clock):
//! - round-robin and cooperative-sticky split the partitions of two topics
//!   disjointly and completely among three members, balanced within one;
//! - with cooperative-sticky, a member joining takes partitions only from
//!   what the first member revoked, and the partitions that stay with the
//!   first member are never revoked from it;
//! - auto-commit commits what poll returned, on its interval and on close,
//!   and the next member of the group resumes there;
//! - `auto.offset.reset` earliest, latest and none do what Kafka does.
//!
//! Each test polls all its members concurrently (a rebalance waits for
//! every member to rejoin), for a fixed time that is ample for a few
//! rebalances at a 100 ms heartbeat.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use broker::client::{Assignor, Cluster, ConsumedRecord, GroupConsumer, GroupConsumerConfig, GroupConsumerError, OffsetReset, Producer, ProducerConfig, TopicPartition};
use broker::clock::{Clock, SystemClock};
use broker::config::BrokerConfig;
use broker::disk::RealDisk;
use broker::server::{serve, Broker};

/// Every phase must end within this; a hang is a failure.
const PHASE_TIMEOUT: Duration = Duration::from_secs(30);

/// A broker serving on a free local port: its bootstrap address.
async fn start_broker(name: &str) -> String {
    let dir = common::fresh_dir(name);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let mut config = BrokerConfig { data_dir: dir, offsets_topic_num_partitions: 3, advertised_host: "127.0.0.1".into(), advertised_port: i32::from(port), ..BrokerConfig::default() };
    config.group.initial_rebalance_delay_ms = 0;
    let broker = Broker::open(config, Arc::new(RealDisk), Arc::new(SystemClock)).expect("broker opens");
    tokio::spawn(serve(broker, listener));
    format!("127.0.0.1:{port}")
}

async fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) {
    let mut cluster = Cluster::new(bootstrap, "admin", 5_000);
    for (topic, partitions) in topics {
        cluster.create_topic(topic, *partitions).await.expect("create topic");
    }
}

async fn produce(bootstrap: &str, tp: &TopicPartition, values: std::ops::Range<i64>) {
    let mut producer = Producer::new(ProducerConfig { bootstrap: bootstrap.into(), acks: -1, ..ProducerConfig::default() }, Box::new(|| SystemClock.now_ms()));
    for value in values {
        producer.send(tp, None, Some(format!("v{value}").into())).await.expect("produce");
    }
}

fn config(bootstrap: &str, group: &str, client: &str, topics: &[&str], assignors: &[Assignor]) -> GroupConsumerConfig {
    GroupConsumerConfig {
        bootstrap: bootstrap.into(),
        client_id: client.into(),
        group_id: group.into(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        heartbeat_interval_ms: 100,
        assignors: assignors.to_vec(),
        fetch_wait_ms_max: 50,
        ..GroupConsumerConfig::default()
    }
}

/// Polls `consumer` for `duration` (errors are retried): what it returned.
async fn poll_for(mut consumer: GroupConsumer, duration: Duration) -> (GroupConsumer, Vec<ConsumedRecord>) {
    let deadline = tokio::time::Instant::now() + duration;
    let mut records = Vec::new();
    while tokio::time::Instant::now() < deadline {
        if let Ok(polled) = consumer.poll().await {
            records.extend(polled);
        }
    }
    (consumer, records)
}

/// Polls every consumer concurrently for `duration`.
async fn poll_all(consumers: Vec<GroupConsumer>, duration: Duration) -> Vec<GroupConsumer> {
    let tasks: Vec<_> = consumers.into_iter().map(|c| tokio::spawn(poll_for(c, duration))).collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(tokio::time::timeout(PHASE_TIMEOUT, task).await.expect("polling ends").expect("task").0);
    }
    out
}

fn all_partitions(topics: &[(&str, i32)]) -> BTreeSet<TopicPartition> {
    topics.iter().flat_map(|(t, n)| (0..*n).map(move |p| TopicPartition::new(*t, p))).collect()
}

/// The members' assignments are disjoint, complete and balanced within one.
fn assert_split(consumers: &[GroupConsumer], expected: &BTreeSet<TopicPartition>, what: &str) {
    let assignments: Vec<Vec<TopicPartition>> = consumers.iter().map(GroupConsumer::assignment).collect();
    let mut seen = BTreeSet::new();
    for tp in assignments.iter().flatten() {
        assert!(seen.insert(tp.clone()), "{what}: {tp} assigned twice: {assignments:?}");
    }
    assert_eq!(&seen, expected, "{what}: every partition assigned: {assignments:?}");
    let loads: Vec<usize> = assignments.iter().map(Vec::len).collect();
    assert!(loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1, "{what}: balanced within one: {assignments:?}");
}

#[tokio::test]
async fn round_robin_and_cooperative_sticky_split_partitions_among_three_members() {
    let bootstrap = start_broker("client-group-split").await;
    let topics = [("split-a", 4), ("split-b", 3)];
    create_topics(&bootstrap, &topics).await;
    for assignor in [Assignor::RoundRobin, Assignor::CooperativeSticky] {
        let group = format!("split-{}", assignor.name());
        let consumers: Vec<GroupConsumer> =
            (0..3).map(|i| GroupConsumer::new(config(&bootstrap, &group, &format!("c{i}"), &["split-a", "split-b"], &[assignor]))).collect();
        let consumers = poll_all(consumers, Duration::from_secs(4)).await;
        assert_split(&consumers, &all_partitions(&topics), assignor.name());
        let generations: BTreeSet<i32> = consumers.iter().map(|c| c.rebalances().last().expect("joined").generation_id).collect();
        assert_eq!(generations.len(), 1, "{}: every member in the same generation: {generations:?}", assignor.name());
        assert!(consumers.iter().all(|c| c.rebalances().iter().all(|r| r.assignor == assignor)), "the group used {}", assignor.name());
    }
}

#[tokio::test]
async fn with_cooperative_sticky_a_joining_member_never_takes_partitions_that_stay() {
    let bootstrap = start_broker("client-group-sticky").await;
    let topics = [("sticky", 6)];
    create_topics(&bootstrap, &topics).await;
    let cooperative = [Assignor::CooperativeSticky];
    let first = poll_all(vec![GroupConsumer::new(config(&bootstrap, "sticky", "first", &["sticky"], &cooperative))], Duration::from_secs(1)).await;
    let first = first.into_iter().next().expect("one");
    assert_eq!(first.assignment().len(), 6, "alone, it owns everything");
    let rebalances_before = first.rebalances().len();
    let second = GroupConsumer::new(config(&bootstrap, "sticky", "second", &["sticky"], &cooperative));
    let both = poll_all(vec![first, second], Duration::from_secs(4)).await;
    assert_split(&both, &all_partitions(&topics), "cooperative-sticky after a join");
    let (first, second) = (&both[0], &both[1]);
    let kept: BTreeSet<TopicPartition> = first.assignment().into_iter().collect();
    let revoked: BTreeSet<TopicPartition> = first.rebalances()[rebalances_before..].iter().flat_map(|r| r.revoked.iter().cloned()).collect();
    assert!(kept.is_disjoint(&revoked), "partitions that stayed were never revoked: kept {kept:?}, revoked {revoked:?}");
    assert_eq!(revoked, second.assignment().into_iter().collect(), "exactly what moved was revoked");
    assert!(first.rebalances().len() >= rebalances_before + 2, "a revoke, then a second generation: {:?}", first.rebalances());
    // Eager assignors revoke everything, for contrast: the range member's history shows it.
    let eager = poll_all(vec![GroupConsumer::new(config(&bootstrap, "eager", "e0", &["sticky"], &[Assignor::Range]))], Duration::from_secs(1)).await;
    let eager = poll_all(vec![eager.into_iter().next().expect("one"), GroupConsumer::new(config(&bootstrap, "eager", "e1", &["sticky"], &[Assignor::Range]))], Duration::from_secs(3)).await;
    assert_eq!(eager[0].rebalances().last().expect("rejoined").revoked.len(), 6, "range revoked all six: {:?}", eager[0].rebalances());
}

#[tokio::test]
async fn auto_commit_commits_what_poll_returned_and_the_next_member_resumes_there() {
    let bootstrap = start_broker("client-group-autocommit").await;
    create_topics(&bootstrap, &[("auto", 1)]).await;
    let tp = TopicPartition::new("auto", 0);
    produce(&bootstrap, &tp, 0..10).await;
    let mut settings = config(&bootstrap, "auto", "a0", &["auto"], &[Assignor::Range]);
    settings.auto_offset_reset = OffsetReset::Earliest;
    settings.auto_commit_interval_ms = 200;
    let (mut consumer, records) = poll_for(GroupConsumer::new(settings.clone()), Duration::from_secs(2)).await;
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
    let committed = consumer.member().committed(std::slice::from_ref(&tp)).await.expect("offset fetch");
    assert_eq!(committed[&tp], 10, "the interval's auto-commit committed what poll returned");
    consumer.close().await;
    // A member whose interval never passes: only close commits.
    produce(&bootstrap, &tp, 10..13).await;
    settings.auto_commit_interval_ms = 60_000;
    let (mut consumer, records) = poll_for(GroupConsumer::new(settings.clone()), Duration::from_secs(2)).await;
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![10, 11, 12], "it resumed at the interval's commit");
    assert_eq!(consumer.member().committed(std::slice::from_ref(&tp)).await.expect("offset fetch")[&tp], 10, "no commit before the interval");
    consumer.close().await;
    produce(&bootstrap, &tp, 13..15).await;
    let (mut next, records) = poll_for(GroupConsumer::new(settings), Duration::from_secs(2)).await;
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![13, 14], "the next member resumes at the committed offset");
    next.close().await;
}

#[tokio::test]
async fn offset_reset_earliest_latest_and_none() {
    let bootstrap = start_broker("client-group-reset").await;
    create_topics(&bootstrap, &[("reset", 1)]).await;
    let tp = TopicPartition::new("reset", 0);
    produce(&bootstrap, &tp, 0..5).await;
    let with_reset = |group: &str, reset| GroupConsumerConfig { auto_offset_reset: reset, ..config(&bootstrap, group, group, &["reset"], &[Assignor::Range]) };

    let (mut earliest, records) = poll_for(GroupConsumer::new(with_reset("earliest", OffsetReset::Earliest)), Duration::from_secs(2)).await;
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), (0..5).collect::<Vec<_>>(), "earliest reads from the log start");
    earliest.close().await;

    let (latest, records) = poll_for(GroupConsumer::new(with_reset("latest", OffsetReset::Latest)), Duration::from_secs(1)).await;
    assert!(records.is_empty(), "latest starts at the end: {records:?}");
    produce(&bootstrap, &tp, 5..6).await;
    let (mut latest, records) = poll_for(latest, Duration::from_secs(1)).await;
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![5], "latest then reads what comes");
    latest.close().await;

    let mut none = GroupConsumer::new(with_reset("none", OffsetReset::None));
    let error = tokio::time::timeout(PHASE_TIMEOUT, none.poll()).await.expect("poll ends").expect_err("no committed offset");
    assert!(matches!(&error, GroupConsumerError::NoOffset(partitions) if partitions == &vec![tp.clone()]), "{error:?}");
    assert!(error.to_string().contains("reset-0"), "the error names the partition: {error}");
    none.seek(&tp, 2);
    let (mut none, records) = poll_for(none, Duration::from_secs(1)).await;
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![2, 3, 4, 5], "after a seek it reads");
    // A committed offset past the end is out of range: none again. (Out
    // of the group, the member commits as an admin of an empty group.)
    none.close().await;
    assert_eq!(none.member().commit(&[(tp.clone(), 100)].into_iter().collect()).await, broker::client::CommitOutcome::Committed);
    let mut again = GroupConsumer::new(with_reset("none", OffsetReset::None));
    let mut out_of_range = None;
    for _ in 0..20 {
        match tokio::time::timeout(PHASE_TIMEOUT, again.poll()).await.expect("poll ends") {
            Err(GroupConsumerError::NoOffset(partitions)) => {
                out_of_range = Some(partitions);
                break;
            }
            Ok(records) => assert!(records.is_empty(), "nothing past the end"),
            Err(_) => {}
        }
    }
    assert_eq!(out_of_range, Some(vec![tp]), "an out-of-range committed offset is no valid offset under none");
}

#[tokio::test]
async fn members_must_share_an_assignor_and_the_group_uses_the_common_one() {
    let bootstrap = start_broker("client-group-strategy").await;
    create_topics(&bootstrap, &[("strategy", 2)]).await;
    let first = poll_all(vec![GroupConsumer::new(config(&bootstrap, "strategy", "rr", &["strategy"], &[Assignor::RoundRobin]))], Duration::from_secs(1)).await;
    let mut range_only = GroupConsumer::new(config(&bootstrap, "strategy", "range", &["strategy"], &[Assignor::Range]));
    let error = tokio::time::timeout(PHASE_TIMEOUT, range_only.poll()).await.expect("poll ends").expect_err("no common assignor");
    assert!(matches!(error, GroupConsumerError::Group(broker::client::GroupClientError::Kafka(23))), "INCONSISTENT_GROUP_PROTOCOL: {error:?}");
    // Offering both, a new member joins under the one the group can use.
    let both = GroupConsumer::new(config(&bootstrap, "strategy", "both", &["strategy"], &[Assignor::CooperativeSticky, Assignor::RoundRobin]));
    let group = poll_all(vec![first.into_iter().next().expect("one"), both], Duration::from_secs(3)).await;
    assert_split(&group, &all_partitions(&[("strategy", 2)]), "mixed strategies");
    assert_eq!(group[1].rebalances().last().expect("joined").assignor, Assignor::RoundRobin);
}
