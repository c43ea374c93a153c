//! One test per storage fault, on the in-memory `FaultyDisk`.

use broker::error_codes::KafkaErrorCode;
use std::path::PathBuf;
use std::sync::Arc;

use broker::clock::ManualClock;
use broker::disk::Disk;
use broker::storage::{build_batch, CorruptMiddlePolicy, FlushPolicy, LogConfig, PartitionLog, SimpleRecord, StorageError};
use sim::disk::{DiskFaultConfig, FaultyDisk};

fn batch(key: &str, value_len: usize, n: usize, ts: i64) -> Vec<u8> {
    let recs: Vec<SimpleRecord> = (0..n)
        .map(|i| SimpleRecord { key: Some(format!("{key}-{i}").into_bytes()), value: Some(vec![b'v'; value_len]), timestamp_ms: ts })
        .collect();
    build_batch(&recs)
}

fn dir() -> PathBuf {
    PathBuf::from("/data/topic-0")
}

fn open(disk: &FaultyDisk, config: LogConfig) -> Result<PartitionLog, StorageError> {
    PartitionLog::open(Arc::new(disk.clone()), ManualClock::new(1_000), dir(), config)
}

/// Reads every batch from the log start, returning (base offset, bytes without baseOffset).
fn read_all(log: &PartitionLog) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut off = log.log_start_offset();
    while off < log.log_end_offset() {
        let r = log.read(off, 1 << 20).expect("read");
        assert!(!r.records.is_empty());
        let mut p = 0;
        while p < r.records.len() {
            let h = broker::storage::BatchHeader::parse(&r.records[p..]).unwrap();
            let size = h.size_bytes() as usize;
            out.push((h.base_offset, r.records[p + 8..p + size].to_vec()));
            p += size;
        }
        off = r.next_offset;
    }
    out
}

#[test]
fn enospc_mid_append_leaves_log_consistent_and_recovers() {
    let disk = FaultyDisk::new(7);
    let mut log = open(&disk, LogConfig::default()).unwrap();
    log.append(&batch("a", 100, 3, 1)).unwrap();
    let used = disk.stats().used_bytes;
    disk.set_capacity(Some(used + 50));
    let err = log.append(&batch("b", 100, 3, 2)).unwrap_err();
    assert!(matches!(err, StorageError::StorageFull { .. }), "{err:?}");
    assert_eq!(err.kafka_error_code(), 56);
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(read_all(&log).len(), 1);
    disk.set_capacity(None);
    let info = log.append(&batch("c", 100, 2, 3)).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (3, 4));
    drop(log);
    disk.crash();
    let log = open(&disk, LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 5);
    let all = read_all(&log);
    assert_eq!(all.iter().map(|b| b.0).collect::<Vec<_>>(), vec![0, 3]);
}

#[test]
fn eio_on_fsync_is_not_acknowledged_and_next_append_succeeds() {
    let disk = FaultyDisk::new(8);
    let mut log = open(&disk, LogConfig::default()).unwrap();
    log.append(&batch("a", 10, 1, 1)).unwrap();
    disk.set_faults(DiskFaultConfig { sync_eio_probability: 1.0, ..Default::default() });
    let err = log.append(&batch("b", 10, 1, 2)).unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.read(1, 1000).unwrap().records.len(), 0, "nothing past the end");
    disk.set_faults(DiskFaultConfig::default());
    assert_eq!(log.append(&batch("c", 10, 1, 3)).unwrap().base_offset, 1);
    drop(log);
    disk.crash();
    let log = open(&disk, LogConfig::default()).unwrap();
    let all = read_all(&log);
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].1, batch("c", 10, 1, 3)[8..].to_vec(), "the batch after the failed one is the acknowledged one");
}

#[test]
fn eio_on_write_is_not_acknowledged() {
    let disk = FaultyDisk::new(9);
    let mut log = open(&disk, LogConfig::default()).unwrap();
    disk.set_faults(DiskFaultConfig { write_eio_probability: 1.0, ..Default::default() });
    assert!(log.append(&batch("a", 10, 1, 1)).is_err());
    disk.set_faults(DiskFaultConfig::default());
    assert_eq!(log.append(&batch("a", 10, 1, 1)).unwrap().base_offset, 0);
    assert_eq!(log.log_end_offset(), 1);
}

#[test]
fn torn_tail_is_truncated_and_synced_batches_survive() {
    for seed in 0..40u64 {
        let disk = FaultyDisk::with_faults(seed, DiskFaultConfig { torn_write_probability: 1.0, ..Default::default() });
        let cfg = LogConfig { flush: FlushPolicy::Never, ..LogConfig::default() };
        let mut log = open(&disk, cfg.clone()).unwrap();
        log.append(&batch("a", 700, 3, 1)).unwrap();
        log.flush().unwrap();
        // One unsynced write of three batches: a crash may tear it anywhere.
        let mut three = batch("b", 900, 2, 2);
        three.extend(batch("c", 900, 2, 3));
        three.extend(batch("d", 900, 2, 4));
        log.append(&three).unwrap();
        drop(log);
        disk.crash();
        let log = open(&disk, cfg).unwrap();
        let all = read_all(&log);
        assert!(!all.is_empty() && all[0].0 == 0, "seed {seed}: synced batch lost");
        assert!(all.len() <= 4);
        for (i, (off, _)) in all.iter().enumerate().skip(1) {
            assert_eq!(*off, 3 + 2 * (i as i64 - 1), "seed {seed}: only a prefix of the unsynced batches may survive");
        }
        assert_eq!(log.log_end_offset(), all.last().map(|b| b.0 + if b.0 == 0 { 3 } else { 2 }).unwrap());
    }
}

#[test]
fn crash_after_segment_created_before_dir_sync() {
    // Crash at every step of an append that rolls: in particular right
    // after the new segment file is created and before the directory sync.
    let cfg = LogConfig { segment_bytes: 1024, ..LogConfig::default() };
    let new_seg = dir().join("00000000000000000001.log");
    let mut saw_window = false;
    for n in 0..40u64 {
        let disk = FaultyDisk::new(11);
        let mut log = open(&disk, cfg.clone()).unwrap();
        log.append(&batch("a", 900, 1, 1)).unwrap();
        disk.halt_after(Some(n));
        let acked = log.append(&batch("b", 900, 1, 2)).is_ok();
        let created_unsynced = disk.exists(&new_seg) && disk.durable_contents(&new_seg).is_none();
        drop(log);
        disk.crash();
        if created_unsynced {
            saw_window = true;
            assert!(!disk.exists(&new_seg), "n={n}: an unsynced directory entry survived the crash");
        }
        let log = open(&disk, cfg.clone()).unwrap();
        let all = read_all(&log);
        assert_eq!(all[0].0, 0, "n={n}");
        if acked {
            assert_eq!(log.log_end_offset(), 2, "n={n}: acknowledged batch lost");
            assert!(saw_window, "the crash window was exercised");
            return;
        }
        assert!(log.log_end_offset() <= 2);
    }
    panic!("the append never succeeded");
}

#[test]
fn roll_whose_dir_sync_fails_is_not_acknowledged() {
    let disk = FaultyDisk::new(11);
    let cfg = LogConfig { segment_bytes: 1024, ..LogConfig::default() };
    let mut log = open(&disk, cfg.clone()).unwrap();
    log.append(&batch("a", 800, 1, 1)).unwrap();
    disk.set_faults(DiskFaultConfig { sync_dir_eio_probability: 1.0, ..Default::default() });
    let err = log.append(&batch("b", 900, 1, 2)).unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    disk.set_faults(DiskFaultConfig::default());
    // A smaller append still fits the old segment; the failed roll's file
    // must not linger and be overtaken.
    log.append(&batch("c", 10, 1, 3)).unwrap();
    log.append(&batch("d", 900, 1, 4)).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    // Process restart (no power loss), then a crash.
    drop(log);
    let log = open(&disk, cfg.clone()).unwrap();
    assert_eq!((log.log_end_offset(), read_all(&log).len()), (3, 3));
    drop(log);
    disk.crash();
    let log = open(&disk, cfg).unwrap();
    assert_eq!((log.log_end_offset(), read_all(&log).len()), (3, 3));
}

#[test]
fn corrupt_middle_batch_fails_or_truncates_per_setting() {
    let disk = FaultyDisk::new(12);
    let mut log = open(&disk, LogConfig::default()).unwrap();
    for i in 0..5 {
        log.append(&batch("k", 200, 2, i)).unwrap();
    }
    drop(log); // no clean shutdown: the active segment is fully validated
    let seg = dir().join("00000000000000000000.log");
    let one = batch("k", 200, 2, 0).len() as u64;
    assert!(disk.corrupt_stored_byte(&seg, 2 * one + 100, 3));
    let err = open(&disk, LogConfig::default()).unwrap_err();
    assert!(matches!(err, StorageError::CorruptMiddle { position, .. } if position == 2 * one), "{err:?}");
    let cfg = LogConfig { corrupt_middle: CorruptMiddlePolicy::Truncate, ..LogConfig::default() };
    let log = open(&disk, cfg).unwrap();
    assert_eq!(log.log_end_offset(), 4, "truncated at the corrupt batch");
    assert_eq!(log.recovery_report().truncated_bytes, 3 * one);
}

#[test]
fn corrupt_stored_batch_is_a_typed_read_error() {
    let disk = FaultyDisk::new(13);
    let cfg = LogConfig { segment_bytes: 2000, ..LogConfig::default() };
    let mut log = open(&disk, cfg).unwrap();
    for i in 0..6 {
        log.append(&batch("k", 300, 2, i)).unwrap();
    }
    let seg = dir().join("00000000000000000000.log");
    assert!(disk.corrupt_stored_byte(&seg, 150, 0));
    let err = log.read(0, 100).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
    assert_eq!(err.kafka_error_code(), 2);
}

#[test]
fn read_corruption_on_the_read_path_is_retried_not_returned() {
    let disk = FaultyDisk::new(14);
    let mut log = open(&disk, LogConfig::default()).unwrap();
    for i in 0..20 {
        log.append(&batch("k", 300, 2, i)).unwrap();
    }
    disk.set_faults(DiskFaultConfig { read_corruption_probability: 0.2, ..Default::default() });
    let mut ok = 0;
    for _ in 0..200 {
        match log.read(0, 1 << 20) {
            Ok(r) => {
                // Whatever is returned passed its CRC.
                let mut p = 0;
                while p < r.records.len() {
                    let h = broker::storage::BatchHeader::parse(&r.records[p..]).unwrap();
                    let b = &r.records[p..p + h.size_bytes() as usize];
                    assert!(broker::storage::batch_crc_ok(b));
                    p += b.len();
                }
                ok += 1;
            }
            Err(e) => assert!(matches!(e, StorageError::Corrupt { .. } | StorageError::Io { .. }), "{e:?}"),
        }
    }
    assert!(ok > 0);
}

#[test]
fn corrupt_index_is_rebuilt() {
    let disk = FaultyDisk::new(15);
    let cfg = LogConfig { segment_bytes: 4096, index_interval_bytes: 512, ..LogConfig::default() };
    let mut log = open(&disk, cfg.clone()).unwrap();
    for i in 0..40 {
        log.append(&batch("k", 200, 2, i)).unwrap();
    }
    let before = read_all(&log);
    log.close().unwrap();
    let idx = dir().join("00000000000000000000.index");
    let len = disk.file_contents(&idx).unwrap().len() as u64;
    assert!(len > 56);
    assert!(disk.corrupt_stored_byte(&idx, len - 3, 1));
    let log = open(&disk, cfg).unwrap();
    assert!(log.recovery_report().rebuilt_indexes >= 1);
    assert_eq!(read_all(&log), before);
    for off in 0..80 {
        let r = log.read(off, 1).unwrap();
        let h = broker::storage::BatchHeader::parse(&r.records).unwrap();
        assert!(h.base_offset <= off && off <= h.last_offset());
    }
}

#[test]
fn faulty_disk_is_deterministic() {
    let run = |seed| {
        let disk = FaultyDisk::with_faults(
            seed,
            DiskFaultConfig { torn_write_probability: 0.5, sync_eio_probability: 0.1, write_eio_probability: 0.1, read_corruption_probability: 0.05, sync_dir_eio_probability: 0.1, capacity_bytes: None },
        );
        let cfg = LogConfig { segment_bytes: 3000, flush: FlushPolicy::Never, ..LogConfig::default() };
        let mut log = loop {
            if let Ok(l) = open(&disk, cfg.clone()) {
                break l;
            }
        };
        for i in 0..50 {
            let _ = log.append(&batch("k", 100 + i, 1 + i % 3, i as i64));
            if i % 7 == 0 {
                let _ = log.flush();
            }
            let _ = log.read(0, 500);
        }
        drop(log);
        disk.crash();
        disk.set_faults(DiskFaultConfig::default());
        let log = open(&disk, cfg).unwrap();
        (disk.trace_hash(), log.log_end_offset())
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1).0, run(2).0);
}

#[test]
fn recovery_under_read_corruption_never_truncates_good_data() {
    let disk = FaultyDisk::new(16);
    let cfg = LogConfig { segment_bytes: 3000, index_interval_bytes: 512, ..LogConfig::default() };
    let mut log = open(&disk, cfg.clone()).unwrap();
    for i in 0..60 {
        log.append(&batch("k", 150, 2, i)).unwrap();
    }
    let expected = read_all(&log);
    drop(log);
    for round in 0..30 {
        disk.set_faults(DiskFaultConfig { read_corruption_probability: 0.1, ..Default::default() });
        let log = open(&disk, cfg.clone()).unwrap_or_else(|e| panic!("round {round}: {e}"));
        disk.set_faults(DiskFaultConfig::default());
        assert_eq!(log.log_end_offset(), 120, "round {round}");
        assert_eq!(log.recovery_report().truncated_bytes, 0, "round {round}");
        assert_eq!(read_all(&log), expected);
        if round % 2 == 0 {
            log.close().unwrap();
        }
    }
}
