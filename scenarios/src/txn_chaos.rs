//! `txn-chaos`: are Kafka transactions atomic and exactly-once while
//! brokers (so transaction coordinators, group coordinators and partition
//! leaders) and controllers fail?
//!
//! Three controllers and three brokers (replication-chaos's cluster:
//! `min.insync.replicas=2`, no fsync per batch); topics `a` and `b` (2
//! partitions each), `in` and `out` (2 each), all with replication factor
//! 3, and `__transaction_state` and `__consumer_offsets` with 3 replicated
//! partitions each. The processes:
//!
//! - 0 and 1: transactional producers (`txn-0`, `txn-1`). Each transaction
//!   sends 1 to 4 unique integers to its producer's partition of `a` and of
//!   `b` (producer 0 writes `a-0` and `b-0`, producer 1 `a-1` and `b-1`:
//!   Kafka does not isolate concurrent transactions that write the same
//!   partitions, and such write cycles are not what this scenario judges),
//!   picked by the seed, and commits, or aborts on purpose (one in five). A transaction
//!   that lost a send aborts. An abort is a `fail` in the history; a
//!   commit or abort whose outcome is unknown is `info`, and the producer
//!   then initializes again (fencing its own past and finishing what it
//!   left).
//! - 2: an idempotent producer of unique integers to `in` (with ambiguous
//!   retries, as Kafka's producer retries).
//! - 3 and 4: a consume-transform-produce job, transactional id `etl`: it
//!   reads `in` (read_committed), writes a new unique value per input
//!   record to the same partition of `out`, and commits its input offsets
//!   for group `etl` in the same transaction. One of the two runs at a time; at each
//!   handover of the job schedule the running one freezes right after a
//!   poll (a stop-the-world pause) while the other starts, fences it with
//!   InitProducerId and resumes from the committed offsets; the frozen one
//!   then wakes up as a zombie and tries to finish its transaction, which
//!   must fail.
//! - 5 and 6: read_committed consumers of every partition of the four
//!   topics.
//!
//! After healing, the producers stop, the job must commit the end of `in`,
//! and the consumers must read every partition to its high watermark
//! (which for read_committed means the last stable offset has caught up
//! with it: no transaction stays open), each within a bounded time.
//!
//! Checks (the checker's log and exactly-once checks, `checker/HISTORY.md`):
//! `duplicate`, `lost-write`, `unseen`, `G1a` (a read of an aborted
//! transaction's value), `torn-txn` (a committed transaction partly
//! read), `duplicate-consume` (an input value forwarded by two committed
//! transactions), G1c.
//!
//! Teaching knobs: `client.enable.idempotence=false` (the input producer's
//! ambiguous retries duplicate records: `duplicate`);
//! `transaction.fence.zombies=false` (InitProducerId does not bump the
//! epoch, so the zombie job's transaction goes through beside its
//! successor's: `duplicate-consume` or `duplicate`);
//! `transaction.aborted.index.enable=false` (read_committed fetches do not
//! list aborted transactions, so consumers read aborted records: `G1a`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use broker::client::{Consumer, ConsumerConfig, GroupMember, GroupMemberConfig, Producer, ProducerConfig, TopicPartition, TransactionError, TransactionalProducer, TransactionalProducerConfig};
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use sim::cluster::SimCluster;
use sim::nemesis::NemesisConfig;

use crate::history::{Actor, Recorder};
use crate::run::{ClientSettings, ScenarioRun, Setup};
use crate::single_node_crash::{consumer_process, history_key, producer_process};

const BROKERS: usize = 3;
const PARTITIONS: i32 = 2;
/// Topics the transactional producers write.
const TXN_TOPICS: [&str; 2] = ["a", "b"];
const INPUT: &str = "in";
const OUTPUT: &str = "out";
const JOB_GROUP: &str = "etl";
const JOB_TRANSACTIONAL_ID: &str = "etl";
/// A job process's output values start at its process number times this
/// (each attempt at forwarding an input writes a new value: an aborted
/// attempt's values must not reappear in the committed retry).
const OUTPUT_VALUES_PER_PROCESS: i64 = 100_000_000;
const TXN_PRODUCERS: [u64; 2] = [0, 1];
const INPUT_PRODUCER: u64 = 2;
const JOB_PROCESSES: [u64; 2] = [3, 4];
const CONSUMERS: [u64; 2] = [5, 6];
const SETUP_PROCESS: u64 = 7;
const WATCHER_PROCESS: u64 = 8;
const FAULT_START_MS: u64 = 5_000;
const FAULT_PHASE_MS: u64 = 35_000;
const DRAIN_MS_MAX: u64 = 60_000;
const DRAIN_QUIET_MS: u64 = 8_000;
/// Short, so a transaction a failure left open is aborted within a run.
const TRANSACTION_TIMEOUT_MS: i32 = 10_000;
/// The job schedule's own stream of the seed.
const JOB_STREAM: u64 = 0x6a6f_6273_6368_6564;

/// The broker and controller fault mix: group-chaos's.
pub fn nemesis_config(setup: &Setup) -> NemesisConfig {
    crate::group_chaos::nemesis_config(setup)
}

/// The job's handovers the seed draws: (time, how long the running
/// incarnation stays frozen), in time order.
pub fn handovers(seed: u64) -> Vec<(u64, u64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ JOB_STREAM);
    let mut at_ms = FAULT_START_MS + rng.gen_range(0..4_000);
    let mut out = Vec::new();
    while at_ms < FAULT_PHASE_MS {
        out.push((at_ms, rng.gen_range(2_000..6_000)));
        at_ms += rng.gen_range(5_000..10_000);
    }
    out
}

/// The schedule a run prints first: brokers' faults and the job's handovers.
pub fn schedule(setup: &Setup) -> String {
    let mut text = setup.fault_plan(&nemesis_config(setup)).to_string();
    text.push_str("job handovers:\n");
    for (at_ms, pause_ms) in handovers(setup.seed) {
        text.push_str(&format!("  {at_ms:>6} ms  the running job freezes for {pause_ms} ms; the other takes over\n"));
    }
    text
}

fn now_ms() -> u64 {
    sim::clock::elapsed_ns() / 1_000_000
}

fn partitions_of(topic: &str) -> Vec<TopicPartition> {
    (0..PARTITIONS).map(|p| TopicPartition::new(topic, p)).collect()
}

fn every_partition() -> Vec<TopicPartition> {
    TXN_TOPICS.iter().copied().chain([INPUT, OUTPUT]).flat_map(partitions_of).collect()
}

fn parse_value(bytes: Option<&[u8]>) -> Option<i64> {
    std::str::from_utf8(bytes?).ok()?.parse().ok()
}

fn sim_clock_ms() -> Box<dyn Fn() -> i64 + Send> {
    let clock = sim::clock::SimClock::new();
    Box::new(move || broker::clock::Clock::now_ms(&clock))
}

/// Runs the scenario in the current simulation.
pub async fn run(setup: Setup, history: Recorder) -> Result<ScenarioRun, String> {
    let mut cluster = SimCluster::start_with_quorum(BROKERS, &setup.broker, &setup.quorum, setup.seed);
    let bootstrap = cluster.brokers.iter().map(|b| b.addr()).collect::<Vec<_>>().join(",");
    let plan = setup.fault_plan(&nemesis_config(&setup));
    let create = cluster.add_client(SETUP_PROCESS as usize).spawn({
        let bootstrap = bootstrap.clone();
        async move {
            let mut producer = Producer::new(ProducerConfig { bootstrap, ..Default::default() }, Box::new(|| 0));
            for topic in TXN_TOPICS.iter().copied().chain([INPUT, OUTPUT]) {
                let mut created = false;
                for _ in 0..100 {
                    if producer.cluster().create_topic_replicated(topic, PARTITIONS, BROKERS as i16).await.is_ok() {
                        created = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                if !created {
                    return Err(format!("setup: could not create topic {topic}"));
                }
            }
            Ok(())
        }
    });
    create.await.map_err(|e| format!("setup failed: {e}"))??;

    let producers_stop = Arc::new(AtomicBool::new(false));
    let job_stop = Arc::new(AtomicBool::new(false));
    let drain = Arc::new(AtomicBool::new(false));
    let mut producers = Vec::new();
    for process in TXN_PRODUCERS {
        let (bootstrap, history, stop, clients, seed) = (bootstrap.clone(), history.clone(), producers_stop.clone(), setup.client.clone(), setup.seed);
        producers.push(cluster.add_client(process as usize).spawn(async move { txn_producer_process(process, seed, bootstrap, clients, history, stop).await }));
    }
    {
        let (bootstrap, history, stop, clients, seed) = (bootstrap.clone(), history.clone(), producers_stop.clone(), setup.client.clone(), setup.seed);
        producers.push(cluster.add_client(INPUT_PRODUCER as usize).spawn(async move { producer_process(INPUT_PRODUCER, seed, bootstrap, clients, partitions_of(INPUT), history, stop).await }));
    }
    // Which job process runs; the other waits for its turn.
    let running_job = Arc::new(AtomicU64::new(JOB_PROCESSES[0]));
    let mut jobs = Vec::new();
    for process in JOB_PROCESSES {
        let (bootstrap, history, stop, clients, running) = (bootstrap.clone(), history.clone(), job_stop.clone(), setup.client.clone(), running_job.clone());
        jobs.push(cluster.add_client(process as usize).spawn(async move { job_process(process, bootstrap, clients, history, running, stop).await }));
    }
    let mut consumers = Vec::new();
    for process in CONSUMERS {
        let (bootstrap, history, drain, clients) = (bootstrap.clone(), history.clone(), drain.clone(), setup.client.clone());
        consumers.push(cluster.add_client(process as usize).spawn(async move { consumer_process(process, bootstrap, clients, every_partition(), history, drain, DRAIN_QUIET_MS).await }));
    }
    // The job schedule runs beside the broker faults.
    let job_schedule = {
        let (running, history, freezes) = (running_job.clone(), history.clone(), handovers(setup.seed));
        cluster.add_client(WATCHER_PROCESS as usize + 1).spawn(async move {
            for (at_ms, pause_ms) in freezes {
                if now_ms() < at_ms {
                    tokio::time::sleep(Duration::from_millis(at_ms - now_ms())).await;
                }
                let old = running.load(Ordering::SeqCst);
                let new = if old == JOB_PROCESSES[0] { JOB_PROCESSES[1] } else { JOB_PROCESSES[0] };
                history.nemesis("job-handover", json!({"frozen": old, "successor": new, "pause_ms": pause_ms}));
                // The frozen one learns of it (and freezes) after its next poll.
                FROZEN_FOR_MS.store(pause_ms, Ordering::SeqCst);
                running.store(new, Ordering::SeqCst);
            }
        })
    };

    crate::nemesis_runner::run_plan(&cluster, &plan, &history).await;
    if now_ms() < FAULT_PHASE_MS {
        tokio::time::sleep(Duration::from_millis(FAULT_PHASE_MS - now_ms())).await;
    }
    let _ = job_schedule.await;
    history.nemesis("heal", json!("all"));
    let healed_at_ms = now_ms();
    producers_stop.store(true, Ordering::SeqCst);
    for handle in producers {
        if tokio::time::timeout(Duration::from_millis(DRAIN_MS_MAX), handle).await.is_err() {
            return Err(format!("producers did not stop within {DRAIN_MS_MAX} ms of healing"));
        }
    }
    // Liveness: the job commits the end of its input.
    let watcher = cluster.add_client(WATCHER_PROCESS as usize);
    let consumed = watcher.spawn({
        let bootstrap = bootstrap.clone();
        async move { wait_until_job_consumed(bootstrap, healed_at_ms).await }
    });
    consumed.await.map_err(|e| format!("job watcher failed: {e}"))??;
    // Then every consumer reads every partition to its end (read_committed:
    // the last stable offset has reached the high watermark).
    drain.store(true, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(DRAIN_MS_MAX);
    for handle in consumers {
        match tokio::time::timeout(deadline.saturating_duration_since(tokio::time::Instant::now()), handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(reason))) => return Err(reason),
            Ok(Err(join_error)) => return Err(format!("consumer task failed: {join_error}")),
            Err(_) => return Err(format!("liveness: read_committed consumers did not reach every high watermark within {DRAIN_MS_MAX} ms (a transaction stayed open?)")),
        }
    }
    job_stop.store(true, Ordering::SeqCst);
    for handle in jobs {
        if tokio::time::timeout(Duration::from_millis(20_000), handle).await.is_err() {
            return Err("the job did not stop within 20 s".into());
        }
    }
    let mut notes = vec![format!("elections: {}", cluster.elections())];
    notes.extend(explain_knobs(&setup));
    Ok(ScenarioRun { schedule: schedule(&setup), trace_hash: cluster.trace_hash(), notes, violations: Vec::new() })
}

/// How long the job incarnation that is being replaced stays frozen (set
/// by the job schedule at each handover).
static FROZEN_FOR_MS: AtomicU64 = AtomicU64::new(0);

fn transactional_config(process: u64, bootstrap: &str, clients: &ClientSettings, transactional_id: &str) -> TransactionalProducerConfig {
    let producer = ProducerConfig {
        bootstrap: bootstrap.to_string(),
        client_id: format!("txn-producer-{process}"),
        request_timeout_ms: clients.request_timeout_ms,
        retries: clients.retries,
        retry_backoff_ms: 50,
        retry_backoff_ms_max: 500,
        ..ProducerConfig::default()
    };
    TransactionalProducerConfig { transaction_timeout_ms: TRANSACTION_TIMEOUT_MS, ..TransactionalProducerConfig::new(producer, transactional_id) }
}

/// Initializes a transactional producer, retrying until it works or `stop`.
async fn initialized(config: &TransactionalProducerConfig, stop: &AtomicBool) -> Option<TransactionalProducer> {
    while !stop.load(Ordering::SeqCst) {
        let mut producer = TransactionalProducer::new(config.clone(), sim_clock_ms());
        if producer.init_transactions().await.is_ok() {
            return Some(producer);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// How a transaction ended, for the history.
enum Ended {
    /// Committed: every send's offset.
    Committed,
    /// Certainly aborted (on purpose, or after a failed send).
    Aborted,
    /// Unknown (the producer is initialized again before the next one).
    Unknown,
}

/// Ends the open transaction: commits when `commit` and nothing failed,
/// else aborts.
async fn end_transaction(producer: &mut TransactionalProducer, commit: bool) -> Ended {
    if commit && !producer.must_abort() {
        return match producer.commit_transaction().await {
            Ok(()) => Ended::Committed,
            Err(TransactionError::Abortable(_)) => match producer.abort_transaction().await {
                Ok(()) => Ended::Aborted,
                Err(_) => Ended::Unknown,
            },
            Err(_) => Ended::Unknown,
        };
    }
    match producer.abort_transaction().await {
        Ok(()) => Ended::Aborted,
        Err(_) => Ended::Unknown,
    }
}

/// A transactional producer's life: transactions of 1 to 4 sends to `a`
/// and `b`, one in five aborted on purpose.
async fn txn_producer_process(process: u64, seed: u64, bootstrap: String, clients: ClientSettings, history: Recorder, stop: Arc<AtomicBool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (process + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let config = transactional_config(process, &bootstrap, &clients, &format!("txn-{process}"));
    // Partition `process` of each topic: Kafka's transactions do not
    // isolate concurrent writers (two transactions writing the same
    // partitions interleave, a write cycle Kafka allows), so each producer
    // owns its partitions and the dependency graph judges atomicity and
    // order, not an isolation Kafka never promised.
    let targets: Vec<TopicPartition> = TXN_TOPICS.iter().map(|topic| TopicPartition::new(*topic, process as i32)).collect();
    let mut next_value = process as i64 * 1_000_000;
    let mut producer = None;
    while !stop.load(Ordering::SeqCst) {
        let Some(active) = producer.as_mut() else {
            producer = initialized(&config, &stop).await;
            continue;
        };
        let sends: Vec<(TopicPartition, i64)> = (0..rng.gen_range(1..=4))
            .map(|_| {
                next_value += 1;
                (targets[rng.gen_range(0..targets.len())].clone(), next_value)
            })
            .collect();
        let commit = rng.gen_range(0..5) != 0;
        let invoked: Vec<Value> = sends.iter().map(|(tp, value)| json!(["send", history_key(tp), value])).collect();
        history.invoke(process, "txn", json!(invoked));
        if active.begin_transaction().is_err() {
            history.complete(process, "fail", "txn", json!(invoked));
            producer = None;
            continue;
        }
        let mut completed = Vec::new();
        for (tp, value) in &sends {
            match active.send(tp, None, Some(Bytes::from(value.to_string()))).await {
                Ok(outcome) => completed.push(json!(["send", history_key(tp), [outcome.base_offset, value]])),
                Err(_) => break,
            }
        }
        match end_transaction(active, commit && completed.len() == sends.len()).await {
            Ended::Committed => history.complete(process, "ok", "txn", json!(completed)),
            Ended::Aborted => history.complete(process, "fail", "txn", json!(invoked)),
            Ended::Unknown => {
                history.complete(process, "info", "txn", json!(invoked));
                producer = None;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(10..60))).await;
    }
}

/// The group's committed offsets of `in` (the earliest offset where none).
async fn committed_input(bootstrap: &str, client_id: &str, clients: &ClientSettings) -> Option<BTreeMap<TopicPartition, i64>> {
    let mut admin = GroupMember::new(GroupMemberConfig {
        bootstrap: bootstrap.to_string(),
        client_id: client_id.to_string(),
        group_id: JOB_GROUP.into(),
        topics: vec![INPUT.into()],
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        request_timeout_ms: clients.request_timeout_ms,
        assignors: Vec::new(),
    });
    admin.committed(&partitions_of(INPUT)).await.ok()
}

/// One job process: while it is the running one, an incarnation of the
/// consume-transform-produce job; frozen after a poll when replaced, then
/// a zombie that tries to finish the transaction it was in.
async fn job_process(process: u64, bootstrap: String, clients: ClientSettings, history: Recorder, running: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let config = transactional_config(process, &bootstrap, &clients, JOB_TRANSACTIONAL_ID);
    let consumer_config = ConsumerConfig {
        bootstrap: bootstrap.clone(),
        client_id: format!("job-{process}"),
        request_timeout_ms: clients.request_timeout_ms,
        fetch_wait_ms_max: 200,
        ..ConsumerConfig::default()
    };
    let keys: Vec<String> = partitions_of(INPUT).iter().map(history_key).collect();
    let mut next_output = process as i64 * OUTPUT_VALUES_PER_PROCESS;
    let mut first_incarnation = true;
    'incarnation: while !stop.load(Ordering::SeqCst) {
        if running.load(Ordering::SeqCst) != process {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        if !first_incarnation {
            // The previous incarnation's client is gone: where it was
            // reading means nothing to the next (which starts from the
            // group's committed offsets).
            history.record(Actor::Process(process), "info", "crash", Value::Null);
        }
        first_incarnation = false;
        // A new incarnation: fence the old one, then resume where the
        // group's committed offsets say.
        let Some(mut producer) = initialized(&config, &stop).await else { return };
        let Some(committed) = committed_input(&bootstrap, &format!("job-{process}"), &clients).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut consumer = Consumer::new(consumer_config.clone());
        history.invoke(process, "assign", json!(keys));
        consumer.assign(&partitions_of(INPUT));
        history.complete(process, "ok", "assign", json!(keys));
        for (tp, &offset) in &committed {
            if offset >= 0 {
                consumer.seek(tp, offset);
            }
        }
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let records = match consumer.poll().await {
                Ok(records) => records,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let zombie = running.load(Ordering::SeqCst) != process;
            if records.is_empty() {
                if zombie {
                    continue 'incarnation;
                }
                continue;
            }
            let positions: BTreeMap<TopicPartition, i64> = consumer.assignment().into_iter().filter_map(|tp| consumer.position(&tp).map(|p| (tp, p))).collect();
            let mut read: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            let mut outputs = Vec::new();
            for record in &records {
                let Some(value) = parse_value(record.value.as_deref()) else { continue };
                read.entry(history_key(&record.tp)).or_default().push(json!([record.offset, value]));
                next_output += 1;
                outputs.push((TopicPartition::new(OUTPUT, record.tp.partition), next_output));
            }
            let mut invoked = vec![json!(["poll"])];
            invoked.extend(outputs.iter().map(|(tp, value)| json!(["send", history_key(tp), value])));
            history.invoke(process, "txn", json!(invoked));
            if zombie {
                // Stop the world between fetching and processing: the
                // successor takes over meanwhile.
                let pause_ms = FROZEN_FOR_MS.load(Ordering::SeqCst);
                history.nemesis("job-freeze-start", json!(process));
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                history.nemesis("job-freeze-stop", json!(process));
            }
            let ended = if producer.begin_transaction().is_ok() {
                let mut completed = vec![json!(["poll", read])];
                for (tp, value) in &outputs {
                    match producer.send(tp, None, Some(Bytes::from(value.to_string()))).await {
                        Ok(outcome) => completed.push(json!(["send", history_key(tp), [outcome.base_offset, value]])),
                        Err(_) => break,
                    }
                }
                let mut all_sent = completed.len() == outputs.len() + 1;
                if all_sent && producer.send_offsets_to_transaction(&positions, JOB_GROUP, None).await.is_err() {
                    all_sent = false;
                }
                let ended = end_transaction(&mut producer, all_sent).await;
                (ended, completed)
            } else {
                (Ended::Aborted, Vec::new())
            };
            match ended {
                (Ended::Committed, completed) => history.complete(process, "ok", "txn", json!(completed)),
                (Ended::Aborted, _) => history.complete(process, "fail", "txn", json!(invoked)),
                (Ended::Unknown, _) => history.complete(process, "info", "txn", json!(invoked)),
            }
            if zombie {
                // The zombie's life ends here, whatever happened.
                continue 'incarnation;
            }
            if !matches!(ended.0, Ended::Committed) {
                // Back to the committed offsets, under a fresh epoch.
                continue 'incarnation;
            }
        }
    }
}

/// Waits until group `etl` has committed the end of every partition of
/// `in`, no sooner than `DRAIN_QUIET_MS` after healing and no later than
/// `DRAIN_MS_MAX`.
async fn wait_until_job_consumed(bootstrap: String, healed_at_ms: u64) -> Result<(), String> {
    let clients = ClientSettings::default();
    let mut ends = Consumer::new(ConsumerConfig { bootstrap: bootstrap.clone(), client_id: "job-watcher".into(), reset_to_earliest: false, fetch_wait_ms_max: 100, ..ConsumerConfig::default() });
    ends.assign(&partitions_of(INPUT));
    let (mut committed, mut end) = (BTreeMap::new(), BTreeMap::new());
    while now_ms() < healed_at_ms + DRAIN_MS_MAX {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let fetched_before: Vec<u64> = partitions_of(INPUT).iter().map(|tp| ends.fetch_count(tp)).collect();
        if ends.poll().await.is_err() {
            continue;
        }
        let fresh = partitions_of(INPUT).iter().zip(&fetched_before).all(|(tp, &before)| ends.fetch_count(tp) > before);
        end = partitions_of(INPUT).iter().filter_map(|tp| ends.high_watermark(tp).map(|hw| (tp.partition, hw))).collect();
        if let Some(offsets) = committed_input(&bootstrap, "job-watcher", &clients).await {
            committed = offsets.into_iter().map(|(tp, offset)| (tp.partition, offset)).collect();
        }
        let all_consumed = end.len() == PARTITIONS as usize && end.iter().all(|(p, hw)| committed.get(p).is_some_and(|c| c >= hw));
        if fresh && all_consumed && now_ms() >= healed_at_ms + DRAIN_QUIET_MS {
            return Ok(());
        }
    }
    Err(format!("liveness: {DRAIN_MS_MAX} ms after healing the job had committed {committed:?} of input ends {end:?}"))
}

/// For each teaching knob the run has on, what it breaks.
pub fn explain_knobs(setup: &Setup) -> Vec<String> {
    let mut why = Vec::new();
    if !setup.client.enable_idempotence && setup.client.retry_ambiguous {
        why.push(
            "why (client.enable.idempotence=false): the input producer retries a send whose outcome it does not know \
             (a timeout, a leader that failed while the batch was being replicated). Without a producer id and \
             sequence numbers the leader cannot tell the retry from a new record and appends it again (`duplicate`)."
                .to_string(),
        );
    }
    if !setup.broker.txn.fence_zombies {
        why.push(
            "why (transaction.fence.zombies=false): InitProducerId hands the job's successor the same epoch instead of \
             a higher one, so the frozen incarnation's requests are not refused when it wakes up: it forwards input \
             records the successor already forwarded and commits (`duplicate-consume` or `duplicate`)."
                .to_string(),
        );
    }
    if !setup.broker.transaction_aborted_index_enable {
        why.push(
            "why (transaction.aborted.index.enable=false): read_committed fetches stop listing the aborted \
             transactions of what they return, so consumers cannot tell an aborted transaction's records from \
             committed ones and read them (`G1a`)."
                .to_string(),
        );
    }
    why
}
