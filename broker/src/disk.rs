//! The disk seam: everything the broker persists goes through [`Disk`].
//!
//! The broker never touches `std::fs` directly outside [`RealDisk`]. The
//! simulation provides a faulty implementation (pending vs durable data,
//! torn writes, bit flips, EIO, ENOSPC, lost directory entries), production
//! uses [`RealDisk`] on the local filesystem.
//!
//! # Contract
//!
//! - Writes to a file become *durable* only after [`DiskFile::sync`] returns
//!   `Ok`. A crash may drop any write that was not synced, and may keep a
//!   prefix of the last pending write cut at a sector boundary (a torn write).
//! - Creating, renaming or removing a file becomes durable only after
//!   [`Disk::sync_dir`] on its parent directory returns `Ok`.
//! - Every method is synchronous: the simulated disk answers at once, and the
//!   real disk's calls are short enough that the broker accepts blocking the
//!   calling task (flushes are batched by the log's flush policy).
//! - Errors are `std::io::Error`; the kinds the broker distinguishes are
//!   `StorageFull` (ENOSPC), `NotFound`, and anything else, which it treats
//!   as an I/O error on the medium (EIO).
//! - [`Disk::list_dir`] returns names sorted, so iteration order never depends
//!   on the filesystem.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file opened through the [`Disk`] seam. Positional I/O only: there is no
/// cursor, so concurrent readers never disturb the writer.
pub trait DiskFile: Send + Sync {
    /// Reads up to `buf.len()` bytes starting at `offset`; returns how many
    /// were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `data` at `offset`, extending the file if needed.
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every write so far durable (fsync / fdatasync).
    fn sync(&self) -> io::Result<()>;
    /// The current length in bytes, counting pending (unsynced) writes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Truncates (or extends with zeros) the file to `len` bytes. Like a
    /// write, it is durable only after [`DiskFile::sync`].
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Reads exactly `buf.len()` bytes at `offset` or fails with
    /// `UnexpectedEof`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_at(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short read"));
            }
            done += n;
        }
        Ok(())
    }
}

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing file; `NotFound` if absent.
    Existing,
    /// Open the file, creating it empty if absent.
    CreateIfMissing,
    /// Create a new empty file, replacing any existing one.
    Truncate,
}

/// A directory tree of files: the broker's whole view of persistent storage.
pub trait Disk: Send + Sync + 'static {
    /// Opens a file.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn DiskFile>>;
    /// Creates a directory and its parents (idempotent). Durable only after
    /// `sync_dir` of the parent.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The names (not full paths) of the entries of a directory, sorted.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Whether a file or directory exists.
    fn exists(&self, path: &Path) -> bool;
    /// Removes a file. Durable only after `sync_dir` of its parent.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Atomically renames `from` to `to`, replacing `to`. Durable only after
    /// `sync_dir` of the parent(s).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// The production disk: the local filesystem through `std::fs`.
#[derive(Debug, Default, Clone)]
pub struct RealDisk;

struct RealFile {
    file: std::fs::File,
}

impl DiskFile for RealFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&self.file, buf, offset)
    }
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.file, data, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
}

impl Disk for RealDisk {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn DiskFile>> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true);
        match mode {
            OpenMode::Existing => {}
            OpenMode::CreateIfMissing => {
                options.create(true);
            }
            OpenMode::Truncate => {
                options.create(true).truncate(true);
            }
        }
        Ok(Arc::new(RealFile {
            file: options.open(path)?,
        }))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }
}

/// A failed step of [`replace_file`]: which step, on which path.
#[derive(Debug, thiserror::Error)]
#[error("{step} {}: {source}", path.display())]
pub struct ReplaceError {
    /// `create`, `write`, `sync`, `rename` or `sync_dir`.
    pub step: &'static str,
    /// The file (or, for `sync_dir`, the directory) the step acted on.
    pub path: PathBuf,
    /// What the disk said.
    #[source]
    pub source: io::Error,
}

/// Replaces `<dir>/<name>` with `bytes` atomically: write `<name>.tmp`,
/// sync it, rename it over `<name>`, sync `dir`. A crash at any point leaves
/// either the old file or the new one (plus perhaps a stale `.tmp`, which
/// readers ignore and openers remove). With `durable` false the two syncs
/// are skipped (atomic, but a crash may forget the replacement: only for
/// settings that knowingly trade durability away, such as `raft.fsync=false`).
/// The one place the broker replaces a file.
pub fn replace_file(disk: &dyn Disk, dir: &Path, name: &str, bytes: &[u8], durable: bool) -> Result<(), ReplaceError> {
    let temp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let step = |step: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| ReplaceError { step, path, source }
    };
    let file = disk.open(&temp, OpenMode::Truncate).map_err(step("create", &temp))?;
    file.write_at(bytes, 0).map_err(step("write", &temp))?;
    if durable {
        file.sync().map_err(step("sync", &temp))?;
    }
    disk.rename(&temp, &target).map_err(step("rename", &target))?;
    if durable {
        disk.sync_dir(dir).map_err(step("sync_dir", dir))?;
    }
    Ok(())
}
