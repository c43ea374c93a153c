//! Records of `__transaction_state`: Kafka's own key and value formats, so
//! the coordinator's state is rebuilt by replaying its partition, and a
//! Kafka tool reading the topic sees what Kafka would have written.
//!
//! Integers are big-endian; `string` is an `int16` length and UTF-8 bytes;
//! an array is an `int32` count (-1: null) and its elements. A record with
//! a null value is a tombstone: the transactional id expired (compaction
//! keeps only the last record per key).
//!
//! Key (version 0):
//!
//! | offset | field | type |
//! |---|---|---|
//! | 0 | version = 0 | int16 |
//! | 2 | transactional_id | string |
//!
//! Value (version 0):
//!
//! | offset | field | type |
//! |---|---|---|
//! | 0 | version = 0 | int16 |
//! | 2 | producer_id | int64 |
//! | 10 | producer_epoch | int16 |
//! | 12 | transaction_timeout_ms | int32 |
//! | 16 | transaction_status | int8 (0 Empty, 1 Ongoing, 2 PrepareCommit, 3 PrepareAbort, 4 CompleteCommit, 5 CompleteAbort, 6 Dead, 7 PrepareEpochFence) |
//! | 17 | transaction_partitions | nullable array of (topic string, partition_ids array of int32); null when empty, as Kafka writes it |
//! | … | transaction_last_update_timestamp_ms | int64 |
//! | … | transaction_start_timestamp_ms | int64 (-1 none) |
//!
//! Kafka 3.8+ may write value version 1 (flexible, with tagged fields for
//! the previous and next producer ids, KIP-890); it is not read here: a
//! record of an unknown version is a typed error, and the loader logs and
//! skips it.
//!
//! Fixtures: `broker/tests/fixtures/transaction-state/v0/` holds one
//! encoded key and value; `txn::tests` checks they still decode and that
//! encoding gives the same bytes.

use std::collections::{BTreeMap, BTreeSet};

use super::types::{TxnMetadata, TxnState};

/// Key version written and read.
pub const KEY_VERSION: i16 = 0;
/// Value version written and read.
pub const VALUE_VERSION: i16 = 0;

/// A transactional id's state as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The transaction timeout.
    pub transaction_timeout_ms: i32,
    /// The state.
    pub state: TxnState,
    /// The partitions of the open transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// When the id last changed.
    pub last_update_timestamp_ms: i64,
    /// When the open transaction began (-1 none).
    pub start_timestamp_ms: i64,
}

impl TxnValue {
    /// The record of `meta`.
    pub fn of(meta: &TxnMetadata) -> Self {
        Self {
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            transaction_timeout_ms: meta.timeout_ms,
            state: meta.state,
            partitions: meta.partitions.clone(),
            last_update_timestamp_ms: meta.last_update_timestamp_ms,
            start_timestamp_ms: meta.start_timestamp_ms,
        }
    }
}

/// One record of `__transaction_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    /// The transactional id.
    pub transactional_id: String,
    /// Its state; None: a tombstone (the id expired).
    pub value: Option<TxnValue>,
}

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnRecordError {
    /// The bytes ended early or a length was invalid.
    #[error("truncated or malformed {0}")]
    Malformed(&'static str),
    /// A string was not UTF-8.
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    /// A key or value version this broker does not read.
    #[error("unknown {what} version {version}")]
    UnknownVersion {
        /// Key or value.
        what: &'static str,
        /// The version.
        version: i16,
    },
    /// A status byte outside Kafka's states.
    #[error("unknown transaction status {0}")]
    UnknownStatus(i8),
    /// A record without a key.
    #[error("record without a key")]
    NoKey,
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let len = bytes.len().min(i16::MAX as usize);
    out.extend_from_slice(&(len as i16).to_be_bytes());
    out.extend_from_slice(&bytes[..len]);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TxnRecordError> {
        let end = self.pos.checked_add(n).ok_or(TxnRecordError::Malformed(what))?;
        let s = self.buf.get(self.pos..end).ok_or(TxnRecordError::Malformed(what))?;
        self.pos = end;
        Ok(s)
    }
    fn i8(&mut self, what: &'static str) -> Result<i8, TxnRecordError> {
        Ok(self.take(1, what)?[0] as i8)
    }
    fn i16(&mut self, what: &'static str) -> Result<i16, TxnRecordError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, TxnRecordError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self, what: &'static str) -> Result<i64, TxnRecordError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(i64::from_be_bytes(a))
    }
    fn string(&mut self, what: &'static str) -> Result<String, TxnRecordError> {
        let len = self.i16(what)?;
        if len < 0 {
            return Err(TxnRecordError::Malformed(what));
        }
        let b = self.take(len as usize, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| TxnRecordError::NotUtf8(what))
    }
    /// An array count; None for a null array. A count larger than the
    /// bytes left is malformed (so a corrupt count allocates nothing).
    fn count(&mut self, what: &'static str, element_bytes_min: usize) -> Result<Option<usize>, TxnRecordError> {
        let count = self.i32(what)?;
        if count < 0 {
            return Ok(None);
        }
        let count = count as usize;
        if count.saturating_mul(element_bytes_min) > self.buf.len() - self.pos {
            return Err(TxnRecordError::Malformed(what));
        }
        Ok(Some(count))
    }
}

impl TxnRecord {
    /// The record's key and value bytes (value None for a tombstone).
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut key = Vec::new();
        key.extend_from_slice(&KEY_VERSION.to_be_bytes());
        put_string(&mut key, &self.transactional_id);
        let value = self.value.as_ref().map(|v| {
            let mut out = Vec::new();
            out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
            out.extend_from_slice(&v.producer_id.to_be_bytes());
            out.extend_from_slice(&v.producer_epoch.to_be_bytes());
            out.extend_from_slice(&v.transaction_timeout_ms.to_be_bytes());
            out.push(v.state.status_byte() as u8);
            if v.partitions.is_empty() {
                out.extend_from_slice(&(-1i32).to_be_bytes());
            } else {
                let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                for (topic, partition) in &v.partitions {
                    by_topic.entry(topic.as_str()).or_default().push(*partition);
                }
                out.extend_from_slice(&(by_topic.len() as i32).to_be_bytes());
                for (topic, partitions) in by_topic {
                    put_string(&mut out, topic);
                    out.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
                    for partition in partitions {
                        out.extend_from_slice(&partition.to_be_bytes());
                    }
                }
            }
            out.extend_from_slice(&v.last_update_timestamp_ms.to_be_bytes());
            out.extend_from_slice(&v.start_timestamp_ms.to_be_bytes());
            out
        });
        (key, value)
    }

    /// Decodes a record.
    pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<TxnRecord, TxnRecordError> {
        let key = key.ok_or(TxnRecordError::NoKey)?;
        let mut k = Reader { buf: key, pos: 0 };
        let version = k.i16("key version")?;
        if version != KEY_VERSION {
            return Err(TxnRecordError::UnknownVersion { what: "key", version });
        }
        let transactional_id = k.string("transactional id")?;
        let value = value.map(decode_value).transpose()?;
        Ok(TxnRecord { transactional_id, value })
    }
}

fn decode_value(bytes: &[u8]) -> Result<TxnValue, TxnRecordError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let version = r.i16("value version")?;
    if version != VALUE_VERSION {
        return Err(TxnRecordError::UnknownVersion { what: "value", version });
    }
    let producer_id = r.i64("producer id")?;
    let producer_epoch = r.i16("producer epoch")?;
    let transaction_timeout_ms = r.i32("transaction timeout")?;
    let status = r.i8("transaction status")?;
    let state = TxnState::from_status_byte(status).ok_or(TxnRecordError::UnknownStatus(status))?;
    let mut partitions = BTreeSet::new();
    // A topic entry is at least a string length and a count.
    if let Some(topics) = r.count("transaction partitions", 6)? {
        for _ in 0..topics {
            let topic = r.string("topic")?;
            let ids = r.count("partition ids", 4)?.unwrap_or(0);
            for _ in 0..ids {
                partitions.insert((topic.clone(), r.i32("partition id")?));
            }
        }
    }
    let last_update_timestamp_ms = r.i64("last update timestamp")?;
    let start_timestamp_ms = r.i64("start timestamp")?;
    Ok(TxnValue { producer_id, producer_epoch, transaction_timeout_ms, state, partitions, last_update_timestamp_ms, start_timestamp_ms })
}
