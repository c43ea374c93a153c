//! One log segment: a `.log` file of concatenated RecordBatch v2 bytes plus
//! its in-memory indexes, and the scanner that validates a segment's bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::disk::{Disk, DiskFile, OpenMode};

use super::batch::{self, BatchHeader, HEADER_BYTES};
use super::error::{Result, StorageError};
use super::index::{OffsetIndex, SegmentSummary, TimeIndex};

/// File extension of segment data.
pub const LOG_EXT: &str = "log";
/// File extension of the sparse offset index.
pub const INDEX_EXT: &str = "index";
/// File extension of the time index.
pub const TIME_INDEX_EXT: &str = "timeindex";

/// `00000000000000000042.log` style name.
pub fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// Parses the base offset out of a `<20 digits>.<ext>` name.
pub fn parse_file_name(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// A segment of the log.
pub(crate) struct Segment {
    pub base_offset: i64,
    pub dir: PathBuf,
    pub file: Arc<dyn DiskFile>,
    /// Bytes of whole, validated batches (the committed end of the file).
    pub size_bytes: u64,
    /// Last offset of the last batch + 1; `base_offset` if empty.
    pub next_offset: i64,
    /// Wall-clock ms at creation (or the first batch's timestamp on
    /// recovery); drives `segment.ms`.
    pub created_ms: i64,
    /// Largest batch maxTimestamp, -1 if empty.
    pub max_timestamp_ms: i64,
    /// Offset of the batch holding `max_timestamp_ms`.
    pub max_timestamp_offset: i64,
    /// First batch's maxTimestamp (for age on recovery), -1 if empty.
    pub first_timestamp_ms: i64,
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    pub bytes_since_index: u64,
    /// Whether the index files on disk may differ from memory.
    pub index_dirty: bool,
}

/// How often one [`Segment::find_batch`] re-reads an earlier header whose
/// length led the scan somewhere suspicious, before it believes what it read.
const FIND_BATCH_RECHECKS_MAX: u32 = 4;

/// What [`Segment::find_batch`] believed of a header it skipped, and the
/// lower bound on offsets before it, so that the step can be redone.
#[derive(Debug, Clone, Copy)]
struct ScannedHeader {
    position: u64,
    size_bytes: u64,
    base_offset: i64,
    last_offset: i64,
    expect_min: i64,
}

impl Segment {
    pub fn new(base_offset: i64, dir: &Path, file: Arc<dyn DiskFile>, created_ms: i64) -> Segment {
        Segment {
            base_offset,
            dir: dir.to_path_buf(),
            file,
            size_bytes: 0,
            next_offset: base_offset,
            created_ms,
            max_timestamp_ms: -1,
            max_timestamp_offset: base_offset,
            first_timestamp_ms: -1,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            index_dirty: true,
        }
    }

    pub fn path(&self, ext: &str) -> PathBuf {
        self.dir.join(file_name(self.base_offset, ext))
    }

    pub fn log_path(&self) -> PathBuf {
        self.path(LOG_EXT)
    }

    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }

    fn relative(&self, offset: i64) -> u32 {
        debug_assert!(offset >= self.base_offset && offset - self.base_offset <= i64::from(u32::MAX));
        (offset - self.base_offset) as u32
    }

    /// Accounts a batch appended (or found) at `position`.
    pub fn record_batch(&mut self, position: u64, h: &BatchHeader, index_interval_bytes: u64) {
        debug_assert_eq!(position, self.size_bytes, "batches are recorded in order");
        debug_assert!(h.base_offset >= self.next_offset, "offsets only grow");
        if self.bytes_since_index >= index_interval_bytes && position <= u64::from(u32::MAX) {
            let rel = self.relative(h.base_offset);
            self.index.push(rel, position as u32);
            let running_max = self.max_timestamp_ms.max(h.max_timestamp);
            self.time_index.push(running_max, rel);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += h.size_bytes();
        if self.first_timestamp_ms < 0 {
            self.first_timestamp_ms = h.max_timestamp;
        }
        if h.max_timestamp > self.max_timestamp_ms {
            self.max_timestamp_ms = h.max_timestamp;
            self.max_timestamp_offset = h.base_offset;
        }
        self.size_bytes = position + h.size_bytes();
        self.next_offset = h.last_offset() + 1;
        self.index_dirty = true;
    }

    pub fn summary(&self) -> SegmentSummary {
        SegmentSummary {
            log_bytes: self.size_bytes,
            next_offset: self.next_offset,
            max_timestamp_ms: self.max_timestamp_ms,
            max_timestamp_offset: self.max_timestamp_offset,
        }
    }

    /// Writes and fsyncs the `.index` and `.timeindex` files (the caller
    /// syncs the directory).
    pub fn write_indexes(&mut self, disk: &dyn Disk) -> Result<()> {
        let idx = self.index.encode(self.base_offset, &self.summary());
        let tidx = self.time_index.encode(self.base_offset, self.size_bytes);
        for (ext, bytes) in [(INDEX_EXT, idx), (TIME_INDEX_EXT, tidx)] {
            let path = self.path(ext);
            let f = disk.open(&path, OpenMode::Truncate).map_err(|e| StorageError::io("open index", &path, e))?;
            f.write_at(&bytes, 0).map_err(|e| StorageError::io("write index", &path, e))?;
            f.sync().map_err(|e| StorageError::io("sync index", &path, e))?;
        }
        self.index_dirty = false;
        Ok(())
    }

    /// Tries to load both index files; `Err` says why they are unusable.
    pub fn load_indexes(&mut self, disk: &dyn Disk, log_bytes: u64) -> std::result::Result<(), String> {
        let read_all = |path: &Path| -> std::result::Result<Vec<u8>, String> {
            let f = disk.open(path, OpenMode::Existing).map_err(|e| format!("{path:?}: {e}"))?;
            let len = f.len().map_err(|e| e.to_string())?;
            if len > 1 << 30 {
                return Err("index file too large".into());
            }
            let mut buf = vec![0u8; len as usize];
            f.read_exact_at(&mut buf, 0).map_err(|e| e.to_string())?;
            Ok(buf)
        };
        let (idx, summary) = OffsetIndex::decode(&read_all(&self.path(INDEX_EXT))?, self.base_offset)?;
        if summary.log_bytes != log_bytes {
            return Err(format!("stale index: covers {} bytes, log has {log_bytes}", summary.log_bytes));
        }
        let tidx = TimeIndex::decode(&read_all(&self.path(TIME_INDEX_EXT))?, self.base_offset, log_bytes)?;
        self.index = idx;
        self.time_index = tidx;
        self.size_bytes = summary.log_bytes;
        self.next_offset = summary.next_offset;
        self.max_timestamp_ms = summary.max_timestamp_ms;
        self.max_timestamp_offset = summary.max_timestamp_offset;
        self.bytes_since_index = log_bytes - u64::from(self.index.last_position());
        self.index_dirty = false;
        Ok(())
    }

    /// Finds the first batch whose last offset is >= `offset`, scanning
    /// headers from the index entry before it. `None` if the segment has no
    /// such batch.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        let rel = if offset <= self.base_offset { 0 } else { (offset - self.base_offset).min(i64::from(u32::MAX)) as u32 };
        let mut pos = if offset <= self.base_offset { 0 } else { u64::from(self.index.lookup(rel)) };
        let mut hdr = [0u8; HEADER_BYTES];
        let mut expect_min = self.base_offset;
        // Neither baseOffset nor batchLength is covered by the CRC (Kafka's
        // format), and a skipped batch's CRC is never checked, so one flipped
        // bit in a skipped header (a base offset read one lower, a length
        // that lands exactly on a later batch's start) would make the scan
        // skip batches silently, and a consumer would miss records. Whatever
        // looks wrong at `pos` (a bad header, misplaced offsets, or a gap in
        // the offsets, which only compaction makes legitimately) therefore
        // first re-reads the header that led here; if it reads differently
        // now, the first read was a transient fault and the scan redoes that
        // step from fresh reads.
        let mut previous: Option<ScannedHeader> = None;
        let mut rechecks_left = FIND_BATCH_RECHECKS_MAX;
        while pos < self.size_bytes {
            let mut header = self.read_placed_header(pos, expect_min, &mut hdr);
            let suspicious = match (&header, &previous) {
                (Ok(h), Some(_)) => h.base_offset > expect_min,
                // The index entry is at or before `offset`, so the first
                // batch scanned starts after it only in a compacted segment.
                (Ok(h), None) => h.base_offset > offset,
                (Err(StorageError::Corrupt { .. }), _) => true,
                (Err(_), _) => false,
            };
            if suspicious && rechecks_left > 0 {
                rechecks_left -= 1;
                if let Some(prev) = previous {
                    let again = self.read_header(prev.position, &mut hdr)?;
                    if (again.size_bytes(), again.base_offset, again.last_offset()) != (prev.size_bytes, prev.base_offset, prev.last_offset) {
                        pos = prev.position;
                        expect_min = prev.expect_min;
                        previous = None;
                        continue;
                    }
                }
                // The step that led here reads the same: read this header
                // once more, and believe the gap if it is still there.
                header = self.read_placed_header(pos, expect_min, &mut hdr);
            }
            let h = header?;
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            previous = Some(ScannedHeader { position: pos, size_bytes: h.size_bytes(), base_offset: h.base_offset, last_offset: h.last_offset(), expect_min });
            expect_min = h.last_offset() + 1;
            pos += h.size_bytes();
        }
        Ok(None)
    }

    /// Reads the header at `position` and checks that its offsets fit there
    /// (at or after `expect_min`, below the segment's end), with one re-read
    /// before calling it corruption: the CRC does not cover the base offset.
    fn read_placed_header(&self, position: u64, expect_min: i64, buf: &mut [u8; HEADER_BYTES]) -> Result<BatchHeader> {
        let h = self.read_header(position, buf)?;
        if self.offsets_plausible(&h, expect_min) {
            return Ok(h);
        }
        let h = self.read_header(position, buf)?;
        if self.offsets_plausible(&h, expect_min) {
            return Ok(h);
        }
        Err(StorageError::Corrupt {
            path: self.log_path(),
            position,
            reason: format!("batch offsets {}..={} outside {expect_min}..{}", h.base_offset, h.last_offset(), self.next_offset),
        })
    }

    /// Whether a batch's offsets fit where it lies: after the previous batch
    /// and before the segment's end offset.
    fn offsets_plausible(&self, h: &BatchHeader, expect_min: i64) -> bool {
        h.base_offset >= expect_min && h.last_offset() < self.next_offset
    }

    /// Reads and structurally checks the batch header at `position`.
    pub fn read_header(&self, position: u64, buf: &mut [u8; HEADER_BYTES]) -> Result<BatchHeader> {
        let path = self.log_path();
        let check = |h: &BatchHeader| -> std::result::Result<(), String> {
            h.check_structure()?;
            if position + h.size_bytes() > self.size_bytes {
                return Err(format!("batch of {} bytes runs past the segment end {}", h.size_bytes(), self.size_bytes));
            }
            Ok(())
        };
        if position + HEADER_BYTES as u64 > self.size_bytes {
            // Only a wrong length read earlier leads here (a scan stepping by
            // batch lengths): that is corrupt data, not a failing disk.
            return Err(StorageError::Corrupt { path, position, reason: format!("a batch header at {position} would run past the segment end {}", self.size_bytes) });
        }
        self.file.read_exact_at(buf, position).map_err(|e| StorageError::io("read header", &path, e))?;
        let h = BatchHeader::parse(buf).expect("buffer is HEADER_BYTES long");
        if let Err(reason) = check(&h) {
            // One re-read: the medium may have returned a flipped bit.
            self.file.read_exact_at(buf, position).map_err(|e| StorageError::io("read header", &path, e))?;
            let h2 = BatchHeader::parse(buf).expect("buffer is HEADER_BYTES long");
            if check(&h2).is_err() {
                return Err(StorageError::Corrupt { path, position, reason });
            }
            return Ok(h2);
        }
        Ok(h)
    }

    /// Reads whole batches starting at `position`: at least the first one,
    /// then more while they fit in `max_bytes` and their base offset is
    /// below `upper_offset` (exclusive). Every batch's CRC is verified (one
    /// re-read on mismatch, then [`StorageError::Corrupt`]).
    pub fn read_batches(&self, position: u64, first: &BatchHeader, max_bytes: usize, upper_offset: i64) -> Result<(Bytes, i64)> {
        let path = self.log_path();
        let first_size = first.size_bytes();
        let want = (max_bytes as u64).max(first_size).min(self.size_bytes - position);
        let mut buf = vec![0u8; want as usize];
        self.file.read_exact_at(&mut buf, position).map_err(|e| StorageError::io("read", &path, e))?;
        let mut end = 0usize;
        let mut last_offset = first.last_offset();
        let mut expect_min = first.base_offset;
        while end < buf.len() {
            let Some(h) = BatchHeader::parse(&buf[end..]) else { break };
            if end > 0 && h.base_offset >= upper_offset {
                break;
            }
            let size = h.size_bytes() as usize;
            if end + size > buf.len() {
                if end == 0 {
                    return Err(StorageError::Corrupt { path, position, reason: "batch length changed under the reader".into() });
                }
                break;
            }
            let pos_abs = position + end as u64;
            // A batch must follow the previous one without a gap; a gap is
            // believed only if a re-read shows it too (compaction makes gaps,
            // a flipped bit in the uncovered baseOffset makes false ones).
            let ok = h.check_structure().is_ok()
                && batch::crc_ok(&buf[end..end + size])
                && h.base_offset == expect_min
                && self.offsets_plausible(&h, expect_min);
            if !ok {
                // One re-read of this batch: a transient bit flip on the
                // read path must not be reported as corruption.
                crate::mark!("storage.read.reread_after_bad_crc");
                let mut again = vec![0u8; size];
                self.file.read_exact_at(&mut again, pos_abs).map_err(|e| StorageError::io("read", &path, e))?;
                let h2 = BatchHeader::parse(&again);
                let ok2 = h2.is_some_and(|h2| h2.check_structure().is_ok() && h2.size_bytes() as usize == size && self.offsets_plausible(&h2, expect_min))
                    && batch::crc_ok(&again);
                if !ok2 {
                    crate::mark!("storage.read.corrupt");
                    return Err(StorageError::Corrupt { path, position: pos_abs, reason: "CRC-32C mismatch or misplaced offsets".into() });
                }
                buf[end..end + size].copy_from_slice(&again);
            }
            // Offsets from the bytes we return (re-read if the first read was bad).
            let h = BatchHeader::parse(&buf[end..]).expect("checked above");
            last_offset = h.last_offset();
            expect_min = last_offset + 1;
            end += size;
        }
        debug_assert!(end > 0, "at least one batch is returned");
        buf.truncate(end);
        Ok((Bytes::from(buf), last_offset))
    }
}

/// Why a scan stopped before the end of the file.
#[derive(Debug, Clone)]
pub(crate) struct ScanProblem {
    pub position: u64,
    pub reason: String,
    /// `Some(bytes)` if whole valid batches follow the bad one (so it is
    /// corruption before the tail, not a torn write).
    pub valid_bytes_after: Option<u64>,
}

/// Result of scanning a segment file.
#[derive(Debug, Clone)]
pub(crate) struct ScanOutcome {
    /// End of the last good batch.
    pub valid_end: u64,
    pub problem: Option<ScanProblem>,
}

const SCAN_CHUNK_BYTES: usize = 4 << 20;
/// Fresh re-reads of a batch that failed validation during recovery before
/// it is judged (persistent damage fails every read; a transient read error
/// does not).
const RECOVERY_REREADS: usize = 2;

struct ChunkReader<'a> {
    file: &'a dyn DiskFile,
    path: &'a Path,
    file_len: u64,
    buf: Vec<u8>,
    start: u64,
}

impl ChunkReader<'_> {
    /// Returns `n` bytes at `pos`, or `None` if the file is shorter.
    fn get(&mut self, pos: u64, n: usize) -> Result<Option<&[u8]>> {
        if pos + n as u64 > self.file_len {
            return Ok(None);
        }
        let have = pos >= self.start && pos + n as u64 <= self.start + self.buf.len() as u64;
        if !have {
            let len = (n.max(SCAN_CHUNK_BYTES) as u64).min(self.file_len - pos) as usize;
            self.buf.resize(len, 0);
            self.file.read_exact_at(&mut self.buf, pos).map_err(|e| StorageError::io("scan", self.path, e))?;
            self.start = pos;
        }
        let at = (pos - self.start) as usize;
        Ok(Some(&self.buf[at..at + n]))
    }

    /// Drops the cached chunk so the next `get` reads the file again.
    fn invalidate(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// Fresh read of one range (bypassing the chunk), for a second opinion.
    fn reread(&self, pos: u64, n: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; n];
        self.file.read_exact_at(&mut v, pos).map_err(|e| StorageError::io("scan", self.path, e))?;
        Ok(v)
    }
}

/// Checks one batch at `pos`; returns its header if whole and valid.
fn check_batch(r: &mut ChunkReader<'_>, pos: u64, min_offset: i64, validate_crc: bool) -> Result<std::result::Result<BatchHeader, (String, Option<u64>)>> {
    let Some(hb) = r.get(pos, HEADER_BYTES)? else {
        return Ok(Err(("partial batch header at the end".into(), None)));
    };
    let h = BatchHeader::parse(hb).expect("HEADER_BYTES");
    if let Err(reason) = h.check_structure() {
        return Ok(Err((reason, None)));
    }
    let size = h.size_bytes();
    if pos + size > r.file_len {
        return Ok(Err((format!("batch of {size} bytes runs past the end of the file"), None)));
    }
    if h.base_offset < min_offset {
        return Ok(Err((format!("base offset {} goes backwards (expected >= {min_offset})", h.base_offset), Some(size))));
    }
    if validate_crc {
        let ok = match r.get(pos, size as usize)? {
            Some(b) => batch::crc_ok(b),
            None => false,
        };
        if !ok {
            // Second opinion from a fresh read before declaring corruption.
            let again = r.reread(pos, size as usize)?;
            let h2 = BatchHeader::parse(&again);
            if !(batch::crc_ok(&again) && h2.is_some_and(|h2| h2 == h)) {
                return Ok(Err(("CRC-32C mismatch".into(), Some(size))));
            }
        }
    }
    Ok(Ok(h))
}

/// Scans `[start_pos, file_len)` batch by batch, calling `visit` for each
/// valid batch, and stops at the first invalid one. `min_offset` is the
/// smallest base offset the next batch may have.
pub(crate) fn scan(
    file: &dyn DiskFile,
    path: &Path,
    start_pos: u64,
    file_len: u64,
    mut min_offset: i64,
    validate_crc: bool,
    visit: &mut dyn FnMut(u64, &BatchHeader),
) -> Result<ScanOutcome> {
    let mut r = ChunkReader { file, path, file_len, buf: Vec::new(), start: 0 };
    let mut pos = start_pos;
    while pos < file_len {
        let mut verdict = check_batch(&mut r, pos, min_offset, validate_crc)?;
        for _ in 0..RECOVERY_REREADS {
            if verdict.is_ok() {
                break;
            }
            // More opinions from fresh reads before calling anything torn
            // or corrupt: a transient bit flip must not truncate data.
            r.invalidate();
            verdict = check_batch(&mut r, pos, min_offset, validate_crc)?;
        }
        match verdict {
            Ok(h) => {
                visit(pos, &h);
                pos += h.size_bytes();
                min_offset = h.last_offset() + 1;
            }
            Err((reason, known_size)) => {
                // Is there valid data after the bad batch? Only decidable
                // when the bad batch's length is plausible.
                let mut valid_bytes_after = None;
                if let Some(size) = known_size {
                    let mut p = pos + size;
                    let mut total = 0u64;
                    while p < file_len {
                        match check_batch(&mut r, p, i64::MIN, true)? {
                            Ok(h) => {
                                total += h.size_bytes();
                                p += h.size_bytes();
                            }
                            Err(_) => break,
                        }
                    }
                    if total > 0 {
                        valid_bytes_after = Some(total);
                    }
                }
                return Ok(ScanOutcome { valid_end: pos, problem: Some(ScanProblem { position: pos, reason, valid_bytes_after }) });
            }
        }
    }
    Ok(ScanOutcome { valid_end: pos, problem: None })
}
