//! A `multipart/form-data` body streamed into `upload.dir`: file parts
//! written to files the server names, small fields gathered.
//!
//! Each file part goes into a new file (`O_CREAT | O_EXCL`, mode 0600)
//! named `upload-<pid>-<serial>`; the client's file name is kept only as
//! sanitised metadata. The files belong to [`UploadedFile`]s, whose `Drop`
//! removes them: a refused body (413, 400), a vanished client and a
//! finished request whose handler kept nothing all leave `upload.dir` as
//! it was.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::Upload as UploadConfig;
use crate::http::error::HttpError;
use crate::http::multipart::{Event, Parser};
use crate::upload_api::{sanitize_filename, UploadedFile};

/// Bytes of all the plain fields of one form together (names and values).
pub(crate) const MAX_FIELDS: usize = 64 * 1024;
/// Parts in one form.
pub(crate) const MAX_PARTS: usize = 128;

/// A complete form: the stored files and the fields, in the order sent.
#[derive(Debug, Default)]
pub(crate) struct Form {
    pub files: Vec<UploadedFile>,
    pub fields: Vec<(String, String)>,
}

/// The part being received.
#[derive(Debug)]
enum Current {
    None,
    /// A field: its name and its value so far.
    Field(String, Vec<u8>),
    /// A file part: the file its data goes into (the last of `form.files`).
    File(File),
}

/// A `multipart/form-data` body on its way into `upload.dir`.
#[derive(Debug)]
pub(crate) struct FormReceiver {
    parser: Parser,
    dir: PathBuf,
    remove: bool,
    form: Form,
    fields: usize,
    parts: usize,
    current: Current,
}

impl FormReceiver {
    /// A receiver for a body with this `Content-Type` (400 if it is not
    /// `multipart/form-data` with a boundary); `upload.dir` is created if
    /// missing.
    pub fn new(content_type: &[u8], config: &UploadConfig) -> Result<FormReceiver, HttpError> {
        let parser = Parser::for_content_type(content_type).ok_or(HttpError::Malformed)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.dir)
            .map_err(|e| {
                log::error!("cannot create upload.dir {}: {e}", config.dir.display());
                HttpError::Internal
            })?;
        Ok(FormReceiver {
            parser,
            dir: config.dir.clone(),
            remove: config.remove,
            form: Form::default(),
            fields: 0,
            parts: 0,
            current: Current::None,
        })
    }

    /// Takes the next piece of the body.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), HttpError> {
        let FormReceiver {
            parser,
            dir,
            form,
            fields,
            parts,
            current,
            ..
        } = self;
        let got = parser.feed(bytes, &mut |event| match event {
            Event::Part(head) => {
                *parts += 1;
                if *parts > MAX_PARTS {
                    return Err(HttpError::BodyTooLarge);
                }
                *fields += head.name.len();
                if *fields > MAX_FIELDS {
                    return Err(HttpError::BodyTooLarge);
                }
                *current = match &head.filename {
                    None => Current::Field(head.name.clone(), Vec::new()),
                    Some(name) => {
                        let (file, path) = create(dir)?;
                        form.files.push(UploadedFile::new(
                            head.name.clone(),
                            sanitize_filename(name),
                            head.content_type.clone(),
                            path,
                        ));
                        Current::File(file)
                    }
                };
                Ok(())
            }
            Event::Data(data) => match current {
                Current::Field(_, value) => {
                    *fields += data.len();
                    if *fields > MAX_FIELDS {
                        return Err(HttpError::BodyTooLarge);
                    }
                    value.extend_from_slice(data);
                    Ok(())
                }
                Current::File(file) => {
                    file.write_all(data).map_err(|e| {
                        log::warn!("an upload could not be written: {e}");
                        match e.raw_os_error() {
                            Some(28 | 122 | 27) => HttpError::InsufficientStorage,
                            _ => HttpError::Internal,
                        }
                    })?;
                    if let Some(up) = form.files.last() {
                        up.grew(data.len() as u64);
                    }
                    Ok(())
                }
                Current::None => Err(HttpError::Malformed),
            },
            Event::PartEnd => {
                if let Current::Field(name, value) = std::mem::replace(current, Current::None) {
                    let value = String::from_utf8(value)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                    form.fields.push((name, value));
                }
                Ok(())
            }
            Event::End => Ok(()),
        });
        if got == Err(HttpError::Malformed) && !parser.why().is_empty() {
            log::debug!("a multipart body was refused: {}", parser.why());
        }
        got
    }

    /// The body ended: the form, if it was complete (else 400).
    pub fn finish(mut self) -> Result<Form, HttpError> {
        self.parser.finish()?;
        if !self.remove {
            for file in &self.form.files {
                file.keep();
            }
        }
        Ok(std::mem::take(&mut self.form))
    }
}

/// A new file in `dir`, under a name no other upload has.
fn create(dir: &std::path::Path) -> Result<(File, PathBuf), HttpError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("upload-{}-{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
        {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                log::error!("cannot create an upload in {}: {e}", dir.display());
                return Err(match e.raw_os_error() {
                    Some(28 | 122) => HttpError::InsufficientStorage,
                    _ => HttpError::Internal,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::scratch::Scratch;

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    const CT: &[u8] = b"multipart/form-data; boundary=b";
    const BODY: &[u8] = b"--b\r\nContent-Disposition: form-data; name=note\r\n\r\nhi\r\n\
        --b\r\nContent-Disposition: form-data; name=f; filename=\"../../etc/passwd\"\r\n\
        Content-Type: text/plain\r\n\r\nroot:x\r\n--b--\r\n";

    #[test]
    fn files_are_stored_under_made_up_names_and_removed_unless_kept() {
        let s = Scratch::new("uploads-form");
        let config = UploadConfig {
            dir: s.root.join("up"),
            remove: true,
        };
        let mut r = FormReceiver::new(CT, &config).unwrap();
        for b in BODY.chunks(3) {
            r.write(b).unwrap();
        }
        let form = r.finish().unwrap();
        assert_eq!(form.fields, [("note".to_string(), "hi".to_string())]);
        let f = &form.files[0];
        assert_eq!((f.field(), f.filename(), f.size()), ("f", "passwd", 6));
        assert_eq!(f.content_type(), Some("text/plain"));
        assert_eq!(std::fs::read(f.path()).unwrap(), b"root:x");
        assert!(f.path().starts_with(&config.dir));
        drop(form);
        assert!(names(&config.dir).is_empty());
        // Kept, it stays.
        let mut r = FormReceiver::new(CT, &config).unwrap();
        r.write(BODY).unwrap();
        let form = r.finish().unwrap();
        form.files[0].keep_as(&s.root.join("kept")).unwrap();
        drop(form);
        assert_eq!(std::fs::read(s.root.join("kept")).unwrap(), b"root:x");
        assert!(names(&config.dir).is_empty());
    }

    #[test]
    fn an_unfinished_or_refused_body_leaves_no_file() {
        let s = Scratch::new("uploads-partial");
        let config = UploadConfig {
            dir: s.root.join("up"),
            remove: false,
        };
        let mut r = FormReceiver::new(CT, &config).unwrap();
        r.write(&BODY[..BODY.len() - 12]).unwrap();
        assert_eq!(names(&config.dir).len(), 1);
        drop(r);
        assert!(names(&config.dir).is_empty());
        let mut r = FormReceiver::new(CT, &config).unwrap();
        r.write(&BODY[..BODY.len() - 12]).unwrap();
        assert_eq!(r.finish().unwrap_err(), HttpError::Malformed);
        assert!(names(&config.dir).is_empty());
        // With remove: false a complete upload stays.
        let mut r = FormReceiver::new(CT, &config).unwrap();
        r.write(BODY).unwrap();
        drop(r.finish().unwrap());
        assert_eq!(names(&config.dir).len(), 1);
        assert_eq!(
            FormReceiver::new(b"text/plain", &config).unwrap_err(),
            HttpError::Malformed
        );
    }
}
