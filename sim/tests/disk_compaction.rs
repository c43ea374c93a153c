//! Compaction, retention, delete_records, truncation, leader epochs and
//! producer snapshots on the `FaultyDisk`, including a crash at every step
//! of the compaction swap.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use broker::clock::ManualClock;
use broker::storage::{build_batch, parse_records, BatchHeader, CleanupPolicy, EpochEntry, LogConfig, PartitionLog, SimpleRecord, StorageError};
use sim::disk::FaultyDisk;

fn dir() -> PathBuf {
    PathBuf::from("/data/compacted-0")
}

fn rec(key: &str, value: Option<&str>, ts: i64) -> SimpleRecord {
    SimpleRecord { key: Some(key.as_bytes().to_vec()), value: value.map(|v| v.as_bytes().to_vec()), timestamp_ms: ts }
}

fn compact_cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: 10_000,
        min_cleanable_dirty_ratio: 0.5,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// (offset, key, value) of every record a consumer reading from the start sees.
fn consume(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut off = log.log_start_offset();
    while off < log.log_end_offset() {
        let r = log.read(off, 1 << 20).expect("read");
        if r.records.is_empty() {
            break;
        }
        let mut p = 0;
        while p < r.records.len() {
            let h = BatchHeader::parse(&r.records[p..]).unwrap();
            let b = &r.records[p..p + h.size_bytes() as usize];
            for rc in parse_records(b).unwrap() {
                let o = h.base_offset + i64::from(rc.offset_delta);
                if o >= off {
                    out.push((o, String::from_utf8(rc.key.unwrap().to_vec()).unwrap(), rc.value.map(|v| String::from_utf8(v.to_vec()).unwrap())));
                }
            }
            p += b.len();
        }
        off = r.next_offset;
    }
    out
}

fn fill(log: &mut PartitionLog, rounds: i64) -> BTreeMap<String, Option<String>> {
    let mut latest = BTreeMap::new();
    for i in 0..rounds {
        let k = format!("k{}", i % 7);
        let v = if i % 11 == 5 { None } else { Some(format!("v{i}-{}", "x".repeat(40))) };
        log.append(&build_batch(&[rec(&k, v.as_deref(), 1_000 + i)])).unwrap();
        latest.insert(k, v);
    }
    latest
}

#[test]
fn compaction_keeps_latest_per_key_with_offsets_and_tombstone_window() {
    let disk = FaultyDisk::new(21);
    let clock = ManualClock::new(1_000_000);
    let cfg = LogConfig { min_cleanable_dirty_ratio: 0.01, ..compact_cfg() };
    let mut log = PartitionLog::open(Arc::new(disk.clone()), clock.clone(), dir(), cfg.clone()).unwrap();
    let latest = fill(&mut log, 120);
    let end = log.log_end_offset();
    let before = consume(&log);
    assert_eq!(before.len(), 120);
    let out = log.compact_if_needed().unwrap().expect("all sealed data is dirty");
    assert!(out.records_removed > 0 && out.bytes_after < out.bytes_before, "{out:?}");
    assert_eq!(log.log_end_offset(), end, "the end offset never moves back");
    let after = consume(&log);
    // Offsets strictly increase and are the original offsets.
    assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
    for r in &after {
        assert!(before.contains(r), "compaction returned a record never appended: {r:?}");
    }
    // Exactly the latest value per key (the active segment may hold extra
    // older-than-latest values only if they are in the active segment).
    let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (_, k, v) in &after {
        seen.insert(k.clone(), v.clone());
    }
    assert_eq!(seen, latest);
    // Tombstones are still there inside the window...
    let tombstones_now = after.iter().filter(|r| r.2.is_none()).count();
    assert!(tombstones_now > 0);
    // ...and go once the delete horizon has passed (in sealed segments).
    clock.advance(10_001);
    // Seal the rest so every key's latest record is cleanable, then let
    // passes run as horizons come due.
    log.roll().unwrap();
    let mut tombstones_removed = 0;
    for _ in 0..3 {
        if let Some(out) = log.compact_if_needed().unwrap() {
            tombstones_removed += out.tombstones_removed;
        }
        clock.advance(10_001);
    }
    assert!(tombstones_removed > 0);
    let final_view = consume(&log);
    assert!(final_view.iter().all(|r| r.2.is_some()), "no tombstone after the window");
    let expect: BTreeMap<String, String> = latest.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect();
    let got: BTreeMap<String, String> = final_view.into_iter().map(|(_, k, v)| (k, v.unwrap())).collect();
    assert_eq!(got, expect);
    // Survives a reopen after a crash.
    drop(log);
    disk.crash();
    let log = PartitionLog::open(Arc::new(disk.clone()), clock.clone(), dir(), cfg).unwrap();
    let got2: BTreeMap<String, String> = consume(&log).into_iter().map(|(_, k, v)| (k, v.unwrap())).collect();
    assert_eq!(got2, expect);
}

#[test]
fn crash_at_every_step_of_compaction_swap_loses_nothing() {
    // Build one log, then for n = 0, 1, 2, ... halt the disk after n
    // mutating operations of a compaction pass, crash, reopen, and check
    // that the consumer view still has the latest value of every key and
    // nothing never appended.
    let mut n = 0u64;
    loop {
        let disk = FaultyDisk::new(22);
        let clock = ManualClock::new(1_000_000);
        let mut log = PartitionLog::open(Arc::new(disk.clone()), clock.clone(), dir(), compact_cfg()).unwrap();
        let latest = fill(&mut log, 60);
        log.roll().unwrap();
        let appended = consume(&log);
        disk.halt_after(Some(n));
        let result = log.compact();
        drop(log);
        disk.crash();
        let log = PartitionLog::open(Arc::new(disk.clone()), clock.clone(), dir(), compact_cfg()).unwrap_or_else(|e| panic!("n={n}: reopen failed: {e}"));
        let view = consume(&log);
        let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
        for r in &view {
            assert!(appended.contains(r), "n={n}: record never appended: {r:?}");
            seen.insert(r.1.clone(), r.2.clone());
        }
        assert_eq!(seen, latest, "n={n}: lost the latest value of a key");
        assert!(view.windows(2).all(|w| w[0].0 < w[1].0));
        if result.is_ok() {
            assert!(n > 10, "the pass did real work");
            break;
        }
        n += 1;
        assert!(n < 500, "compaction never completed");
    }
}

#[test]
fn retention_by_size_and_time_never_deletes_the_active_segment() {
    let disk = FaultyDisk::new(23);
    let clock = ManualClock::new(1_000_000);
    let cfg = LogConfig { segment_bytes: 500, retention_bytes: Some(1_500), retention_ms: Some(60_000), ..LogConfig::default() };
    let mut log = PartitionLog::open(Arc::new(disk.clone()), clock.clone(), dir(), cfg).unwrap();
    for i in 0..40 {
        log.append(&build_batch(&[SimpleRecord { key: None, value: Some(vec![b'x'; 100]), timestamp_ms: 1_000_000 + i }])).unwrap();
    }
    let segs = log.segment_count();
    let out = log.enforce_retention().unwrap();
    assert!(out.deleted_segments > 0 && log.segment_count() < segs);
    assert!(log.size_bytes() <= 1_500 + 500);
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    assert!(matches!(log.read(0, 100), Err(StorageError::OffsetOutOfRange { .. })));
    // Time: everything older than 60 s goes, except the active segment.
    clock.advance(120_000);
    log.enforce_retention().unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), 40);
    let start = log.log_start_offset();
    assert!(start > 0 && start <= 40);
    // The start survives a crash (checkpointed before the files went).
    drop(log);
    disk.crash();
    let cfg = LogConfig { segment_bytes: 500, ..LogConfig::default() };
    let log = PartitionLog::open(Arc::new(disk.clone()), clock.clone(), dir(), cfg).unwrap();
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(log.log_end_offset(), 40);
}

#[test]
fn delete_records_advances_log_start_durably() {
    let disk = FaultyDisk::new(24);
    let clock = ManualClock::new(1_000);
    let cfg = LogConfig { segment_bytes: 400, ..LogConfig::default() };
    let mut log = PartitionLog::open(Arc::new(disk.clone()), clock.clone(), dir(), cfg.clone()).unwrap();
    for i in 0..30 {
        log.append(&build_batch(&[rec("k", Some("0123456789012345678901234567890123456789"), i)])).unwrap();
    }
    assert_eq!(log.delete_records(17).unwrap(), 17);
    assert_eq!(log.delete_records(5).unwrap(), 17, "never moves back");
    assert!(log.delete_records(31).is_err());
    assert!(matches!(log.read(16, 10), Err(StorageError::OffsetOutOfRange { .. })));
    assert!(log.read(17, 10).is_ok());
    assert!(log.segment_base_offsets()[0] <= 17);
    drop(log);
    disk.crash();
    let log = PartitionLog::open(Arc::new(disk.clone()), clock, dir(), cfg).unwrap();
    assert_eq!(log.log_start_offset(), 17);
}

#[test]
fn truncate_to_cuts_at_batch_boundary_and_survives_crash() {
    let disk = FaultyDisk::new(25);
    let clock = ManualClock::new(1_000);
    let cfg = LogConfig { segment_bytes: 400, ..LogConfig::default() };
    let mut log = PartitionLog::open(Arc::new(disk.clone()), clock.clone(), dir(), cfg.clone()).unwrap();
    for i in 0..20 {
        log.append(&build_batch(&[rec("a", Some("x"), i), rec("b", Some("y"), i)])).unwrap();
    }
    log.assign_epoch_start(1, 0).unwrap();
    log.assign_epoch_start(2, 10).unwrap();
    log.assign_epoch_start(3, 30).unwrap();
    assert_eq!(log.truncate_to(25).unwrap(), 24, "offset 25 is inside the batch 24..25");
    assert_eq!(log.leader_epochs(), &[EpochEntry { epoch: 1, start_offset: 0 }, EpochEntry { epoch: 2, start_offset: 10 }]);
    let info = log.append(&build_batch(&[rec("c", Some("z"), 99)])).unwrap();
    assert_eq!(info.base_offset, 24);
    drop(log);
    disk.crash();
    let log = PartitionLog::open(Arc::new(disk.clone()), clock, dir(), cfg).unwrap();
    assert_eq!(log.log_end_offset(), 25);
    assert_eq!(log.leader_epochs().len(), 2);
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 10)));
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 25)));
    assert_eq!(log.end_offset_for_epoch(0), None);
}

#[test]
fn producer_snapshot_is_atomic_and_newest_wins() {
    let disk = FaultyDisk::new(26);
    let clock = ManualClock::new(1_000);
    let mut log = PartitionLog::open(Arc::new(disk.clone()), clock.clone(), dir(), LogConfig::default()).unwrap();
    for i in 0..10 {
        log.append(&build_batch(&[rec("a", Some("x"), i)])).unwrap();
    }
    log.save_producer_snapshot(5, b"state-at-5").unwrap();
    log.save_producer_snapshot(10, b"state-at-10").unwrap();
    assert_eq!(log.load_producer_snapshot().unwrap().unwrap(), (10, bytes::Bytes::from_static(b"state-at-10")));
    // A crash in the middle of writing the next snapshot keeps the old one.
    for n in 0..6 {
        disk.halt_after(Some(n));
        let _ = log.save_producer_snapshot(10, b"state-at-10-v2");
        drop(log);
        disk.crash();
        log = PartitionLog::open(Arc::new(disk.clone()), clock.clone(), dir(), LogConfig::default()).unwrap();
        let (o, s) = log.load_producer_snapshot().unwrap().unwrap();
        assert_eq!(o, 10);
        assert!(s == b"state-at-10"[..] || s == b"state-at-10-v2"[..], "n={n}: {s:?}");
    }
    // Snapshots past the end are dropped by truncation.
    log.truncate_to(3).unwrap();
    assert_eq!(log.load_producer_snapshot().unwrap(), None);
}

#[test]
fn crash_at_every_step_of_truncate_to_keeps_a_consistent_prefix() {
    let cfg = LogConfig { segment_bytes: 300, ..LogConfig::default() };
    let mut n = 0u64;
    loop {
        let disk = FaultyDisk::new(27);
        let clock = ManualClock::new(1_000);
        let mut log = PartitionLog::open(Arc::new(disk.clone()), clock.clone(), dir(), cfg.clone()).unwrap();
        for i in 0..30 {
            log.append(&build_batch(&[rec(&format!("k{i}"), Some("0123456789"), i)])).unwrap();
        }
        log.assign_epoch_start(1, 0).unwrap();
        log.assign_epoch_start(2, 20).unwrap();
        let before = consume(&log);
        disk.halt_after(Some(n));
        let result = log.truncate_to(12);
        if result.is_err() {
            assert!(matches!(log.append(&build_batch(&[rec("x", Some("y"), 0)])), Err(StorageError::Offline(_))), "n={n}: append after interrupted truncation");
        }
        drop(log);
        disk.crash();
        let log = PartitionLog::open(Arc::new(disk.clone()), clock, dir(), cfg.clone()).unwrap_or_else(|e| panic!("n={n}: {e}"));
        let end = log.log_end_offset();
        let view = consume(&log);
        // A prefix of the original log, never shorter than the target.
        assert!((12..=30).contains(&end), "n={n}: end {end}");
        assert_eq!(view[..], before[..view.len()], "n={n}");
        assert_eq!(view.len() as i64, end, "n={n}: no holes");
        if result.is_ok() {
            assert_eq!(end, 12, "n={n}: a successful truncation is durable");
            assert_eq!(log.leader_epochs().len(), 1);
            assert!(n > 3);
            break;
        }
        n += 1;
        assert!(n < 200);
    }
}
