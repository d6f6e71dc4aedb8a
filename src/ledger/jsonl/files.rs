//! File-system helpers: error hints, user-name sanitising, locked files.

use std::fs::File;
use std::io::{self, ErrorKind};
use std::path::Path;

use crate::ledger::LedgerError;

/// Longest sanitised user name (file names stay well under 255 bytes).
const MAX_SANITISED_LEN: usize = 200;

/// Maps a user name to the part of a file name between `costs_` and
/// `.jsonl`. See [`super::sanitize_user`] for the documented mapping.
pub(crate) fn sanitize_user(name: &str) -> Result<String, LedgerError> {
    if name.is_empty() {
        return Err(LedgerError::Config(
            "the ledger user name is empty: set one with JsonlStorage::builder(dir).user(\"name\") \
             or COSTLAYER_USER"
                .to_owned(),
        ));
    }
    let mut out = String::with_capacity(name.len());
    let mut prev_dot = true; // a leading '.' is escaped like the second of ".."
    for ch in name.chars() {
        match ch {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' => {
                out.push(ch);
                prev_dot = false;
            }
            '.' if !prev_dot => {
                out.push('.');
                prev_dot = true;
            }
            _ => {
                let mut buf = [0u8; 4];
                for b in ch.encode_utf8(&mut buf).bytes() {
                    out.push('%');
                    out.push(char::from(HEX[usize::from(b >> 4)]));
                    out.push(char::from(HEX[usize::from(b & 0xf)]));
                }
                prev_dot = ch == '.';
            }
        }
    }
    if out.len() > MAX_SANITISED_LEN {
        return Err(LedgerError::Config(format!(
            "the ledger user name is too long ({} bytes once sanitised, at most {MAX_SANITISED_LEN}): \
             choose a shorter name with .user(..) or COSTLAYER_USER",
            out.len()
        )));
    }
    Ok(out)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The OS user name, or `"unknown"` if the OS does not say.
pub(crate) fn os_user() -> String {
    match whoami::fallible::username() {
        Ok(u) if !u.trim().is_empty() => u,
        _ => "unknown".to_owned(),
    }
}

/// Builds a [`LedgerError::Io`] whose hint says what to do for this kind of
/// failure. `op` is what we were doing ("append to", "read", ...).
pub(crate) fn io_error(path: &Path, op: &str, source: io::Error) -> LedgerError {
    let shown = path.display();
    if super::safe_open::unsafe_file(&source).is_some() {
        return LedgerError::Io {
            path: path.to_path_buf(),
            hint: format!("Could not {op} it: nothing was read or written through it."),
            source,
        };
    }
    let hint = match source.kind() {
        ErrorKind::PermissionDenied => format!(
            "Could not {op} {shown}: permission denied. Make the file and its directory readable \
             and writable by this user (chmod/chown), or point the ledger at another directory \
             (COSTLAYER_DATA_DIR)."
        ),
        ErrorKind::ReadOnlyFilesystem => format!(
            "Could not {op} {shown}: the file system is read-only. Point the ledger at a writable \
             directory (COSTLAYER_DATA_DIR)."
        ),
        ErrorKind::IsADirectory => format!(
            "{shown} is a directory, but the ledger needs a regular file there. Move the \
             directory away (for example `mv {shown} {shown}.bak`) and retry."
        ),
        ErrorKind::NotADirectory => format!(
            "A parent of {shown} is a file, not a directory. Move that file away or choose \
             another ledger directory (COSTLAYER_DATA_DIR)."
        ),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge => format!(
            "Could not {op} {shown}: the disk is full or a file-size limit was reached. The \
             record was NOT written; free disk space (or raise the quota / `ulimit -f`) and \
             retry. Records acknowledged before are intact."
        ),
        ErrorKind::NotFound => format!(
            "Could not {op} {shown}: it does not exist. Check the ledger directory \
             (COSTLAYER_DATA_DIR)."
        ),
        _ => format!(
            "Could not {op} {shown}. Check that the path exists, is a regular file, and is \
             readable and writable by this user."
        ),
    };
    LedgerError::Io {
        path: path.to_path_buf(),
        source,
        hint,
    }
}

/// Creates `dir` (and parents) if missing, with a helpful error.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), LedgerError> {
    match std::fs::create_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) => Err(io_error(dir, "create the ledger directory", e)),
    }
}

/// Holds the advisory lock of a file; unlocks on drop.
#[derive(Debug)]
pub(crate) struct LockGuard<'a>(pub(crate) &'a File);

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Closing the descriptor would release the lock too; unlock now so a
        // waiter does not wait for the close.
        let _ = self.0.unlock();
    }
}

/// The identity of a file: (device, inode) on Unix.
#[cfg(unix)]
pub(crate) fn identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

/// The identity of a file (not available on this platform).
#[cfg(not(unix))]
pub(crate) fn identity(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// Whether the open `file` is still the file at `path` (not moved away by a
/// reset, not replaced).
pub(crate) fn still_at_path(file: &File, path: &Path) -> io::Result<bool> {
    let open = file.metadata()?;
    // Not followed: a link put in the file's place is not the file.
    match std::fs::symlink_metadata(path) {
        Ok(now) => Ok(match (identity(&open), identity(&now)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Opens `path` for reading and appending (creating it) and takes the
/// exclusive lock, retrying if the file was moved away (reset) while we
/// waited for the lock. The caller wraps the result in a [`LockGuard`].
pub(crate) fn open_locked_append(path: &Path, op: &str) -> Result<File, LedgerError> {
    loop {
        // Never through a link, and only a regular file.
        let file = super::safe_open::append(path).map_err(|e| io_error(path, op, e))?;
        file.lock().map_err(|e| io_error(path, "lock", e))?;
        if still_at_path(&file, path).map_err(|e| io_error(path, op, e))? {
            return Ok(file);
        }
        let _ = file.unlock();
        // Moved away between open and lock: reopen the new file.
    }
}

/// Reads the last byte of `file` (of length `len > 0`).
pub(crate) fn last_byte(file: &File, len: u64) -> io::Result<u8> {
    let mut b = [0u8; 1];
    read_exact_at(file, &mut b, len - 1)?;
    Ok(b[0])
}

/// Reads at `offset` without moving the file's cursor (safe to call from
/// several threads on one `File`).
#[cfg(unix)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// Reads at `offset` (the cursor moves, but every read names its offset,
/// so concurrent reads on one `File` do not disturb each other).
#[cfg(windows)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Reads exactly `buf.len()` bytes at `offset` (an early end of file is
/// `UnexpectedEof`), without moving the file's cursor on Unix.
#[cfg(unix)]
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Reads exactly `buf.len()` bytes at `offset` (an early end of file is
/// `UnexpectedEof`).
#[cfg(windows)]
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n =
            std::os::windows::fs::FileExt::seek_read(file, &mut buf[done..], offset + done as u64)?;
        if n == 0 {
            return Err(io::Error::from(ErrorKind::UnexpectedEof));
        }
        done += n;
    }
    Ok(())
}

/// Makes a new directory entry durable (best effort; Unix only).
pub(crate) fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// A stable 64-bit FNV-1a hash (quarantine file names, legacy ids).
pub(crate) fn fnv1a64(seed: u64, bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitising_maps_every_dangerous_character() {
        let s = |n: &str| sanitize_user(n).expect("valid");
        assert_eq!(s("alice"), "alice");
        assert_eq!(s("john.doe-2_x"), "john.doe-2_x");
        assert_eq!(s("../../etc/passwd"), "%2E%2E%2F.%2E%2Fetc%2Fpasswd");
        assert_eq!(s(".hidden"), "%2Ehidden");
        assert_eq!(s("a..b"), "a.%2Eb");
        assert_eq!(s("C:\\Users\\x"), "C%3A%5CUsers%5Cx");
        assert_eq!(s("tab\there\n"), "tab%09here%0A");
        assert_eq!(s("josé"), "jos%C3%A9");
        assert_eq!(s("100%"), "100%25");
        for n in [
            "../../etc/passwd",
            "..",
            ".",
            "a/../b",
            "\\\\server\\x",
            "\0",
        ] {
            let out = s(n);
            assert!(
                !out.contains('/') && !out.contains('\\') && !out.contains(".."),
                "{out}"
            );
            assert!(!out.starts_with('.'), "{out}");
            assert!(out.chars().all(|c| c.is_ascii_graphic()), "{out}");
        }
    }

    #[test]
    fn sanitising_is_injective_on_tricky_pairs() {
        let pairs = [
            ("a/b", "a_b"),
            ("a%2Fb", "a/b"),
            ("..", "%2E%2E"),
            ("a.b", "a%2Eb"),
        ];
        for (x, y) in pairs {
            assert_ne!(sanitize_user(x).ok(), sanitize_user(y).ok(), "{x} vs {y}");
        }
    }

    #[test]
    fn empty_and_huge_names_are_config_errors() {
        let e = sanitize_user("").expect_err("empty");
        assert!(e.to_string().contains("COSTLAYER_USER"), "{e}");
        let e = sanitize_user(&"/".repeat(100)).expect_err("too long");
        assert!(e.to_string().contains("too long"), "{e}");
    }

    #[test]
    fn hints_say_what_to_do() {
        let p = Path::new("/x/costs_a.jsonl");
        let e = io_error(p, "append to", io::Error::from(ErrorKind::PermissionDenied));
        assert!(e.to_string().contains("/x/costs_a.jsonl"), "{e}");
        assert!(e.to_string().contains("chmod"), "{e}");
        let e = io_error(p, "append to", io::Error::from(ErrorKind::StorageFull));
        assert!(e.to_string().contains("NOT written"), "{e}");
        let e = io_error(p, "append to", io::Error::from(ErrorKind::IsADirectory));
        assert!(e.to_string().contains("Move the directory away"), "{e}");
    }
}
