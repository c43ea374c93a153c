//! Sparse offset index and time index of one segment, kept in memory and
//! written to `.index` / `.timeindex` files when a segment is sealed (roll,
//! clean close, compaction).
//!
//! Why in memory: both indexes are *derived* data. They are rebuilt from the
//! log whenever their file is missing, stale (covers a different number of
//! log bytes) or fails its checksum, so they never need an fsync on the
//! append path.
//!
//! # `.index` file, version 1 (big-endian)
//!
//! | bytes  | field            | meaning                                        |
//! |--------|------------------|------------------------------------------------|
//! | 0..4   | magic `DLOI`     |                                                |
//! | 4..6   | version u16 = 1  |                                                |
//! | 6..8   | reserved = 0     |                                                |
//! | 8..16  | base_offset i64  | must equal the file name's offset              |
//! | 16..24 | log_bytes u64    | length of the `.log` this index describes      |
//! | 24..32 | next_offset i64  | last offset in the segment + 1 (base if empty) |
//! | 32..40 | max_timestamp i64| largest batch maxTimestamp (-1 if empty)       |
//! | 40..48 | max_ts_offset i64| offset of the batch holding it                 |
//! | 48..52 | count u32        | number of entries                              |
//! | 52..56 | crc u32          | CRC-32C of bytes 0..52 and all entries         |
//! | 56..   | entries          | count x (relative_offset u32, position u32)    |
//!
//! `relative_offset` is the batch's baseOffset - base_offset; `position` the
//! batch's byte position in the `.log`. Entries strictly increase in both.
//!
//! # `.timeindex` file, version 1 (big-endian)
//!
//! | bytes  | field            |                                                |
//! |--------|------------------|------------------------------------------------|
//! | 0..4   | magic `DLTI`     |                                                |
//! | 4..6   | version u16 = 1  |                                                |
//! | 6..8   | reserved = 0     |                                                |
//! | 8..16  | base_offset i64  |                                                |
//! | 16..24 | log_bytes u64    |                                                |
//! | 24..28 | count u32        |                                                |
//! | 28..32 | crc u32          | CRC-32C of bytes 0..28 and all entries         |
//! | 32..   | entries          | count x (timestamp i64, relative_offset u32)   |
//!
//! A time index entry `(t, r)` means: the largest maxTimestamp of the batches
//! up to and including the batch at relative offset `r` is `t` (a running
//! maximum, sampled at index points). So to find the first batch with
//! maxTimestamp >= T, scan from the last entry with `t < T`.

/// Offset index format version.
pub const OFFSET_INDEX_VERSION: u16 = 1;
/// Time index format version.
pub const TIME_INDEX_VERSION: u16 = 1;
const OFFSET_MAGIC: &[u8; 4] = b"DLOI";
const TIME_MAGIC: &[u8; 4] = b"DLTI";
const OFFSET_HEADER_BYTES: usize = 56;
const TIME_HEADER_BYTES: usize = 32;

/// Summary of a segment stored in the `.index` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    /// Length of the `.log` described.
    pub log_bytes: u64,
    /// Last offset + 1 (base offset if empty).
    pub next_offset: i64,
    /// Largest maxTimestamp (-1 if empty).
    pub max_timestamp_ms: i64,
    /// Offset of the batch with the largest timestamp.
    pub max_timestamp_offset: i64,
}

/// The sparse offset index: `(relative_offset, position)` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    /// Entries, strictly increasing in both fields.
    pub entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    /// Adds an entry; ignored unless it moves strictly forward.
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        if let Some(&(r, p)) = self.entries.last() {
            if relative_offset <= r || position <= p {
                return;
            }
        }
        self.entries.push((relative_offset, position));
    }

    /// The byte position from which to scan for `relative_offset`: the last
    /// entry at or before it, or 0.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let i = self.entries.partition_point(|&(r, _)| r <= relative_offset);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].1
        }
    }

    /// The last entry's position (0 if none).
    pub fn last_position(&self) -> u32 {
        self.entries.last().map_or(0, |e| e.1)
    }

    /// Encodes the `.index` file.
    pub fn encode(&self, base_offset: i64, summary: &SegmentSummary) -> Vec<u8> {
        let mut out = Vec::with_capacity(OFFSET_HEADER_BYTES + self.entries.len() * 8);
        out.extend_from_slice(OFFSET_MAGIC);
        out.extend_from_slice(&OFFSET_INDEX_VERSION.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&base_offset.to_be_bytes());
        out.extend_from_slice(&summary.log_bytes.to_be_bytes());
        out.extend_from_slice(&summary.next_offset.to_be_bytes());
        out.extend_from_slice(&summary.max_timestamp_ms.to_be_bytes());
        out.extend_from_slice(&summary.max_timestamp_offset.to_be_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        for &(r, p) in &self.entries {
            out.extend_from_slice(&r.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        let crc = crc32c::crc32c_append(crc32c::crc32c(&out[..52]), &out[OFFSET_HEADER_BYTES..]);
        out[52..56].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes and checks a `.index` file. `Err` says why it is unusable
    /// (the caller then rebuilds it from the log).
    pub fn decode(bytes: &[u8], base_offset: i64) -> Result<(OffsetIndex, SegmentSummary), String> {
        if bytes.len() < OFFSET_HEADER_BYTES || &bytes[0..4] != OFFSET_MAGIC {
            return Err("bad magic or short file".into());
        }
        let u16_at = |a: usize| u16::from_be_bytes([bytes[a], bytes[a + 1]]);
        let u32_at = |a: usize| u32::from_be_bytes(bytes[a..a + 4].try_into().expect("4"));
        let u64_at = |a: usize| u64::from_be_bytes(bytes[a..a + 8].try_into().expect("8"));
        if u16_at(4) != OFFSET_INDEX_VERSION {
            return Err(format!("unknown version {}", u16_at(4)));
        }
        let count = u32_at(48) as usize;
        if bytes.len() != OFFSET_HEADER_BYTES + count * 8 {
            return Err("length does not match entry count".into());
        }
        let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[..52]), &bytes[OFFSET_HEADER_BYTES..]);
        if crc != u32_at(52) {
            return Err("checksum mismatch".into());
        }
        if u64_at(8) as i64 != base_offset {
            return Err("base offset does not match file name".into());
        }
        let summary = SegmentSummary {
            log_bytes: u64_at(16),
            next_offset: u64_at(24) as i64,
            max_timestamp_ms: u64_at(32) as i64,
            max_timestamp_offset: u64_at(40) as i64,
        };
        if summary.next_offset < base_offset {
            return Err("next offset before base offset".into());
        }
        let mut idx = OffsetIndex::default();
        for i in 0..count {
            let a = OFFSET_HEADER_BYTES + i * 8;
            let (r, p) = (u32_at(a), u32_at(a + 4));
            if let Some(&(lr, lp)) = idx.entries.last() {
                if r <= lr || p <= lp {
                    return Err("entries not increasing".into());
                }
            }
            if u64::from(p) >= summary.log_bytes.max(1) || base_offset + i64::from(r) >= summary.next_offset {
                return Err("entry past the end of the log".into());
            }
            idx.entries.push((r, p));
        }
        Ok((idx, summary))
    }
}

/// The time index: `(timestamp_ms, relative_offset)` pairs with strictly
/// increasing timestamps (running maximum of batch maxTimestamp).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeIndex {
    /// Entries.
    pub entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Adds an entry if its timestamp exceeds the last one.
    pub fn push(&mut self, timestamp_ms: i64, relative_offset: u32) {
        if let Some(&(t, r)) = self.entries.last() {
            if timestamp_ms <= t || relative_offset < r {
                return;
            }
        }
        self.entries.push((timestamp_ms, relative_offset));
    }

    /// Relative offset to start scanning from when looking for the first
    /// batch with maxTimestamp >= `timestamp_ms`: the entry just before the
    /// first entry reaching it (0 if none).
    pub fn lookup(&self, timestamp_ms: i64) -> u32 {
        let i = self.entries.partition_point(|&(t, _)| t < timestamp_ms);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].1
        }
    }

    /// Encodes the `.timeindex` file.
    pub fn encode(&self, base_offset: i64, log_bytes: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(TIME_HEADER_BYTES + self.entries.len() * 12);
        out.extend_from_slice(TIME_MAGIC);
        out.extend_from_slice(&TIME_INDEX_VERSION.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&base_offset.to_be_bytes());
        out.extend_from_slice(&log_bytes.to_be_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        for &(t, r) in &self.entries {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&r.to_be_bytes());
        }
        let crc = crc32c::crc32c_append(crc32c::crc32c(&out[..28]), &out[TIME_HEADER_BYTES..]);
        out[28..32].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes and checks a `.timeindex` file for a log of `log_bytes`.
    pub fn decode(bytes: &[u8], base_offset: i64, log_bytes: u64) -> Result<TimeIndex, String> {
        if bytes.len() < TIME_HEADER_BYTES || &bytes[0..4] != TIME_MAGIC {
            return Err("bad magic or short file".into());
        }
        let u32_at = |a: usize| u32::from_be_bytes(bytes[a..a + 4].try_into().expect("4"));
        let u64_at = |a: usize| u64::from_be_bytes(bytes[a..a + 8].try_into().expect("8"));
        if u16::from_be_bytes([bytes[4], bytes[5]]) != TIME_INDEX_VERSION {
            return Err("unknown version".into());
        }
        let count = u32_at(24) as usize;
        if bytes.len() != TIME_HEADER_BYTES + count * 12 {
            return Err("length does not match entry count".into());
        }
        let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[..28]), &bytes[TIME_HEADER_BYTES..]);
        if crc != u32_at(28) {
            return Err("checksum mismatch".into());
        }
        if u64_at(8) as i64 != base_offset || u64_at(16) != log_bytes {
            return Err("stale: describes another log length".into());
        }
        let mut idx = TimeIndex::default();
        for i in 0..count {
            let a = TIME_HEADER_BYTES + i * 12;
            let t = u64_at(a) as i64;
            let r = u32_at(a + 8);
            if let Some(&(lt, lr)) = idx.entries.last() {
                if t <= lt || r < lr {
                    return Err("entries not increasing".into());
                }
            }
            idx.entries.push((t, r));
        }
        Ok(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_roundtrip_and_checksum() {
        let mut idx = OffsetIndex::default();
        idx.push(0, 0);
        idx.push(10, 4096);
        idx.push(20, 9000);
        let s = SegmentSummary { log_bytes: 10_000, next_offset: 130, max_timestamp_ms: 5, max_timestamp_offset: 120 };
        let enc = idx.encode(100, &s);
        let (d, ds) = OffsetIndex::decode(&enc, 100).unwrap();
        assert_eq!(d, idx);
        assert_eq!(ds, s);
        assert_eq!(idx.lookup(15), 4096);
        assert_eq!(idx.lookup(25), 9000);
        let mut bad = enc.clone();
        bad[60] ^= 1;
        assert!(OffsetIndex::decode(&bad, 100).is_err());
        assert!(OffsetIndex::decode(&enc, 101).is_err());
    }

    #[test]
    fn time_index_roundtrip() {
        let mut t = TimeIndex::default();
        t.push(100, 0);
        t.push(90, 3);
        t.push(200, 5);
        assert_eq!(t.entries.len(), 2);
        let enc = t.encode(7, 55);
        assert_eq!(TimeIndex::decode(&enc, 7, 55).unwrap(), t);
        assert!(TimeIndex::decode(&enc, 7, 56).is_err());
        assert_eq!(t.lookup(150), 0);
        assert_eq!(t.lookup(250), 5);
    }
}
