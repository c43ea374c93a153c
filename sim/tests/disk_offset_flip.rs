//! The RecordBatch CRC does not cover the base offset (Kafka's format), so
//! a bit flipped there by the medium would hand a reader its records at the
//! wrong offsets. The chaos run of single-node-crash (seed 105, a read
//! corruption window) found exactly that: a poll saw value 150 at offset
//! 524426 instead of 138. Reads must check every batch's offsets against
//! where it lies in the segment: re-read once, then report corruption, and
//! never return a misplaced batch.

use std::path::PathBuf;
use std::sync::Arc;

use broker::clock::ManualClock;
use broker::storage::{build_batch, BatchHeader, FlushPolicy, LogConfig, PartitionLog, SimpleRecord, StorageError};
use sim::disk::FaultyDisk;

fn batch(n: usize) -> Vec<u8> {
    let records: Vec<SimpleRecord> = (0..n)
        .map(|i| SimpleRecord { key: Some(format!("k{i}").into_bytes()), value: Some(vec![b'v'; 20]), timestamp_ms: 1_000 })
        .collect();
    build_batch(&records)
}

fn open(disk: &FaultyDisk) -> PartitionLog {
    let config = LogConfig { flush: FlushPolicy::EveryBatch, ..LogConfig::default() };
    PartitionLog::open(Arc::new(disk.clone()), ManualClock::new(1_000), PathBuf::from("/data/flip-0"), config).unwrap()
}

#[test]
fn a_flipped_base_offset_is_never_returned_as_data() {
    let segment = PathBuf::from("/data/flip-0/00000000000000000000.log");
    // Flip each bit of the second batch's base offset in turn (stored data,
    // so the re-read sees it too): every read either fails as corrupt or
    // returns batches at their true offsets.
    for bit in 0..64u32 {
        let disk = FaultyDisk::new(7);
        let mut log = open(&disk);
        let first = batch(3);
        log.append(&first).unwrap();
        log.append(&batch(2)).unwrap();
        log.append(&batch(4)).unwrap();
        let byte = first.len() as u64 + 7 - u64::from(bit / 8);
        assert!(disk.corrupt_stored_byte(&segment, byte, (bit % 8) as u8));
        for offset in [0, 3, 4, 5, 8] {
            match log.read(offset, 1 << 20) {
                Ok(read) => {
                    let mut expected_base = [0i64, 3, 5].into_iter();
                    let mut position = 0;
                    // Skip the batches before the one holding `offset`.
                    let mut expected = expected_base.next().unwrap();
                    while position < read.records.len() {
                        let header = BatchHeader::parse(&read.records[position..]).unwrap();
                        while header.base_offset != expected {
                            expected = expected_base.next().unwrap_or_else(|| {
                                panic!("bit {bit}, read at {offset}: batch at offset {} is misplaced", header.base_offset)
                            });
                        }
                        position += header.size_bytes() as usize;
                    }
                }
                Err(StorageError::Corrupt { .. }) => {}
                Err(other) => panic!("bit {bit}, read at {offset}: unexpected {other}"),
            }
        }
    }
}
