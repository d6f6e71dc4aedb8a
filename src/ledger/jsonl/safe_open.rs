//! Opening files in the shared data directory without following symbolic
//! links.
//!
//! The data directory may be committed to git and filled by teammates, so
//! any name in it may be a symbolic link (to `~/.bashrc`, to `~/.ssh`), a
//! FIFO, a device or a directory. Every file the crate reads, appends to or
//! creates there (ledgers, alert histories and their lock, quarantine
//! copies, and any other state file kept next to them: holds, checkpoints,
//! the alert outbox, the spool) is opened through this module:
//!
//! - the last component is never followed: `O_NOFOLLOW` on Unix (the open
//!   itself fails on a link, with no window between a check and the open);
//!   elsewhere a `symlink_metadata` check just before the open;
//! - `O_NONBLOCK` on Unix, so opening a FIFO cannot hang the process (the
//!   flag changes nothing on regular files);
//! - the opened file must be a regular file (checked on the open handle).
//!
//! A refused file yields an [`io::Error`] carrying an [`UnsafeFile`]
//! ([`unsafe_file`] finds it), so callers can report and skip it instead of
//! failing the whole scan. The directory itself (configured by the user)
//! is trusted; its entries are not.
//!
//! ```ignore
//! use crate::ledger::safe_open;
//! let file = safe_open::append(&path)?;            // read + append + create
//! let file = safe_open::read(&path)?;              // read only
//! let file = safe_open::create_new(&path)?;        // write, must not exist
//! ```

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Read};
use std::path::{Path, PathBuf};

/// Why a directory entry was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A symbolic link (never followed).
    Symlink,
    /// A directory.
    Directory,
    /// A FIFO, socket or device.
    Special,
}

/// The error inside an [`io::Error`] for a refused entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnsafeFile {
    pub(crate) path: PathBuf,
    pub(crate) why: Refused,
}

impl fmt::Display for UnsafeFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.why {
            Refused::Symlink => write!(
                f,
                "{} is a symbolic link; files in the ledger directory are never followed through \
                 links. Replace it with a regular file (or remove it) and retry",
                self.path.display()
            ),
            Refused::Directory => write!(
                f,
                "{} is a directory, not a regular file. Move it away and retry",
                self.path.display()
            ),
            Refused::Special => write!(
                f,
                "{} is not a regular file (a FIFO, socket or device). Move it away and retry",
                self.path.display()
            ),
        }
    }
}

impl std::error::Error for UnsafeFile {}

fn refused(path: &Path, why: Refused) -> io::Error {
    io::Error::new(
        ErrorKind::InvalidInput,
        UnsafeFile {
            path: path.to_path_buf(),
            why,
        },
    )
}

/// The [`UnsafeFile`] inside `e`, if the open was refused for safety.
pub(crate) fn unsafe_file(e: &io::Error) -> Option<&UnsafeFile> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<UnsafeFile>())
}

/// Opens `path` with `opts`, never following a link at `path` and
/// requiring a regular file.
pub(crate) fn open_with(path: &Path, opts: &mut OpenOptions) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    #[cfg(not(unix))]
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_symlink() {
            return Err(refused(path, Refused::Symlink));
        }
    }
    let file = match opts.open(path) {
        Ok(f) => f,
        Err(e) => return Err(classify_open_error(path, e)),
    };
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(refused(path, Refused::Directory));
    }
    if !meta.file_type().is_file() {
        return Err(refused(path, Refused::Special));
    }
    Ok(file)
}

/// Turns the `ELOOP` of `O_NOFOLLOW` (and the errors opening a directory
/// for writing gives) into an [`UnsafeFile`] error.
fn classify_open_error(path: &Path, e: io::Error) -> io::Error {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if meta.file_type().is_symlink() {
                return refused(path, Refused::Symlink);
            }
        }
    }
    if e.kind() == ErrorKind::IsADirectory {
        return refused(path, Refused::Directory);
    }
    e
}

/// Opens for reading.
pub(crate) fn read(path: &Path) -> io::Result<File> {
    open_with(path, OpenOptions::new().read(true))
}

/// Opens for reading and appending, creating the file if missing.
pub(crate) fn append(path: &Path) -> io::Result<File> {
    open_with(
        path,
        OpenOptions::new().read(true).append(true).create(true),
    )
}

/// Creates a new file for writing; fails if anything (a link included)
/// already has the name. (For state files written whole, such as a
/// checkpoint's temporary file.)
#[allow(dead_code)]
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    open_with(path, OpenOptions::new().write(true).create_new(true))
}

/// Reads a whole file, refusing links and non-regular files.
pub(crate) fn read_to_end(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = read(path)?;
    let mut out = Vec::new();
    file.read_to_end(&mut out)?;
    Ok(out)
}

/// Whether something (a link included, followed or not) has this name.
pub(crate) fn exists_nofollow(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Creates the directory `dir` (and its parents) unless it exists, and
/// refuses it if it is a symbolic link or not a directory (a `quarantine`
/// or `archive` link committed to the data directory would send our writes
/// elsewhere).
pub(crate) fn ensure_real_dir(dir: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => Err(refused(dir, Refused::Symlink)),
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(refused(dir, Refused::Special)),
        Err(e) if e.kind() == ErrorKind::NotFound => std::fs::create_dir_all(dir),
        Err(e) => Err(e),
    }
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn links_and_special_files_are_refused_and_the_target_is_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("bashrc");
        std::fs::write(&target, b"secret\n").unwrap();
        let link = tmp.path().join("costs_alice.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        for r in [
            append(&link).map(drop),
            read(&link).map(drop),
            create_new(&link).map(drop),
            read_to_end(&link).map(drop),
        ] {
            let e = r.unwrap_err();
            // create_new fails with "exists" before any link check.
            if e.kind() != ErrorKind::AlreadyExists {
                let u = unsafe_file(&e).unwrap_or_else(|| panic!("{e}"));
                assert_eq!(u.why, Refused::Symlink, "{e}");
                assert!(e.to_string().contains("symbolic link"), "{e}");
            }
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"secret\n");

        let dir = tmp.path().join("costs_dir.jsonl");
        std::fs::create_dir(&dir).unwrap();
        let e = read(&dir).unwrap_err();
        assert_eq!(unsafe_file(&e).unwrap().why, Refused::Directory, "{e}");
        let e = append(&dir).unwrap_err();
        assert_eq!(unsafe_file(&e).unwrap().why, Refused::Directory, "{e}");

        let ok = tmp.path().join("plain.jsonl");
        append(&ok).unwrap().write_all(b"x\n").unwrap();
        assert_eq!(read_to_end(&ok).unwrap(), b"x\n");

        let qlink = tmp.path().join("quarantine");
        std::os::unix::fs::symlink(tmp.path(), &qlink).unwrap();
        assert!(ensure_real_dir(&qlink).is_err());
        ensure_real_dir(&tmp.path().join("new/sub")).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_without_hanging() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("costs_f.jsonl");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let e = read(&fifo).unwrap_err();
        assert_eq!(unsafe_file(&e).unwrap().why, Refused::Special, "{e}");
    }
}
