//! A documents folder and the files it keeps open between requests.
//!
//! Resolving a request path costs a `realpath` (one `readlink` per path component),
//! a `stat`, an `open` and a `close`. A file that was served before is kept open
//! instead, and a request for it costs one `stat` of its path: if the path still
//! names that very file, unchanged, the open file is served; otherwise the entry is
//! dropped and the path is resolved and opened again. So an edited, replaced or
//! removed file is noticed on the next request, and the validators (ETag,
//! Last-Modified, Content-Length) always describe the file that is sent.
//!
//! Why a hit is as safe as a full resolve: an entry is made only after [`resolve`]
//! confined the path and [`open`] opened exactly the file it checked. A hit needs
//! the same device and inode with the same change time, and every way of giving
//! that file another name or place (rename, link, unlink) or other permissions
//! updates its change time; a write updates its modification time and size. So a
//! hit serves the very bytes a full resolve allowed, unchanged. (The one
//! rearrangement it does not see is a folder on the path moved out of the root
//! with a symlink to it left in its place: the untouched file in it is still
//! served from the open file until it changes, as it was before the move.)

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::SystemTime;

use super::path::{open, resolve, PathError};
use crate::http::conditional::file_etag;
use crate::http::date::format_http_date;

/// How many files each documents folder keeps open. A small device's site (pages,
/// scripts, styles, icons, fonts) fits; past it the least recently used is closed.
pub(crate) const OPEN_FILES: usize = 32;

/// A regular file ready to be served, with its validators worked out once.
#[derive(Debug)]
pub(crate) struct OpenFile {
    /// Shared with the responses streaming from it; every read names its offset.
    pub file: Rc<File>,
    /// The metadata of the open file, as it was when last checked.
    pub metadata: Metadata,
    pub mtime: SystemTime,
    /// The strong entity tag: inode, size and modification time.
    pub etag: String,
    /// `mtime` as an HTTP date.
    pub last_modified: String,
}

impl OpenFile {
    fn new(file: File, metadata: Metadata) -> OpenFile {
        let mtime = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        OpenFile {
            file: Rc::new(file),
            etag: file_etag(metadata.ino(), metadata.len(), mtime),
            last_modified: format_http_date(mtime),
            metadata,
            mtime,
        }
    }
}

/// What a path names.
#[derive(Debug)]
pub(crate) enum Found {
    File(Rc<OpenFile>),
    Dir,
}

/// A route's documents folder: its canonical path and the files it keeps open.
#[derive(Debug)]
pub(crate) struct Documents {
    root: PathBuf,
    open: RefCell<OpenFiles>,
}

#[derive(Debug, Default)]
struct OpenFiles {
    /// By relative path, as [`normalize`](super::path::normalize) returns it.
    entries: HashMap<Box<str>, Entry>,
    /// Counts lookups, to find the least recently used entry.
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    file: Rc<OpenFile>,
    used: u64,
}

impl Documents {
    /// `root` must be canonical.
    pub fn new(root: PathBuf) -> Documents {
        Documents {
            root,
            open: RefCell::default(),
        }
    }

    /// The canonical folder.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The file at `relative` if it is open already and its path still names it,
    /// unchanged (one `stat`).
    pub fn cached(&self, relative: &str) -> Option<Rc<OpenFile>> {
        let mut open = self.open.borrow_mut();
        let open = &mut *open;
        let entry = open.entries.get_mut(relative)?;
        match std::fs::metadata(self.path_of(relative)) {
            Ok(now) if unchanged(&now, &entry.file.metadata) => {
                open.clock += 1;
                entry.used = open.clock;
                Some(Rc::clone(&entry.file))
            }
            _ => {
                // Changed, replaced or gone: closed here (unless a response still streams it).
                open.entries.remove(relative);
                None
            }
        }
    }

    /// What `relative` names: a file (from the cache, or resolved, opened and then
    /// kept open) or a directory.
    pub fn find(&self, relative: &str) -> Result<Found, PathError> {
        if let Some(file) = self.cached(relative) {
            return Ok(Found::File(file));
        }
        let found = resolve(&self.root, relative)?;
        if found.is_dir {
            return Ok(Found::Dir);
        }
        let opened = open(&self.root, &found)?;
        let file = Rc::new(OpenFile::new(opened.file, opened.metadata));
        self.keep(relative, Rc::clone(&file));
        Ok(Found::File(file))
    }

    /// `root/relative`, put together without `Path::join`'s parsing (`relative` is
    /// relative already: no empty, `.` or `..` segment).
    fn path_of(&self, relative: &str) -> PathBuf {
        let root = self.root.as_os_str();
        let mut path = OsString::with_capacity(root.len() + 1 + relative.len());
        path.push(root);
        path.push("/");
        path.push(relative);
        path.into()
    }

    /// Keeps `file` open for later requests of `relative`, closing the least
    /// recently used entry when full.
    fn keep(&self, relative: &str, file: Rc<OpenFile>) {
        let mut open = self.open.borrow_mut();
        if open.entries.len() >= OPEN_FILES && !open.entries.contains_key(relative) {
            let oldest = open
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                open.entries.remove(&oldest);
            }
        }
        open.clock += 1;
        let used = open.clock;
        open.entries.insert(relative.into(), Entry { file, used });
    }

    /// How many files are open (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.borrow().entries.len()
    }
}

/// Whether `now` (a fresh `stat` of the path) is still the file `then` describes.
fn unchanged(now: &Metadata, then: &Metadata) -> bool {
    now.dev() == then.dev()
        && now.ino() == then.ino()
        && now.mode() == then.mode()
        && now.size() == then.size()
        && now.mtime() == then.mtime()
        && now.mtime_nsec() == then.mtime_nsec()
        && now.ctime() == then.ctime()
        && now.ctime_nsec() == then.ctime_nsec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::scratch::Scratch;
    use std::fs;
    use std::os::unix::fs::FileExt;

    /// A fresh canonical documents folder (with an `outside` sibling) and its cache.
    struct Site {
        scratch: Scratch,
        docs: Documents,
    }

    impl Site {
        fn new(tag: &str) -> Site {
            let scratch = Scratch::new(&format!("cache-{tag}"));
            Site {
                docs: Documents::new(scratch.root.clone()),
                scratch,
            }
        }

        fn root(&self, name: &str) -> PathBuf {
            self.scratch.root.join(name)
        }

        fn file(&self, relative: &str) -> Rc<OpenFile> {
            match self.docs.find(relative) {
                Ok(Found::File(file)) => file,
                other => panic!("{relative}: {other:?}"),
            }
        }
    }

    fn contents(file: &OpenFile) -> Vec<u8> {
        let mut buf = vec![0; file.metadata.len() as usize];
        file.file.read_exact_at(&mut buf, 0).unwrap();
        buf
    }

    #[test]
    fn a_file_served_before_is_served_from_the_open_file() {
        let s = Site::new("hit");
        fs::write(s.root("a.txt"), "one").unwrap();
        let first = s.file("a.txt");
        let again = s.file("a.txt");
        assert!(Rc::ptr_eq(&first, &again), "not opened again");
        assert_eq!(contents(&again), b"one");
        assert!(s.docs.cached("a.txt").is_some());
        // Directories are never kept.
        fs::create_dir(s.root("dir")).unwrap();
        assert!(matches!(s.docs.find("dir"), Ok(Found::Dir)));
        assert!(s.docs.cached("dir").is_none());
    }

    #[test]
    fn an_edited_file_is_noticed_with_its_new_metadata() {
        let s = Site::new("edit");
        fs::write(s.root("a.txt"), "one").unwrap();
        let first = s.file("a.txt");
        fs::write(s.root("a.txt"), "longer").unwrap();
        let now = s.file("a.txt");
        assert_eq!(now.metadata.len(), 6);
        assert_eq!(contents(&now), b"longer");
        assert_eq!(first.metadata.ino(), now.metadata.ino(), "edited in place");
    }

    #[test]
    fn a_replaced_file_is_noticed() {
        let s = Site::new("replace");
        fs::write(s.root("a.txt"), "old").unwrap();
        let first = s.file("a.txt");
        // How editors and deployments write: a new file renamed over the old one.
        fs::write(s.root("a.tmp"), "new").unwrap();
        fs::rename(s.root("a.tmp"), s.root("a.txt")).unwrap();
        let now = s.file("a.txt");
        assert_ne!(first.metadata.ino(), now.metadata.ino());
        assert_eq!(contents(&now), b"new");
        assert_eq!(
            contents(&first),
            b"old",
            "a response in flight keeps its file"
        );
    }

    #[test]
    fn a_removed_file_is_not_found_and_closed() {
        let s = Site::new("removed");
        fs::write(s.root("a.txt"), "x").unwrap();
        s.file("a.txt");
        assert_eq!(s.docs.len(), 1);
        fs::remove_file(s.root("a.txt")).unwrap();
        assert_eq!(s.docs.find("a.txt").unwrap_err(), PathError::NotFound);
        assert_eq!(s.docs.len(), 0, "the open file is closed");
    }

    #[test]
    fn a_symlink_pointed_out_of_the_root_later_is_not_served() {
        let s = Site::new("relink");
        fs::write(s.root("real.txt"), "inside").unwrap();
        fs::write(s.scratch.outside.join("secret.txt"), "SECRET").unwrap();
        std::os::unix::fs::symlink("real.txt", s.root("alias.txt")).unwrap();
        assert_eq!(contents(&s.file("alias.txt")), b"inside");
        fs::remove_file(s.root("alias.txt")).unwrap();
        std::os::unix::fs::symlink(s.scratch.outside.join("secret.txt"), s.root("alias.txt"))
            .unwrap();
        assert_eq!(s.docs.find("alias.txt").unwrap_err(), PathError::NotFound);
        // A folder on the way moved out of the root, a symlink to it put in its
        // place, and the file written there: the file has changed, so it is resolved
        // again, and refused. (Untouched, it would still be the file served before.)
        fs::create_dir(s.root("sub")).unwrap();
        fs::write(s.root("sub/secret.txt"), "inside").unwrap();
        s.file("sub/secret.txt");
        fs::rename(s.root("sub"), s.scratch.outside.join("sub")).unwrap();
        fs::write(s.scratch.outside.join("sub/secret.txt"), "SECRET").unwrap();
        std::os::unix::fs::symlink(s.scratch.outside.join("sub"), s.root("sub")).unwrap();
        assert_eq!(
            s.docs.find("sub/secret.txt").unwrap_err(),
            PathError::NotFound
        );
    }

    #[test]
    fn at_most_open_files_stay_open_and_the_least_recently_used_goes() {
        let s = Site::new("bound");
        for i in 0..OPEN_FILES + 8 {
            fs::write(s.root(&format!("{i}.txt")), "x").unwrap();
        }
        s.file("0.txt");
        for i in 1..OPEN_FILES + 8 {
            s.file(&format!("{i}.txt"));
            // 0.txt is used all along: it stays.
            s.file("0.txt");
        }
        assert_eq!(s.docs.len(), OPEN_FILES);
        assert!(s.docs.cached("0.txt").is_some());
        assert!(s.docs.cached("1.txt").is_none());
        assert!(s.docs.cached(&format!("{}.txt", OPEN_FILES + 7)).is_some());
    }
}
