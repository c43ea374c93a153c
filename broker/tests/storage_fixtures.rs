//! On-disk format fixtures: `tests/fixtures/storage/v1/` is a partition
//! directory written by format version 1. These tests open it with the
//! current code and check every record, epoch and snapshot, and check that
//! the current code still writes exactly the same bytes.
//!
//! Regenerate (only for a deliberate format change, which must also bump a
//! version number and add a new `vN/` directory):
//! `DLOG_REGEN_FIXTURES=1 cargo test -p dlog-broker --test storage_fixtures`

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use broker::clock::ManualClock;
use broker::disk::RealDisk;
use broker::storage::{build_batch, parse_records, BatchHeader, EpochEntry, LogConfig, PartitionLog, SimpleRecord};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/storage/v1")
}

fn temp(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let p = std::env::temp_dir().join(format!("dlog-fixture-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn config() -> LogConfig {
    LogConfig { segment_bytes: 1024, index_interval_bytes: 256, retention_ms: None, ..LogConfig::default() }
}

const T0: i64 = 1_700_000_000_000;

fn expected_record(offset: i64) -> (String, Option<String>, i64) {
    let i = offset / 2;
    let j = offset % 2;
    let value = if i == 7 && j == 1 { None } else { Some(format!("value-{i}-{j}")) };
    (format!("key-{}", (i + j) % 4), value, T0 + i * 1000 + j)
}

fn write_fixture(dir: &Path) {
    let mut log = PartitionLog::open(Arc::new(RealDisk), ManualClock::new(T0), dir.to_path_buf(), config()).unwrap();
    log.assign_epoch_start(0, 0).unwrap();
    for i in 0..12i64 {
        if i == 6 {
            log.assign_epoch_start(3, log.log_end_offset()).unwrap();
        }
        let recs: Vec<SimpleRecord> = (0..2)
            .map(|j| {
                let (k, v, ts) = expected_record(2 * i + j);
                SimpleRecord { key: Some(k.into_bytes()), value: v.map(String::into_bytes), timestamp_ms: ts }
            })
            .collect();
        log.append(&build_batch(&recs)).unwrap();
    }
    log.delete_records(2).unwrap();
    log.save_producer_snapshot(20, b"producer-state-v1").unwrap();
    log.close().unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).map(|e| (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap())).collect();
    v.sort();
    v
}

#[test]
fn fixture_v1_opens_and_reads_back_every_record() {
    if std::env::var("DLOG_REGEN_FIXTURES").is_ok() {
        let _ = std::fs::remove_dir_all(fixture_dir());
        write_fixture(&fixture_dir());
    }
    let dir = temp("read");
    copy_dir(&fixture_dir(), &dir);
    let log = PartitionLog::open(Arc::new(RealDisk), ManualClock::new(T0 + 60_000), dir.clone(), config()).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(log.recovery_report().rebuilt_indexes, 0, "v1 indexes load as they are");
    assert_eq!(log.log_start_offset(), 2);
    assert_eq!(log.log_end_offset(), 24);
    assert!(log.segment_count() >= 2);
    let mut off = 2;
    let mut seen = 0;
    while off < 24 {
        let r = log.read(off, 300).unwrap();
        let mut p = 0;
        while p < r.records.len() {
            let h = BatchHeader::parse(&r.records[p..]).unwrap();
            let b = &r.records[p..p + h.size_bytes() as usize];
            for rc in parse_records(b).unwrap() {
                let o = h.base_offset + i64::from(rc.offset_delta);
                let (k, v, ts) = expected_record(o);
                assert_eq!(rc.key.unwrap(), k.as_bytes());
                assert_eq!(rc.value.map(<[u8]>::to_vec), v.map(String::into_bytes));
                assert_eq!(h.base_timestamp + rc.timestamp_delta, ts);
                seen += 1;
            }
            p += b.len();
        }
        off = r.next_offset;
    }
    assert_eq!(seen, 24 - 2);
    assert_eq!(log.leader_epochs(), &[EpochEntry { epoch: 0, start_offset: 2 }, EpochEntry { epoch: 3, start_offset: 12 }]);
    assert_eq!(log.load_producer_snapshot().unwrap().unwrap(), (20, bytes::Bytes::from_static(b"producer-state-v1")));
    assert_eq!(log.offset_for_timestamp(T0 + 5_000).unwrap().unwrap().offset, 10);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn current_code_writes_the_v1_bytes() {
    let dir = temp("write");
    write_fixture(&dir);
    let now = listing(&dir);
    let fixture = listing(&fixture_dir());
    assert_eq!(now.iter().map(|f| &f.0).collect::<Vec<_>>(), fixture.iter().map(|f| &f.0).collect::<Vec<_>>());
    for ((name, a), (_, b)) in now.iter().zip(&fixture) {
        assert!(a == b, "{name} differs from the v1 fixture: the on-disk format changed");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
