//! Writing files on a file route that allows `PUT` and `DELETE`.
//!
//! A `PUT` body streams into a hidden temporary file beside its target (a
//! dot name, so it is never served) and is renamed over the target only once
//! the whole body was written and synced: a reader sees the old file or the
//! new one, never a part. A failed or abandoned upload removes its temporary
//! file ([`Upload`]'s `Drop`), so a full file system or a vanished client
//! leaves nothing behind.
//!
//! Every name is looked up below the route's folder with the directory
//! opened beneath the root, following no symlink (`openat2`), and the file
//! operations are relative to that directory: a symlink swapped in later
//! cannot redirect a write out of the folder. Writes block the loop for as
//! long as the file system takes — on a device's flash, microseconds per
//! read's worth of body.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::path::resolve;
use crate::http::error::HttpError;

/// Whether a stored file was new or replaced one: 201 or 204 (RFC 9110 §9.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    Created,
    Replaced,
}

impl Stored {
    pub fn status(self) -> u16 {
        match self {
            Stored::Created => 201,
            Stored::Replaced => 204,
        }
    }
}

/// A `PUT` in progress: its temporary file, removed unless committed.
#[derive(Debug)]
pub(crate) struct Upload {
    dir: OwnedFd,
    name: Box<str>,
    temp: Box<str>,
    file: Option<File>,
    written: u64,
    limit: u64,
    replaces: bool,
}

impl Upload {
    /// Starts storing `relative` (as [`normalize`](super::path::normalize)
    /// returned it) under `root`, taking at most `limit` bytes.
    ///
    /// Refusals: a dot name, or a folder that does not exist, 404 (as for a
    /// read); a directory or anything but a regular file at the name, 409.
    pub fn begin(root: &Path, relative: &str, limit: u64) -> Result<Upload, HttpError> {
        let (dir, name) = open_parent(root, relative)?;
        let replaces = match existing(&dir, name)? {
            None => false,
            Some(FileType::RegularFile) => true,
            Some(_) => return Err(HttpError::Conflict),
        };
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let temp = format!(".{name}.wisp-upload-{}-{n}", std::process::id());
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let fd = rustix::fs::openat(
            &dir,
            temp.as_str(),
            flags | OFlags::CLOEXEC,
            Mode::from(0o644),
        )
        .map_err(write_refusal)?;
        Ok(Upload {
            name: name.into(),
            temp: temp.into(),
            file: Some(File::from(fd)),
            dir,
            written: 0,
            limit,
            replaces,
        })
    }

    /// Bytes the body may still bring.
    pub fn room(&self) -> u64 {
        self.limit - self.written
    }

    /// Appends body bytes: 413 past the limit, 507 when the file system is full.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), HttpError> {
        if bytes.len() as u64 > self.room() {
            return Err(HttpError::BodyTooLarge);
        }
        let file = self.file.as_mut().ok_or(HttpError::Internal)?;
        file.write_all(bytes).map_err(io_refusal)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Syncs the body to storage and renames it over the target.
    pub fn commit(mut self) -> Result<Stored, HttpError> {
        let file = self.file.take().ok_or(HttpError::Internal)?;
        // A full file system may only say so now (delayed allocation).
        file.sync_all().map_err(io_refusal)?;
        drop(file);
        rustix::fs::renameat(&self.dir, &*self.temp, &self.dir, &*self.name)
            .map_err(write_refusal)?;
        self.temp = Box::from("");
        Ok(if self.replaces {
            Stored::Replaced
        } else {
            Stored::Created
        })
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.temp.is_empty() {
            self.file = None;
            if let Err(e) = rustix::fs::unlinkat(&self.dir, &*self.temp, AtFlags::empty()) {
                log::warn!(
                    "could not remove the upload's temporary file {}: {e}",
                    self.temp
                );
            }
        }
    }
}

/// Removes the file at `relative`: 404 if there is none, 409 for a directory.
pub(crate) fn delete(root: &Path, relative: &str) -> Result<(), HttpError> {
    let (dir, name) = open_parent(root, relative)?;
    match existing(&dir, name)? {
        None => Err(HttpError::NotFound),
        Some(FileType::Directory) => Err(HttpError::Conflict),
        Some(_) => rustix::fs::unlinkat(&dir, name, AtFlags::empty()).map_err(write_refusal),
    }
}

/// The directory that holds `relative`, opened beneath `root`, and the file's name in it.
fn open_parent<'r>(root: &Path, relative: &'r str) -> Result<(OwnedFd, &'r str), HttpError> {
    let (parent, name) = relative.rsplit_once('/').unwrap_or(("", relative));
    let plain = |s: &str| !s.starts_with('.') && !s.bytes().any(|b| b < 0x20 || b == 0x7f);
    // Dot names are never served, so never written either; an empty name is the folder.
    if name.is_empty() || !plain(name) || !parent.split('/').all(plain) {
        return Err(HttpError::NotFound);
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let root_fd = rustix::fs::open(root, flags, Mode::empty()).map_err(write_refusal)?;
    if parent.is_empty() {
        return Ok((root_fd, name));
    }
    let resolve_flags =
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let dir = match rustix::fs::openat2(&root_fd, parent, flags, Mode::empty(), resolve_flags) {
        // No openat2 (Linux before 5.6, some seccomp filters): the checked
        // canonical path, opened without following a last symlink.
        Err(Errno::NOSYS | Errno::PERM) => {
            let found = resolve(root, parent).map_err(HttpError::from)?;
            if !found.is_dir {
                return Err(HttpError::NotFound);
            }
            rustix::fs::open(&found.path, flags | OFlags::NOFOLLOW, Mode::empty())
        }
        other => other,
    }
    .map_err(write_refusal)?;
    Ok((dir, name))
}

/// What is at `name` in `dir` now, not following a symlink; `None` if nothing.
fn existing(dir: &OwnedFd, name: &str) -> Result<Option<FileType>, HttpError> {
    match rustix::fs::statat(
        dir,
        OsStr::from_bytes(name.as_bytes()),
        AtFlags::SYMLINK_NOFOLLOW,
    ) {
        Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(write_refusal(e)),
    }
}

/// A write that failed: full storage is 507, a missing folder 404, a
/// permission problem 403, anything else 500.
fn write_refusal(e: Errno) -> HttpError {
    match e {
        Errno::NOSPC | Errno::DQUOT | Errno::FBIG => HttpError::InsufficientStorage,
        Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV | Errno::NAMETOOLONG => {
            HttpError::NotFound
        }
        Errno::ACCESS | Errno::PERM | Errno::ROFS => HttpError::Forbidden,
        Errno::ISDIR | Errno::EXIST => HttpError::Conflict,
        Errno::MFILE | Errno::NFILE | Errno::NOMEM => HttpError::Unavailable,
        _ => HttpError::Internal,
    }
}

fn io_refusal(e: io::Error) -> HttpError {
    match e.raw_os_error() {
        Some(code) => write_refusal(Errno::from_raw_os_error(code)),
        None => HttpError::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::scratch::Scratch;
    use std::fs;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_put_creates_then_replaces_and_leaves_no_temporary_file() {
        let s = Scratch::new("store-put");
        let mut up = Upload::begin(&s.root, "a.txt", 100).unwrap();
        up.write(b"hello ").unwrap();
        // Not visible until committed.
        assert!(!s.root.join("a.txt").exists());
        up.write(b"world").unwrap();
        assert_eq!(up.commit(), Ok(Stored::Created));
        assert_eq!(fs::read(s.root.join("a.txt")).unwrap(), b"hello world");
        let mut up = Upload::begin(&s.root, "a.txt", 100).unwrap();
        up.write(b"new").unwrap();
        assert_eq!(up.commit(), Ok(Stored::Replaced));
        assert_eq!(fs::read(s.root.join("a.txt")).unwrap(), b"new");
        assert_eq!(names(&s.root), ["a.txt"]);
    }

    #[test]
    fn an_abandoned_or_oversized_upload_removes_its_temporary_file() {
        let s = Scratch::new("store-drop");
        fs::write(s.root.join("keep.txt"), b"old").unwrap();
        let mut up = Upload::begin(&s.root, "keep.txt", 4).unwrap();
        up.write(b"1234").unwrap();
        assert_eq!(up.write(b"5"), Err(HttpError::BodyTooLarge));
        assert_eq!(
            names(&s.root).len(),
            2,
            "the temporary file exists meanwhile"
        );
        drop(up);
        assert_eq!(names(&s.root), ["keep.txt"]);
        assert_eq!(fs::read(s.root.join("keep.txt")).unwrap(), b"old");
    }

    #[test]
    fn names_outside_or_hidden_or_in_missing_folders_are_refused() {
        let s = Scratch::new("store-refuse");
        fs::create_dir(s.root.join("sub")).unwrap();
        std::os::unix::fs::symlink(&s.outside, s.root.join("out")).unwrap();
        let begin = |rel: &str| Upload::begin(&s.root, rel, 10).map(|_| ());
        assert_eq!(begin(".env"), Err(HttpError::NotFound));
        assert_eq!(begin(".git/config"), Err(HttpError::NotFound));
        assert_eq!(begin("missing/a.txt"), Err(HttpError::NotFound));
        assert_eq!(
            begin("out/a.txt"),
            Err(HttpError::NotFound),
            "through a symlink"
        );
        assert_eq!(begin("sub"), Err(HttpError::Conflict), "a directory");
        assert_eq!(
            begin("out"),
            Err(HttpError::Conflict),
            "a symlink is not replaced"
        );
        assert_eq!(begin(""), Err(HttpError::NotFound));
        assert!(begin("sub/a.txt").is_ok());
        assert_eq!(names(&s.outside), Vec::<String>::new());
        assert_eq!(names(&s.root.join("sub")), Vec::<String>::new());
    }

    #[test]
    fn delete_removes_files_only() {
        let s = Scratch::new("store-delete");
        fs::create_dir(s.root.join("sub")).unwrap();
        fs::write(s.root.join("sub/a.txt"), b"x").unwrap();
        assert_eq!(delete(&s.root, "sub/a.txt"), Ok(()));
        assert_eq!(delete(&s.root, "sub/a.txt"), Err(HttpError::NotFound));
        assert_eq!(delete(&s.root, "sub"), Err(HttpError::Conflict));
        assert_eq!(delete(&s.root, ".hidden"), Err(HttpError::NotFound));
        assert!(s.root.join("sub").is_dir());
    }

    #[test]
    fn errors_map_to_statuses() {
        assert_eq!(write_refusal(Errno::NOSPC).status(), 507);
        assert_eq!(write_refusal(Errno::DQUOT).status(), 507);
        assert_eq!(write_refusal(Errno::ROFS).status(), 403);
        assert_eq!(write_refusal(Errno::IO).status(), 500);
        assert_eq!(io_refusal(io::Error::other("x")).status(), 500);
    }
}
