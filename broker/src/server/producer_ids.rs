//! Producer ids for InitProducerId: never handed out twice, across restarts
//! too, and (in cluster mode) unique across brokers without asking the
//! controller quorum.
//!
//! # Allocation
//!
//! Ids are handed out from blocks of [`PRODUCER_ID_BLOCK_SIZE`] local ids.
//! Before the first id of a new block is handed out, the block's end is
//! written durably to `<data_dir>/producer-id-block` (through
//! [`crate::disk::replace_file`], the one atomic file replace). On start,
//! the next id is the stored block end: every id below it may have been
//! handed out before a crash, none at or above it was. A restart therefore
//! skips the rest of the block it was in (at most 999 ids), and a failed
//! write hands out nothing (InitProducerId answers KAFKA_STORAGE_ERROR,
//! which clients retry).
//!
//! The file is read on the first InitProducerId, not when the broker opens,
//! so a broker whose clients are not idempotent never touches it.
//!
//! # Id layout: a namespace per broker (interim)
//!
//! `producer_id = namespace << 40 | local_id`, with `local_id <
//! 2^40` from the block counter above. A standalone broker's namespace is
//! 0. In cluster mode it is the broker's `node.id` (0 ..= 2^23 - 1, so the
//! id stays a positive `i64`): ids are then globally unique with no
//! coordination, because each broker counts only in its own namespace and
//! node ids are unique. This is an interim scheme: Kafka (KIP-730) has the
//! controller quorum hand out blocks of ids, which also survives a broker's
//! data directory being lost. Here, a broker whose data directory is wiped
//! starts its namespace again at 0 and may reuse ids; producers that still
//! hold an old id would then share state with a new producer on partitions
//! whose producer state still remembers the old one.
//!
//! # `producer-id-block`, version 0
//!
//! ASCII text, three lines, each ending in `\n`:
//!
//! ```text
//! version: 0
//! next_block_start: 2000
//! crc32c: 0x43f59f27
//! ```
//!
//! `next_block_start` is a `u64` in decimal (no sign, no leading zeros
//! except for 0 itself): the first local id no process has handed out.
//! `crc32c` is the CRC-32C of the first two lines (bytes up to and
//! including the second `\n`), eight lowercase hex digits: a flipped digit
//! would otherwise make the counter go back and ids be reused.
//!
//! Recovery: no file means no id was ever handed out here (start at 0). A
//! file that does not parse exactly, has another version or a wrong CRC
//! fails InitProducerId with a storage error and is left alone for an
//! operator: guessing could hand out ids twice. A stray
//! `producer-id-block.tmp` (a crash inside the replace) is ignored and
//! overwritten by the next write. Fixture:
//! `broker/tests/fixtures/producer-id-block/v0/producer-id-block`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::disk::{replace_file, Disk, OpenMode, ReplaceError};

/// The block file's name in the data directory.
pub const PRODUCER_ID_BLOCK_FILE: &str = "producer-id-block";
/// The block file's format version.
pub const PRODUCER_ID_BLOCK_VERSION: u32 = 0;
/// Local ids persisted at once.
pub const PRODUCER_ID_BLOCK_SIZE: u64 = 1000;
/// Bits of a producer id below the namespace.
pub const LOCAL_ID_BITS: u32 = 40;
/// Largest namespace (node id) whose ids stay positive.
pub const NAMESPACE_MAX: i64 = (1 << (63 - LOCAL_ID_BITS)) - 1;
/// The file is tens of bytes; anything larger is not ours.
const BLOCK_FILE_BYTES_MAX: u64 = 256;

/// Why no producer id could be handed out.
#[derive(Debug, thiserror::Error)]
pub enum ProducerIdError {
    /// Reading the block file failed.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The block file is not a valid version-0 file.
    #[error("{path} is not a valid producer id block file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// Writing the next block's end failed; no id of it was handed out.
    #[error("persisting the next producer id block: {0}")]
    Persist(#[from] ReplaceError),
    /// Every local id of this namespace was handed out.
    #[error("producer ids of namespace {namespace} are exhausted")]
    Exhausted { namespace: i64 },
    /// The namespace (node id) does not fit the id layout.
    #[error("node id {0} cannot namespace producer ids (0..={NAMESPACE_MAX})")]
    BadNamespace(i64),
}

/// Why InitProducerId was refused.
#[derive(Debug, thiserror::Error)]
pub enum InitProducerIdError {
    /// No id could be handed out.
    #[error(transparent)]
    Allocate(#[from] ProducerIdError),
}

/// The block file's text for a stored `next_block_start`.
pub fn encode_block_file(next_block_start: u64) -> String {
    let body = format!("version: {PRODUCER_ID_BLOCK_VERSION}\nnext_block_start: {next_block_start}\n");
    format!("{body}crc32c: 0x{:08x}\n", crc32c::crc32c(body.as_bytes()))
}

/// Parses the block file; `Err` says what is wrong.
pub fn decode_block_file(bytes: &[u8]) -> Result<u64, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let [version, next, crc] = lines.as_slice() else {
        return Err(format!("{} lines, expected 3", lines.len()));
    };
    let field = |line: &str, name: &str| -> Result<String, String> {
        line.strip_suffix('\n')
            .and_then(|l| l.strip_prefix(name))
            .map(str::to_string)
            .ok_or_else(|| format!("expected a {name:?} line ending in a newline"))
    };
    let version_value = field(version, "version: ")?;
    if version_value != PRODUCER_ID_BLOCK_VERSION.to_string() {
        return Err(format!("unknown version {version_value:?}"));
    }
    let digits = field(next, "next_block_start: ")?;
    let canonical = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0'));
    if !canonical {
        return Err(format!("bad next_block_start {digits:?}"));
    }
    let next_block_start: u64 = digits.parse().map_err(|_| format!("bad next_block_start {digits:?}"))?;
    let stored_crc = field(crc, "crc32c: 0x")?;
    let body_len = version.len() + next.len();
    let expected = format!("{:08x}", crc32c::crc32c(&bytes[..body_len]));
    if stored_crc != expected {
        return Err(format!("crc32c 0x{stored_crc} does not match the contents (0x{expected})"));
    }
    Ok(next_block_start)
}

/// Hands out producer ids (see the module docs).
pub struct ProducerIdAllocator {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    namespace: i64,
    /// `(next local id, end of the persisted block)`; `None` until the
    /// block file was read.
    block: Option<(u64, u64)>,
}

impl ProducerIdAllocator {
    /// An allocator for ids of `namespace` whose block file lives in `dir`.
    /// Touches no file yet.
    pub fn new(disk: Arc<dyn Disk>, dir: &Path, namespace: i64) -> Result<Self, ProducerIdError> {
        if !(0..=NAMESPACE_MAX).contains(&namespace) {
            return Err(ProducerIdError::BadNamespace(namespace));
        }
        Ok(Self { disk, dir: dir.to_path_buf(), namespace, block: None })
    }

    fn read_stored(&self) -> Result<u64, ProducerIdError> {
        let path = self.dir.join(PRODUCER_ID_BLOCK_FILE);
        if !self.disk.exists(&path) {
            return Ok(0);
        }
        let read = |source| ProducerIdError::Read { path: path.clone(), source };
        let file = self.disk.open(&path, OpenMode::Existing).map_err(read)?;
        let len = file.len().map_err(read)?;
        if len > BLOCK_FILE_BYTES_MAX {
            return Err(ProducerIdError::Corrupt { path, reason: format!("{len} bytes") });
        }
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, 0).map_err(read)?;
        decode_block_file(&bytes).map_err(|reason| ProducerIdError::Corrupt { path, reason })
    }

    /// The next producer id. Persists a new block end first when the
    /// current block is used up; on any error hands out nothing.
    pub fn allocate(&mut self) -> Result<i64, ProducerIdError> {
        let (next, block_end) = match self.block {
            Some(block) => block,
            None => {
                let stored = self.read_stored()?;
                (stored, stored)
            }
        };
        debug_assert!(next <= block_end);
        let block_end = if next == block_end {
            let new_end = block_end.saturating_add(PRODUCER_ID_BLOCK_SIZE).min(1 << LOCAL_ID_BITS);
            if new_end <= next {
                return Err(ProducerIdError::Exhausted { namespace: self.namespace });
            }
            replace_file(&*self.disk, &self.dir, PRODUCER_ID_BLOCK_FILE, encode_block_file(new_end).as_bytes(), true)?;
            new_end
        } else {
            block_end
        };
        assert!(next < block_end && next < (1 << LOCAL_ID_BITS), "only ids of a persisted block are handed out");
        self.block = Some((next + 1, block_end));
        let id = (self.namespace << LOCAL_ID_BITS) | next as i64;
        assert!(id >= 0);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::RealDisk;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dlog-pid-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The v0 fixture still reads, and is byte for byte what we write.
    #[test]
    fn block_file_v0_fixture_reads_and_is_what_we_write() {
        let fixture = include_bytes!("../../tests/fixtures/producer-id-block/v0/producer-id-block");
        assert_eq!(decode_block_file(fixture), Ok(2000));
        assert_eq!(encode_block_file(2000).as_bytes(), fixture);
    }

    #[test]
    fn malformed_block_files_are_refused() {
        let good = encode_block_file(2000);
        let cases = [
            String::new(),
            good.replace("2000", "2001"),
            good.replace("version: 0", "version: 1"),
            good.replace("2000", "02000"),
            good.replace("2000", "+2000"),
            good.trim_end().to_string(),
            format!("{good}extra\n"),
            "version: 0\nnext_block_start: 99999999999999999999999\ncrc32c: 0x00000000\n".into(),
        ];
        for case in cases {
            assert!(decode_block_file(case.as_bytes()).is_err(), "{case:?} accepted");
        }
        assert!(decode_block_file(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn ids_are_never_reused_across_restarts() {
        let dir = temp_dir("restart");
        let disk: Arc<dyn Disk> = Arc::new(RealDisk);
        let mut first = ProducerIdAllocator::new(disk.clone(), &dir, 0).unwrap();
        let a: Vec<i64> = (0..3).map(|_| first.allocate().unwrap()).collect();
        assert_eq!(a, vec![0, 1, 2]);
        assert_eq!(decode_block_file(&std::fs::read(dir.join(PRODUCER_ID_BLOCK_FILE)).unwrap()), Ok(1000));
        // A restart skips the rest of the block.
        let mut second = ProducerIdAllocator::new(disk.clone(), &dir, 0).unwrap();
        assert_eq!(second.allocate().unwrap(), 1000);
        for _ in 0..999 {
            second.allocate().unwrap();
        }
        assert_eq!(second.allocate().unwrap(), 2000, "the next block is persisted before use");
        assert_eq!(decode_block_file(&std::fs::read(dir.join(PRODUCER_ID_BLOCK_FILE)).unwrap()), Ok(3000));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cluster_ids_carry_the_node_id_in_their_high_bits() {
        let dir = temp_dir("namespace");
        let mut alloc = ProducerIdAllocator::new(Arc::new(RealDisk), &dir, 3).unwrap();
        let id = alloc.allocate().unwrap();
        assert_eq!(id >> LOCAL_ID_BITS, 3);
        assert_eq!(id & ((1 << LOCAL_ID_BITS) - 1), 0);
        assert!(ProducerIdAllocator::new(Arc::new(RealDisk), &dir, -1).is_err());
        assert!(ProducerIdAllocator::new(Arc::new(RealDisk), &dir, NAMESPACE_MAX + 1).is_err());
        assert!(ProducerIdAllocator::new(Arc::new(RealDisk), &dir, NAMESPACE_MAX).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_block_file_hands_out_nothing() {
        let dir = temp_dir("corrupt");
        std::fs::write(dir.join(PRODUCER_ID_BLOCK_FILE), encode_block_file(5000).replace("5000", "1000")).unwrap();
        let mut alloc = ProducerIdAllocator::new(Arc::new(RealDisk), &dir, 0).unwrap();
        assert!(matches!(alloc.allocate(), Err(ProducerIdError::Corrupt { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
