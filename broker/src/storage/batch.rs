//! Kafka RecordBatch v2 (magic 2): header access, validation, record
//! parsing and re-encoding (for compaction).
//!
//! Layout (all integers big-endian):
//!
//! | bytes  | field                | notes                                   |
//! |--------|----------------------|-----------------------------------------|
//! | 0..8   | baseOffset i64       | assigned by the log; not under the CRC  |
//! | 8..12  | batchLength i32      | bytes after this field                  |
//! | 12..16 | partitionLeaderEpoch | not under the CRC                       |
//! | 16     | magic i8 = 2         |                                         |
//! | 17..21 | crc u32              | CRC-32C of bytes 21..end                |
//! | 21..23 | attributes i16       | bits 0-2 codec, 3 log-append-time, 4 txn, 5 control, 6 delete horizon |
//! | 23..27 | lastOffsetDelta i32  |                                         |
//! | 27..35 | baseTimestamp i64    | delete horizon if attribute bit 6       |
//! | 35..43 | maxTimestamp i64     |                                         |
//! | 43..51 | producerId i64       |                                         |
//! | 51..53 | producerEpoch i16    |                                         |
//! | 53..57 | baseSequence i32     |                                         |
//! | 57..61 | recordsCount i32     |                                         |
//! | 61..   | records              | varint-encoded, possibly compressed     |
//!
//! A **control batch** (attributes bits 4 and 5: transactional and control)
//! ends a producer's transaction on this partition (KIP-98). It holds one
//! uncompressed record whose key and value are fixed-layout (big-endian):
//!
//! | bytes | key field          | notes                           |
//! |-------|--------------------|---------------------------------|
//! | 0..2  | version i16 = 0    | control record key version      |
//! | 2..4  | type i16           | 0 = abort, 1 = commit           |
//!
//! | bytes | value field             | notes                                      |
//! |-------|-------------------------|--------------------------------------------|
//! | 0..2  | version i16 = 0         | end-transaction marker version             |
//! | 2..6  | coordinatorEpoch i32    | epoch of the coordinator that wrote it     |
//!
//! The batch's producerId and producerEpoch are the transaction's;
//! baseSequence is -1 (markers carry no sequence). Kafka readers accept a
//! longer key or value (later versions append fields); [`parse_control_marker`]
//! does too, and refuses anything shorter, a negative version, or a type
//! other than 0 and 1.

use super::error::StorageError;

/// Size of the fixed batch header.
pub const HEADER_BYTES: usize = 61;
/// Bytes before `batchLength`'s payload (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;
/// Smallest legal `batchLength`.
pub const MIN_BATCH_LENGTH: i32 = (HEADER_BYTES - LOG_OVERHEAD) as i32;
/// Largest `batchLength` accepted from disk (sanity bound for recovery).
pub const MAX_BATCH_LENGTH: i32 = i32::MAX - 16;

/// Offset of the CRC-covered region.
pub const CRC_START: usize = 21;

/// Attribute bit: timestamp type is LogAppendTime.
pub const ATTR_LOG_APPEND_TIME: i16 = 1 << 3;
/// Attribute bit: the batch belongs to a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 1 << 4;
/// Attribute bit: control batch.
pub const ATTR_CONTROL: i16 = 1 << 5;
/// Control record type of an abort marker.
pub const CONTROL_TYPE_ABORT: i16 = 0;
/// Control record type of a commit marker.
pub const CONTROL_TYPE_COMMIT: i16 = 1;
/// Size of a version-0 control record key (version, type).
pub const CONTROL_KEY_BYTES: usize = 4;
/// Size of a version-0 end-transaction marker value (version, coordinator epoch).
pub const CONTROL_VALUE_BYTES: usize = 6;
/// Attribute bit: baseTimestamp holds the delete horizon.
pub const ATTR_DELETE_HORIZON: i16 = 1 << 6;
/// Attribute mask: compression codec.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// The fixed header fields of a batch (copied out of the bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// First offset of the batch.
    pub base_offset: i64,
    /// Value of the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch stamped by the leader.
    pub partition_leader_epoch: i32,
    /// Magic byte.
    pub magic: i8,
    /// Stored CRC.
    pub crc: u32,
    /// Attributes.
    pub attributes: i16,
    /// lastOffset - baseOffset.
    pub last_offset_delta: i32,
    /// First timestamp (or delete horizon, see attributes).
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Producer id (-1 if none).
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Sequence of the first record.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the header from at least 61 (`HEADER_BYTES`) bytes. Does not
    /// validate anything.
    pub fn parse(b: &[u8]) -> Option<BatchHeader> {
        if b.len() < HEADER_BYTES {
            return None;
        }
        Some(BatchHeader {
            base_offset: be_i64(b, 0),
            batch_length: be_i32(b, 8),
            partition_leader_epoch: be_i32(b, 12),
            magic: b[16] as i8,
            crc: be_u32(b, 17),
            attributes: be_i16(b, 21),
            last_offset_delta: be_i32(b, 23),
            base_timestamp: be_i64(b, 27),
            max_timestamp: be_i64(b, 35),
            producer_id: be_i64(b, 43),
            producer_epoch: be_i16(b, 51),
            base_sequence: be_i32(b, 53),
            records_count: be_i32(b, 57),
        })
    }

    /// Total size of the batch in bytes (`12 + batchLength`).
    pub fn size_bytes(&self) -> u64 {
        LOG_OVERHEAD as u64 + self.batch_length.max(0) as u64
    }

    /// Last offset of the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Compression codec (0 = none).
    pub fn compression(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    /// Whether this is a control batch.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Whether the batch belongs to a transaction (data or marker).
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// The delete horizon, if the cleaner set one.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes & ATTR_DELETE_HORIZON != 0).then_some(self.base_timestamp)
    }

    /// Structural checks that need only the header: length bounds, magic,
    /// offset delta. `Err` carries a human reason.
    pub fn check_structure(&self) -> Result<(), String> {
        if self.batch_length < MIN_BATCH_LENGTH || self.batch_length > MAX_BATCH_LENGTH {
            return Err(format!("batchLength {} out of bounds", self.batch_length));
        }
        if self.magic != 2 {
            return Err(format!("magic {} is not 2", self.magic));
        }
        if self.last_offset_delta < 0 {
            return Err(format!("negative lastOffsetDelta {}", self.last_offset_delta));
        }
        if self.records_count < 0 {
            return Err(format!("negative recordsCount {}", self.records_count));
        }
        Ok(())
    }
}

/// CRC-32C of a whole batch's covered region.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// Whether the stored CRC of a complete batch matches its bytes.
pub fn crc_ok(batch: &[u8]) -> bool {
    batch.len() >= HEADER_BYTES && be_u32(batch, 17) == compute_crc(batch)
}

/// Rewrites the baseOffset field (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites the CRC field from the batch's bytes.
pub fn refresh_crc(batch: &mut [u8]) {
    let crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Stamps LogAppendTime: sets attribute bit 3 and maxTimestamp, refreshes
/// the CRC.
pub fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attrs = be_i16(batch, 21) | ATTR_LOG_APPEND_TIME;
    batch[21..23].copy_from_slice(&attrs.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    refresh_crc(batch);
}

// ---------------------------------------------------------------- varints

fn read_varlong(b: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    let mut shift = 0u32;
    loop {
        let byte = *b.get(*pos)?;
        *pos += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if raw < 0x80 {
            out.push(raw as u8);
            return;
        }
        out.push((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
}

/// One record of an uncompressed batch (borrowed from the batch bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Record attributes (unused by Kafka, kept).
    pub attributes: i8,
    /// Delta from the batch's baseTimestamp.
    pub timestamp_delta: i64,
    /// Delta from the batch's baseOffset.
    pub offset_delta: i32,
    /// Key (None = null).
    pub key: Option<&'a [u8]>,
    /// Value (None = null: a tombstone).
    pub value: Option<&'a [u8]>,
    /// Raw encoded headers (count varint + headers), kept verbatim.
    pub headers_raw: &'a [u8],
}

fn read_bytes<'a>(b: &'a [u8], pos: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = read_varlong(b, pos)?;
    if len < 0 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    let end = pos.checked_add(len)?;
    let s = b.get(*pos..end)?;
    *pos = end;
    Some(Some(s))
}

/// Parses the records of an uncompressed batch. `Err` if the records do not
/// parse exactly (count, lengths, offset deltas within lastOffsetDelta).
pub fn parse_records(batch: &[u8]) -> Result<Vec<Record<'_>>, String> {
    let h = BatchHeader::parse(batch).ok_or("short batch")?;
    if h.compression() != 0 {
        return Err("compressed batch".into());
    }
    let mut out = Vec::with_capacity(h.records_count.max(0) as usize);
    let mut pos = HEADER_BYTES;
    for i in 0..h.records_count {
        let len = read_varlong(batch, &mut pos).ok_or_else(|| format!("record {i}: bad length"))?;
        let len = usize::try_from(len).map_err(|_| format!("record {i}: negative length"))?;
        let end = pos.checked_add(len).filter(|e| *e <= batch.len()).ok_or_else(|| format!("record {i}: overruns batch"))?;
        let rec = &batch[..end];
        let attributes = *rec.get(pos).ok_or("short record")? as i8;
        pos += 1;
        let timestamp_delta = read_varlong(rec, &mut pos).ok_or("bad timestamp delta")?;
        let offset_delta = read_varlong(rec, &mut pos).ok_or("bad offset delta")?;
        if offset_delta < 0 || offset_delta > i64::from(h.last_offset_delta) {
            return Err(format!("record {i}: offset delta {offset_delta} outside 0..={}", h.last_offset_delta));
        }
        let key = read_bytes(rec, &mut pos).ok_or("bad key")?;
        let value = read_bytes(rec, &mut pos).ok_or("bad value")?;
        let headers_start = pos;
        let n_headers = read_varlong(rec, &mut pos).ok_or("bad header count")?;
        if n_headers < 0 {
            return Err("negative header count".into());
        }
        for _ in 0..n_headers {
            let hk = read_bytes(rec, &mut pos).ok_or("bad header key")?;
            if hk.is_none() {
                return Err("null header key".into());
            }
            read_bytes(rec, &mut pos).ok_or("bad header value")?;
        }
        if pos != end {
            return Err(format!("record {i}: length mismatch"));
        }
        out.push(Record {
            attributes,
            timestamp_delta,
            offset_delta: offset_delta as i32,
            key,
            value,
            headers_raw: &rec[headers_start..end],
        });
    }
    if pos != batch.len() {
        return Err(format!("{} trailing bytes after {} records", batch.len() - pos, h.records_count));
    }
    Ok(out)
}

/// Encodes one record body (without the length prefix) into `out`.
fn encode_record(out: &mut Vec<u8>, r: &Record<'_>, timestamp_delta: i64) {
    let mut body = Vec::with_capacity(16 + r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len) + r.headers_raw.len());
    body.push(r.attributes as u8);
    write_varlong(&mut body, timestamp_delta);
    write_varlong(&mut body, i64::from(r.offset_delta));
    match r.key {
        Some(k) => {
            write_varlong(&mut body, k.len() as i64);
            body.extend_from_slice(k);
        }
        None => write_varlong(&mut body, -1),
    }
    match r.value {
        Some(v) => {
            write_varlong(&mut body, v.len() as i64);
            body.extend_from_slice(v);
        }
        None => write_varlong(&mut body, -1),
    }
    body.extend_from_slice(r.headers_raw);
    write_varlong(out, body.len() as i64);
    out.extend_from_slice(&body);
}

/// Rebuilds a batch keeping only `keep` of its records (same header fields,
/// same baseOffset and lastOffsetDelta so offsets are preserved), optionally
/// setting a delete horizon (stored in baseTimestamp, record timestamp deltas
/// re-based so record timestamps are unchanged). Fresh CRC.
pub fn rebuild_batch(original: &[u8], keep: &[Record<'_>], delete_horizon_ms: Option<i64>) -> Vec<u8> {
    let h = BatchHeader::parse(original).expect("caller parsed this batch");
    let old_base_ts = h.base_timestamp;
    let (new_base_ts, attrs) = match delete_horizon_ms {
        Some(hz) => (hz, h.attributes | ATTR_DELETE_HORIZON),
        None => (old_base_ts, h.attributes),
    };
    let mut out = Vec::with_capacity(original.len());
    out.extend_from_slice(&original[..HEADER_BYTES]);
    for r in keep {
        let ts = old_base_ts.wrapping_add(r.timestamp_delta);
        encode_record(&mut out, r, ts.wrapping_sub(new_base_ts));
    }
    let batch_length = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[21..23].copy_from_slice(&attrs.to_be_bytes());
    out[27..35].copy_from_slice(&new_base_ts.to_be_bytes());
    out[57..61].copy_from_slice(&(keep.len() as i32).to_be_bytes());
    refresh_crc(&mut out);
    out
}

/// A simple record for [`build_batch`]: key, value, timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleRecord {
    /// Key (None = null).
    pub key: Option<Vec<u8>>,
    /// Value (None = tombstone).
    pub value: Option<Vec<u8>>,
    /// Timestamp in ms.
    pub timestamp_ms: i64,
}

/// Encodes an uncompressed v2 batch the way a producer would (baseOffset 0,
/// no producer id). Used by tests, benchmarks and fixtures.
pub fn build_batch(records: &[SimpleRecord]) -> Vec<u8> {
    encode_batch(records, 0, -1, -1, -1)
}

/// Encodes an uncompressed v2 batch of a transaction: as [`build_batch`],
/// but with attribute bit 4 (`isTransactional`) set and the header's
/// `producerId` (bytes 43..51), `producerEpoch` (51..53) and `baseSequence`
/// (53..57) filled in. `base_sequence` is -1 (Kafka's `NO_SEQUENCE`) for a
/// batch the group coordinator writes to `__consumer_offsets`, which no
/// sequence check applies to.
pub fn build_transactional_batch(producer_id: i64, producer_epoch: i16, base_sequence: i32, records: &[SimpleRecord]) -> Vec<u8> {
    assert!(producer_id >= 0 && producer_epoch >= 0, "a transaction has a producer");
    let batch = encode_batch(records, ATTR_TRANSACTIONAL, producer_id, producer_epoch, base_sequence);
    debug_assert!(BatchHeader::parse(&batch).is_some_and(|h| h.is_transactional() && !h.is_control() && h.producer_id == producer_id));
    batch
}

/// The header fields a batch built here sets; everything else as a
/// producer's first uncompressed batch (baseOffset 0, leader epoch 0).
fn encode_batch(records: &[SimpleRecord], attributes: i16, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Vec<u8> {
    let base_ts = records.first().map_or(0, |r| r.timestamp_ms);
    let max_ts = records.iter().map(|r| r.timestamp_ms).max().unwrap_or(base_ts);
    let mut out = vec![0u8; HEADER_BYTES];
    out[16] = 2;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let last_delta = records.len().saturating_sub(1) as i32;
    out[23..27].copy_from_slice(&last_delta.to_be_bytes());
    out[27..35].copy_from_slice(&base_ts.to_be_bytes());
    out[35..43].copy_from_slice(&max_ts.to_be_bytes());
    out[43..51].copy_from_slice(&producer_id.to_be_bytes());
    out[51..53].copy_from_slice(&producer_epoch.to_be_bytes());
    out[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    out[57..61].copy_from_slice(&(records.len() as i32).to_be_bytes());
    for (i, r) in records.iter().enumerate() {
        let rec = Record {
            attributes: 0,
            timestamp_delta: 0,
            offset_delta: i as i32,
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers_raw: &[0],
        };
        encode_record(&mut out, &rec, r.timestamp_ms - base_ts);
    }
    let batch_length = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    refresh_crc(&mut out);
    out
}

/// Rewrites a batch's producer fields (`producerId`, `producerEpoch`,
/// `baseSequence`) and refreshes its CRC: an idempotent producer's batch
/// from one [`build_batch`] made.
pub fn set_producer(batch: &mut [u8], producer_id: i64, producer_epoch: i16, base_sequence: i32) {
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&producer_epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    refresh_crc(batch);
}

/// The decoded end-transaction marker of a control batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlMarker {
    /// Commit (`true`) or abort.
    pub commit: bool,
    /// Epoch of the transaction coordinator that wrote the marker.
    pub coordinator_epoch: i32,
}

/// Why a control batch's marker does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlBatchError {
    /// The batch's attributes do not say control.
    #[error("not a control batch (attributes {0:#06x})")]
    NotControl(i16),
    /// The batch is compressed, or its records do not parse.
    #[error("control batch records: {0}")]
    Records(String),
    /// A control batch holds exactly one record.
    #[error("control batch holds {0} records, not 1")]
    RecordCount(usize),
    /// The key is null, short, or of a negative version.
    #[error("control record key: {0}")]
    Key(String),
    /// The type is neither abort (0) nor commit (1).
    #[error("control record type {0} is neither abort (0) nor commit (1)")]
    UnknownType(i16),
    /// The value is null, short, or of a negative version.
    #[error("end-transaction marker value: {0}")]
    Value(String),
}

/// Encodes a control batch holding one end-transaction marker (baseOffset
/// 0; the log assigns the offset). See the module docs for the bytes.
pub fn build_control_batch(producer_id: i64, producer_epoch: i16, commit: bool, coordinator_epoch: i32, timestamp_ms: i64) -> Vec<u8> {
    assert!(producer_id >= 0 && producer_epoch >= 0, "a marker belongs to a producer");
    let mut key = Vec::with_capacity(CONTROL_KEY_BYTES);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&(if commit { CONTROL_TYPE_COMMIT } else { CONTROL_TYPE_ABORT }).to_be_bytes());
    let mut value = Vec::with_capacity(CONTROL_VALUE_BYTES);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut batch = build_batch(&[SimpleRecord { key: Some(key), value: Some(value), timestamp_ms }]);
    let attributes = ATTR_TRANSACTIONAL | ATTR_CONTROL;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    set_producer(&mut batch, producer_id, producer_epoch, -1);
    debug_assert_eq!(parse_control_marker(&batch), Ok(ControlMarker { commit, coordinator_epoch }));
    batch
}

/// Decodes the marker of one whole control batch (its CRC is the caller's
/// to check).
pub fn parse_control_marker(batch: &[u8]) -> Result<ControlMarker, ControlBatchError> {
    let header = BatchHeader::parse(batch).ok_or_else(|| ControlBatchError::Records(format!("{} bytes, a header needs {HEADER_BYTES}", batch.len())))?;
    if !header.is_control() {
        return Err(ControlBatchError::NotControl(header.attributes));
    }
    let records = parse_records(batch).map_err(ControlBatchError::Records)?;
    let [record] = records.as_slice() else { return Err(ControlBatchError::RecordCount(records.len())) };
    let key = record.key.ok_or_else(|| ControlBatchError::Key("null".into()))?;
    if key.len() < CONTROL_KEY_BYTES {
        return Err(ControlBatchError::Key(format!("{} bytes, needs {CONTROL_KEY_BYTES}", key.len())));
    }
    let key_version = be_i16(key, 0);
    if key_version < 0 {
        return Err(ControlBatchError::Key(format!("version {key_version}")));
    }
    let commit = match be_i16(key, 2) {
        CONTROL_TYPE_ABORT => false,
        CONTROL_TYPE_COMMIT => true,
        other => return Err(ControlBatchError::UnknownType(other)),
    };
    let value = record.value.ok_or_else(|| ControlBatchError::Value("null".into()))?;
    if value.len() < CONTROL_VALUE_BYTES {
        return Err(ControlBatchError::Value(format!("{} bytes, needs {CONTROL_VALUE_BYTES}", value.len())));
    }
    let value_version = be_i16(value, 0);
    if value_version < 0 {
        return Err(ControlBatchError::Value(format!("version {value_version}")));
    }
    Ok(ControlMarker { commit, coordinator_epoch: be_i32(value, 2) })
}

/// Splits a buffer of concatenated batches into `(position, header)` pairs,
/// checking lengths only. Errors name the byte position.
pub fn split_batches(buf: &[u8]) -> Result<Vec<(usize, BatchHeader)>, StorageError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let h = BatchHeader::parse(&buf[pos..]).ok_or_else(|| StorageError::CorruptBatch {
            position: pos,
            reason: format!("{} bytes left, a batch header needs {HEADER_BYTES}", buf.len() - pos),
        })?;
        if h.magic != 2 {
            return Err(StorageError::UnsupportedMagic { magic: h.magic });
        }
        h.check_structure().map_err(|reason| StorageError::CorruptBatch { position: pos, reason })?;
        let size = h.size_bytes() as usize;
        if pos + size > buf.len() {
            return Err(StorageError::CorruptBatch {
                position: pos,
                reason: format!("batch of {size} bytes overruns the {}-byte buffer", buf.len()),
            });
        }
        out.push((pos, h));
        pos += size;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_parse_rebuild_roundtrip() {
        let recs: Vec<SimpleRecord> = (0..5)
            .map(|i| SimpleRecord {
                key: Some(vec![b'k', i as u8]),
                value: if i == 3 { None } else { Some(vec![i as u8; 300]) },
                timestamp_ms: 1000 + i,
            })
            .collect();
        let b = build_batch(&recs);
        assert!(crc_ok(&b));
        let parsed = parse_records(&b).unwrap();
        assert_eq!(parsed.len(), 5);
        assert_eq!(parsed[3].value, None);
        let keep = vec![parsed[1].clone(), parsed[3].clone()];
        let nb = rebuild_batch(&b, &keep, Some(99_999));
        assert!(crc_ok(&nb));
        let h = BatchHeader::parse(&nb).unwrap();
        assert_eq!(h.last_offset_delta, 4);
        assert_eq!(h.delete_horizon_ms(), Some(99_999));
        let p2 = parse_records(&nb).unwrap();
        assert_eq!(p2.len(), 2);
        assert_eq!(p2[0].offset_delta, 1);
        assert_eq!(h.base_timestamp + p2[0].timestamp_delta, 1001);
        assert_eq!(split_batches(&[b.clone(), nb].concat()).unwrap().len(), 2);
    }

    #[test]
    fn control_batches_roundtrip_and_garbage_is_refused() {
        for (commit, coordinator_epoch) in [(true, 0), (false, 7), (true, i32::MAX)] {
            let b = build_control_batch(42, 3, commit, coordinator_epoch, 1_000);
            assert!(crc_ok(&b));
            let h = BatchHeader::parse(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence, h.records_count), (42, 3, -1, 1));
            assert_eq!(parse_control_marker(&b), Ok(ControlMarker { commit, coordinator_epoch }));
        }
        // Bytes of a commit marker: key (0, 1), value (0, coordinator epoch 5).
        let b = build_control_batch(1, 0, true, 5, 0);
        let r = &parse_records(&b).unwrap()[0];
        assert_eq!(r.key, Some(&[0u8, 0, 0, 1][..]));
        assert_eq!(r.value, Some(&[0u8, 0, 0, 0, 0, 5][..]));
        // A data batch is not a control batch.
        let data = build_batch(&[SimpleRecord { key: None, value: Some(vec![1]), timestamp_ms: 0 }]);
        assert!(matches!(parse_control_marker(&data), Err(ControlBatchError::NotControl(_))));
        // An unknown type, a short value, two records.
        let control = |key: Vec<u8>, value: Vec<u8>, n: usize| {
            let recs: Vec<_> = (0..n).map(|_| SimpleRecord { key: Some(key.clone()), value: Some(value.clone()), timestamp_ms: 0 }).collect();
            let mut b = build_batch(&recs);
            b[21..23].copy_from_slice(&(ATTR_TRANSACTIONAL | ATTR_CONTROL).to_be_bytes());
            refresh_crc(&mut b);
            b
        };
        assert_eq!(parse_control_marker(&control(vec![0, 0, 0, 2], vec![0; 6], 1)), Err(ControlBatchError::UnknownType(2)));
        assert!(matches!(parse_control_marker(&control(vec![0, 0, 0, 1], vec![0; 5], 1)), Err(ControlBatchError::Value(_))));
        assert!(matches!(parse_control_marker(&control(vec![0, 0], vec![0; 6], 1)), Err(ControlBatchError::Key(_))));
        assert_eq!(parse_control_marker(&control(vec![0, 0, 0, 1], vec![0; 6], 2)), Err(ControlBatchError::RecordCount(2)));
        assert!(matches!(parse_control_marker(&b[..40]), Err(ControlBatchError::Records(_))));
    }

    #[test]
    fn varlong_roundtrip() {
        for v in [0i64, 1, -1, 63, -64, 64, 300, -300, i64::MAX, i64::MIN] {
            let mut o = Vec::new();
            write_varlong(&mut o, v);
            let mut p = 0;
            assert_eq!(read_varlong(&o, &mut p), Some(v));
            assert_eq!(p, o.len());
        }
    }
}
