//! What an action sees of the files a `multipart/form-data` upload stored:
//! [`UploadedFile`], removed when the request is done unless kept.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// A file part of a `multipart/form-data` body, stored in `upload.dir`
/// while it arrived. [`Request::uploads`](crate::Request::uploads) lists them.
///
/// The stored file's name is made up by the server; the client's file name
/// is only metadata ([`UploadedFile::filename`], sanitised). Once the
/// handler returns, the file is removed unless it was kept
/// ([`UploadedFile::keep`], [`UploadedFile::keep_as`]) or `upload.remove`
/// is `false`.
pub struct UploadedFile {
    field: String,
    filename: String,
    content_type: Option<String>,
    // Atomics and a mutex rather than cells, so that a `Request` stays `Sync`.
    path: Mutex<PathBuf>,
    size: AtomicU64,
    kept: AtomicBool,
}

impl UploadedFile {
    pub(crate) fn new(
        field: String,
        filename: String,
        content_type: Option<String>,
        path: PathBuf,
    ) -> UploadedFile {
        UploadedFile {
            field,
            filename,
            content_type,
            path: Mutex::new(path),
            size: AtomicU64::new(0),
            kept: AtomicBool::new(false),
        }
    }

    pub(crate) fn grew(&self, by: u64) {
        self.size.fetch_add(by, Ordering::Relaxed);
    }

    /// The form field's name (`name=` of the part).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The client's file name, sanitised: no folders (everything up to the
    /// last `/` or `\` is dropped), no control characters, never `.` or
    /// `..`; possibly empty. Never used to name the stored file.
    pub fn filename(&self) -> &str {
        &self.filename
    }

    /// The part's `Content-Type`, if it had one.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// Where the file is now: in `upload.dir` under a generated name, or
    /// where [`UploadedFile::keep_as`] moved it.
    pub fn path(&self) -> PathBuf {
        self.lock_path().clone()
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    /// True when the file will outlive the request.
    pub fn is_kept(&self) -> bool {
        self.kept.load(Ordering::Relaxed)
    }

    /// Keeps the file where it is (in `upload.dir`, at [`UploadedFile::path`]).
    pub fn keep(&self) {
        self.kept.store(true, Ordering::Relaxed);
    }

    /// Moves the file to `dest` (a rename: `dest` should be on the same
    /// file system as `upload.dir`) and keeps it there.
    pub fn keep_as(&self, dest: &Path) -> io::Result<()> {
        let mut path = self.lock_path();
        std::fs::rename(&*path, dest)?;
        *path = dest.to_path_buf();
        self.kept.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn lock_path(&self) -> std::sync::MutexGuard<'_, PathBuf> {
        self.path.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for UploadedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadedFile")
            .field("field", &self.field)
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("path", &*self.lock_path())
            .field("size", &self.size())
            .field("kept", &self.is_kept())
            .finish()
    }
}

impl Drop for UploadedFile {
    fn drop(&mut self) {
        if self.is_kept() {
            return;
        }
        let path = self.path.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = std::fs::remove_file(&*path) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!("could not remove the upload {}: {e}", path.display());
            }
        }
    }
}

/// The client's file name as metadata: its last path component, without
/// control characters, trimmed; `.` and `..` become empty. At most 255 bytes.
pub(crate) fn sanitize_filename(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut clean: String = last.chars().filter(|c| !c.is_control()).collect();
    clean = clean.trim().to_string();
    if clean == "." || clean == ".." {
        clean.clear();
    }
    while clean.len() > 255 {
        clean.pop();
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_with_uploads_stays_send_and_sync() {
        fn sync<T: Send + Sync>() {}
        sync::<UploadedFile>();
        sync::<crate::Request<'static>>();
    }

    #[test]
    fn file_names_lose_folders_and_control_characters() {
        let cases = [
            ("../../etc/passwd", "passwd"),
            ("C:\\Users\\x\\report.pdf", "report.pdf"),
            ("a\0b\r\nc.txt", "abc.txt"),
            ("..", ""),
            ("dir/..", ""),
            ("", ""),
            ("  spaced .txt ", "spaced .txt"),
            ("photo\u{7f}.jpg", "photo.jpg"),
        ];
        for (sent, kept) in cases {
            assert_eq!(sanitize_filename(sent), kept, "{sent:?}");
        }
        assert_eq!(sanitize_filename(&"é".repeat(200)).len(), 254);
    }
}
