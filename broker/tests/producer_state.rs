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
//! past `producer.id.expiration.ms`, the log start moving forward). Each
//! batch goes through `check_append`; the answer must be the model's. The
//! model keeps every batch a producer appended in its current epoch (not a
//! window of five) and decides from that history. After every operation
//! the state rebuilt from the log (with the same `now_ms`) must equal the
//! live state. `PROPTEST_CASES=5000` for a longer search.

use std::collections::BTreeMap;

use broker::producer_state::{
    last_sequence, next_sequence, AppendCheck, ProducerBatch, ProducerStateConfig, ProducerStateError, ProducerStateManager, BATCHES_RETAINED,
};
use broker::storage::BatchHeader;
use proptest::prelude::*;

const EXPIRATION_MS: u64 = 1_000;
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
    ]
}

/// What a producer client knows of itself.
#[derive(Debug, Clone, Default)]
struct Client {
    epoch: i16,
    next_seq: i32,
    /// Every batch it sent, as `(epoch, first_seq, count)`.
    sent: Vec<(i16, i32, i32)>,
}

/// The model's memory of one producer: all batches of its current epoch.
#[derive(Debug, Clone)]
struct ModelProducer {
    epoch: i16,
    /// `(first_seq, last_seq, base_offset, last_offset)`, oldest first.
    run: Vec<(i32, i32, i64, i64)>,
    last_timestamp_ms: i64,
}

#[derive(Debug, Default)]
struct Model {
    producers: BTreeMap<i64, ModelProducer>,
}

impl Model {
    fn decide(&self, pid: i64, epoch: i16, first: i32, last: i32) -> Result<AppendCheck, ProducerStateError> {
        let Some(p) = self.producers.get(&pid) else {
            return if first == 0 { Ok(AppendCheck::Append) } else { Err(ProducerStateError::UnknownProducerId { producer_id: pid, first_seq: first }) };
        };
        if epoch < p.epoch {
            return Err(ProducerStateError::InvalidProducerEpoch { producer_id: pid, epoch, current_epoch: p.epoch });
        }
        if epoch > p.epoch {
            return if first == 0 {
                Ok(AppendCheck::Append)
            } else {
                Err(ProducerStateError::OutOfOrderSequence { producer_id: pid, epoch, first_seq: first, expected_seq: 0 })
            };
        }
        let window = &p.run[p.run.len().saturating_sub(BATCHES_RETAINED)..];
        if let Some(&(_, _, base, last_offset)) = window.iter().find(|b| b.0 == first && b.1 == last) {
            return Ok(AppendCheck::Duplicate { base_offset: base, last_offset });
        }
        let expected = next_sequence(p.run.last().unwrap().1);
        if first == expected {
            Ok(AppendCheck::Append)
        } else {
            Err(ProducerStateError::OutOfOrderSequence { producer_id: pid, epoch, first_seq: first, expected_seq: expected })
        }
    }

    fn append(&mut self, b: &ProducerBatch) {
        let fresh = ModelProducer { epoch: b.producer_epoch, run: Vec::new(), last_timestamp_ms: b.max_timestamp_ms };
        let p = self.producers.entry(b.producer_id).or_insert_with(|| fresh.clone());
        if p.epoch != b.producer_epoch {
            *p = fresh;
        }
        p.run.push((b.first_seq, b.last_seq, b.base_offset, b.last_offset));
        p.last_timestamp_ms = b.max_timestamp_ms;
    }
}

struct World {
    live: ProducerStateManager,
    model: Model,
    clients: Vec<Client>,
    log: Vec<BatchHeader>,
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
            log_start: 0,
            log_end: 0,
            now_ms: 0,
            next_unknown_pid: 100,
        }
    }

    /// Offers a producer's batch the way the partition does; returns the decision.
    fn offer(&mut self, pid: i64, epoch: i16, first_seq: i32, count: i32) -> Result<AppendCheck, ProducerStateError> {
        let last_seq = last_sequence(first_seq, count - 1);
        let decision = self.live.check_append(pid, epoch, first_seq, last_seq);
        let expected = self.model.decide(pid, epoch, first_seq, last_seq);
        assert_eq!(decision, expected, "pid {pid} epoch {epoch} seq {first_seq}..={last_seq}");
        match decision {
            Ok(AppendCheck::Append) => {
                let h = header(pid, epoch, first_seq, count, self.log_end, self.now_ms as i64);
                let batch = ProducerBatch::from_header(&h).unwrap();
                self.live.record_append(&batch);
                self.model.append(&batch);
                self.log.push(h);
                self.log_end += i64::from(count);
            }
            Ok(AppendCheck::Duplicate { base_offset, last_offset }) => {
                let original = self.log.iter().find(|h| h.base_offset == base_offset).expect("the original is in the log");
                assert_eq!((original.producer_id, original.producer_epoch, original.base_sequence), (pid, epoch, first_seq));
                assert_eq!(original.last_offset(), last_offset);
                assert!(base_offset >= self.log_start, "a duplicate points into the log");
            }
            Err(_) => {}
        }
        decision
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Send { producer, count } => {
                let c = self.clients[producer].clone();
                let outcome = self.offer(producer as i64, c.epoch, c.next_seq, count);
                let client = &mut self.clients[producer];
                client.sent.push((c.epoch, c.next_seq, count));
                match outcome {
                    Ok(_) => client.next_seq = next_sequence(last_sequence(c.next_seq, count - 1)),
                    // Its state expired or was deleted: bump the epoch (KIP-360).
                    Err(ProducerStateError::UnknownProducerId { .. } | ProducerStateError::OutOfOrderSequence { .. }) => {
                        client.epoch += 1;
                        client.next_seq = 0;
                    }
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            Op::Retry { producer, back } => {
                let sent = &self.clients[producer].sent;
                if let Some(&(epoch, first, count)) = sent.iter().rev().nth(back) {
                    let _ = self.offer(producer as i64, epoch, first, count);
                }
            }
            Op::Gap { producer, skip } => {
                let c = self.clients[producer].clone();
                let _ = self.offer(producer as i64, c.epoch, c.next_seq + skip, 1);
            }
            Op::BumpEpoch { producer } => {
                let client = &mut self.clients[producer];
                client.epoch += 1;
                client.next_seq = 0;
            }
            Op::Zombie { producer } => {
                let c = self.clients[producer].clone();
                if c.epoch > 0 {
                    let _ = self.offer(producer as i64, c.epoch - 1, c.next_seq, 1);
                }
            }
            Op::Unknown { first_seq } => {
                let pid = self.next_unknown_pid;
                self.next_unknown_pid += 1;
                let outcome = self.offer(pid, 0, first_seq, 1);
                assert!(matches!(outcome, Err(ProducerStateError::UnknownProducerId { .. })));
            }
            Op::Plain { count } => {
                self.log.push(header(-1, -1, -1, count, self.log_end, self.now_ms as i64));
                self.log_end += i64::from(count);
            }
            Op::Advance { ms } => {
                self.now_ms += ms;
                self.live.tick(self.now_ms);
                let now = self.now_ms as i64;
                self.model.producers.retain(|_, p| now - p.last_timestamp_ms < EXPIRATION_MS as i64);
            }
            Op::TruncateHead { permille } => {
                // Retention cuts at a batch boundary.
                let target = self.log_start + (self.log_end - self.log_start) * i64::from(permille) / 1000;
                let Some(cut) = self.log.iter().map(|h| h.base_offset).filter(|&b| b >= self.log_start && b <= target).max() else { return };
                self.log_start = cut;
                self.live.truncate_head(cut);
                for p in self.model.producers.values_mut() {
                    p.run.retain(|b| b.3 >= cut);
                }
                self.model.producers.retain(|_, p| !p.run.is_empty());
            }
        }
    }

    fn check_rebuild(&self) {
        let mut rebuilt = ProducerStateManager::rebuild(config(), self.log.iter(), self.log_start);
        rebuilt.tick(self.now_ms);
        assert_eq!(rebuilt.producers(), self.live.producers(), "state rebuilt from the log differs from the live state");
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
        for h in self.log.iter().filter(|h| h.producer_id >= 0) {
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
