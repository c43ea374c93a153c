//! PartitionLog on the real disk (a temp directory): append, read, roll,
//! reopen, timestamps, input validation.

use broker::error_codes::KafkaErrorCode;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use broker::clock::ManualClock;
use broker::disk::RealDisk;
use broker::storage::{build_batch, build_control_batch, parse_records, set_producer, BatchHeader, CleanupPolicy, FlushPolicy, LogConfig, PartitionLog, SimpleRecord, StorageError};

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!("dlog-storage-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn batch(key: &str, value_len: usize, n: usize, ts: i64) -> Vec<u8> {
    let recs: Vec<SimpleRecord> = (0..n)
        .map(|i| SimpleRecord { key: Some(format!("{key}-{i}").into_bytes()), value: Some(vec![b'v'; value_len]), timestamp_ms: ts + i as i64 })
        .collect();
    build_batch(&recs)
}

fn open(dir: &TempDir, config: LogConfig) -> PartitionLog {
    PartitionLog::open(Arc::new(RealDisk), ManualClock::new(1_000_000), dir.0.join("t-0"), config).unwrap()
}

#[test]
fn append_assigns_offsets_and_read_returns_whole_batches() {
    let d = TempDir::new("basic");
    let mut log = open(&d, LogConfig::default());
    let a = log.append(&batch("a", 10, 3, 100)).unwrap();
    assert_eq!((a.base_offset, a.last_offset, a.log_append_time_ms), (0, 2, -1));
    let mut two = batch("b", 10, 2, 200);
    two.extend(batch("c", 10, 1, 300));
    let b = log.append(&two).unwrap();
    assert_eq!((b.base_offset, b.last_offset, b.batch_count), (3, 5, 2));
    assert_eq!(log.log_end_offset(), 6);

    // offset 4 lives in the batch starting at 3
    let r = log.read(4, 1).unwrap();
    let h = BatchHeader::parse(&r.records).unwrap();
    assert_eq!(h.base_offset, 3);
    assert_eq!(r.records.len() as u64, h.size_bytes(), "at least one batch, even past max_bytes");
    assert_eq!(r.next_offset, 5);
    // stored bytes are the producer's bytes except baseOffset
    assert_eq!(&r.records[8..], &two[8..h.size_bytes() as usize]);

    let all = log.read(0, 1 << 20).unwrap();
    assert_eq!(all.next_offset, 6);
    assert_eq!(log.read(6, 100).unwrap().records.len(), 0);
    assert!(matches!(log.read(7, 100), Err(StorageError::OffsetOutOfRange { .. })));
    assert_eq!(log.read(7, 100).unwrap_err().kafka_error_code(), 1);
    // bounded read (high watermark)
    let hw = log.read_bounded(0, 1 << 20, 3).unwrap();
    assert_eq!(hw.next_offset, 3);
}

#[test]
fn bad_input_is_rejected_with_typed_errors() {
    let d = TempDir::new("bad");
    let mut log = open(&d, LogConfig::default());
    let mut b = batch("a", 10, 1, 1);
    let n = b.len();
    b[n - 1] ^= 1;
    let e = log.append(&b).unwrap_err();
    assert!(matches!(e, StorageError::CorruptBatch { .. }), "{e:?}");
    assert_eq!(e.kafka_error_code(), 2);
    let mut m = batch("a", 10, 1, 1);
    m[16] = 1;
    assert!(matches!(log.append(&m), Err(StorageError::UnsupportedMagic { magic: 1 })));
    assert!(log.append(&batch("a", 10, 1, 1)[..40]).is_err());
    assert!(log.append(&[]).is_err());
    let mut long = batch("a", 10, 1, 1);
    long.extend_from_slice(&[0, 0, 0]);
    assert!(log.append(&long).is_err());
    assert_eq!(log.log_end_offset(), 0);

    // keyless on a compacted topic
    let d2 = TempDir::new("keyless");
    let mut c = open(&d2, LogConfig { cleanup_policy: CleanupPolicy::Compact, ..LogConfig::default() });
    let keyless = build_batch(&[SimpleRecord { key: None, value: Some(b"x".to_vec()), timestamp_ms: 1 }]);
    let e = c.append(&keyless).unwrap_err();
    assert!(matches!(e, StorageError::InvalidRecord { .. }));
    assert_eq!(e.kafka_error_code(), 87);
}

#[test]
fn rolls_by_size_and_reopens_cleanly_and_uncleanly() {
    let d = TempDir::new("roll");
    let cfg = LogConfig { segment_bytes: 4096, index_interval_bytes: 512, flush: FlushPolicy::Never, ..LogConfig::default() };
    let mut log = open(&d, cfg.clone());
    for i in 0..100 {
        log.append(&batch("k", 100, 2, i * 10)).unwrap();
    }
    assert!(log.segment_count() > 5, "{}", log.segment_count());
    let names = std::fs::read_dir(d.0.join("t-0")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect::<Vec<_>>();
    assert!(names.contains(&"00000000000000000000.log".to_string()));
    assert!(names.contains(&"00000000000000000000.index".to_string()));
    let check = |log: &PartitionLog| {
        assert_eq!(log.log_end_offset(), 200);
        for off in 0..200 {
            let r = log.read(off, 1).unwrap();
            let h = BatchHeader::parse(&r.records).unwrap();
            assert!(h.base_offset <= off && off <= h.last_offset(), "offset {off}");
        }
    };
    check(&log);
    log.close().unwrap();
    let log = open(&d, cfg.clone());
    assert!(log.recovery_report().clean_shutdown);
    check(&log);
    drop(log); // unclean
    let log = open(&d, cfg);
    assert!(!log.recovery_report().clean_shutdown);
    check(&log);
}

#[test]
fn rolls_by_age() {
    let d = TempDir::new("age");
    let clock = ManualClock::new(1_000);
    let cfg = LogConfig { segment_ms: 1_000, ..LogConfig::default() };
    let mut log = PartitionLog::open(Arc::new(RealDisk), clock.clone(), d.0.join("t-0"), cfg).unwrap();
    log.append(&batch("a", 10, 1, 1_000)).unwrap();
    clock.advance(500);
    log.append(&batch("a", 10, 1, 1_500)).unwrap();
    assert_eq!(log.segment_count(), 1);
    clock.advance(600);
    log.append(&batch("a", 10, 1, 2_100)).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}

#[test]
fn offset_for_timestamp_finds_first_record_at_or_after() {
    let d = TempDir::new("ts");
    let cfg = LogConfig { segment_bytes: 2048, index_interval_bytes: 256, ..LogConfig::default() };
    let mut log = open(&d, cfg);
    // batch i has records with timestamps 1000*i + 0..4, offsets 4i..4i+3
    for i in 0..50 {
        log.append(&batch("k", 50, 4, 1000 * i)).unwrap();
    }
    for i in 0..50i64 {
        for j in 0..4i64 {
            let t = log.offset_for_timestamp(1000 * i + j).unwrap().unwrap();
            assert_eq!((t.offset, t.timestamp_ms), (4 * i + j, 1000 * i + j));
        }
        let t = log.offset_for_timestamp(1000 * i + 10).unwrap();
        assert_eq!(log.offset_for_timestamp(broker::storage::LATEST_TIMESTAMP).unwrap().unwrap().offset, 200);
        assert_eq!(log.offset_for_timestamp(broker::storage::EARLIEST_TIMESTAMP).unwrap().unwrap().offset, 0);
        assert_eq!(log.offset_for_timestamp(broker::storage::MAX_TIMESTAMP).unwrap().unwrap().offset, 196);
        if i < 49 {
            assert_eq!(t.unwrap().offset, 4 * (i + 1));
        } else {
            assert!(t.is_none());
        }
    }
}

#[test]
fn log_append_time_stamps_batches_with_a_fresh_crc() {
    let d = TempDir::new("lat");
    let cfg = LogConfig { timestamp_type: broker::storage::TimestampType::LogAppendTime, ..LogConfig::default() };
    let mut log = PartitionLog::open(Arc::new(RealDisk), ManualClock::new(42_000), d.0.join("t-0"), cfg).unwrap();
    let info = log.append(&batch("a", 10, 2, 5)).unwrap();
    assert_eq!(info.log_append_time_ms, 42_000);
    let r = log.read(0, 1000).unwrap();
    let h = BatchHeader::parse(&r.records).unwrap();
    assert_eq!(h.max_timestamp, 42_000);
    assert!(broker::storage::batch_crc_ok(&r.records));
    assert_eq!(log.offset_for_timestamp(41_000).unwrap().unwrap().timestamp_ms, 42_000);
}

#[test]
fn interval_flush_policy_syncs_when_due() {
    let d = TempDir::new("interval");
    let clock = ManualClock::new(0);
    let cfg = LogConfig { flush: "interval:100".parse().unwrap(), ..LogConfig::default() };
    let mut log = PartitionLog::open(Arc::new(RealDisk), clock.clone(), d.0.join("t-0"), cfg).unwrap();
    log.append(&batch("a", 10, 1, 1)).unwrap();
    assert_eq!(log.durable_end_offset(), 0, "not synced before the interval");
    assert!(!log.flush_due());
    clock.advance(150);
    assert!(log.flush_due());
    log.flush().unwrap();
    assert_eq!(log.durable_end_offset(), 1);
    log.append(&batch("a", 10, 1, 1)).unwrap();
    clock.advance(150);
    log.append(&batch("a", 10, 1, 1)).unwrap();
    assert_eq!(log.durable_end_offset(), 3, "an append after the interval syncs");
}

#[test]
fn leader_and_follower_appends() {
    let d = TempDir::new("repl");
    let mut leader = open(&d, LogConfig::default());
    leader.append_as_leader(&batch("a", 10, 3, 1), 7).unwrap();
    leader.append_as_leader(&batch("b", 10, 2, 2), 8).unwrap();
    let r = leader.read(0, 1 << 20).unwrap();
    let h = BatchHeader::parse(&r.records).unwrap();
    assert_eq!(h.partition_leader_epoch, 7);
    assert!(broker::storage::batch_crc_ok(&r.records[..h.size_bytes() as usize]));

    let d2 = TempDir::new("follower");
    let mut follower = PartitionLog::open(Arc::new(RealDisk), ManualClock::new(0), d2.0.join("t-0"), LogConfig::default()).unwrap();
    let info = follower.append_replicated(&r.records).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 4));
    assert_eq!(follower.read(0, 1 << 20).unwrap().records, r.records, "byte-identical replica");
    // Below the end: rejected; a gap (compacted leader): accepted.
    assert!(follower.append_replicated(&r.records).is_err());
    let mut gap = batch("c", 10, 1, 3);
    gap[0..8].copy_from_slice(&9i64.to_be_bytes());
    assert_eq!(follower.append_replicated(&gap).unwrap().base_offset, 9);
    assert_eq!(follower.log_end_offset(), 10);
    assert_eq!(follower.read(6, 100).unwrap().next_offset, 10);
}

#[test]
fn producer_batches_must_have_consistent_offset_deltas() {
    let d = TempDir::new("deltas");
    let mut log = open(&d, LogConfig::default());
    let mut b = batch("a", 10, 3, 1);
    b[23..27].copy_from_slice(&5i32.to_be_bytes()); // lastOffsetDelta 5 with 3 records
    let crc = crc_of(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(log.append(&b), Err(StorageError::CorruptBatch { .. })));
    assert_eq!(log.log_end_offset(), 0);
}

fn crc_of(b: &[u8]) -> u32 {
    // CRC-32C (Castagnoli), bitwise; test-only.
    let mut crc = !0u32;
    for &byte in &b[21..] {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn compressed_batches_are_stored_opaquely_but_rejected_on_compacted_topics() {
    let d = TempDir::new("compressed");
    let mut b = batch("a", 10, 3, 1);
    b[21..23].copy_from_slice(&1i16.to_be_bytes()); // gzip: records are opaque to the log
    let crc = crc_of(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    let mut log = open(&d, LogConfig::default());
    assert_eq!(log.append(&b).unwrap().last_offset, 2);
    assert_eq!(&log.read(0, 100).unwrap().records[8..], &b[8..]);
    assert_eq!(log.offset_for_timestamp(0).unwrap().unwrap().offset, 0);
    let d2 = TempDir::new("compressed-compact");
    let mut c = open(&d2, LogConfig { cleanup_policy: CleanupPolicy::Compact, ..LogConfig::default() });
    assert!(matches!(c.append(&b), Err(StorageError::InvalidRecord { .. })));
}

/// An aborted transaction's record must not supersede the committed value
/// of its key (a read_committed consumer would then find neither), and is
/// itself dropped; the markers stay.
#[test]
fn compaction_drops_aborted_records_and_never_lets_them_supersede() {
    let d = TempDir::new("compact-aborted");
    let mut log = open(&d, LogConfig { cleanup_policy: CleanupPolicy::Compact, min_cleanable_dirty_ratio: 0.0, ..LogConfig::default() });
    let keyed = |key: &str, value: &str| SimpleRecord { key: Some(key.as_bytes().to_vec()), value: Some(value.as_bytes().to_vec()), timestamp_ms: 1 };
    log.append(&build_batch(&[keyed("k", "committed")])).unwrap();
    let mut aborted = build_batch(&[keyed("k", "aborted"), keyed("only-aborted", "x")]);
    aborted[21..23].copy_from_slice(&(1i16 << 4).to_be_bytes());
    set_producer(&mut aborted, 7, 0, 0);
    assert_eq!(log.append(&aborted).unwrap().base_offset, 1);
    assert_eq!(log.append(&build_control_batch(7, 0, false, 0, 1)).unwrap().base_offset, 3);
    log.roll().unwrap();
    log.append(&build_batch(&[keyed("other", "y")])).unwrap();
    log.set_aborted_ranges([(7, 1, 3)]);
    log.compact().unwrap();
    let read = log.read(0, 1 << 20).unwrap();
    let mut values = Vec::new();
    let mut pos = 0;
    while pos < read.records.len() {
        let h = BatchHeader::parse(&read.records[pos..]).unwrap();
        let bytes = &read.records[pos..pos + h.size_bytes() as usize];
        if h.is_control() {
            values.push("marker".to_string());
        } else {
            values.extend(parse_records(bytes).unwrap().iter().map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()));
        }
        pos += h.size_bytes() as usize;
    }
    // (A read stops at the segment end: the active segment is not read here.)
    assert_eq!(values, vec!["committed", "marker"]);
}
