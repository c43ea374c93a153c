//! Durable Raft state on the [`Disk`] seam: hard state, log and snapshot.
//!
//! [`RaftStorage::persist_ready`] performs steps 1-4 of the driver contract
//! (see [`crate::raft`]) and returns only once everything is synced.
//! [`RaftStorage::open`] recovers a [`RecoveredState`] for `RaftNode::new`.
//!
//! # Files (format version 1)
//!
//! A storage directory holds up to three files: `hard_state`, `log` and
//! `snapshot` (plus `*.tmp` files from an interrupted rewrite, ignored and
//! removed on open). All integers are little-endian. Every file starts with
//! the same 32-byte header:
//!
//! | offset | size | field                                                  |
//! |-------:|-----:|--------------------------------------------------------|
//! | 0      | 8    | magic `DLOGRAFT`                                       |
//! | 8      | 2    | format version (`1`)                                   |
//! | 10     | 1    | file kind: 1 = hard state, 2 = log, 3 = snapshot       |
//! | 11     | 1    | reserved, 0                                            |
//! | 12     | 8    | log only: `base_index`, the index the log continues from (0 otherwise) |
//! | 20     | 8    | log only: `base_term`, the term at `base_index` (0 otherwise) |
//! | 28     | 4    | CRC-32C of bytes 0..28                                 |
//!
//! Records follow the header:
//!
//! | offset | size | field                                          |
//! |-------:|-----:|------------------------------------------------|
//! | 0      | 4    | payload length `n`                             |
//! | 4      | 4    | CRC-32C of the length field and the payload    |
//! | 8      | n    | payload                                        |
//!
//! Payloads:
//!
//! - `hard_state` (exactly one record): `term` u64, `has_vote` u8 (0/1),
//!   `voted_for` u64 (0 when `has_vote` is 0). 17 bytes.
//! - `log` (one record per entry, indices contiguous from `base_index + 1`):
//!   `term` u64, `index` u64, `kind` u8 (0 = normal, 1 = no-op), then the
//!   entry data (the rest of the payload).
//! - `snapshot` (exactly one record): `last_index` u64, `last_term` u64, then
//!   the snapshot data.
//!
//! # Writing
//!
//! - `hard_state` and `snapshot` are replaced atomically: write `<name>.tmp`,
//!   sync it, rename over `<name>`, sync the directory.
//! - A newly created storage directory is made durable by syncing its
//!   parent directory.
//! - The log is appended with a single write per `Ready` (so a crash can tear
//!   at most that write), then synced. Removing a conflicting suffix
//!   truncates the file and syncs *before* appending, so a crash cannot
//!   leave new entries in front of stale ones.
//! - A snapshot rewrites the log (`log.tmp`, then rename) to start at the
//!   snapshot: keeping later entries after a local compaction, none after a
//!   restore from the leader. The snapshot is made durable first.
//! - Order within one `Ready`: snapshot, hard state, entries. The hard state
//!   goes before the entries so the log never holds a term the hard state
//!   has not reached.
//!
//! # Recovery rules
//!
//! - A missing file means "nothing stored yet".
//! - `log`: a record cut short by the end of the file, or a final record whose
//!   CRC does not match, is a torn tail from a crash during an unsynced
//!   write: the file is truncated before it (and synced). A CRC mismatch
//!   with more records after it, a non-contiguous index or a bad header is
//!   [`StorageError::Corrupt`]. A log shorter than its header (crash while
//!   creating it) holds no entries and is recreated.
//! - `hard_state` / `snapshot`: these are only ever renamed into place
//!   complete, so any damage is [`StorageError::Corrupt`].
//! - The log is reconciled with the snapshot: if the log's base is the
//!   snapshot, or the log holds the snapshot's last entry with the same term
//!   (crash between writing a snapshot and rewriting the log), the entries
//!   after the snapshot are kept; otherwise (crash in the middle of restoring
//!   a leader's snapshot) the log entries are dropped.
//! - A version other than 1 is [`StorageError::UnsupportedVersion`].
//!
//! # `fsync: false`
//!
//! [`StorageOptions::fsync`] (the `raft.fsync=false` teaching knob) skips
//! every sync. The node then acknowledges state a crash can lose: a vote cast
//! twice in one term, an acknowledged entry gone. Never in production.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::disk::{Disk, DiskFile, OpenMode};

use super::types::{Entry, EntryKind, HardState, LogIndex, Ready, RecoveredState, Snapshot, SnapshotMeta};

/// The on-disk format version written by this code.
pub const FORMAT_VERSION: u16 = 1;
const MAGIC: &[u8; 8] = b"DLOGRAFT";
const HEADER_LEN: u64 = 32;
const RECORD_HEADER_LEN: u64 = 8;
const KIND_HARD_STATE: u8 = 1;
const KIND_LOG: u8 = 2;
const KIND_SNAPSHOT: u8 = 3;
/// File names inside the storage directory.
pub const HARD_STATE_FILE: &str = "hard_state";
/// The log file name.
pub const LOG_FILE: &str = "log";
/// The snapshot file name.
pub const SNAPSHOT_FILE: &str = "snapshot";

/// Errors from Raft storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The disk failed.
    #[error("raft storage I/O error during {op} on {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Stored bytes are damaged in a way a crash cannot explain.
    #[error("raft storage corrupt: {path} at byte {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Written by a newer (or unknown) format.
    #[error("raft storage {path}: unsupported format version {version}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        version: u16,
    },
}

/// Storage options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageOptions {
    /// Sync files and directories before returning (default true). False is
    /// the `raft.fsync=false` teaching knob: fast and unsafe.
    pub fsync: bool,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self { fsync: true }
    }
}

/// Durable Raft state in one directory.
pub struct RaftStorage {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    options: StorageOptions,
    log_file: Arc<dyn DiskFile>,
    /// The snapshot point the log file continues from.
    log_base: SnapshotMeta,
    /// File offset of each stored entry, `log_base.last_index + 1` onward.
    entry_offsets: Vec<u64>,
    /// End of the last valid record.
    log_end: u64,
}

impl std::fmt::Debug for RaftStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftStorage")
            .field("dir", &self.dir)
            .field("options", &self.options)
            .field("log_base", &self.log_base)
            .field("entries", &self.entry_offsets.len())
            .finish()
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| StorageError::Io { op, path: path.to_path_buf(), source }
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt { path: path.to_path_buf(), offset, reason: reason.into() }
}

/// Encodes a file header.
pub fn encode_header(kind: u8, base: SnapshotMeta) -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[0..8].copy_from_slice(MAGIC);
    header[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[10] = kind;
    header[12..20].copy_from_slice(&base.last_index.to_le_bytes());
    header[20..28].copy_from_slice(&base.last_term.to_le_bytes());
    let crc = crc32c::crc32c(&header[0..28]);
    header[28..32].copy_from_slice(&crc.to_le_bytes());
    header
}

fn decode_header(path: &Path, bytes: &[u8], kind: u8) -> Result<SnapshotMeta, StorageError> {
    if bytes.len() < HEADER_LEN as usize {
        return Err(corrupt(path, 0, "file shorter than its header"));
    }
    if &bytes[0..8] != MAGIC {
        return Err(corrupt(path, 0, "bad magic"));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    let crc = u32::from_le_bytes(bytes[28..32].try_into().expect("4 bytes"));
    if crc != crc32c::crc32c(&bytes[0..28]) {
        return Err(corrupt(path, 0, "header checksum mismatch"));
    }
    if version != FORMAT_VERSION {
        return Err(StorageError::UnsupportedVersion { path: path.to_path_buf(), version });
    }
    if bytes[10] != kind {
        return Err(corrupt(path, 10, format!("file kind {} where {} expected", bytes[10], kind)));
    }
    Ok(SnapshotMeta {
        last_index: u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")),
        last_term: u64::from_le_bytes(bytes[20..28].try_into().expect("8 bytes")),
    })
}

/// Frames a payload as a record.
pub fn encode_record(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32c::crc32c(&len);
    crc = crc32c::crc32c_append(crc, payload);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// How a record read went.
enum RecordRead<'a> {
    /// A valid record and the offset after it.
    Valid(&'a [u8], u64),
    /// The bytes end inside the record.
    Incomplete,
    /// The record is complete but its checksum is wrong; offset after it.
    BadChecksum(u64),
}

fn read_record(bytes: &[u8], offset: u64) -> RecordRead<'_> {
    let start = offset as usize;
    if bytes.len() < start + RECORD_HEADER_LEN as usize {
        return RecordRead::Incomplete;
    }
    let len_bytes: [u8; 4] = bytes[start..start + 4].try_into().expect("4 bytes");
    let len = u32::from_le_bytes(len_bytes) as usize;
    let crc = u32::from_le_bytes(bytes[start + 4..start + 8].try_into().expect("4 bytes"));
    let payload_start = start + RECORD_HEADER_LEN as usize;
    let Some(end) = payload_start.checked_add(len).filter(|&end| end <= bytes.len()) else {
        return RecordRead::Incomplete;
    };
    let payload = &bytes[payload_start..end];
    if crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload) != crc {
        return RecordRead::BadChecksum(end as u64);
    }
    RecordRead::Valid(payload, end as u64)
}

/// Encodes a hard state payload.
pub fn encode_hard_state(hard_state: &HardState) -> Vec<u8> {
    let mut payload = Vec::with_capacity(17);
    payload.extend_from_slice(&hard_state.term.to_le_bytes());
    payload.push(u8::from(hard_state.voted_for.is_some()));
    payload.extend_from_slice(&hard_state.voted_for.unwrap_or(0).to_le_bytes());
    payload
}

fn decode_hard_state(path: &Path, payload: &[u8]) -> Result<HardState, StorageError> {
    if payload.len() != 17 || payload[8] > 1 {
        return Err(corrupt(path, HEADER_LEN, "malformed hard state"));
    }
    let term = u64::from_le_bytes(payload[0..8].try_into().expect("8 bytes"));
    let voted_for = u64::from_le_bytes(payload[9..17].try_into().expect("8 bytes"));
    Ok(HardState { term, voted_for: (payload[8] == 1).then_some(voted_for) })
}

/// Encodes a log entry payload.
pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut payload = Vec::with_capacity(17 + entry.data.len());
    payload.extend_from_slice(&entry.term.to_le_bytes());
    payload.extend_from_slice(&entry.index.to_le_bytes());
    payload.push(match entry.kind {
        EntryKind::Normal => 0,
        EntryKind::Noop => 1,
    });
    payload.extend_from_slice(&entry.data);
    payload
}

fn decode_entry(payload: &[u8]) -> Option<Entry> {
    if payload.len() < 17 {
        return None;
    }
    let kind = match payload[16] {
        0 => EntryKind::Normal,
        1 => EntryKind::Noop,
        _ => return None,
    };
    Some(Entry {
        term: u64::from_le_bytes(payload[0..8].try_into().ok()?),
        index: u64::from_le_bytes(payload[8..16].try_into().ok()?),
        kind,
        data: payload[17..].to_vec(),
    })
}

/// Encodes a snapshot payload.
pub fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    let mut payload = Vec::with_capacity(16 + snapshot.data.len());
    payload.extend_from_slice(&snapshot.meta.last_index.to_le_bytes());
    payload.extend_from_slice(&snapshot.meta.last_term.to_le_bytes());
    payload.extend_from_slice(&snapshot.data);
    payload
}

fn decode_snapshot(path: &Path, payload: &[u8]) -> Result<Snapshot, StorageError> {
    if payload.len() < 16 {
        return Err(corrupt(path, HEADER_LEN, "malformed snapshot"));
    }
    Ok(Snapshot {
        meta: SnapshotMeta {
            last_index: u64::from_le_bytes(payload[0..8].try_into().expect("8 bytes")),
            last_term: u64::from_le_bytes(payload[8..16].try_into().expect("8 bytes")),
        },
        data: payload[16..].to_vec(),
    })
}

fn read_all(file: &dyn DiskFile, path: &Path) -> Result<Vec<u8>, StorageError> {
    let len = file.len().map_err(io_err("stat", path))?;
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0).map_err(io_err("read", path))?;
    Ok(bytes)
}

impl RaftStorage {
    /// Opens (creating if needed) the storage in `dir` and recovers its
    /// state, repairing a torn log tail.
    pub fn open(
        disk: Arc<dyn Disk>,
        dir: &Path,
        options: StorageOptions,
    ) -> Result<(Self, RecoveredState), StorageError> {
        let existed = disk.exists(dir);
        disk.create_dir_all(dir).map_err(io_err("create_dir_all", dir))?;
        if !existed && options.fsync {
            // The directory's own entry must survive a crash too.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                disk.sync_dir(parent).map_err(io_err("sync_dir", parent))?;
            }
        }
        for name in disk.list_dir(dir).map_err(io_err("list_dir", dir))? {
            if name.ends_with(".tmp") {
                let path = dir.join(&name);
                disk.remove_file(&path).map_err(io_err("remove", &path))?;
            }
        }
        let hard_state = Self::read_single(&*disk, &dir.join(HARD_STATE_FILE), KIND_HARD_STATE)?
            .map(|(path, payload)| decode_hard_state(&path, &payload))
            .transpose()?
            .unwrap_or_default();
        let snapshot = Self::read_single(&*disk, &dir.join(SNAPSHOT_FILE), KIND_SNAPSHOT)?
            .map(|(path, payload)| decode_snapshot(&path, &payload))
            .transpose()?;
        let snapshot_meta = snapshot.as_ref().map(|s| s.meta).unwrap_or_default();

        let log_path = dir.join(LOG_FILE);
        let log_file = disk.open(&log_path, OpenMode::CreateIfMissing).map_err(io_err("open", &log_path))?;
        let bytes = read_all(&*log_file, &log_path)?;
        let mut storage = Self {
            disk: disk.clone(),
            dir: dir.to_path_buf(),
            options,
            log_file,
            log_base: snapshot_meta,
            entry_offsets: Vec::new(),
            log_end: HEADER_LEN,
        };
        let mut entries = Vec::new();
        if bytes.len() < HEADER_LEN as usize {
            // Crash while creating the log: it cannot hold entries.
            storage.rewrite_log(snapshot_meta, &[])?;
        } else {
            storage.log_base = decode_header(&log_path, &bytes, KIND_LOG)?;
            let mut offset = HEADER_LEN;
            let mut expected = storage.log_base.last_index + 1;
            while offset < bytes.len() as u64 {
                match read_record(&bytes, offset) {
                    RecordRead::Valid(payload, next) => {
                        let entry = decode_entry(payload).ok_or_else(|| corrupt(&log_path, offset, "malformed entry"))?;
                        if entry.index != expected {
                            return Err(corrupt(
                                &log_path,
                                offset,
                                format!("entry index {} where {} expected", entry.index, expected),
                            ));
                        }
                        storage.entry_offsets.push(offset);
                        entries.push(entry);
                        expected += 1;
                        offset = next;
                    }
                    RecordRead::BadChecksum(next) if next < bytes.len() as u64 => {
                        return Err(corrupt(&log_path, offset, "record checksum mismatch before the tail"));
                    }
                    RecordRead::BadChecksum(_) | RecordRead::Incomplete => {
                        tracing::warn!(path = %log_path.display(), offset, "truncating torn raft log tail");
                        storage.log_file.set_len(offset).map_err(io_err("truncate", &log_path))?;
                        storage.sync_log()?;
                        break;
                    }
                }
            }
            storage.log_end = offset;
            // Reconcile with the snapshot.
            if storage.log_base.last_index > snapshot_meta.last_index {
                return Err(corrupt(&log_path, 12, "log continues from a snapshot newer than the stored one"));
            }
            if snapshot_meta != storage.log_base {
                let holds_snapshot_entry = entries
                    .iter()
                    .any(|e| e.index == snapshot_meta.last_index && e.term == snapshot_meta.last_term)
                    || storage.log_base == snapshot_meta;
                let kept: Vec<Entry> = if holds_snapshot_entry {
                    entries.into_iter().filter(|e| e.index > snapshot_meta.last_index).collect()
                } else {
                    Vec::new()
                };
                storage.rewrite_log(snapshot_meta, &kept)?;
                entries = kept;
            }
        }
        let recovered = RecoveredState { hard_state, snapshot, entries };
        Ok((storage, recovered))
    }

    /// Reads a single-record file, `None` if it does not exist.
    fn read_single(disk: &dyn Disk, path: &Path, kind: u8) -> Result<Option<(PathBuf, Vec<u8>)>, StorageError> {
        if !disk.exists(path) {
            return Ok(None);
        }
        let file = disk.open(path, OpenMode::Existing).map_err(io_err("open", path))?;
        let bytes = read_all(&*file, path)?;
        decode_header(path, &bytes, kind)?;
        match read_record(&bytes, HEADER_LEN) {
            RecordRead::Valid(payload, end) if end == bytes.len() as u64 => Ok(Some((path.to_path_buf(), payload.to_vec()))),
            RecordRead::Valid(..) => Err(corrupt(path, HEADER_LEN, "trailing bytes after the record")),
            RecordRead::Incomplete => Err(corrupt(path, HEADER_LEN, "record cut short")),
            RecordRead::BadChecksum(_) => Err(corrupt(path, HEADER_LEN, "record checksum mismatch")),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Index of the last stored entry (or of the log base).
    pub fn last_index(&self) -> LogIndex {
        self.log_base.last_index + self.entry_offsets.len() as u64
    }

    /// Steps 1-4 of the driver contract: snapshot, hard state, entries, all
    /// synced (unless `fsync` is off) before returning.
    pub fn persist_ready(&mut self, ready: &Ready) -> Result<(), StorageError> {
        if let Some(snapshot) = &ready.snapshot {
            self.save_snapshot(snapshot, ready.restore_snapshot)?;
        }
        if let Some(hard_state) = &ready.hard_state {
            self.save_hard_state(hard_state)?;
        }
        if !ready.entries.is_empty() {
            self.append(&ready.entries)?;
        }
        Ok(())
    }

    /// Durably replaces the hard state.
    pub fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError> {
        self.replace_single(HARD_STATE_FILE, KIND_HARD_STATE, &encode_hard_state(hard_state))
    }

    /// Durably replaces the snapshot, then rewrites the log to continue from
    /// it: keeping later entries unless `discard_all_entries`.
    pub fn save_snapshot(&mut self, snapshot: &Snapshot, discard_all_entries: bool) -> Result<(), StorageError> {
        self.replace_single(SNAPSHOT_FILE, KIND_SNAPSHOT, &encode_snapshot(snapshot))?;
        let kept = if discard_all_entries {
            Vec::new()
        } else {
            self.read_entries(snapshot.meta.last_index + 1)?
        };
        self.rewrite_log(snapshot.meta, &kept)
    }

    /// Appends entries, first removing stored entries at or after
    /// `entries[0].index`.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first) = entries.first() else { return Ok(()) };
        let path = self.dir.join(LOG_FILE);
        if first.index <= self.log_base.last_index || first.index > self.last_index() + 1 {
            return Err(corrupt(
                &path,
                self.log_end,
                format!("append at {} does not fit a log with base {} and last {}", first.index, self.log_base.last_index, self.last_index()),
            ));
        }
        if first.index <= self.last_index() {
            let keep = (first.index - self.log_base.last_index - 1) as usize;
            self.log_end = self.entry_offsets[keep];
            self.entry_offsets.truncate(keep);
            self.log_file.set_len(self.log_end).map_err(io_err("truncate", &path))?;
            self.sync_log()?;
        }
        let mut buffer = Vec::new();
        let mut offset = self.log_end;
        for entry in entries {
            let before = buffer.len();
            encode_record(&encode_entry(entry), &mut buffer);
            self.entry_offsets.push(offset);
            offset += (buffer.len() - before) as u64;
        }
        self.log_file.write_at(&buffer, self.log_end).map_err(io_err("write", &path))?;
        self.log_end = offset;
        self.sync_log()
    }

    /// Reads stored entries from `from` to the end.
    pub fn read_entries(&self, from: LogIndex) -> Result<Vec<Entry>, StorageError> {
        let path = self.dir.join(LOG_FILE);
        let from = from.max(self.log_base.last_index + 1);
        if from > self.last_index() {
            return Ok(Vec::new());
        }
        let start = self.entry_offsets[(from - self.log_base.last_index - 1) as usize];
        let mut bytes = vec![0u8; (self.log_end - start) as usize];
        self.log_file.read_exact_at(&mut bytes, start).map_err(io_err("read", &path))?;
        let mut entries = Vec::new();
        let mut offset = 0;
        while offset < bytes.len() as u64 {
            match read_record(&bytes, offset) {
                RecordRead::Valid(payload, next) => {
                    entries.push(decode_entry(payload).ok_or_else(|| corrupt(&path, start + offset, "malformed entry"))?);
                    offset = next;
                }
                _ => return Err(corrupt(&path, start + offset, "record damaged after recovery")),
            }
        }
        Ok(entries)
    }

    fn replace_single(&mut self, name: &str, kind: u8, payload: &[u8]) -> Result<(), StorageError> {
        let mut bytes = encode_header(kind, SnapshotMeta::default()).to_vec();
        encode_record(payload, &mut bytes);
        self.replace(name, &bytes)
    }

    fn rewrite_log(&mut self, base: SnapshotMeta, entries: &[Entry]) -> Result<(), StorageError> {
        let path = self.dir.join(LOG_FILE);
        let mut bytes = encode_header(KIND_LOG, base).to_vec();
        let mut offsets = Vec::with_capacity(entries.len());
        for entry in entries {
            offsets.push(bytes.len() as u64);
            encode_record(&encode_entry(entry), &mut bytes);
        }
        self.replace(LOG_FILE, &bytes)?;
        self.log_file = self.disk.open(&path, OpenMode::Existing).map_err(io_err("open", &path))?;
        self.log_base = base;
        self.entry_offsets = offsets;
        self.log_end = bytes.len() as u64;
        Ok(())
    }

    fn sync_log(&self) -> Result<(), StorageError> {
        if self.options.fsync {
            self.log_file.sync().map_err(io_err("sync", &self.dir.join(LOG_FILE)))?;
        }
        Ok(())
    }

    /// Replaces `name` in the Raft directory ([`crate::disk::replace_file`]),
    /// synced unless `raft.fsync=false`.
    fn replace(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        crate::disk::replace_file(&*self.disk, &self.dir, name, bytes, self.options.fsync)
            .map_err(|e| StorageError::Io { op: e.step, path: e.path, source: e.source })
    }
}
