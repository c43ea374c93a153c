//! Tests of the transaction coordinator core: the rules one request at a
//! time, the record format against its fixtures, and a property test that
//! drives random producers, failed appends and coordinator failovers
//! against a model of what must never happen.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::records::{TxnRecord, TxnValue};
use super::*;

// ----- a tiny driver -----

/// Runs a core the way `server::txn` does, with a log kept in memory:
/// appends are written at once and become durable (or fail) when
/// resolved; markers are "written" when the test says so.
struct Harness {
    core: TxnCoordinator,
    config: TxnConfig,
    coordinator_epoch: i32,
    now_ms: u64,
    next_producer_id: i64,
    next_waiter: Waiter,
    /// `__transaction_state` partition 0: each record and whether it is durable.
    log: Vec<(TxnRecord, bool)>,
    /// Appends written, not yet resolved: append id, index in `log`.
    inflight: VecDeque<(u64, usize)>,
    markers: VecDeque<MarkerRequest>,
    answers: BTreeMap<Waiter, Answer>,
    /// Every marker request emitted and every transaction completed, in order.
    events: Vec<Event>,
    /// Refuse this share of appends outright (out of 256).
    refuse_per_256: u8,
    rng: ChaCha8Rng,
}

impl Harness {
    fn new(config: TxnConfig, seed: u64) -> Self {
        let mut harness = Self {
            core: TxnCoordinator::new(config.clone(), 1, 1),
            config,
            coordinator_epoch: 0,
            now_ms: 1_000,
            next_producer_id: 1000,
            next_waiter: 0,
            log: Vec::new(),
            inflight: VecDeque::new(),
            markers: VecDeque::new(),
            answers: BTreeMap::new(),
            events: Vec::new(),
            refuse_per_256: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        harness.load();
        harness
    }

    fn load(&mut self) {
        self.core = TxnCoordinator::new(self.config.clone(), 1, 1);
        self.core.begin_load(0, self.coordinator_epoch);
        for (record, _) in &self.log {
            self.core.load_record(0, record.clone());
        }
        self.core.finish_load(0, self.now_ms);
        for (_, meta) in self.core.transactions() {
            if matches!(meta.state, TxnState::CompleteCommit | TxnState::CompleteAbort) {
                self.events.push(Event::Completed((meta.producer_id, meta.producer_epoch)));
            }
        }
        self.pump();
    }

    /// Carries out the core's outputs.
    fn pump(&mut self) {
        loop {
            let outputs = self.core.take_outputs();
            if outputs.is_empty() {
                return;
            }
            for output in outputs {
                match output {
                    TxnOutput::Append { partition, append_id, record } => {
                        assert_eq!(partition, 0);
                        if self.refuse_per_256 > 0 && self.rng.gen::<u8>() < self.refuse_per_256 {
                            self.core.append_done(self.now_ms, append_id, Err(TxnError::CoordinatorNotAvailable));
                        } else {
                            self.log.push((record, false));
                            self.inflight.push_back((append_id, self.log.len() - 1));
                        }
                    }
                    TxnOutput::Answer { waiter, answer } => {
                        assert!(self.answers.insert(waiter, answer).is_none(), "waiter {waiter} answered twice");
                    }
                    TxnOutput::SendMarkers(markers) => {
                        assert_eq!(markers.coordinator_epoch, self.coordinator_epoch, "markers carry the current coordinator epoch");
                        self.events.push(Event::Markers(markers.clone()));
                        self.markers.push_back(markers);
                    }
                }
            }
        }
    }

    /// Resolves the oldest append: durable (so is every record before it),
    /// or failed (it stays in the log, not durable).
    fn resolve(&mut self, durable: bool) -> bool {
        let Some((append_id, index)) = self.inflight.pop_front() else { return false };
        if durable {
            for entry in &mut self.log[..=index] {
                entry.1 = true;
            }
            if let Some(value) = &self.log[index].0.value {
                if matches!(value.state, TxnState::CompleteCommit | TxnState::CompleteAbort) {
                    self.events.push(Event::Completed((value.producer_id, value.producer_epoch)));
                }
            }
            self.core.append_done(self.now_ms, append_id, Ok(()));
        } else {
            self.core.append_done(self.now_ms, append_id, Err(TxnError::CoordinatorNotAvailable));
        }
        self.pump();
        true
    }

    fn write_markers(&mut self) -> bool {
        let Some(markers) = self.markers.pop_front() else { return false };
        self.core.markers_written(self.now_ms, &markers);
        self.pump();
        true
    }

    /// Everything durable, every marker written, until nothing is left.
    fn settle(&mut self) {
        while self.resolve(true) || self.write_markers() {}
    }

    /// The coordinator dies; a new one loads the durable records and the
    /// first `keep_tail` of the others (the new leader had them).
    fn failover(&mut self, keep_tail: usize) {
        let durable = self.log.iter().take_while(|(_, durable)| *durable).count();
        assert!(self.log[durable..].iter().all(|(_, d)| !d), "durable records are a prefix");
        self.log.truncate((durable + keep_tail).min(self.log.len()));
        self.inflight.clear();
        self.markers.clear();
        self.coordinator_epoch += 1;
        self.load();
    }

    fn tick(&mut self, advance_ms: u64) {
        self.now_ms += advance_ms;
        self.core.tick(self.now_ms);
        self.pump();
    }

    fn waiter(&mut self) -> Waiter {
        self.next_waiter += 1;
        self.next_waiter
    }

    /// Sends a request; its answer if it came by now (`None`: still waiting).
    fn call(&mut self, call: impl FnOnce(&mut TxnCoordinator, u64, Waiter, &mut dyn FnMut() -> Result<i64, TxnError>) -> Reply) -> (Waiter, Option<Answer>) {
        let waiter = self.waiter();
        let now_ms = self.now_ms;
        let next = &mut self.next_producer_id;
        let mut allocate = || {
            *next += 1;
            Ok(*next)
        };
        let reply = call(&mut self.core, now_ms, waiter, &mut allocate);
        self.pump();
        match reply {
            Reply::Now(answer) => (waiter, Some(answer)),
            Reply::Later => (waiter, self.answers.remove(&waiter)),
        }
    }

    fn init(&mut self, id: &str, given: Option<ProducerIdAndEpoch>) -> (Waiter, Option<Answer>) {
        let request = InitProducerIdRequest {
            transactional_id: id.to_string(),
            transaction_timeout_ms: 60_000,
            producer_id: given.map_or(-1, |g| g.0),
            producer_epoch: given.map_or(-1, |g| g.1),
        };
        self.call(|core, now, waiter, allocate| core.init_producer_id(now, waiter, request, allocate))
    }

    /// InitProducerId, settled: the answer.
    fn init_settled(&mut self, id: &str) -> Answer {
        let (waiter, answer) = self.init(id, None);
        self.settle();
        answer.or_else(|| self.answers.remove(&waiter)).expect("answered once settled")
    }

    fn add(&mut self, id: &str, producer: ProducerIdAndEpoch, partitions: &[(&str, i32)]) -> (Waiter, Option<Answer>) {
        let partitions: Vec<TopicPartition> = partitions.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        let id = id.to_string();
        self.call(move |core, now, waiter, _| core.add_partitions(now, waiter, &id, producer.0, producer.1, &partitions))
    }

    fn end(&mut self, id: &str, producer: ProducerIdAndEpoch, commit: bool) -> (Waiter, Option<Answer>) {
        let id = id.to_string();
        self.call(move |core, now, waiter, _| core.end_txn(now, waiter, &id, producer.0, producer.1, commit))
    }

    fn answer_settled(&mut self, (waiter, answer): (Waiter, Option<Answer>)) -> Answer {
        if let Some(answer) = answer {
            return answer;
        }
        self.settle();
        self.answers.remove(&waiter).expect("answered once settled")
    }
}

/// What the harness saw happen.
#[derive(Debug, Clone)]
enum Event {
    /// The core asked for these markers.
    Markers(MarkerRequest),
    /// The transaction of this producer id and epoch is complete (its
    /// record durable, or loaded by a new coordinator).
    Completed(ProducerIdAndEpoch),
}

impl Harness {
    fn markers_sent(&self) -> impl Iterator<Item = &MarkerRequest> {
        self.events.iter().filter_map(|e| match e {
            Event::Markers(m) => Some(m),
            Event::Completed(_) => None,
        })
    }
}

// ----- the rules, one at a time -----

#[test]
fn init_add_commit_writes_commit_markers_then_completes() {
    let mut h = Harness::new(TxnConfig::default(), 1);
    let producer = h.init_settled("t").unwrap();
    assert_eq!(producer.1, 0, "a new id starts at epoch 0");
    let added = h.add("t", producer, &[("orders", 0), ("orders", 1)]);
    assert_eq!(added.1, None, "answered only once the record is durable");
    assert_eq!(h.answer_settled(added), Ok(producer));
    assert_eq!(h.core.transaction("t").unwrap().state, TxnState::Ongoing);
    let ended = h.end("t", producer, true);
    assert!(h.resolve(true));
    assert_eq!(h.answers.remove(&ended.0), Some(Ok(producer)), "EndTxn is answered once PrepareCommit is durable");
    assert_eq!(h.core.transaction("t").unwrap().state, TxnState::PrepareCommit);
    let markers = h.markers.front().cloned().expect("markers requested");
    assert!(markers.commit);
    assert_eq!(markers.partitions.len(), 2);
    assert_eq!((markers.producer_id, markers.producer_epoch), producer);
    h.settle();
    let meta = h.core.transaction("t").unwrap();
    assert_eq!(meta.state, TxnState::CompleteCommit);
    assert!(meta.partitions.is_empty());
}

#[test]
fn a_second_init_bumps_the_epoch_and_fences_the_first() {
    let mut h = Harness::new(TxnConfig::default(), 1);
    let first = h.init_settled("t").unwrap();
    let second = h.init_settled("t").unwrap();
    assert_eq!(second, (first.0, first.1 + 1));
    assert_eq!(h.add("t", first, &[("a", 0)]).1, Some(Err(TxnError::ProducerFenced)));
    assert_eq!(h.end("t", first, true).1, Some(Err(TxnError::ProducerFenced)));
    assert_eq!(h.add("t", (first.0 + 77, second.1), &[("a", 0)]).1, Some(Err(TxnError::InvalidProducerIdMapping)));
    assert_eq!(TxnError::ProducerFenced.for_version(1, 2), TxnError::InvalidProducerEpoch);
    assert_eq!(TxnError::ProducerFenced.for_version(2, 2), TxnError::ProducerFenced);
}

#[test]
fn init_during_an_open_transaction_aborts_it_with_a_bumped_epoch() {
    let mut h = Harness::new(TxnConfig::default(), 1);
    let first = h.init_settled("t").unwrap();
    let added = h.add("t", first, &[("a", 0)]);
    h.answer_settled(added).unwrap();
    let (waiter, now) = h.init("t", None);
    assert_eq!(now, None);
    assert_eq!(h.core.visible_state("t"), Some(TxnState::PrepareEpochFence));
    assert!(h.resolve(true));
    assert_eq!(h.answers.remove(&waiter), Some(Err(TxnError::ConcurrentTransactions)));
    let markers = h.markers.front().cloned().unwrap();
    assert!(!markers.commit);
    assert_eq!(markers.producer_epoch, first.1 + 1, "the abort fences the old epoch");
    // The client retries while the markers are pending.
    assert_eq!(h.init("t", None).1, Some(Err(TxnError::ConcurrentTransactions)));
    h.settle();
    assert_eq!(h.core.transaction("t").unwrap().state, TxnState::CompleteAbort);
    assert_eq!(h.init_settled("t"), Ok((first.0, first.1 + 2)));
}

#[test]
fn end_txn_retries_and_the_other_decision() {
    let mut h = Harness::new(TxnConfig::default(), 1);
    let producer = h.init_settled("t").unwrap();
    assert_eq!(h.end("t", producer, false).1, Some(Err(TxnError::InvalidTxnState)), "nothing to end in Empty");
    let added = h.add("t", producer, &[("a", 0)]);
    h.answer_settled(added).unwrap();
    let ended = h.end("t", producer, true);
    assert_eq!(h.end("t", producer, true).1, Some(Err(TxnError::ConcurrentTransactions)), "while the record is pending");
    assert!(h.resolve(true));
    assert_eq!(h.answers.remove(&ended.0), Some(Ok(producer)));
    assert_eq!(h.end("t", producer, true).1, Some(Err(TxnError::ConcurrentTransactions)), "while the markers are pending");
    assert_eq!(h.end("t", producer, false).1, Some(Err(TxnError::InvalidTxnState)));
    assert_eq!(h.add("t", producer, &[("a", 1)]).1, Some(Err(TxnError::ConcurrentTransactions)));
    h.settle();
    assert_eq!(h.end("t", producer, true).1, Some(Ok(producer)), "a retry once complete succeeds");
    assert_eq!(h.end("t", producer, false).1, Some(Err(TxnError::InvalidTxnState)));
}

#[test]
fn a_timed_out_transaction_is_aborted_and_its_producer_fenced() {
    let mut h = Harness::new(TxnConfig::default(), 1);
    let producer = h.init_settled("t").unwrap();
    let added = h.add("t", producer, &[("a", 0)]);
    h.answer_settled(added).unwrap();
    h.tick(59_000);
    assert!(h.inflight.is_empty(), "not yet timed out");
    h.tick(11_000);
    h.settle();
    let meta = h.core.transaction("t").unwrap();
    assert_eq!((meta.state, meta.producer_epoch), (TxnState::CompleteAbort, producer.1 + 1));
    assert!(h.markers_sent().any(|m| !m.commit && m.producer_epoch == producer.1 + 1));
    assert_eq!(h.end("t", producer, true).1, Some(Err(TxnError::ProducerFenced)));
    assert_eq!(h.init("t", Some(producer)).1, Some(Err(TxnError::ProducerFenced)), "KIP-360 does not bring a timed-out epoch back");
    assert_eq!(h.init("t", Some((producer.0 + 1, 0))).1, Some(Err(TxnError::ProducerFenced)), "another producer id");
}

#[test]
fn a_failed_append_drops_the_transition() {
    let mut h = Harness::new(TxnConfig::default(), 1);
    let producer = h.init_settled("t").unwrap();
    let added = h.add("t", producer, &[("a", 0)]);
    assert!(h.resolve(false));
    assert_eq!(h.answers.remove(&added.0), Some(Err(TxnError::CoordinatorNotAvailable)));
    assert_eq!(h.core.transaction("t").unwrap().state, TxnState::Empty);
    let (waiter, _) = h.init("new", None);
    assert!(h.resolve(false));
    assert_eq!(h.answers.remove(&waiter), Some(Err(TxnError::CoordinatorNotAvailable)));
    assert!(h.core.transaction("new").is_none(), "a new id whose first record failed is not known");
}

#[test]
fn a_new_coordinator_resumes_a_prepared_transaction() {
    let mut h = Harness::new(TxnConfig::default(), 1);
    let producer = h.init_settled("t").unwrap();
    let added = h.add("t", producer, &[("a", 0), ("b", 3)]);
    h.answer_settled(added).unwrap();
    let _ = h.end("t", producer, true);
    assert!(h.resolve(true));
    h.failover(0);
    assert!(h.markers.is_empty(), "not before the loaded decision is durable again");
    assert_eq!(h.end("t", producer, true).1, Some(Err(TxnError::ConcurrentTransactions)));
    assert!(h.resolve(true));
    let markers = h.markers.front().cloned().expect("markers sent again after the load");
    assert!(markers.commit);
    assert_eq!(markers.coordinator_epoch, 1);
    assert_eq!(markers.partitions.len(), 2);
    // The old coordinator's report is stale.
    h.core.markers_written(h.now_ms, &MarkerRequest { coordinator_epoch: 0, ..markers.clone() });
    assert!(h.core.take_outputs().is_empty());
    h.settle();
    assert_eq!(h.core.transaction("t").unwrap().state, TxnState::CompleteCommit);
}

#[test]
fn unloading_answers_waiting_requests_not_coordinator() {
    let mut h = Harness::new(TxnConfig::default(), 1);
    let (waiter, _) = h.init("t", None);
    h.core.unload(0);
    h.pump();
    assert_eq!(h.answers.remove(&waiter), Some(Err(TxnError::NotCoordinator)));
    assert_eq!(h.init("t", None).1, Some(Err(TxnError::NotCoordinator)));
}

#[test]
fn without_zombie_fencing_the_epoch_stays() {
    let mut h = Harness::new(TxnConfig { fence_zombies: false, ..TxnConfig::default() }, 1);
    let first = h.init_settled("t").unwrap();
    let second = h.init_settled("t").unwrap();
    assert_eq!(first, second, "the zombie keeps a valid epoch");
    let added = h.add("t", first, &[("a", 0)]);
    assert_eq!(h.answer_settled(added), Ok(first));
}

#[test]
fn timeouts_and_bad_requests_are_refused() {
    let mut h = Harness::new(TxnConfig::default(), 1);
    let request = |timeout| InitProducerIdRequest { transactional_id: "t".into(), transaction_timeout_ms: timeout, producer_id: -1, producer_epoch: -1 };
    assert_eq!(h.call(|c, n, w, a| c.init_producer_id(n, w, request(900_001), a)).1, Some(Err(TxnError::InvalidTransactionTimeout)));
    assert_eq!(h.call(|c, n, w, a| c.init_producer_id(n, w, request(0), a)).1, Some(Err(TxnError::InvalidTransactionTimeout)));
    assert_eq!(h.add("", (1, 0), &[("a", 0)]).1, Some(Err(TxnError::InvalidRequest)));
    assert_eq!(h.add("unknown", (1, 0), &[("a", 0)]).1, Some(Err(TxnError::InvalidProducerIdMapping)));
    let producer = h.init_settled("t").unwrap();
    // KIP-360: naming an epoch the id never had is fenced.
    assert_eq!(h.init("t", Some((producer.0, producer.1 + 5))).1, Some(Err(TxnError::ProducerFenced)));
    // Naming the current one bumps; naming the previous one again is a retry.
    let bumping = h.init("t", Some(producer));
    let bumped = h.answer_settled(bumping).unwrap();
    assert_eq!(bumped, (producer.0, producer.1 + 1));
    assert_eq!(h.init("t", Some(producer)).1, Some(Ok(bumped)), "a retried InitProducerId gets the current epoch");
}

#[test]
fn verify_only_says_which_partitions_are_in_the_transaction() {
    let mut h = Harness::new(TxnConfig::default(), 1);
    let producer = h.init_settled("t").unwrap();
    let added = h.add("t", producer, &[("a", 0)]);
    h.answer_settled(added).unwrap();
    let asked = vec![("a".to_string(), 0), ("a".to_string(), 1)];
    let verified = h.core.verify_partitions("t", producer.0, producer.1, &asked).unwrap();
    assert_eq!(verified, vec![(asked[0].clone(), Ok(())), (asked[1].clone(), Err(TxnError::InvalidTxnState))]);
    assert_eq!(h.core.verify_partitions("t", producer.0, producer.1 + 1, &asked), Err(TxnError::ProducerFenced));
}

#[test]
fn add_offsets_adds_the_groups_offsets_partition() {
    let mut h = Harness::new(TxnConfig::default(), 1);
    let producer = h.init_settled("t").unwrap();
    let waiter = h.waiter();
    assert_eq!(h.core.add_offsets(h.now_ms, waiter, "t", producer.0, producer.1, "g"), Reply::Later);
    h.pump();
    h.settle();
    assert_eq!(h.answers.remove(&waiter), Some(Ok(producer)));
    let expected = (crate::server::OFFSETS_TOPIC.to_string(), 0);
    assert!(h.core.transaction("t").unwrap().partitions.contains(&expected));
}

#[test]
fn complete_ids_expire_after_the_expiration_time() {
    let mut h = Harness::new(TxnConfig { transactional_id_expiration_ms: 100_000, ..TxnConfig::default() }, 1);
    h.init_settled("t").unwrap();
    h.tick(50_000);
    h.settle();
    assert!(h.core.transaction("t").is_some());
    h.tick(60_000);
    h.settle();
    assert!(h.core.transaction("t").is_none());
    assert_eq!(h.log.last().map(|(r, _)| r.value.is_none()), Some(true), "a tombstone is written");
    h.failover(0);
    assert!(h.core.transaction("t").is_none(), "the tombstone survives a reload");
}

#[test]
fn an_exhausted_epoch_gets_a_new_producer_id() {
    let mut h = Harness::new(TxnConfig::default(), 1);
    let first = h.init_settled("t").unwrap();
    // Put the id at the epoch limit through its log, as a long-lived producer would.
    let (record, _) = h.log.last().cloned().unwrap();
    let mut value = record.value.clone().unwrap();
    value.producer_epoch = PRODUCER_EPOCH_EXHAUSTED;
    h.log.push((TxnRecord { transactional_id: "t".into(), value: Some(value) }, true));
    h.failover(0);
    let next = h.init_settled("t").unwrap();
    assert_ne!(next.0, first.0);
    assert_eq!(next.1, 0);
}

// ----- the record format -----

fn fixture_record() -> TxnRecord {
    TxnRecord {
        transactional_id: "txn-a".into(),
        value: Some(TxnValue {
            producer_id: 4001,
            producer_epoch: 7,
            transaction_timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [("orders".to_string(), 0), ("orders".to_string(), 2), ("payments".to_string(), 1)].into_iter().collect(),
            last_update_timestamp_ms: 1_700_000_000_500,
            start_timestamp_ms: 1_700_000_000_000,
        }),
    }
}

/// `v0/transaction-state.key` and `.value`; with `DLOG_WRITE_FIXTURES=1`
/// the test writes them (once, per new version).
#[test]
fn record_fixture_decodes_and_encodes_to_the_same_bytes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transaction-state/v0");
    let record = fixture_record();
    let (key, value) = record.encode();
    let value = value.expect("the fixture has a value");
    if std::env::var_os("DLOG_WRITE_FIXTURES").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("transaction-state.key"), &key).unwrap();
        std::fs::write(dir.join("transaction-state.value"), &value).unwrap();
    }
    let stored_key = std::fs::read(dir.join("transaction-state.key")).unwrap();
    let stored_value = std::fs::read(dir.join("transaction-state.value")).unwrap();
    assert_eq!(TxnRecord::decode(Some(&stored_key), Some(&stored_value)).unwrap(), record);
    assert_eq!((&key, &value), (&stored_key, &stored_value), "encoding changed; a new version needs a new fixture");
    // The byte table's fixed offsets.
    assert_eq!(&stored_value[0..2], &0i16.to_be_bytes());
    assert_eq!(&stored_value[2..10], &4001i64.to_be_bytes());
    assert_eq!(stored_value[16], 1, "status Ongoing");
}

#[test]
fn tombstones_empty_partitions_and_garbage_decode() {
    let (key, _) = fixture_record().encode();
    assert_eq!(TxnRecord::decode(Some(&key), None).unwrap(), TxnRecord { transactional_id: "txn-a".into(), value: None });
    let mut empty = fixture_record();
    empty.value.as_mut().unwrap().partitions.clear();
    empty.value.as_mut().unwrap().state = TxnState::CompleteCommit;
    let (key, value) = empty.encode();
    assert_eq!(&value.as_ref().unwrap()[17..21], &(-1i32).to_be_bytes(), "no partitions: a null array, as Kafka writes it");
    assert_eq!(TxnRecord::decode(Some(&key), value.as_deref()).unwrap(), empty);
    assert!(TxnRecord::decode(Some(&[0, 1, 0, 0]), None).is_err(), "unknown key version");
    assert!(TxnRecord::decode(None, None).is_err());
}

proptest! {
    /// Whatever bytes a record holds, decoding returns, never panics.
    #[test]
    fn decoding_arbitrary_records_never_panics(key in proptest::collection::vec(any::<u8>(), 0..64), value in proptest::collection::vec(any::<u8>(), 0..96)) {
        let _ = TxnRecord::decode(Some(&key), Some(&value));
        let mut prefixed = fixture_record().encode().1.unwrap();
        prefixed.truncate(value.len().min(prefixed.len()));
        let _ = TxnRecord::decode(Some(&key), Some(&prefixed));
    }
}

// ----- the property test: random producers, failed appends, failovers -----

const IDS: [&str; 2] = ["t0", "t1"];

#[derive(Debug, Clone)]
enum Action {
    /// Producer i initialises (naming its producer id and epoch, KIP-360, or not).
    Init(usize, bool),
    /// Producer i adds partition p (with an epoch before its current one if `stale`).
    Add(usize, i32, bool),
    /// Producer i ends its transaction.
    End(usize, bool, bool),
    /// The oldest append becomes durable, or fails.
    Resolve(bool),
    /// The oldest marker request is written everywhere.
    Markers,
    /// Time passes.
    Tick(u64),
    /// The coordinator fails over, the new one keeping this many records
    /// beyond the durable ones.
    Failover(usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => (0..2usize, any::<bool>()).prop_map(|(i, k)| Action::Init(i, k)),
        4 => (0..2usize, 0..3i32, prop::bool::weighted(0.15)).prop_map(|(i, p, s)| Action::Add(i, p, s)),
        3 => (0..2usize, any::<bool>(), prop::bool::weighted(0.15)).prop_map(|(i, c, s)| Action::End(i, c, s)),
        6 => prop::bool::weighted(0.8).prop_map(Action::Resolve),
        3 => Just(Action::Markers),
        1 => (0..40_000u64).prop_map(Action::Tick),
        1 => (0..3usize).prop_map(Action::Failover),
    ]
}

/// What the test knows and checks.
#[derive(Default)]
struct Model {
    /// Per producer: the producer id and epoch its last InitProducerId got.
    producers: [Option<ProducerIdAndEpoch>; 2],
    /// Requests still waiting: waiter → (producer, what, the producer id and epoch used).
    waiting: BTreeMap<Waiter, (usize, &'static str, ProducerIdAndEpoch, bool)>,
    /// The decision and partitions of the transaction of each producer id
    /// and epoch whose markers were asked for and which is not complete yet.
    decided: BTreeMap<ProducerIdAndEpoch, (bool, BTreeSet<TopicPartition>)>,
    events_checked: usize,
}

impl Model {
    fn check_markers(&mut self, h: &Harness) -> Result<(), TestCaseError> {
        for event in &h.events[self.events_checked..] {
            match event {
                Event::Completed(key) => {
                    self.decided.remove(key);
                }
                Event::Markers(markers) => {
                    let key = (markers.producer_id, markers.producer_epoch);
                    match self.decided.get(&key) {
                        Some((commit, partitions)) => {
                            prop_assert_eq!(*commit, markers.commit, "markers of {:?} disagree about the decision", key);
                            prop_assert_eq!(partitions, &markers.partitions, "markers of {:?} disagree about the partitions", key);
                        }
                        None => {
                            self.decided.insert(key, (markers.commit, markers.partitions.clone()));
                        }
                    }
                }
            }
        }
        self.events_checked = h.events.len();
        Ok(())
    }

    fn answered(&mut self, producer: usize, what: &str, used: ProducerIdAndEpoch, commit: bool, answer: Answer) -> Result<(), TestCaseError> {
        match (what, answer) {
            ("init", Ok(got)) => {
                if let Some(previous) = self.producers[producer] {
                    prop_assert!(got >= previous, "epochs only grow: {:?} after {:?}", got, previous);
                }
                self.producers[producer] = Some(got);
            }
            ("end", Ok(_)) => {
                // Answered once the decision is durable, so its markers were
                // asked for (unless it was a retry of a complete one).
                if let Some((decision, _)) = self.decided.get(&used) {
                    prop_assert_eq!(*decision, commit, "EndTxn answered for a transaction decided otherwise");
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn run(actions: Vec<Action>, seed: u64, fence_zombies: bool, refuse: bool) -> Result<(), TestCaseError> {
    let config = TxnConfig { fence_zombies, abort_timed_out_cleanup_interval_ms: 1_000, transactional_id_expiration_ms: 120_000, ..TxnConfig::default() };
    let mut h = Harness::new(config, seed);
    h.refuse_per_256 = if refuse { 24 } else { 0 };
    let mut model = Model::default();
    for action in actions {
        match action {
            Action::Init(i, kip360) => {
                let given = if kip360 { model.producers[i] } else { None };
                let (waiter, answer) = h.init(IDS[i], given);
                model.waiting.insert(waiter, (i, "init", (-1, -1), false));
                if let Some(answer) = answer {
                    h.answers.insert(waiter, answer);
                }
            }
            Action::Add(i, _, true) | Action::End(i, true, _) if model.producers[i].is_some_and(|p| p.1 > 0) => {
                let (producer_id, epoch) = model.producers[i].unwrap();
                let used = (producer_id, epoch - 1);
                let (_, answer) = if matches!(action, Action::Add(..)) { h.add(IDS[i], used, &[("p", 0)]) } else { h.end(IDS[i], used, true) };
                prop_assert!(
                    matches!(answer, Some(Err(TxnError::ProducerFenced | TxnError::InvalidProducerIdMapping))),
                    "a fenced epoch is refused at once, got {:?}",
                    answer
                );
            }
            Action::Add(i, partition, _) => {
                let Some(used) = model.producers[i] else { continue };
                let (waiter, answer) = h.add(IDS[i], used, &[("p", partition)]);
                model.waiting.insert(waiter, (i, "add", used, false));
                if let Some(answer) = answer {
                    h.answers.insert(waiter, answer);
                }
            }
            Action::End(i, _, commit) => {
                let Some(used) = model.producers[i] else { continue };
                let (waiter, answer) = h.end(IDS[i], used, commit);
                model.waiting.insert(waiter, (i, "end", used, commit));
                if let Some(answer) = answer {
                    h.answers.insert(waiter, answer);
                }
            }
            Action::Resolve(durable) => {
                h.resolve(durable);
            }
            Action::Markers => {
                h.write_markers();
            }
            Action::Tick(ms) => h.tick(ms),
            Action::Failover(keep_tail) => {
                h.failover(keep_tail);
                // Requests waiting on the dead coordinator never hear back.
                let waiting: Vec<Waiter> = model.waiting.keys().copied().filter(|w| !h.answers.contains_key(w)).collect();
                for waiter in waiting {
                    model.waiting.remove(&waiter);
                }
            }
        }
        model.check_markers(&h)?;
        for (waiter, answer) in std::mem::take(&mut h.answers) {
            if let Some((producer, what, used, commit)) = model.waiting.remove(&waiter) {
                model.answered(producer, what, used, commit, answer)?;
            }
        }
    }
    // Heal: everything durable, every marker written (a failed rewrite of
    // a loaded decision is retried on a tick); nothing stays prepared.
    h.refuse_per_256 = 0;
    h.settle();
    h.tick(0);
    h.settle();
    model.check_markers(&h)?;
    for id in IDS {
        if let Some(meta) = h.core.transaction(id) {
            prop_assert!(!meta.state.is_prepared(), "{} stays {:?} after healing", id, meta.state);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Every transaction ends committed everywhere or aborted everywhere
    /// (markers of one producer id and epoch never disagree, across
    /// failovers that lose the non-durable tail), epochs only grow, and a
    /// fenced epoch is refused.
    #[test]
    fn transactions_end_one_way_everywhere(
        actions in proptest::collection::vec(action(), 1..80),
        seed in any::<u64>(),
        fence_zombies in prop::bool::weighted(0.8),
        refuse in any::<bool>(),
    ) {
        run(actions, seed, fence_zombies, refuse)?;
    }
}
