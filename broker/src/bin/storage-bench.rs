//! Storage benchmark on the real disk, in a temp directory. Prints one line
//! per figure: `BENCH <name> <value> <unit>`.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-storage cargo run --release -p dlog-broker --bin storage-bench
//! # smaller/faster: STORAGE_BENCH_MIB=256 (default 1024), STORAGE_BENCH_DIR=/path
//! ```
//!
//! Figures: raw sequential write bandwidth (plain 1 MiB writes + one fsync),
//! append throughput of 1 KiB records in 16 KiB batches with flush=never
//! (one flush at the end) and flush=every-batch (time-boxed), each as a
//! ratio to raw, sequential read throughput (page cache warm), random read
//! by offset, and recovery time of the whole log after a clean shutdown
//! (tail validation only) and with a torn last segment (full CRC scan of
//! the last segment). Wall-clock timing is the point of a benchmark, so
//! this binary, unlike broker code, reads `Instant::now`.

#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::clock::SystemClock;
use broker::disk::{Disk, OpenMode, RealDisk};
use broker::storage::{build_batch, FlushPolicy, LogConfig, PartitionLog, SimpleRecord};
use rand::{Rng, SeedableRng};

const MIB: f64 = 1024.0 * 1024.0;

fn bench(name: &str, value: f64, unit: &str) {
    println!("BENCH {name} {value:.3} {unit}");
}

fn batch_16k(ts: i64) -> Vec<u8> {
    let recs: Vec<SimpleRecord> = (0..16)
        .map(|i| SimpleRecord { key: Some(format!("key-{i:04}").into_bytes()), value: Some(vec![b'a' + (i as u8 % 26); 1000]), timestamp_ms: ts })
        .collect();
    build_batch(&recs)
}

fn main() -> anyhow::Result<()> {
    let total_mib: u64 = std::env::var("STORAGE_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let base = std::env::var("STORAGE_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
    let root = base.join(format!("dlog-storage-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let result = run(&root, total_mib);
    let _ = std::fs::remove_dir_all(&root);
    result
}

fn run(root: &std::path::Path, total_mib: u64) -> anyhow::Result<()> {
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let clock = Arc::new(SystemClock);
    let total_bytes = total_mib * 1024 * 1024;

    // 1. Raw sequential write: 1 MiB writes, one fsync at the end.
    let raw_path = root.join("raw.bin");
    let chunk = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    {
        let f = disk.open(&raw_path, OpenMode::Truncate)?;
        let mut off = 0u64;
        while off < total_bytes {
            f.write_at(&chunk, off)?;
            off += chunk.len() as u64;
        }
        f.sync()?;
    }
    let raw_mib_s = total_bytes as f64 / MIB / t.elapsed().as_secs_f64();
    bench("raw_seq_write", raw_mib_s, "MiB/s");
    std::fs::remove_file(&raw_path)?;

    // 2. Append, flush=never (+ one flush at the end), into one log we keep.
    let batch = batch_16k(1_700_000_000_000);
    let batch_bytes = batch.len() as u64;
    let n_batches = (total_bytes - (1 << 20)) / batch_bytes;
    let dir = root.join("log-0");
    let cfg = LogConfig { flush: FlushPolicy::Never, retention_ms: None, ..LogConfig::default() };
    let mut log = PartitionLog::open(disk.clone(), clock.clone(), dir.clone(), cfg.clone())?;
    let t = Instant::now();
    for _ in 0..n_batches {
        log.append(&batch)?;
    }
    log.flush()?;
    let secs = t.elapsed().as_secs_f64();
    let never_mib_s = (n_batches * batch_bytes) as f64 / MIB / secs;
    bench("append_flush_never", never_mib_s, "MiB/s");
    bench("append_flush_never_records", (n_batches * 16) as f64 / secs, "records/s");
    bench("append_flush_never_ratio_to_raw", never_mib_s / raw_mib_s, "ratio");
    let end = log.log_end_offset();

    // 3. Sequential read of the whole log (page cache warm).
    let t = Instant::now();
    let mut off = 0;
    let mut read_bytes = 0u64;
    while off < end {
        let r = log.read(off, 1 << 20)?;
        read_bytes += r.records.len() as u64;
        off = r.next_offset;
    }
    bench("seq_read", read_bytes as f64 / MIB / t.elapsed().as_secs_f64(), "MiB/s");

    // 4. Random read by offset (one batch each).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        let o = rng.gen_range(0..end);
        let r = log.read(o, 1)?;
        debug_assert!(!r.records.is_empty());
    }
    bench("random_read_by_offset", t.elapsed().as_secs_f64() * 1e6 / f64::from(n), "us");

    // 5. Recovery after a clean shutdown: tail validation only.
    log.close()?;
    let t = Instant::now();
    let log = PartitionLog::open(disk.clone(), clock.clone(), dir.clone(), cfg.clone())?;
    let clean_ms = t.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(log.recovery_report().clean_shutdown && log.log_end_offset() == end, "clean recovery lost data");
    bench("recovery_clean", clean_ms, "ms");
    bench("recovery_clean_validated", log.recovery_report().validated_bytes as f64 / MIB, "MiB");
    bench("log_size", log.size_bytes() as f64 / MIB, "MiB");

    // 6. Recovery with a torn last segment: no marker, half a batch at the end.
    let active = *log.segment_base_offsets().last().expect("segments");
    drop(log);
    let seg_path = dir.join(broker::storage::segment_file_name(active, "log"));
    let f = disk.open(&seg_path, OpenMode::Existing)?;
    let len = f.len()?;
    f.write_at(&batch[..batch.len() / 2], len)?;
    f.sync()?;
    let t = Instant::now();
    let log = PartitionLog::open(disk.clone(), clock.clone(), dir.clone(), cfg.clone())?;
    let torn_ms = t.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(log.log_end_offset() == end, "torn recovery lost acknowledged data");
    bench("recovery_torn_tail", torn_ms, "ms");
    bench("recovery_torn_tail_validated", log.recovery_report().validated_bytes as f64 / MIB, "MiB");
    drop(log);
    std::fs::remove_dir_all(&dir)?;

    // 7. Append with flush=every-batch, time-boxed to ~10 s.
    let cfg = LogConfig { flush: FlushPolicy::EveryBatch, retention_ms: None, ..LogConfig::default() };
    let dir = root.join("log-1");
    let mut log = PartitionLog::open(disk.clone(), clock, dir.clone(), cfg)?;
    let t = Instant::now();
    let mut done = 0u64;
    while t.elapsed() < Duration::from_secs(10) && done < n_batches {
        for _ in 0..16 {
            log.append(&batch)?;
        }
        done += 16;
    }
    let secs = t.elapsed().as_secs_f64();
    let every_mib_s = (done * batch_bytes) as f64 / MIB / secs;
    bench("append_flush_every_batch", every_mib_s, "MiB/s");
    bench("append_flush_every_batch_latency", secs * 1e6 / done as f64, "us");
    bench("append_flush_every_batch_ratio_to_raw", every_mib_s / raw_mib_s, "ratio");
    drop(log);
    Ok(())
}
