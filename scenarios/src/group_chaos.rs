//! `group-chaos`: does a consumer group consume every acknowledged record,
//! never move a committed offset back, and never give one partition to two
//! members of a generation, while members and the coordinator fail?
//!
//! Three controllers and three brokers (replication-chaos's cluster:
//! `min.insync.replicas=2`, no fsync per batch); topic `t` has 3 partitions
//! with replication factor 3, and `__consumer_offsets` 3 partitions, also
//! replicated. Two producers send unique integers (acks=all). Three
//! members of group `g` fetch, process and then commit what they
//! processed. A `poll` in the history is the processing of what was
//! fetched (invoked and completed once the records are processed), so a
//! record fetched by a member that crashed before processing it was never
//! consumed. The
//! broker schedule crashes, pauses, isolates and cuts brokers and
//! controllers, so the coordinator fails over; the member schedule
//! crashes members (at a random step: after a fetch, after processing,
//! after a commit), pauses them past their session timeout (they come back
//! as zombies holding records of an old generation) and makes them leave
//! and come back. After healing, producers stop and the group must have
//! committed every partition's end within a bounded time (liveness).
//!
//! Checks: every acknowledged record is read by some member (`unseen`,
//! `lost-write`); no committed offset goes back (`commit-regression`); no
//! partition is assigned to two members of one generation
//! (`assignment-conflict`).
//!
//! Teaching knobs: `client.commit.before.process=true` (members commit what
//! they fetched before processing it: a crash in between loses those
//! records for the group) and `group.fence.generations=false` (the
//! coordinator takes commits from any generation: a zombie moves the
//! committed offset back).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use broker::client::{CommitOutcome, Consumer, ConsumerConfig, GroupMember, GroupMemberConfig, Producer, ProducerConfig, TopicPartition};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use sim::cluster::SimCluster;
use sim::nemesis::{MemberFault, NemesisConfig, ScheduledMemberFault};

use crate::history::{Actor, Recorder};
use crate::run::{ClientSettings, ScenarioRun, Setup};
use crate::single_node_crash::producer_process;

const TOPIC: &str = "t";
const PARTITIONS: i32 = 3;
const GROUP: &str = "g";
const BROKERS: usize = 3;
const PRODUCERS: u64 = 2;
const MEMBERS: u64 = 3;
const FAULT_START_MS: u64 = 5_000;
const FAULT_PHASE_MS: u64 = 35_000;
/// After healing, the group must have committed every partition's end
/// within this long.
const DRAIN_MS_MAX: u64 = 60_000;
/// And not before this long after healing (a new leader's high watermark
/// may trail what was committed until its followers fetch again).
const DRAIN_QUIET_MS: u64 = 8_000;
const SESSION_TIMEOUT_MS: i32 = 6_000;
const REBALANCE_TIMEOUT_MS: i32 = 10_000;
const HEARTBEAT_INTERVAL_MS: u64 = 1_000;
/// The member schedule's own stream of the seed.
const MEMBER_FAULT_STREAM: u64 = 0x6d65_6d62_6572_7321;

/// The broker and controller fault mix: replication-chaos's, without
/// power losses.
pub fn nemesis_config(setup: &Setup) -> NemesisConfig {
    NemesisConfig {
        nodes: (1..=BROKERS).map(|n| format!("broker-{n}")).chain((1..=setup.quorum.controllers).map(|n| format!("controller-{n}"))).collect(),
        clients: Vec::new(),
        start_ms: FAULT_START_MS,
        fault_phase_ms: FAULT_PHASE_MS,
        gap_ms: setup.nemesis.gap_ms.unwrap_or((3_000, 5_000)),
        // crash, pause, cut link, clock skew, disk errors, full disk, read corruption, isolate, power loss
        weights: [4, 2, 2, 1, 1, 1, 0, 3, 0],
    }
}

/// The member schedule the seed draws, in time order (what happens to each
/// member is [`MemberFault`]).
pub fn member_faults(seed: u64) -> Vec<ScheduledMemberFault> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ MEMBER_FAULT_STREAM);
    let mut faults = Vec::new();
    let mut at_ms = FAULT_START_MS + rng.gen_range(0..2_000);
    while at_ms < FAULT_PHASE_MS {
        let member = PRODUCERS + rng.gen_range(0..MEMBERS);
        let fault = match rng.gen_range(0..10) {
            0..=3 => MemberFault::Crash { down_ms: rng.gen_range(500..4_000) },
            4..=6 => MemberFault::Pause { pause_ms: rng.gen_range(7_000..10_000) },
            _ => MemberFault::Leave { down_ms: rng.gen_range(500..3_000) },
        };
        faults.push(ScheduledMemberFault { at_ms, process: member, fault });
        at_ms += rng.gen_range(1_500..5_000);
    }
    faults
}

/// The run's member schedule: the one its `--schedule` lists, else the seed's.
fn members_of(setup: &Setup) -> Vec<ScheduledMemberFault> {
    setup.schedule.as_ref().and_then(|plan| plan.members.clone()).unwrap_or_else(|| member_faults(setup.seed))
}

/// Per member (every member, with faults or not), its faults in time order.
fn by_member(faults: &[ScheduledMemberFault]) -> BTreeMap<u64, Vec<(u64, MemberFault)>> {
    let mut by_member: BTreeMap<u64, Vec<(u64, MemberFault)>> = (0..MEMBERS).map(|m| (PRODUCERS + m, Vec::new())).collect();
    for f in faults {
        by_member.entry(f.process).or_default().push((f.at_ms, f.fault));
    }
    by_member
}

/// Checks a listed member schedule names only this scenario's members.
pub fn check_members(faults: &[ScheduledMemberFault]) -> Result<(), String> {
    let members = PRODUCERS..PRODUCERS + MEMBERS;
    match faults.iter().find(|f| !members.contains(&f.process)) {
        Some(f) => Err(format!(
            "member fault at {} ms names process {}; the members are processes {}..={}",
            f.at_ms,
            f.process,
            members.start,
            members.end - 1
        )),
        None => Ok(()),
    }
}

/// The schedule a run prints first: brokers' and members'.
pub fn schedule(setup: &Setup) -> String {
    let mut text = setup.fault_plan(&nemesis_config(setup)).to_string();
    text.push_str("member schedule:\n");
    for (member, faults) in by_member(&members_of(setup)) {
        for (at_ms, fault) in faults {
            text.push_str(&format!("  {at_ms:>6} ms  process {member}: {fault:?}\n"));
        }
    }
    text
}

fn key(partition: i32) -> String {
    format!("{TOPIC}-{partition}")
}

fn partitions() -> Vec<TopicPartition> {
    (0..PARTITIONS).map(|p| TopicPartition::new(TOPIC, p)).collect()
}

fn now_ms() -> u64 {
    sim::clock::elapsed_ns() / 1_000_000
}

/// Runs the scenario in the current simulation.
pub async fn run(setup: Setup, history: Recorder) -> Result<ScenarioRun, String> {
    let mut cluster = SimCluster::start_with_quorum(BROKERS, &setup.broker, &setup.quorum, setup.seed);
    let bootstrap = cluster.brokers.iter().map(|b| b.addr()).collect::<Vec<_>>().join(",");
    let plan = setup.fault_plan(&nemesis_config(&setup));
    let setup_node = cluster.add_client((PRODUCERS + MEMBERS) as usize);
    let create = setup_node.spawn({
        let bootstrap = bootstrap.clone();
        async move {
            let mut producer = Producer::new(ProducerConfig { bootstrap, ..Default::default() }, Box::new(|| 0));
            for _ in 0..100 {
                if producer.cluster().create_topic_replicated(TOPIC, PARTITIONS, BROKERS as i16).await.is_ok() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            false
        }
    });
    if !create.await.unwrap_or(false) {
        return Err("setup: could not create topic t".into());
    }

    let producers_stop = Arc::new(AtomicBool::new(false));
    let members_stop = Arc::new(AtomicBool::new(false));
    let mut producers = Vec::new();
    for process in 0..PRODUCERS {
        let node = cluster.add_client(process as usize);
        let (bootstrap, history, stop, clients) = (bootstrap.clone(), history.clone(), producers_stop.clone(), setup.client.clone());
        let seed = setup.seed;
        producers.push(node.spawn(async move { producer_process(process, seed, bootstrap, clients, crate::single_node_crash::topic_partitions(), history, stop).await }));
    }
    let mut members = Vec::new();
    for (process, faults) in by_member(&members_of(&setup)) {
        let node = cluster.add_client(process as usize);
        let (bootstrap, history, stop, clients) = (bootstrap.clone(), history.clone(), members_stop.clone(), setup.client.clone());
        members.push(node.spawn(async move { member_process(process, bootstrap, clients, history, faults, stop).await }));
    }

    crate::nemesis_runner::run_plan(&cluster, &plan, &history).await;
    if now_ms() < FAULT_PHASE_MS {
        tokio::time::sleep(Duration::from_millis(FAULT_PHASE_MS - now_ms())).await;
    }
    history.nemesis("heal", json!("all"));
    let healed_at_ms = now_ms();
    producers_stop.store(true, Ordering::SeqCst);
    for handle in producers {
        if tokio::time::timeout(Duration::from_millis(DRAIN_MS_MAX), handle).await.is_err() {
            return Err(format!("producers did not stop within {DRAIN_MS_MAX} ms of healing"));
        }
    }
    // Liveness: the group commits every partition's end.
    let watcher = cluster.add_client((PRODUCERS + MEMBERS + 1) as usize);
    let drained = watcher.spawn({
        let bootstrap = bootstrap.clone();
        async move { wait_until_consumed(bootstrap, healed_at_ms).await }
    });
    let drained = drained.await.map_err(|e| format!("drain watcher failed: {e}"))?;
    members_stop.store(true, Ordering::SeqCst);
    for handle in members {
        match tokio::time::timeout(Duration::from_millis(20_000), handle).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(format!("member task failed: {error}")),
            Err(_) => return Err("members did not stop within 20 s".into()),
        }
    }
    drained?;
    let mut notes = vec![format!("elections: {}", cluster.elections())];
    notes.extend(explain_knobs(&setup));
    Ok(ScenarioRun { schedule: schedule(&setup), trace_hash: cluster.trace_hash(), notes, violations: Vec::new() })
}

/// Waits until the group's committed offset of every partition has
/// reached the partition's end (read fresh from its leader), no sooner
/// than `DRAIN_QUIET_MS` after healing and no later than `DRAIN_MS_MAX`.
async fn wait_until_consumed(bootstrap: String, healed_at_ms: u64) -> Result<(), String> {
    let mut admin = GroupMember::new(GroupMemberConfig {
        bootstrap: bootstrap.clone(),
        client_id: "drain-watcher".into(),
        group_id: GROUP.into(),
        topics: vec![TOPIC.into()],
        session_timeout_ms: SESSION_TIMEOUT_MS,
        rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
        request_timeout_ms: 1_000,
        assignors: Vec::new(),
    });
    let mut ends = Consumer::new(ConsumerConfig { bootstrap, client_id: "drain-watcher".into(), reset_to_earliest: false, fetch_wait_ms_max: 100, ..ConsumerConfig::default() });
    ends.assign(&partitions());
    let (mut committed, mut end) = (BTreeMap::new(), BTreeMap::new());
    while now_ms() < healed_at_ms + DRAIN_MS_MAX {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let fetched_before: Vec<u64> = partitions().iter().map(|tp| ends.fetch_count(tp)).collect();
        if ends.poll().await.is_err() {
            continue;
        }
        let fresh = partitions().iter().zip(&fetched_before).all(|(tp, &before)| ends.fetch_count(tp) > before);
        end = partitions().iter().filter_map(|tp| ends.high_watermark(tp).map(|hw| (tp.partition, hw))).collect();
        if let Ok(offsets) = admin.committed(&partitions()).await {
            committed = offsets.into_iter().map(|(tp, offset)| (tp.partition, offset)).collect();
        }
        let all_consumed = end.len() == PARTITIONS as usize && end.iter().all(|(p, hw)| committed.get(p).is_some_and(|c| c >= hw));
        if fresh && all_consumed && now_ms() >= healed_at_ms + DRAIN_QUIET_MS {
            return Ok(());
        }
    }
    Err(format!("liveness: {DRAIN_MS_MAX} ms after healing the group had committed {committed:?} of partition ends {end:?}"))
}

/// One member's life: join, poll, process, commit; its faults from the
/// member schedule; a new member (new id) after each crash or leave.
async fn member_process(process: u64, bootstrap: String, clients: ClientSettings, history: Recorder, mut faults: Vec<(u64, MemberFault)>, stop: Arc<AtomicBool>) {
    faults.reverse();
    let keys: Vec<String> = (0..PARTITIONS).map(key).collect();
    history.invoke(process, "subscribe", json!(keys));
    history.complete(process, "ok", "subscribe", json!(keys));
    let member_config = GroupMemberConfig {
        bootstrap: bootstrap.clone(),
        client_id: format!("member-{process}"),
        group_id: GROUP.into(),
        topics: vec![TOPIC.into()],
        session_timeout_ms: SESSION_TIMEOUT_MS,
        rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
        request_timeout_ms: clients.request_timeout_ms,
        assignors: Vec::new(),
    };
    let consumer_config = ConsumerConfig { bootstrap, client_id: format!("member-{process}"), request_timeout_ms: clients.request_timeout_ms, fetch_wait_ms_max: 200, ..ConsumerConfig::default() };
    'incarnation: loop {
        let mut member = GroupMember::new(member_config.clone());
        let mut consumer: Option<Consumer> = None;
        let mut last_heartbeat_ms = 0;
        // What this member last committed (or found committed): a commit
        // that failed is tried again on the next round, records or not.
        let mut committed: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        loop {
            if stop.load(Ordering::SeqCst) {
                member.leave().await;
                return;
            }
            let due = faults.last().is_some_and(|(at_ms, _)| *at_ms <= now_ms());
            let fault = if due { faults.pop().map(|(_, f)| f) } else { None };
            match fault {
                Some(MemberFault::Crash { down_ms }) => {
                    crash(process, &history, down_ms).await;
                    continue 'incarnation;
                }
                Some(MemberFault::Leave { down_ms }) => {
                    history.nemesis("member-leave-start", json!(process));
                    member.leave().await;
                    history.record(Actor::Process(process), "info", "crash", Value::Null);
                    tokio::time::sleep(Duration::from_millis(down_ms)).await;
                    history.nemesis("member-leave-stop", json!(process));
                    continue 'incarnation;
                }
                Some(MemberFault::Pause { .. }) | None => {}
            }
            if consumer.is_none() {
                match join_generation(process, &mut member, &consumer_config, &history).await {
                    Some((joined, found)) => {
                        consumer = Some(joined);
                        committed = found;
                        last_heartbeat_ms = now_ms();
                    }
                    None => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
            }
            if now_ms() >= last_heartbeat_ms + HEARTBEAT_INTERVAL_MS {
                match member.heartbeat().await {
                    Ok(()) => last_heartbeat_ms = now_ms(),
                    Err(error) if error.needs_rejoin() => {
                        consumer = None;
                        continue;
                    }
                    Err(_) => {}
                }
            }
            let active = consumer.as_mut().expect("joined above");
            // The fetch is not in the history: processing is. A record
            // fetched and never processed was never consumed.
            let records = match active.poll().await {
                Ok(records) => records,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let positions: BTreeMap<TopicPartition, i64> = active.assignment().into_iter().filter_map(|tp| active.position(&tp).map(|p| (tp, p))).collect();
            if clients.commit_before_process && positions != committed && !commit(process, &mut member, &positions, &mut committed, &history).await {
                consumer = None;
            }
            if let Some(MemberFault::Pause { pause_ms }) = fault {
                // A stop the world between fetching and processing: the
                // session expires, and what follows is a zombie's.
                history.nemesis("member-pause-start", json!(process));
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                history.nemesis("member-pause-stop", json!(process));
            }
            // A crash due now strikes before the records are processed.
            if faults.last().is_some_and(|(at_ms, f)| *at_ms <= now_ms() && matches!(f, MemberFault::Crash { .. })) {
                if let Some((_, MemberFault::Crash { down_ms })) = faults.pop() {
                    crash(process, &history, down_ms).await;
                    continue 'incarnation;
                }
            }
            let mut read: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for record in &records {
                let value = record.value.as_deref().and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| v.parse::<i64>().ok());
                read.entry(key(record.tp.partition)).or_default().push(json!([record.offset, value]));
            }
            // Processing the records is recording them.
            history.invoke(process, "poll", json!([["poll"]]));
            history.complete(process, "ok", "poll", json!([["poll", read]]));
            if !clients.commit_before_process && positions != committed && !commit(process, &mut member, &positions, &mut committed, &history).await {
                consumer = None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn crash(process: u64, history: &Recorder, down_ms: u64) {
    history.nemesis("member-crash-start", json!(process));
    history.record(Actor::Process(process), "info", "crash", Value::Null);
    tokio::time::sleep(Duration::from_millis(down_ms)).await;
    history.nemesis("member-crash-stop", json!(process));
}

/// Joins a generation: the assignment in the history, and a consumer
/// positioned at the group's committed offsets (the earliest offset where
/// none was committed). `None` to try again later.
async fn join_generation(process: u64, member: &mut GroupMember, consumer_config: &ConsumerConfig, history: &Recorder) -> Option<(Consumer, BTreeMap<TopicPartition, i64>)> {
    let joined = member.join().await.ok()?;
    let value = json!({"group": GROUP, "generation": joined.generation_id, "member": joined.member_id});
    history.invoke(process, "assignment", value.clone());
    let assignment = match member.sync(&joined).await {
        Ok(assignment) => assignment,
        Err(_) => {
            history.complete(process, "fail", "assignment", value);
            return None;
        }
    };
    let keys: Vec<String> = assignment.iter().map(|tp| key(tp.partition)).collect();
    history.complete(process, "ok", "assignment", json!({"group": GROUP, "generation": joined.generation_id, "member": joined.member_id, "keys": keys}));
    let committed = member.committed(&assignment).await.ok()?;
    let mut consumer = Consumer::new(consumer_config.clone());
    consumer.assign(&assignment);
    for (tp, &offset) in &committed {
        if offset >= 0 {
            consumer.seek(tp, offset);
        }
    }
    Some((consumer, committed))
}

/// Commits `positions`, recording it (and, once accepted, remembering it
/// in `committed`); false when the member must rejoin.
async fn commit(process: u64, member: &mut GroupMember, positions: &BTreeMap<TopicPartition, i64>, committed: &mut BTreeMap<TopicPartition, i64>, history: &Recorder) -> bool {
    if positions.is_empty() {
        return true;
    }
    let offsets: BTreeMap<String, i64> = positions.iter().map(|(tp, offset)| (key(tp.partition), *offset)).collect();
    let value = json!({"group": GROUP, "generation": member.generation_id(), "offsets": offsets});
    history.invoke(process, "commit", value.clone());
    match member.commit(positions).await {
        CommitOutcome::Committed => {
            history.complete(process, "ok", "commit", value);
            committed.clone_from(positions);
            true
        }
        CommitOutcome::Refused(code) => {
            history.complete(process, "fail", "commit", value);
            !broker::client::GroupClientError::Kafka(code).needs_rejoin()
        }
        CommitOutcome::Unknown => {
            history.complete(process, "info", "commit", value);
            true
        }
    }
}

/// For each teaching knob the run has on, what it breaks.
pub fn explain_knobs(setup: &Setup) -> Vec<String> {
    let mut why = Vec::new();
    if setup.client.commit_before_process {
        why.push(
            "why (client.commit.before.process=true): a member commits the offsets of what it fetched before \
             processing it. When it crashes in between, the group's committed offset already says those records \
             were consumed, so the member that takes the partition over starts after them: nobody ever processes \
             them (`unseen`)."
                .to_string(),
        );
    }
    if !setup.broker.group.fence_generations {
        why.push(
            "why (group.fence.generations=false): the coordinator accepts a commit whatever generation it names. \
             A member paused past its session timeout comes back as a zombie: its partitions went to another member, \
             which committed further, and the zombie's commit of where it had stopped moves the group's offset \
             back (`commit-regression`)."
                .to_string(),
        );
    }
    why
}
