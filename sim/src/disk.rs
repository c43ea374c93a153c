//! `FaultyDisk`: an in-memory, deterministic, fault-injecting implementation
//! of the broker's [`Disk`] seam.
//!
//! Why: the log's durability claims ("an acknowledged batch survives a
//! crash", "a crash in the middle of a compaction swap never loses a record")
//! can only be tested if a test can crash the disk at any point and see
//! exactly what a real disk is allowed to keep. This disk keeps, for every
//! file, the *durable* bytes (what survives a crash) apart from the
//! *current* bytes (what reads see, durable plus pending writes), and keeps
//! the durable directory namespace apart from the current one.
//!
//! # Model
//!
//! - `write_at` / `set_len` change the current bytes only; [`DiskFile::sync`]
//!   copies current to durable.
//! - `open` with create, `rename` and `remove_file` change the current
//!   namespace only; [`Disk::sync_dir`] on the parent directory makes the
//!   entries of that directory durable (both creations and removals).
//! - Directories created by `create_dir_all` are durable at once (a
//!   simplification: the broker creates a partition directory once and the
//!   interesting failures are about segment files inside it).
//! - [`FaultyDisk::crash`] replaces the current state with the durable one.
//!   For each file whose last pending operation was a write, with
//!   probability `torn_write_probability` a prefix of that write, cut at a
//!   512-byte sector boundary of the file, is kept on top of the durable
//!   bytes (zero-filling any gap): a torn write. Handles opened before the
//!   crash fail with EIO afterwards (the process that held them is gone).
//! - Faults (all off by default) are drawn from one `ChaCha8Rng` seeded at
//!   construction, so a run is a pure function of the seed and the sequence
//!   of calls: read corruption flips a bit in the *returned* buffer (not the
//!   stored data), EIO on write, on file sync and on directory sync (nothing
//!   is written / nothing becomes durable), ENOSPC (`StorageFull`) when the sum of current file
//!   lengths would exceed `capacity_bytes`.
//! - [`FaultyDisk::trace_hash`] folds every operation (kind, path, offset,
//!   length, outcome) with FNV-1a, so two runs with the same seed can be
//!   compared for determinism.
//!
//! No `HashMap`, no wall clock, no thread RNG: everything is ordered.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use broker::disk::{Disk, DiskFile, OpenMode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Sector size used to cut torn writes.
pub const SECTOR_BYTES: u64 = 512;

/// Fault probabilities (each in `0.0..=1.0`, all 0 by default) and capacity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskFaultConfig {
    /// Probability that a `read_at` returning data flips one bit of the
    /// returned buffer (the stored bytes stay intact).
    pub read_corruption_probability: f64,
    /// Probability that a `write_at` (or growing `set_len`) fails with EIO
    /// without changing the file.
    pub write_eio_probability: f64,
    /// Probability that a file `sync` fails with EIO; nothing becomes
    /// durable.
    pub sync_eio_probability: f64,
    /// Probability that a `sync_dir` fails with EIO; no directory entry
    /// becomes durable.
    pub sync_dir_eio_probability: f64,
    /// Probability, per file at a crash, that a sector-aligned prefix of the
    /// last pending write is kept.
    pub torn_write_probability: f64,
    /// Total bytes (sum of current file lengths) the disk holds; a write
    /// that would exceed it fails with `StorageFull` and changes nothing.
    pub capacity_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Entry {
    Dir,
    File(u64),
}

#[derive(Debug, Clone, Default)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
    /// The last pending write (offset, bytes), if the last pending operation
    /// on this file was a write; candidate for a torn write at crash.
    last_write: Option<(u64, Vec<u8>)>,
}

#[derive(Debug)]
struct State {
    config: DiskFaultConfig,
    rng: ChaCha8Rng,
    current_ns: BTreeMap<PathBuf, Entry>,
    durable_ns: BTreeMap<PathBuf, Entry>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// Bumped at every crash; handles from an older generation fail.
    generation: u64,
    trace: u64,
    ops: u64,
    crashes: u64,
    /// If set, mutating operations left before the disk "dies": once it
    /// reaches 0 every operation fails with EIO until `crash()`.
    halt_after_ops: Option<u64>,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// Operation kinds folded into the trace hash.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum Op {
    Open = 1,
    Read = 2,
    Write = 3,
    Sync = 4,
    SetLen = 5,
    CreateDir = 6,
    ListDir = 7,
    Remove = 8,
    Rename = 9,
    SyncDir = 10,
    Crash = 11,
    Len = 12,
}

fn outcome_code<T>(r: &io::Result<T>) -> u8 {
    match r {
        Ok(_) => 0,
        Err(e) => match e.kind() {
            io::ErrorKind::NotFound => 1,
            io::ErrorKind::StorageFull => 2,
            io::ErrorKind::AlreadyExists => 3,
            io::ErrorKind::UnexpectedEof => 4,
            _ => 5,
        },
    }
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("injected EIO: {what}"))
}

impl State {
    fn record(&mut self, op: Op, path: &Path, offset: u64, len: u64, outcome: u8) {
        let mut h = self.trace;
        h = fnv(h, &[op as u8]);
        h = fnv(h, path.as_os_str().as_encoded_bytes());
        h = fnv(h, &offset.to_le_bytes());
        h = fnv(h, &len.to_le_bytes());
        h = fnv(h, &[outcome]);
        self.trace = h;
        self.ops += 1;
    }

    fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.gen_bool(p.min(1.0))
    }

    fn used_bytes(&self) -> u64 {
        let mut seen = std::collections::BTreeSet::new();
        let mut total = 0u64;
        for e in self.current_ns.values() {
            if let Entry::File(ino) = e {
                if seen.insert(*ino) {
                    total += self.inodes.get(ino).map_or(0, |i| i.current.len() as u64);
                }
            }
        }
        total
    }

    fn parent_is_dir(&self, path: &Path) -> bool {
        match path.parent() {
            None => true,
            Some(p) if p.as_os_str().is_empty() => true,
            Some(p) => matches!(self.current_ns.get(p), Some(Entry::Dir)),
        }
    }

    /// Counts down the halt budget; `Err` once the disk has "died".
    fn tick(&mut self) -> io::Result<()> {
        match self.halt_after_ops {
            Some(0) => Err(io::Error::other("disk halted (simulated power loss pending)")),
            Some(n) => {
                self.halt_after_ops = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn check_generation(&self, generation: u64) -> io::Result<()> {
        if generation != self.generation {
            return Err(io::Error::other("stale handle: the disk crashed since this file was opened"));
        }
        Ok(())
    }
}

/// The in-memory faulty disk. Cloning gives another handle on the same disk.
#[derive(Debug, Clone)]
pub struct FaultyDisk {
    state: Arc<Mutex<State>>,
}

/// Summary counters, for tests and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskStats {
    /// Operations performed (each folded into the trace hash).
    pub operations: u64,
    /// Crashes simulated.
    pub crashes: u64,
    /// Sum of current file lengths.
    pub used_bytes: u64,
}

impl FaultyDisk {
    /// A fault-free empty disk whose fault RNG is seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self::with_faults(seed, DiskFaultConfig::default())
    }

    /// An empty disk with the given faults.
    pub fn with_faults(seed: u64, config: DiskFaultConfig) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                config,
                rng: ChaCha8Rng::seed_from_u64(seed),
                current_ns: BTreeMap::new(),
                durable_ns: BTreeMap::new(),
                inodes: BTreeMap::new(),
                next_inode: 1,
                generation: 0,
                trace: FNV_OFFSET,
                ops: 0,
                crashes: 0,
                halt_after_ops: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in this file; keep
        // going with the inner state rather than cascading panics.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the fault configuration (capacity included).
    pub fn set_faults(&self, config: DiskFaultConfig) {
        self.lock().config = config;
    }

    /// The current fault configuration.
    pub fn faults(&self) -> DiskFaultConfig {
        self.lock().config.clone()
    }

    /// Sets or clears the capacity in bytes.
    pub fn set_capacity(&self, capacity_bytes: Option<u64>) {
        self.lock().config.capacity_bytes = capacity_bytes;
    }

    /// After `ops` more mutating operations (write, set_len, sync, create,
    /// rename, remove, sync_dir), every operation fails with EIO until
    /// [`FaultyDisk::crash`], which also clears this. Lets a test crash at
    /// every point of a multi-step protocol. `None` disarms.
    pub fn halt_after(&self, ops: Option<u64>) {
        self.lock().halt_after_ops = ops;
    }

    /// Simulates a power loss: everything not synced is dropped (file bytes
    /// and directory entries), possibly keeping torn prefixes of the last
    /// pending write of each file; open handles become stale.
    pub fn crash(&self) {
        let mut st = self.lock();
        let st = &mut *st;
        st.crashes += 1;
        st.generation += 1;
        st.halt_after_ops = None;
        st.current_ns = st.durable_ns.clone();
        let live: std::collections::BTreeSet<u64> = st
            .durable_ns
            .values()
            .filter_map(|e| match e {
                Entry::File(i) => Some(*i),
                Entry::Dir => None,
            })
            .collect();
        // Drop inodes no durable entry refers to (unsynced creations).
        st.inodes.retain(|ino, _| live.contains(ino));
        let torn_p = st.config.torn_write_probability;
        let inos: Vec<u64> = st.inodes.keys().copied().collect();
        for ino in inos {
            let tear = if st.inodes[&ino].last_write.is_some() { torn_p > 0.0 && st.rng.gen_bool(torn_p.min(1.0)) } else { false };
            let draw: u64 = if tear { st.rng.gen() } else { 0 };
            let inode = st.inodes.get_mut(&ino).expect("inode listed above");
            let mut data = inode.durable.clone();
            if tear {
                if let Some((offset, bytes)) = &inode.last_write {
                    let end = offset + bytes.len() as u64;
                    // Sector boundaries strictly inside (offset, end]: keep
                    // bytes [offset, boundary). Boundary choices include
                    // "nothing" (keep 0 bytes) implicitly via `offset`.
                    let first_boundary = (offset / SECTOR_BYTES + 1) * SECTOR_BYTES;
                    let mut boundaries = vec![*offset];
                    let mut b = first_boundary;
                    while b < end {
                        boundaries.push(b);
                        b += SECTOR_BYTES;
                    }
                    let cut = boundaries[(draw % boundaries.len() as u64) as usize];
                    let keep = (cut - offset) as usize;
                    if keep > 0 {
                        let need = (*offset as usize) + keep;
                        if data.len() < need {
                            data.resize(need, 0);
                        }
                        data[*offset as usize..need].copy_from_slice(&bytes[..keep]);
                    }
                }
            }
            inode.durable = data.clone();
            inode.current = data;
            inode.last_write = None;
        }
        let root = PathBuf::from("/");
        st.record(Op::Crash, &root, 0, 0, 0);
    }

    /// FNV-1a hash of every operation so far (kind, path, offset, length,
    /// outcome), for determinism checks.
    pub fn trace_hash(&self) -> u64 {
        self.lock().trace
    }

    /// Counters.
    pub fn stats(&self) -> DiskStats {
        let st = self.lock();
        DiskStats {
            operations: st.ops,
            crashes: st.crashes,
            used_bytes: st.used_bytes(),
        }
    }

    /// The current bytes of a file (test helper; not traced).
    pub fn file_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.lock();
        match st.current_ns.get(path) {
            Some(Entry::File(ino)) => st.inodes.get(ino).map(|i| i.current.clone()),
            _ => None,
        }
    }

    /// The durable bytes of a file, if its entry is durable (test helper).
    pub fn durable_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.lock();
        match st.durable_ns.get(path) {
            Some(Entry::File(ino)) => st.inodes.get(ino).map(|i| i.durable.clone()),
            _ => None,
        }
    }

    /// Flips bit `bit` (0..8) of byte `offset` in both the current and the
    /// durable bytes of a file: bit rot on the medium (test helper). Returns
    /// false if the file or byte does not exist.
    pub fn corrupt_stored_byte(&self, path: &Path, offset: u64, bit: u8) -> bool {
        let mut st = self.lock();
        let Some(Entry::File(ino)) = st.current_ns.get(path).copied() else {
            return false;
        };
        let Some(inode) = st.inodes.get_mut(&ino) else {
            return false;
        };
        let mut hit = false;
        for buf in [&mut inode.current, &mut inode.durable] {
            if let Some(b) = buf.get_mut(offset as usize) {
                *b ^= 1 << (bit % 8);
                hit = true;
            }
        }
        hit
    }

    /// Overwrites a file's current and durable bytes at once (test helper
    /// for fixtures and hand-made damage). The entry must exist.
    pub fn replace_stored_bytes(&self, path: &Path, bytes: &[u8]) -> bool {
        let mut st = self.lock();
        let Some(Entry::File(ino)) = st.current_ns.get(path).copied() else {
            return false;
        };
        let Some(inode) = st.inodes.get_mut(&ino) else {
            return false;
        };
        inode.current = bytes.to_vec();
        inode.durable = bytes.to_vec();
        inode.last_write = None;
        true
    }

    /// The paths of every file and directory in the current namespace.
    pub fn list_all(&self) -> Vec<PathBuf> {
        self.lock().current_ns.keys().cloned().collect()
    }
}

struct FaultyFile {
    state: Arc<Mutex<State>>,
    inode: u64,
    path: PathBuf,
    generation: u64,
}

impl FaultyFile {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl DiskFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut st = self.lock();
        let result = (|| {
            st.check_generation(self.generation)?;
            let inode = st.inodes.get(&self.inode).ok_or_else(|| eio("inode gone"))?;
            let data = &inode.current;
            let n = if offset as usize >= data.len() {
                0
            } else {
                let n = buf.len().min(data.len() - offset as usize);
                buf[..n].copy_from_slice(&data[offset as usize..offset as usize + n]);
                n
            };
            let p = st.config.read_corruption_probability;
            if n > 0 && st.roll(p) {
                let bit: u64 = st.rng.gen_range(0..(n as u64 * 8));
                buf[(bit / 8) as usize] ^= 1 << (bit % 8);
            }
            Ok(n)
        })();
        let code = outcome_code(&result);
        st.record(Op::Read, &self.path, offset, buf.len() as u64, code);
        result
    }

    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.lock();
        let result = (|| {
            st.check_generation(self.generation)?;
            st.tick()?;
            let cur_len = st.inodes.get(&self.inode).ok_or_else(|| eio("inode gone"))?.current.len() as u64;
            let new_len = cur_len.max(offset + data.len() as u64);
            if let Some(cap) = st.config.capacity_bytes {
                if st.used_bytes() - cur_len + new_len > cap && new_len > cur_len {
                    return Err(io::Error::new(io::ErrorKind::StorageFull, "injected ENOSPC"));
                }
            }
            let p = st.config.write_eio_probability;
            if st.roll(p) {
                return Err(eio("write"));
            }
            let inode = st.inodes.get_mut(&self.inode).expect("checked above");
            let end = offset as usize + data.len();
            if inode.current.len() < end {
                inode.current.resize(end, 0);
            }
            inode.current[offset as usize..end].copy_from_slice(data);
            inode.last_write = Some((offset, data.to_vec()));
            Ok(())
        })();
        let code = outcome_code(&result);
        st.record(Op::Write, &self.path, offset, data.len() as u64, code);
        result
    }

    fn sync(&self) -> io::Result<()> {
        let mut st = self.lock();
        let result = (|| {
            st.check_generation(self.generation)?;
            st.tick()?;
            let p = st.config.sync_eio_probability;
            if st.roll(p) {
                return Err(eio("fsync"));
            }
            let inode = st.inodes.get_mut(&self.inode).ok_or_else(|| eio("inode gone"))?;
            inode.durable = inode.current.clone();
            inode.last_write = None;
            Ok(())
        })();
        let code = outcome_code(&result);
        st.record(Op::Sync, &self.path, 0, 0, code);
        result
    }

    fn len(&self) -> io::Result<u64> {
        let mut st = self.lock();
        let result = (|| {
            st.check_generation(self.generation)?;
            Ok(st.inodes.get(&self.inode).ok_or_else(|| eio("inode gone"))?.current.len() as u64)
        })();
        let code = outcome_code(&result);
        let len = *result.as_ref().unwrap_or(&0);
        st.record(Op::Len, &self.path, 0, len, code);
        result
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        let result = (|| {
            st.check_generation(self.generation)?;
            st.tick()?;
            let cur_len = st.inodes.get(&self.inode).ok_or_else(|| eio("inode gone"))?.current.len() as u64;
            if len > cur_len {
                if let Some(cap) = st.config.capacity_bytes {
                    if st.used_bytes() - cur_len + len > cap {
                        return Err(io::Error::new(io::ErrorKind::StorageFull, "injected ENOSPC"));
                    }
                }
                let p = st.config.write_eio_probability;
                if st.roll(p) {
                    return Err(eio("set_len"));
                }
            }
            let inode = st.inodes.get_mut(&self.inode).expect("checked above");
            inode.current.resize(len as usize, 0);
            // A truncate or extend supersedes the last write as the torn
            // candidate.
            inode.last_write = None;
            Ok(())
        })();
        let code = outcome_code(&result);
        st.record(Op::SetLen, &self.path, len, 0, code);
        result
    }
}

impl Disk for FaultyDisk {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn DiskFile>> {
        let mut st = self.lock();
        let result: io::Result<u64> = (|| match (st.current_ns.get(path).copied(), mode) {
            (_, OpenMode::CreateIfMissing | OpenMode::Truncate) if st.tick().is_err() => Err(eio("disk halted")),
            (Some(Entry::Dir), _) => Err(io::Error::other("is a directory")),
            (Some(Entry::File(ino)), OpenMode::Existing | OpenMode::CreateIfMissing) => Ok(ino),
            (Some(Entry::File(ino)), OpenMode::Truncate) => {
                let inode = st.inodes.get_mut(&ino).ok_or_else(|| eio("inode gone"))?;
                inode.current.clear();
                inode.last_write = None;
                Ok(ino)
            }
            (None, OpenMode::Existing) => Err(io::Error::new(io::ErrorKind::NotFound, "no such file")),
            (None, OpenMode::CreateIfMissing | OpenMode::Truncate) => {
                if !st.parent_is_dir(path) {
                    return Err(io::Error::new(io::ErrorKind::NotFound, "parent directory missing"));
                }
                let ino = st.next_inode;
                st.next_inode += 1;
                st.inodes.insert(ino, Inode::default());
                st.current_ns.insert(path.to_path_buf(), Entry::File(ino));
                Ok(ino)
            }
        })();
        let code = outcome_code(&result);
        st.record(Op::Open, path, mode as u64, 0, code);
        let inode = result?;
        Ok(Arc::new(FaultyFile {
            state: self.state.clone(),
            inode,
            path: path.to_path_buf(),
            generation: st.generation,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let mut result = Ok(());
        for anc in path.ancestors() {
            if anc.as_os_str().is_empty() {
                continue;
            }
            match st.current_ns.get(anc) {
                Some(Entry::File(_)) => {
                    result = Err(io::Error::new(io::ErrorKind::AlreadyExists, "a file is in the way"));
                    break;
                }
                Some(Entry::Dir) => {}
                None => {
                    // Directories are durable at once (see module docs).
                    st.current_ns.insert(anc.to_path_buf(), Entry::Dir);
                    st.durable_ns.insert(anc.to_path_buf(), Entry::Dir);
                }
            }
        }
        let code = outcome_code(&result);
        st.record(Op::CreateDir, path, 0, 0, code);
        result
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut st = self.lock();
        let result = if matches!(st.current_ns.get(path), Some(Entry::Dir)) {
            let mut names: Vec<String> = st
                .current_ns
                .range(path.to_path_buf()..)
                .skip(1)
                .filter(|(p, _)| p.parent() == Some(path))
                .filter_map(|(p, _)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            names.sort();
            Ok(names)
        } else {
            Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"))
        };
        let code = outcome_code(&result);
        let n = result.as_ref().map_or(0, |v| v.len() as u64);
        st.record(Op::ListDir, path, 0, n, code);
        result
    }

    fn exists(&self, path: &Path) -> bool {
        self.lock().current_ns.contains_key(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let halted = st.tick().is_err();
        let result = match st.current_ns.get(path) {
            _ if halted => Err(eio("disk halted")),
            Some(Entry::File(_)) => {
                st.current_ns.remove(path);
                Ok(())
            }
            Some(Entry::Dir) => Err(io::Error::other("is a directory")),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no such file")),
        };
        let code = outcome_code(&result);
        st.record(Op::Remove, path, 0, 0, code);
        result
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let halted = st.tick().is_err();
        let result = match st.current_ns.get(from).copied() {
            _ if halted => Err(eio("disk halted")),
            Some(Entry::File(ino)) => {
                if !st.parent_is_dir(to) {
                    Err(io::Error::new(io::ErrorKind::NotFound, "target directory missing"))
                } else if matches!(st.current_ns.get(to), Some(Entry::Dir)) {
                    Err(io::Error::other("target is a directory"))
                } else {
                    st.current_ns.remove(from);
                    st.current_ns.insert(to.to_path_buf(), Entry::File(ino));
                    Ok(())
                }
            }
            Some(Entry::Dir) => Err(io::Error::other("renaming directories is not supported")),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no such file")),
        };
        let code = outcome_code(&result);
        let mut both = from.as_os_str().to_owned();
        both.push("->");
        both.push(to.as_os_str());
        st.record(Op::Rename, Path::new(&both), 0, 0, code);
        result
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let result = (|| {
            if !matches!(st.current_ns.get(path), Some(Entry::Dir)) {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"));
            }
            st.tick()?;
            let p = st.config.sync_dir_eio_probability;
            if st.roll(p) {
                return Err(eio("fsync dir"));
            }
            let is_child = |p: &Path| p.parent() == Some(path);
            let st = &mut *st;
            st.durable_ns.retain(|p, e| !(is_child(p) && matches!(e, Entry::File(_))));
            for (p, e) in st.current_ns.iter() {
                if is_child(p) && matches!(e, Entry::File(_)) {
                    st.durable_ns.insert(p.clone(), *e);
                }
            }
            Ok(())
        })();
        let code = outcome_code(&result);
        st.record(Op::SyncDir, path, 0, 0, code);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_data_and_entries_vanish_on_crash() {
        let d = FaultyDisk::new(1);
        d.create_dir_all(Path::new("/d")).unwrap();
        let f = d.open(Path::new("/d/a"), OpenMode::CreateIfMissing).unwrap();
        f.write_at(b"hello", 0).unwrap();
        f.sync().unwrap();
        d.crash();
        assert!(!d.exists(Path::new("/d/a")), "entry was never dir-synced");
        let f = d.open(Path::new("/d/a"), OpenMode::CreateIfMissing).unwrap();
        f.write_at(b"hello", 0).unwrap();
        f.sync().unwrap();
        d.sync_dir(Path::new("/d")).unwrap();
        f.write_at(b" world", 5).unwrap();
        d.crash();
        assert_eq!(d.file_contents(Path::new("/d/a")).unwrap(), b"hello");
        assert!(f.write_at(b"x", 0).is_err(), "stale handle after crash");
    }

    #[test]
    fn torn_write_keeps_a_sector_aligned_prefix() {
        for seed in 0..50 {
            let d = FaultyDisk::with_faults(seed, DiskFaultConfig { torn_write_probability: 1.0, ..Default::default() });
            d.create_dir_all(Path::new("/d")).unwrap();
            let f = d.open(Path::new("/d/a"), OpenMode::CreateIfMissing).unwrap();
            d.sync_dir(Path::new("/d")).unwrap();
            f.write_at(&[1u8; 100], 0).unwrap();
            f.sync().unwrap();
            f.write_at(&[2u8; 3000], 100).unwrap();
            d.crash();
            let c = d.file_contents(Path::new("/d/a")).unwrap();
            assert!(c.len() == 100 || c.len().is_multiple_of(512), "seed {seed}: len {}", c.len());
            assert!(c.len() < 3100);
            assert!(c[..100].iter().all(|b| *b == 1));
            assert!(c[100..].iter().all(|b| *b == 2));
        }
    }

    #[test]
    fn rename_and_remove_are_durable_only_after_sync_dir() {
        let d = FaultyDisk::new(3);
        d.create_dir_all(Path::new("/d")).unwrap();
        let f = d.open(Path::new("/d/a.tmp"), OpenMode::CreateIfMissing).unwrap();
        f.write_at(b"x", 0).unwrap();
        f.sync().unwrap();
        d.sync_dir(Path::new("/d")).unwrap();
        d.rename(Path::new("/d/a.tmp"), Path::new("/d/a")).unwrap();
        d.crash();
        assert!(d.exists(Path::new("/d/a.tmp")) && !d.exists(Path::new("/d/a")));
        d.rename(Path::new("/d/a.tmp"), Path::new("/d/a")).unwrap();
        d.sync_dir(Path::new("/d")).unwrap();
        d.remove_file(Path::new("/d/a")).unwrap();
        d.crash();
        assert_eq!(d.file_contents(Path::new("/d/a")).unwrap(), b"x");
    }

    #[test]
    fn enospc_and_halt() {
        let d = FaultyDisk::new(4);
        d.create_dir_all(Path::new("/d")).unwrap();
        let f = d.open(Path::new("/d/a"), OpenMode::CreateIfMissing).unwrap();
        d.set_capacity(Some(10));
        f.write_at(&[0; 10], 0).unwrap();
        let e = f.write_at(&[0; 1], 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        f.write_at(&[1; 5], 0).unwrap(); // overwrite in place needs no space
        d.set_capacity(None);
        d.halt_after(Some(1));
        f.write_at(&[1; 5], 0).unwrap();
        assert!(f.sync().is_err());
        assert!(d.sync_dir(Path::new("/d")).is_err());
        d.crash();
        assert!(d.sync_dir(Path::new("/d")).is_ok());
    }
}
