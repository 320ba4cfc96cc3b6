//! A logger for programs that run wisp, the binary's own: one line per
//! record on stderr (where systemd's journal or a terminal adds its own
//! timestamps) or in a log file that is rotated by size, so a device's flash
//! does not fill; access lines as `access: …`; and the start line
//! ([`Server::run`](crate::Server::run)'s "wisp … serving … on …") alone on
//! stdout, so a script or a person sees where the server listens.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use log::{LevelFilter, Log, Metadata, Record};

use crate::config;

/// The target of the start line `Server::run` logs.
pub(crate) const START: &str = "wisp::start";
/// The target of the access log's lines.
pub(crate) const ACCESS: &str = "wisp::access";

struct Lines {
    /// The level asked for (a `LevelFilter` as `usize`); the start line is
    /// shown at any level but `off`, so `log`'s own filter is at least `Info`.
    level: AtomicUsize,
    /// The log file, when `log.path` names one; else stderr.
    file: OnceLock<Mutex<Rotating>>,
}

impl Log for Lines {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let level = self.level.load(Ordering::Relaxed);
        match metadata.target() {
            START => level > LevelFilter::Off as usize,
            _ => metadata.level() as usize <= level,
        }
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = match record.target() {
            START => {
                // A failed write has nowhere better to be reported.
                let _ = writeln!(io::stdout().lock(), "{}", record.args());
                return;
            }
            ACCESS => format!("access: {}\n", record.args()),
            _ => format!(
                "{}: {}\n",
                record.level().as_str().to_lowercase(),
                record.args()
            ),
        };
        match self.file.get() {
            Some(file) => {
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                if file.write(line.as_bytes()).is_err() {
                    let _ = io::stderr().write_all(line.as_bytes());
                }
            }
            None => {
                let _ = io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

/// A log file that is renamed to `path.1` (and `path.1` to `path.2`, …,
/// up to `keep`) once a line would take it past `size` bytes.
struct Rotating {
    path: PathBuf,
    file: File,
    written: u64,
    size: u64,
    keep: usize,
}

impl Rotating {
    fn open(path: &Path, size: u64, keep: usize) -> io::Result<Rotating> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(Rotating {
            path: path.to_path_buf(),
            file,
            written,
            size,
            keep,
        })
    }

    fn write(&mut self, line: &[u8]) -> io::Result<()> {
        if self.written > 0 && self.written + line.len() as u64 > self.size {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.written += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let numbered = |n: usize| {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.keep).rev() {
                // A missing older file is no error: fewer rotations so far.
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

/// Prints wisp's log (and the program's own `log` records) as the `wisp`
/// binary does, by `config.log`: records up to its `level`, one line each,
/// on stderr or in its `path` (rotated at `size`, `keep` old files), and
/// the start line on stdout.
///
/// Returns `Ok(false)`, changing nothing, if the program installed another
/// logger already; an `Err` if the log file cannot be opened.
///
/// ```
/// let config = wisp::Config::default();
/// wisp::init_logging(&config.log)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn init_logging(log: &config::Log) -> io::Result<bool> {
    static LOGGER: Lines = Lines {
        level: AtomicUsize::new(LevelFilter::Info as usize),
        file: OnceLock::new(),
    };
    let file = match &log.path {
        Some(path) => Some(Rotating::open(path, log.size, log.keep)?),
        None => None,
    };
    if log::set_logger(&LOGGER).is_err() {
        return Ok(false);
    }
    if let Some(file) = file {
        let _ = LOGGER.file.set(Mutex::new(file));
    }
    LOGGER.level.store(log.level as usize, Ordering::Relaxed);
    let floor = if log.level == LevelFilter::Off {
        LevelFilter::Off
    } else {
        log.level.max(LevelFilter::Info)
    };
    log::set_max_level(floor);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_file_rotates_by_size_and_keeps_so_many() {
        let dir = std::env::temp_dir().join(format!("wisp-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wisp.log");
        let mut log = Rotating::open(&path, 100, 2).unwrap();
        for n in 0..10 {
            log.write(format!("line {n:02} {}\n", "x".repeat(30)).as_bytes())
                .unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let numbered = |n| dir.join(format!("wisp.log.{n}"));
        // 39 bytes a line, 100 a file: two lines each, the newest in `path`.
        assert!(read(&path).starts_with("line 08") && read(&path).contains("line 09"));
        assert!(read(&numbered(1)).starts_with("line 06"));
        assert!(read(&numbered(2)).starts_with("line 04"));
        assert!(!numbered(3).exists(), "keep: 2");
        for p in [path.clone(), numbered(1), numbered(2)] {
            assert!(std::fs::metadata(&p).unwrap().len() <= 100);
        }
        // Opened again, it goes on from its size.
        let again = Rotating::open(&path, 100, 2).unwrap();
        assert_eq!(again.written, 78);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
