//! Property tests of the producer-state core (`broker::producer_state`)
//! against a simple model.
//!
//! Goal: a partition that follows the core's answers holds each producer's
//! batches exactly once and in order, answers a retry with the original
//! offsets, and can forget its state at any time: the state rebuilt from
//! the log equals the live one.
//!
//! Method: random operations by a few producers (new batches, retries of
//! any of their last eight batches, gaps, epoch bumps, zombies of an older
//! epoch, unknown ids, plain batches without a producer id, time passing
//! past `producer.id.expiration.ms`, the log start moving forward), and
//! transactions: a producer begins one (its batches are then
//! transactional), a coordinator ends it with a commit or abort marker
//! (sometimes with a bumped producer epoch, sometimes from a stale
//! coordinator or a zombie epoch), a producer sends a plain batch inside
//! its transaction, and the partition restarts (its state rebuilt from the
//! log). Each batch goes through `check_append` and each marker through
//! `check_marker`; the answer must be the model's. The model keeps every
//! batch a producer appended in its current epoch (not a window of five)
//! and decides from that history; it tracks open transactions, coordinator
//! epochs and aborted transactions itself. After every operation the state
//! rebuilt from the log (with the same `now_ms`) must equal the live state,
//! and the live first unstable offset and aborted list must be the model's.
//! The log start only moves to a batch boundary outside every transaction
//! (see the module docs of `producer_state` for why).
//! `PROPTEST_CASES=5000` for a longer search.

use std::collections::BTreeMap;

use broker::producer_state::{
    last_sequence, next_sequence, AbortedTxn, AppendCheck, LoggedBatch, ProducerBatch, ProducerStateConfig, ProducerStateError, ProducerStateManager, TxnMarker,
    BATCHES_RETAINED, NO_COORDINATOR_EPOCH,
};
use broker::storage::ControlMarker;
use broker::storage::BatchHeader;
use proptest::prelude::*;

const EXPIRATION_MS: u64 = 1_000;
const TRANSACTIONAL: i16 = 1 << 4;
const CONTROL: i16 = 1 << 5;
const PRODUCERS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Send { producer: usize, count: i32 },
    Retry { producer: usize, back: usize },
    Gap { producer: usize, skip: i32 },
    BumpEpoch { producer: usize },
    Zombie { producer: usize },
    Unknown { first_seq: i32 },
    Plain { count: i32 },
    Advance { ms: u64 },
    TruncateHead { permille: u32 },
    BeginTxn { producer: usize },
    EndTxn { producer: usize, commit: bool, bump_epoch: bool, coordinator: CoordinatorMove },
    ZombieMarker { producer: usize },
    PlainInTxn { producer: usize },
    Restart,
}

/// Which coordinator epoch an end-of-transaction marker carries.
#[derive(Debug, Clone, Copy)]
enum CoordinatorMove {
    Same,
    /// A new coordinator took over.
    Newer,
    /// A coordinator that lost its partition (fenced).
    Stale,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..PRODUCERS, 1..5i32).prop_map(|(producer, count)| Op::Send { producer, count }),
        3 => (0..PRODUCERS, 0..8usize).prop_map(|(producer, back)| Op::Retry { producer, back }),
        1 => (0..PRODUCERS, 1..4i32).prop_map(|(producer, skip)| Op::Gap { producer, skip }),
        1 => (0..PRODUCERS).prop_map(|producer| Op::BumpEpoch { producer }),
        1 => (0..PRODUCERS).prop_map(|producer| Op::Zombie { producer }),
        1 => (1..10i32).prop_map(|first_seq| Op::Unknown { first_seq }),
        1 => (1..4i32).prop_map(|count| Op::Plain { count }),
        1 => (0..700u64).prop_map(|ms| Op::Advance { ms }),
        1 => (0..1000u32).prop_map(|permille| Op::TruncateHead { permille }),
        2 => (0..PRODUCERS).prop_map(|producer| Op::BeginTxn { producer }),
        2 => (0..PRODUCERS, any::<bool>(), proptest::bool::weighted(0.2), prop_oneof![4 => Just(CoordinatorMove::Same), 1 => Just(CoordinatorMove::Newer), 1 => Just(CoordinatorMove::Stale)])
            .prop_map(|(producer, commit, bump_epoch, coordinator)| Op::EndTxn { producer, commit, bump_epoch, coordinator }),
        1 => (0..PRODUCERS).prop_map(|producer| Op::ZombieMarker { producer }),
        1 => (0..PRODUCERS).prop_map(|producer| Op::PlainInTxn { producer }),
        1 => Just(Op::Restart),
    ]
}

/// What a producer client knows of itself.
#[derive(Debug, Clone, Default)]
struct Client {
    epoch: i16,
    next_seq: i32,
    /// Every batch it sent, as `(epoch, first_seq, count, transactional)`.
    sent: Vec<(i16, i32, i32, bool)>,
    /// Inside a transaction: its batches are transactional.
    in_txn: bool,
}

/// The model's memory of one producer: all batches of its current epoch.
#[derive(Debug, Clone)]
struct ModelProducer {
    epoch: i16,
    /// `(first_seq, last_seq, base_offset, last_offset)`, oldest first.
    run: Vec<(i32, i32, i64, i64)>,
    last_timestamp_ms: i64,
    txn_first: Option<i64>,
    coordinator_epoch: i32,
    coordinator_epoch_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Default)]
struct Model {
    producers: BTreeMap<i64, ModelProducer>,
    aborted: Vec<AbortedTxn>,
    /// Every transaction's `(first_offset, marker offset or None if open)`.
    txns: Vec<(i64, Option<i64>)>,
}

impl Model {
    fn decide(&self, pid: i64, epoch: i16, first: i32, last: i32, transactional: bool) -> Result<AppendCheck, ProducerStateError> {
        let Some(p) = self.producers.get(&pid) else {
            return if first == 0 { Ok(AppendCheck::Append) } else { Err(ProducerStateError::UnknownProducerId { producer_id: pid, first_seq: first }) };
        };
        if epoch < p.epoch {
            return Err(ProducerStateError::InvalidProducerEpoch { producer_id: pid, epoch, current_epoch: p.epoch });
        }
        if epoch > p.epoch {
            if first != 0 {
                return Err(ProducerStateError::OutOfOrderSequence { producer_id: pid, epoch, first_seq: first, expected_seq: 0 });
            }
        } else {
            let window = &p.run[p.run.len().saturating_sub(BATCHES_RETAINED)..];
            if let Some(&(_, _, base, last_offset)) = window.iter().find(|b| b.0 == first && b.1 == last) {
                return Ok(AppendCheck::Duplicate { base_offset: base, last_offset });
            }
            let expected = p.run.last().map_or(0, |b| next_sequence(b.1));
            if first != expected {
                return Err(ProducerStateError::OutOfOrderSequence { producer_id: pid, epoch, first_seq: first, expected_seq: expected });
            }
        }
        match p.txn_first {
            Some(first_offset) if !transactional => Err(ProducerStateError::InvalidTxnState { producer_id: pid, first_offset }),
            _ => Ok(AppendCheck::Append),
        }
    }

    fn fresh(epoch: i16) -> ModelProducer {
        ModelProducer {
            epoch,
            run: Vec::new(),
            last_timestamp_ms: 0,
            txn_first: None,
            coordinator_epoch: NO_COORDINATOR_EPOCH,
            coordinator_epoch_offset: -1,
            last_offset: -1,
        }
    }

    fn append(&mut self, b: &ProducerBatch) {
        let p = self.producers.entry(b.producer_id).or_insert_with(|| Self::fresh(b.producer_epoch));
        if p.epoch != b.producer_epoch {
            p.epoch = b.producer_epoch;
            p.run.clear();
        }
        p.run.push((b.first_seq, b.last_seq, b.base_offset, b.last_offset));
        p.last_timestamp_ms = b.max_timestamp_ms;
        p.last_offset = b.last_offset;
        if b.transactional && p.txn_first.is_none() {
            p.txn_first = Some(b.base_offset);
            self.txns.push((b.base_offset, None));
        }
    }

    fn decide_marker(&self, pid: i64, epoch: i16, coordinator_epoch: i32) -> Result<(), ProducerStateError> {
        let Some(p) = self.producers.get(&pid) else { return Ok(()) };
        if epoch < p.epoch {
            return Err(ProducerStateError::InvalidProducerEpoch { producer_id: pid, epoch, current_epoch: p.epoch });
        }
        if coordinator_epoch < p.coordinator_epoch {
            return Err(ProducerStateError::TransactionCoordinatorFenced {
                producer_id: pid,
                coordinator_epoch,
                current_coordinator_epoch: p.coordinator_epoch,
            });
        }
        Ok(())
    }

    fn first_unstable(&self) -> Option<i64> {
        self.producers.values().filter_map(|p| p.txn_first).min()
    }

    fn end_txn(&mut self, m: &TxnMarker) {
        let p = self.producers.entry(m.producer_id).or_insert_with(|| Self::fresh(m.producer_epoch));
        let ended = p.txn_first.take();
        if p.epoch != m.producer_epoch {
            p.epoch = m.producer_epoch;
            p.run.clear();
        }
        p.coordinator_epoch = m.coordinator_epoch;
        p.coordinator_epoch_offset = m.offset;
        p.last_timestamp_ms = m.timestamp_ms;
        p.last_offset = m.offset;
        if let Some(first_offset) = ended {
            let txn = self.txns.iter_mut().find(|t| t.0 == first_offset && t.1.is_none()).expect("the open transaction");
            txn.1 = Some(m.offset);
            if !m.commit {
                let last_stable_offset = self.first_unstable().unwrap_or(m.offset + 1);
                self.aborted.push(AbortedTxn { producer_id: m.producer_id, first_offset, last_offset: m.offset, last_stable_offset });
            }
        }
    }
}

struct World {
    live: ProducerStateManager,
    model: Model,
    clients: Vec<Client>,
    log: Vec<LoggedBatch>,
    /// The transaction coordinator's current epoch.
    coordinator_epoch: i32,
    log_start: i64,
    log_end: i64,
    now_ms: u64,
    next_unknown_pid: i64,
}

fn config() -> ProducerStateConfig {
    ProducerStateConfig { producer_id_expiration_ms: EXPIRATION_MS, expiration_check_interval_ms: 0 }
}

fn header(pid: i64, epoch: i16, first_seq: i32, count: i32, base_offset: i64, timestamp_ms: i64) -> BatchHeader {
    BatchHeader {
        base_offset,
        batch_length: 100,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: count - 1,
        base_timestamp: timestamp_ms,
        max_timestamp: timestamp_ms,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: first_seq,
        records_count: count,
    }
}

impl World {
    fn new() -> Self {
        World {
            live: ProducerStateManager::new(config()),
            model: Model::default(),
            clients: vec![Client::default(); PRODUCERS],
            log: Vec::new(),
            coordinator_epoch: 0,
            log_start: 0,
            log_end: 0,
            now_ms: 0,
            next_unknown_pid: 100,
        }
    }

    /// Offers a producer's batch the way the partition does; returns the decision.
    fn offer(&mut self, pid: i64, epoch: i16, first_seq: i32, count: i32, transactional: bool) -> Result<AppendCheck, ProducerStateError> {
        let last_seq = last_sequence(first_seq, count - 1);
        let decision = self.live.check_append(pid, epoch, first_seq, last_seq, transactional);
        let expected = self.model.decide(pid, epoch, first_seq, last_seq, transactional);
        assert_eq!(decision, expected, "pid {pid} epoch {epoch} seq {first_seq}..={last_seq}");
        match decision {
            Ok(AppendCheck::Append) => {
                let mut h = header(pid, epoch, first_seq, count, self.log_end, self.now_ms as i64);
                if transactional {
                    h.attributes |= TRANSACTIONAL;
                }
                let batch = ProducerBatch::from_header(&h).unwrap();
                assert_eq!(batch.transactional, transactional);
                self.live.record_append(&batch);
                self.model.append(&batch);
                self.log.push(LoggedBatch { header: h, marker: None });
                self.log_end += i64::from(count);
            }
            Ok(AppendCheck::Duplicate { base_offset, last_offset }) => {
                let original = &self.log.iter().find(|b| b.header.base_offset == base_offset).expect("the original is in the log").header;
                assert_eq!((original.producer_id, original.producer_epoch, original.base_sequence), (pid, epoch, first_seq));
                assert_eq!(original.last_offset(), last_offset);
                assert!(base_offset >= self.log_start, "a duplicate points into the log");
            }
            Err(_) => {}
        }
        decision
    }

    /// Offers a coordinator's marker the way the partition does.
    fn offer_marker(&mut self, pid: i64, epoch: i16, commit: bool, coordinator_epoch: i32) -> Result<(), ProducerStateError> {
        let decision = self.live.check_marker(pid, epoch, coordinator_epoch);
        assert_eq!(decision, self.model.decide_marker(pid, epoch, coordinator_epoch), "marker of pid {pid} epoch {epoch} coordinator epoch {coordinator_epoch}");
        if decision.is_ok() {
            let mut h = header(pid, epoch, -1, 1, self.log_end, self.now_ms as i64);
            h.attributes |= TRANSACTIONAL | CONTROL;
            let control = ControlMarker { commit, coordinator_epoch };
            let marker = TxnMarker::from_header(&h, control).unwrap();
            let completed = self.live.record_marker(&marker);
            let was_open = self.model.producers.get(&pid).and_then(|p| p.txn_first);
            assert_eq!(completed.map(|t| t.first_offset), was_open, "the marker ends the open transaction");
            self.model.end_txn(&marker);
            self.log.push(LoggedBatch { header: h, marker: Some(control) });
            self.log_end += 1;
        }
        decision
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Send { producer, count } => {
                let c = self.clients[producer].clone();
                let outcome = self.offer(producer as i64, c.epoch, c.next_seq, count, c.in_txn);
                let client = &mut self.clients[producer];
                client.sent.push((c.epoch, c.next_seq, count, c.in_txn));
                match outcome {
                    Ok(_) => client.next_seq = next_sequence(last_sequence(c.next_seq, count - 1)),
                    // Its state expired or was deleted: bump the epoch (KIP-360).
                    Err(ProducerStateError::UnknownProducerId { .. } | ProducerStateError::OutOfOrderSequence { .. }) => {
                        client.epoch += 1;
                        client.next_seq = 0;
                    }
                    // A late retry of a transactional batch reopened a
                    // transaction the client knows nothing of (the hazard
                    // KIP-890 closes); it waits for a marker.
                    Err(ProducerStateError::InvalidTxnState { .. }) => {}
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            Op::Retry { producer, back } => {
                let sent = &self.clients[producer].sent;
                if let Some(&(epoch, first, count, transactional)) = sent.iter().rev().nth(back) {
                    let _ = self.offer(producer as i64, epoch, first, count, transactional);
                }
            }
            Op::Gap { producer, skip } => {
                let c = self.clients[producer].clone();
                let _ = self.offer(producer as i64, c.epoch, c.next_seq + skip, 1, c.in_txn);
            }
            Op::BumpEpoch { producer } => {
                let client = &mut self.clients[producer];
                client.epoch += 1;
                client.next_seq = 0;
            }
            Op::Zombie { producer } => {
                let c = self.clients[producer].clone();
                if c.epoch > 0 {
                    let _ = self.offer(producer as i64, c.epoch - 1, c.next_seq, 1, c.in_txn);
                }
            }
            Op::Unknown { first_seq } => {
                let pid = self.next_unknown_pid;
                self.next_unknown_pid += 1;
                let outcome = self.offer(pid, 0, first_seq, 1, false);
                assert!(matches!(outcome, Err(ProducerStateError::UnknownProducerId { .. })));
            }
            Op::Plain { count } => {
                self.log.push(LoggedBatch { header: header(-1, -1, -1, count, self.log_end, self.now_ms as i64), marker: None });
                self.log_end += i64::from(count);
            }
            Op::Advance { ms } => {
                self.now_ms += ms;
                self.live.tick(self.now_ms);
                let now = self.now_ms as i64;
                self.model.producers.retain(|_, p| p.txn_first.is_some() || now - p.last_timestamp_ms < EXPIRATION_MS as i64);
            }
            Op::TruncateHead { permille } => {
                // Retention cuts at a batch boundary.
                let target = self.log_start + (self.log_end - self.log_start) * i64::from(permille) / 1000;
                // ... and never inside a transaction.
                let inside = |offset: i64| self.model.txns.iter().any(|&(first, end)| first < offset && end.is_none_or(|end| offset <= end));
                let Some(cut) = self.log.iter().map(|b| b.header.base_offset).filter(|&b| b >= self.log_start && b <= target && !inside(b)).max() else { return };
                self.log_start = cut;
                self.live.truncate_head(cut);
                for p in self.model.producers.values_mut() {
                    p.run.retain(|b| b.3 >= cut);
                    if p.coordinator_epoch_offset < cut {
                        p.coordinator_epoch = NO_COORDINATOR_EPOCH;
                        p.coordinator_epoch_offset = -1;
                    }
                }
                self.model.producers.retain(|_, p| p.last_offset >= cut);
                self.model.aborted.retain(|a| a.last_offset >= cut);
            }
            Op::BeginTxn { producer } => self.clients[producer].in_txn = true,
            Op::EndTxn { producer, commit, bump_epoch, coordinator } => {
                let coordinator_epoch = match coordinator {
                    CoordinatorMove::Same => self.coordinator_epoch,
                    CoordinatorMove::Newer => {
                        self.coordinator_epoch += 1;
                        self.coordinator_epoch
                    }
                    CoordinatorMove::Stale => self.coordinator_epoch - 1,
                };
                let c = self.clients[producer].clone();
                // An abort on timeout bumps the epoch (KIP-360 and KIP-588).
                let epoch = if bump_epoch { c.epoch + 1 } else { c.epoch };
                let outcome = self.offer_marker(producer as i64, epoch, commit, coordinator_epoch);
                match outcome {
                    Ok(()) => {
                        let client = &mut self.clients[producer];
                        client.in_txn = false;
                        if bump_epoch {
                            client.epoch = epoch;
                            client.next_seq = 0;
                        }
                    }
                    Err(ProducerStateError::TransactionCoordinatorFenced { .. }) => assert!(matches!(coordinator, CoordinatorMove::Stale)),
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            Op::ZombieMarker { producer } => {
                let c = self.clients[producer].clone();
                if c.epoch > 0 {
                    let known_epoch = self.model.producers.get(&(producer as i64)).map(|p| p.epoch);
                    let outcome = self.offer_marker(producer as i64, c.epoch - 1, false, self.coordinator_epoch);
                    if known_epoch.is_some_and(|epoch| epoch > c.epoch - 1) {
                        assert!(outcome.is_err(), "a zombie epoch's marker is fenced");
                    }
                }
            }
            Op::PlainInTxn { producer } => {
                let c = self.clients[producer].clone();
                let _ = self.offer(producer as i64, c.epoch, c.next_seq, 1, false);
            }
            Op::Restart => {
                let mut rebuilt = ProducerStateManager::rebuild(config(), self.log.iter(), self.log_start);
                rebuilt.tick(self.now_ms);
                self.live = rebuilt;
            }
        }
    }

    fn check_rebuild(&self) {
        let mut rebuilt = ProducerStateManager::rebuild(config(), self.log.iter(), self.log_start);
        rebuilt.tick(self.now_ms);
        assert_eq!(rebuilt.producers(), self.live.producers(), "state rebuilt from the log differs from the live state");
        assert_eq!(rebuilt.aborted().collect::<Vec<_>>(), self.live.aborted().collect::<Vec<_>>(), "rebuilt and live aborted lists differ");
        assert_eq!(self.live.first_unstable_offset(), self.model.first_unstable(), "live and model first unstable offsets differ");
        assert_eq!(self.live.aborted().copied().collect::<Vec<_>>(), self.model.aborted, "live and model aborted lists differ");
        let high_watermark = self.log_end;
        assert!(self.live.last_stable_offset(high_watermark) <= high_watermark);
        assert_eq!(
            self.live.producers().keys().collect::<Vec<_>>(),
            self.model.producers.keys().collect::<Vec<_>>(),
            "live and model know different producers"
        );
    }

    /// Exactly once, in order: within an epoch no sequence is appended twice
    /// and each batch follows the previous one.
    fn check_log(&self) {
        let mut last: BTreeMap<(i64, i16), i32> = BTreeMap::new();
        for h in self.log.iter().map(|b| &b.header).filter(|h| h.producer_id >= 0 && !h.is_control()) {
            let key = (h.producer_id, h.producer_epoch);
            let seq_end = last_sequence(h.base_sequence, h.last_offset_delta);
            if let Some(&prev) = last.get(&key) {
                // Expiry lets a producer start over at 0 in the same epoch.
                assert!(h.base_sequence == next_sequence(prev) || h.base_sequence == 0, "pid {} epoch {}: {} after {prev}", key.0, key.1, h.base_sequence);
            } else {
                assert_eq!(h.base_sequence, 0, "pid {} epoch {} starts at 0", key.0, key.1);
            }
            last.insert(key, seq_end);
        }
    }
}

fn proptest_cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: proptest_cases(), ..ProptestConfig::default() })]

    #[test]
    fn core_agrees_with_the_model_and_rebuilds_from_the_log(ops in proptest::collection::vec(op(), 1..120)) {
        let mut world = World::new();
        for op in &ops {
            world.step(op);
            world.check_rebuild();
        }
        world.check_log();
    }
}

/// Retrying each of the last five batches in any order never appends.
#[test]
fn every_retry_of_the_last_five_is_a_duplicate() {
    let mut world = World::new();
    for _ in 0..9 {
        world.step(&Op::Send { producer: 0, count: 2 });
    }
    let end = world.log_end;
    for back in [4, 0, 2, 1, 3, 0] {
        world.step(&Op::Retry { producer: 0, back });
    }
    assert_eq!(world.log_end, end);
    world.check_rebuild();
}
