//! Small files beside the segments, each replaced atomically: write
//! `<name>.tmp`, fsync it, rename over `<name>`, fsync the directory. A crash
//! at any point leaves either the old or the new file whole; a stray `.tmp`
//! is deleted at open.
//!
//! # Framing, version 1 (big-endian), shared by every checkpoint
//!
//! | bytes   | field          | meaning                                    |
//! |---------|----------------|--------------------------------------------|
//! | 0..4    | magic `DLCK`   |                                            |
//! | 4..6    | version u16=1  |                                            |
//! | 6..8    | kind u16       | 1 leader epochs, 2 log start offset, 3 producer snapshot, 4 clean shutdown |
//! | 8..12   | length u32     | payload bytes                              |
//! | 12..16  | crc u32        | CRC-32C of the payload                     |
//! | 16..    | payload        | per kind, below                            |
//!
//! - leader epochs (`leader-epoch-checkpoint`): count u32, then count x
//!   (epoch i32, start_offset i64), epochs and offsets strictly increasing.
//! - log start offset (`log-start-offset-checkpoint`): offset i64.
//! - producer snapshot (`<offset 20 digits>.snapshot`): offset i64, then the
//!   opaque bytes the broker gave.
//! - clean shutdown (`.clean-shutdown`): log end offset i64.

use std::path::Path;

use crate::disk::{Disk, OpenMode};

use super::error::{Result, StorageError};

/// Checkpoint framing version.
pub const CHECKPOINT_VERSION: u16 = 1;
const MAGIC: &[u8; 4] = b"DLCK";
const HEADER_BYTES: usize = 16;

/// Kinds of checkpoint file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum CheckpointKind {
    /// `leader-epoch-checkpoint`.
    LeaderEpochs = 1,
    /// `log-start-offset-checkpoint`.
    LogStartOffset = 2,
    /// `<offset>.snapshot`.
    ProducerSnapshot = 3,
    /// `.clean-shutdown`.
    CleanShutdown = 4,
}

/// Frames a payload.
pub fn encode(kind: CheckpointKind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&CHECKPOINT_VERSION.to_be_bytes());
    out.extend_from_slice(&(kind as u16).to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Unframes and checks a payload.
pub fn decode(kind: CheckpointKind, bytes: &[u8]) -> std::result::Result<&[u8], String> {
    if bytes.len() < HEADER_BYTES || &bytes[0..4] != MAGIC {
        return Err("bad magic or short file".into());
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if version != CHECKPOINT_VERSION {
        return Err(format!("unknown version {version}"));
    }
    if u16::from_be_bytes([bytes[6], bytes[7]]) != kind as u16 {
        return Err("wrong kind".into());
    }
    let len = u32::from_be_bytes(bytes[8..12].try_into().expect("4")) as usize;
    if bytes.len() != HEADER_BYTES + len {
        return Err("length mismatch".into());
    }
    let payload = &bytes[HEADER_BYTES..];
    if crc32c::crc32c(payload) != u32::from_be_bytes(bytes[12..16].try_into().expect("4")) {
        return Err("checksum mismatch".into());
    }
    Ok(payload)
}

/// Atomically and durably replaces `dir/name` with `bytes`
/// ([`crate::disk::replace_file`]).
pub fn write_atomic(disk: &dyn Disk, dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    crate::disk::replace_file(disk, dir, name, bytes, true).map_err(|e| StorageError::io(e.step, e.path, e.source))
}

/// Reads a whole file; `Ok(None)` if absent.
pub fn read_file(disk: &dyn Disk, path: &Path) -> Result<Option<Vec<u8>>> {
    if !disk.exists(path) {
        return Ok(None);
    }
    let f = match disk.open(path, OpenMode::Existing) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("open", path, e)),
    };
    let len = f.len().map_err(|e| StorageError::io("stat", path, e))?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, 0).map_err(|e| StorageError::io("read", path, e))?;
    Ok(Some(buf))
}

/// Reads and unframes a checkpoint. `Ok(None)` if absent; a damaged file
/// is an error (the caller decides whether it may fall back).
pub fn read_checkpoint(disk: &dyn Disk, dir: &Path, name: &str, kind: CheckpointKind) -> Result<Option<Vec<u8>>> {
    let path = dir.join(name);
    // Up to three reads: a transient bit flip on the read path must not
    // make a good checkpoint look damaged.
    let mut last_reason = String::new();
    for _ in 0..3 {
        let Some(bytes) = read_file(disk, &path)? else { return Ok(None) };
        match decode(kind, &bytes) {
            Ok(p) => return Ok(Some(p.to_vec())),
            Err(reason) => last_reason = reason,
        }
    }
    Err(StorageError::Corrupt { path, position: 0, reason: last_reason })
}

/// One leader epoch entry: the first offset written in `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// Leader epoch.
    pub epoch: i32,
    /// First offset of that epoch.
    pub start_offset: i64,
}

/// Encodes leader epoch entries.
pub fn encode_epochs(entries: &[EpochEntry]) -> Vec<u8> {
    let mut p = Vec::with_capacity(4 + entries.len() * 12);
    p.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        p.extend_from_slice(&e.epoch.to_be_bytes());
        p.extend_from_slice(&e.start_offset.to_be_bytes());
    }
    encode(CheckpointKind::LeaderEpochs, &p)
}

/// Decodes a leader-epoch payload.
pub fn decode_epochs(payload: &[u8]) -> std::result::Result<Vec<EpochEntry>, String> {
    if payload.len() < 4 {
        return Err("short".into());
    }
    let n = u32::from_be_bytes(payload[0..4].try_into().expect("4")) as usize;
    if payload.len() != 4 + n * 12 {
        return Err("length mismatch".into());
    }
    let mut out: Vec<EpochEntry> = Vec::with_capacity(n);
    for i in 0..n {
        let a = 4 + i * 12;
        let e = EpochEntry {
            epoch: i32::from_be_bytes(payload[a..a + 4].try_into().expect("4")),
            start_offset: i64::from_be_bytes(payload[a + 4..a + 12].try_into().expect("8")),
        };
        if let Some(l) = out.last() {
            if e.epoch <= l.epoch || e.start_offset < l.start_offset {
                return Err("entries not increasing".into());
            }
        }
        out.push(e);
    }
    Ok(out)
}
