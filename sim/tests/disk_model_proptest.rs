//! Model-based property test of `PartitionLog` on the `FaultyDisk`.
//!
//! Random sequences of append, read, flush, roll, retention, delete_records,
//! compaction, clock moves, disk-full toggles, clean restarts and crashes
//! (with torn writes) are run against the log and against an in-memory
//! model (offset -> record). Checked after every step that can lose or
//! reshape data:
//!
//! - every record returned was appended at that offset with that key and
//!   value (nothing never appended is returned), offsets strictly increase;
//! - after a crash, every batch synced before it is present and readable,
//!   and only a suffix of unsynced batches may be missing (the new log end
//!   is a batch boundary between the synced end and the old end);
//! - without compaction every offset in `[log start, log end)` is present;
//!   with compaction the last record seen per key is the model's latest
//!   (a latest tombstone may be gone, taking its key with it).
//!
//! Normal runs use a fixed case count (128). Longer run:
//!
//! ```text
//! PROPTEST_CASES=5000 CARGO_TARGET_DIR=/work/target-storage \
//!     cargo test --release -p dlog-sim-harness --test disk_model_proptest
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use broker::clock::ManualClock;
use broker::storage::{build_batch, parse_records, BatchHeader, CleanupPolicy, FlushPolicy, LogConfig, PartitionLog, SimpleRecord, StorageError};
use proptest::prelude::*;
use sim::disk::{DiskFaultConfig, FaultyDisk};

#[derive(Debug, Clone)]
enum Op {
    Append { key: u8, records: u8, value_len: u16, tombstone: bool },
    Read { at_permille: u16, max_bytes: u16 },
    Flush,
    Roll,
    Retention { advance_ms: u32 },
    DeleteRecords { at_permille: u16 },
    /// Follower truncation (only above the high watermark, as in Kafka).
    Truncate { at_permille: u16 },
    /// Advance the high watermark (compaction stays below it).
    AdvanceHw { at_permille: u16 },
    Compact { advance_ms: u32 },
    DiskFull(bool),
    /// EIO on writes, file syncs and directory syncs (10% each) on or off.
    Faults(bool),
    CleanRestart,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0u8..6, 1u8..4, 0u16..400, prop::bool::weighted(0.15)).prop_map(|(key, records, value_len, tombstone)| Op::Append { key, records, value_len, tombstone }),
        3 => (0u16..1000, 0u16..3000).prop_map(|(at_permille, max_bytes)| Op::Read { at_permille, max_bytes }),
        2 => Just(Op::Flush),
        1 => Just(Op::Roll),
        1 => (0u32..50_000).prop_map(|advance_ms| Op::Retention { advance_ms }),
        1 => (0u16..1000).prop_map(|at_permille| Op::DeleteRecords { at_permille }),
        1 => (0u16..1000).prop_map(|at_permille| Op::Truncate { at_permille }),
        2 => (0u16..=1000).prop_map(|at_permille| Op::AdvanceHw { at_permille }),
        2 => (0u32..20_000).prop_map(|advance_ms| Op::Compact { advance_ms }),
        1 => any::<bool>().prop_map(Op::DiskFull),
        1 => any::<bool>().prop_map(Op::Faults),
        1 => Just(Op::CleanRestart),
        2 => Just(Op::Crash),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    seed: u64,
    segment_bytes: u64,
    index_interval_bytes: u64,
    flush: FlushPolicy,
    compact: bool,
    torn_probability: f64,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        any::<u64>(),
        300u64..3000,
        prop_oneof![Just(64u64), Just(512), Just(4096)],
        prop_oneof![Just(FlushPolicy::EveryBatch), Just(FlushPolicy::Never), Just(FlushPolicy::Interval { interval_ms: 1000 })],
        any::<bool>(),
        prop_oneof![Just(0.0), Just(0.5), Just(1.0)],
    )
        .prop_map(|(seed, segment_bytes, index_interval_bytes, flush, compact, torn_probability)| Setup {
            seed,
            segment_bytes,
            index_interval_bytes,
            flush,
            compact,
            torn_probability,
        })
}

type Rec = (Option<Vec<u8>>, Option<Vec<u8>>);

struct Model {
    /// offset -> (key, value) of every record appended and not lost.
    records: BTreeMap<i64, Rec>,
    /// batch base offset -> last offset, for every batch appended and not lost.
    batches: BTreeMap<i64, i64>,
    end: i64,
    synced_end: i64,
    start: i64,
    /// High watermark: truncation never goes below it, compaction never
    /// above it.
    hw: i64,
}

fn config(s: &Setup) -> LogConfig {
    LogConfig {
        segment_bytes: s.segment_bytes,
        index_interval_bytes: s.index_interval_bytes,
        flush: s.flush,
        cleanup_policy: if s.compact { CleanupPolicy::CompactDelete } else { CleanupPolicy::Delete },
        retention_ms: Some(30_000),
        retention_bytes: Some(6_000),
        delete_retention_ms: 5_000,
        min_cleanable_dirty_ratio: 0.3,
        segment_ms: 1 << 40,
        ..LogConfig::default()
    }
}

fn open(disk: &FaultyDisk, clock: &Arc<ManualClock>, s: &Setup) -> PartitionLog {
    // Recovery itself runs fault-free (a failed open is retried by the
    // broker; here we want to check what it recovers).
    disk.set_faults(DiskFaultConfig { torn_write_probability: s.torn_probability, ..Default::default() });
    PartitionLog::open(Arc::new(disk.clone()), clock.clone(), PathBuf::from("/d/p-0"), config(s)).expect("open must succeed")
}

/// Reads the whole log from the start: (offset, key, value).
fn consume(log: &PartitionLog) -> Result<Vec<(i64, Rec)>, TestCaseError> {
    let mut out = Vec::new();
    let mut off = log.log_start_offset();
    while off < log.log_end_offset() {
        let r = log.read(off, 1500).map_err(|e| TestCaseError::fail(format!("read {off}: {e}")))?;
        if r.records.is_empty() {
            break;
        }
        prop_assert!(r.next_offset > off, "read made no progress at {}", off);
        let mut p = 0;
        while p < r.records.len() {
            let h = BatchHeader::parse(&r.records[p..]).expect("whole batches");
            let b = &r.records[p..p + h.size_bytes() as usize];
            prop_assert!(broker::storage::batch_crc_ok(b));
            for rc in parse_records(b).map_err(TestCaseError::fail)? {
                let o = h.base_offset + i64::from(rc.offset_delta);
                if o >= off {
                    out.push((o, (rc.key.map(<[u8]>::to_vec), rc.value.map(<[u8]>::to_vec))));
                }
            }
            p += b.len();
        }
        off = r.next_offset;
    }
    Ok(out)
}

fn check_view(log: &PartitionLog, m: &Model, compacted_ever: bool) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_end_offset(), m.end);
    prop_assert!(log.log_start_offset() >= m.start, "log start moved back");
    let view = consume(log)?;
    for w in view.windows(2) {
        prop_assert!(w[0].0 < w[1].0, "offsets not increasing");
    }
    for (o, r) in &view {
        prop_assert!(*o >= log.log_start_offset() && *o < m.end);
        prop_assert_eq!(m.records.get(o), Some(r), "record at {} was never appended like this", o);
    }
    let start = log.log_start_offset();
    if !compacted_ever {
        let expect: Vec<i64> = m.records.range(start..).map(|(o, _)| *o).collect();
        let got: Vec<i64> = view.iter().map(|(o, _)| *o).collect();
        prop_assert_eq!(got, expect, "missing or extra offsets");
    } else {
        let mut latest: BTreeMap<Vec<u8>, (i64, &Rec)> = BTreeMap::new();
        for (o, r) in m.records.range(start..) {
            latest.insert(r.0.clone().expect("compacted topics have keys"), (*o, r));
        }
        let mut seen: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        for (o, r) in &view {
            seen.insert(r.0.clone().expect("keyed"), *o);
        }
        for (k, (o, r)) in &latest {
            match seen.get(k) {
                Some(so) => prop_assert_eq!(*so, *o, "key {:?}: last seen is not the latest", k),
                None => prop_assert!(r.1.is_none(), "key {:?}: latest value lost", k),
            }
        }
    }
    Ok(())
}

fn run(s: Setup, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let disk = FaultyDisk::with_faults(s.seed, DiskFaultConfig { torn_write_probability: s.torn_probability, ..Default::default() });
    let clock = ManualClock::new(1_000_000);
    let mut log = open(&disk, &clock, &s);
    let mut m = Model { records: BTreeMap::new(), batches: BTreeMap::new(), end: 0, synced_end: 0, start: 0, hw: 0 };
    log.set_max_compactable_offset(0);
    let mut compacted_ever = false;
    let mut ts = 1_000_000i64;
    for op in ops {
        match op {
            Op::Append { key, records, value_len, tombstone } => {
                ts += 10;
                let recs: Vec<SimpleRecord> = (0..records)
                    .map(|i| SimpleRecord {
                        key: Some(vec![b'k', key.wrapping_add(i) % 6]),
                        value: if tombstone && s.compact { None } else { Some(vec![(ts % 251) as u8; value_len as usize]) },
                        timestamp_ms: ts,
                    })
                    .collect();
                let b = build_batch(&recs);
                match log.append(&b) {
                    Ok(info) => {
                        prop_assert_eq!(info.base_offset, m.end);
                        prop_assert_eq!(info.last_offset, m.end + i64::from(records) - 1);
                        for (i, r) in recs.iter().enumerate() {
                            m.records.insert(m.end + i as i64, (r.key.clone(), r.value.clone()));
                        }
                        m.batches.insert(m.end, info.last_offset);
                        m.end = info.last_offset + 1;
                        if s.flush == FlushPolicy::EveryBatch {
                            m.synced_end = m.end;
                        }
                        // Interval/Never: a roll inside append syncs earlier data.
                        m.synced_end = m.synced_end.max(log.durable_end_offset().min(m.end));
                    }
                    Err(StorageError::StorageFull { .. } | StorageError::Io { .. }) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("append: {e}"))),
                }
                prop_assert_eq!(log.log_end_offset(), m.end);
            }
            Op::Read { at_permille, max_bytes } => {
                let start = log.log_start_offset();
                let span = (m.end - start).max(0);
                let off = start + span * i64::from(at_permille) / 1000;
                let r = log.read(off, max_bytes as usize).map_err(|e| TestCaseError::fail(format!("read {off}: {e}")))?;
                if off < m.end {
                    prop_assert!(!r.records.is_empty() || compacted_ever, "no data at {} < end {}", off, m.end);
                }
                if !r.records.is_empty() {
                    let h = BatchHeader::parse(&r.records).expect("batch");
                    if !compacted_ever {
                        prop_assert!(h.base_offset <= off && off <= h.last_offset(), "read {} returned batch {}..={}", off, h.base_offset, h.last_offset());
                    }
                    prop_assert!(h.last_offset() >= off);
                    prop_assert!(r.next_offset <= m.end);
                }
                let past_end = matches!(log.read(m.end + 1, 10), Err(StorageError::OffsetOutOfRange { .. }));
                prop_assert!(past_end, "read past the end must be out of range");
            }
            Op::Flush => match log.flush() {
                Ok(()) => m.synced_end = m.end,
                Err(StorageError::Io { .. }) => {}
                Err(e) => return Err(TestCaseError::fail(format!("flush: {e}"))),
            },
            Op::Roll => match log.roll() {
                Ok(()) => m.synced_end = m.end,
                Err(StorageError::StorageFull { .. } | StorageError::Io { .. }) => {}
                Err(e) => return Err(TestCaseError::fail(format!("roll: {e}"))),
            },
            Op::Retention { advance_ms } => {
                clock.advance(i64::from(advance_ms));
                match log.enforce_retention() {
                    Ok(out) => {
                        prop_assert!(out.log_start_offset >= m.start);
                        m.start = out.log_start_offset;
                    }
                    Err(StorageError::StorageFull { .. } | StorageError::Io { .. }) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("retention: {e}"))),
                }
                check_view(&log, &m, compacted_ever)?;
            }
            Op::DeleteRecords { at_permille } => {
                let start = log.log_start_offset();
                let off = start + (m.end - start) * i64::from(at_permille) / 1000;
                match log.delete_records(off) {
                    Ok(new_start) => {
                        prop_assert_eq!(new_start, off.max(start));
                        m.start = new_start;
                    }
                    Err(StorageError::StorageFull { .. } | StorageError::Io { .. }) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("delete_records: {e}"))),
                }
                check_view(&log, &m, compacted_ever)?;
            }
            Op::AdvanceHw { at_permille } => {
                m.hw = m.hw.max(m.hw + (m.end - m.hw) * i64::from(at_permille) / 1000).min(m.end);
                log.set_max_compactable_offset(m.hw);
            }
            Op::Truncate { at_permille } => {
                let start = log.log_start_offset().max(m.hw);
                let off = start + (m.end - start) * i64::from(at_permille) / 1000;
                match log.truncate_to(off) {
                    Ok(new_end) => {
                        prop_assert!(new_end <= off.max(start) || off >= m.end, "truncate_to({}) left end {}", off, new_end);
                        let new_start = log.log_start_offset();
                        // A batch boundary, the target itself (compaction
                        // gap), or an emptied log restarted at the target.
                        prop_assert!(
                            new_end == m.end || m.batches.contains_key(&new_end) || new_end == off || new_end == new_start,
                            "end {} not a batch boundary", new_end
                        );
                        prop_assert!(new_start >= m.start);
                        m.start = new_start;
                        // Every batch wholly below the target survives.
                        if let Some((b, l)) = m.batches.range(..off).next_back() {
                            prop_assert!(new_end > *l || new_end == *b || *b < start, "lost batch {}..={} below {}", b, l, off);
                        }
                        m.records.retain(|o, _| *o < new_end);
                        m.batches.retain(|b, _| *b < new_end);
                        // A truncation that cuts syncs what remains; one at or
                        // past the log end is a no-op and syncs nothing.
                        if off < m.end {
                            m.synced_end = new_end;
                        }
                        m.end = new_end;
                    }
                    Err(StorageError::StorageFull { .. } | StorageError::Io { .. }) => {
                        // Interrupted: appends are refused until a retry
                        // succeeds; retry with the faults off.
                        let refused = matches!(log.append(&build_batch(&[SimpleRecord { key: Some(b"k0".to_vec()), value: Some(vec![]), timestamp_ms: ts }])), Err(StorageError::Offline(_)));
                        prop_assert!(refused, "append accepted after an interrupted truncation");
                        let faults = disk.faults();
                        if log.is_offline() {
                            // Reloading the state failed too: reopen (a
                            // process restart, no power loss).
                            drop(log);
                            log = open(&disk, &clock, &s);
                            log.set_max_compactable_offset(m.hw);
                        }
                        disk.set_faults(DiskFaultConfig { capacity_bytes: None, ..Default::default() });
                        // The interrupted attempt may have restarted the log
                        // at a later start before it failed: retry from there.
                        let off = off.max(log.log_start_offset());
                        let new_end = log.truncate_to(off).map_err(|e| TestCaseError::fail(format!("truncate_to retry: {e}")))?;
                        disk.set_faults(faults);
                        prop_assert!(new_end <= off.max(log.log_start_offset()));
                        m.start = log.log_start_offset();
                        m.records.retain(|o, _| *o < new_end);
                        m.batches.retain(|b, _| *b < new_end);
                        m.end = new_end;
                        m.synced_end = new_end;
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("truncate_to: {e}"))),
                }
                check_view(&log, &m, compacted_ever)?;
            }
            Op::Compact { advance_ms } => {
                clock.advance(i64::from(advance_ms));
                match log.compact_if_needed() {
                    Ok(Some(_)) => compacted_ever = true,
                    Ok(None) => {}
                    Err(StorageError::StorageFull { .. } | StorageError::Io { .. }) => compacted_ever = true,
                    Err(e) => return Err(TestCaseError::fail(format!("compact: {e}"))),
                }
                check_view(&log, &m, compacted_ever)?;
            }
            Op::DiskFull(full) => {
                let cap = if full { Some(disk.stats().used_bytes + 200) } else { None };
                disk.set_capacity(cap);
            }
            Op::Faults(on) => {
                let p = if on { 0.1 } else { 0.0 };
                disk.set_faults(DiskFaultConfig {
                    torn_write_probability: s.torn_probability,
                    write_eio_probability: p,
                    sync_eio_probability: p,
                    sync_dir_eio_probability: p,
                    capacity_bytes: disk.faults().capacity_bytes,
                    ..Default::default()
                });
            }
            Op::CleanRestart => {
                disk.set_capacity(None);
                let _ = log.close();
                log = open(&disk, &clock, &s);
                log.set_max_compactable_offset(m.hw);
                // A process restart loses nothing, synced or not.
                m.synced_end = m.end;
                check_view(&log, &m, compacted_ever)?;
            }
            Op::Crash => {
                disk.set_capacity(None);
                drop(log);
                disk.crash();
                log = open(&disk, &clock, &s);
                let new_end = log.log_end_offset();
                m.hw = m.hw.min(new_end);
                log.set_max_compactable_offset(m.hw);
                prop_assert!(new_end >= m.synced_end, "lost synced data: end {} < synced {}", new_end, m.synced_end);
                prop_assert!(new_end <= m.end, "end {} past anything appended {}", new_end, m.end);
                prop_assert!(new_end == m.end || m.batches.contains_key(&new_end), "new end {} is not a batch boundary", new_end);
                // Only a suffix of unsynced batches is gone.
                m.records.retain(|o, _| *o < new_end);
                m.batches.retain(|b, _| *b < new_end);
                m.end = new_end;
                m.synced_end = new_end;
                m.start = m.start.min(new_end);
                prop_assert!(log.log_start_offset() >= m.start);
                m.start = log.log_start_offset();
                check_view(&log, &m, compacted_ever)?;
            }
        }
    }
    disk.set_faults(DiskFaultConfig::default());
    check_view(&log, &m, compacted_ever)?;
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model_across_crashes(s in setup(), ops in prop::collection::vec(op(), 1..60)) {
        run(s, ops)?;
    }
}
