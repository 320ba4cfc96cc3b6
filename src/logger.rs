//! A logger for programs that run wisp, the binary's own: one line per
//! record on stderr (where systemd's journal or a terminal adds its own
//! timestamps), access lines as `access: …`, and the start line
//! ([`Server::run`](crate::Server::run)'s "wisp … serving … on …") alone on
//! stdout, so a script or a person sees where the server listens.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use log::{LevelFilter, Log, Metadata, Record};

/// The target of the start line `Server::run` logs.
pub(crate) const START: &str = "wisp::start";
/// The target of the access log's lines.
pub(crate) const ACCESS: &str = "wisp::access";

struct Lines {
    /// The level asked for (a `LevelFilter` as `usize`); the start line is
    /// shown at any level but `off`, so `log`'s own filter is at least `Info`.
    level: AtomicUsize,
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
        // A failed write to stderr or stdout has nowhere better to be reported.
        let _ = match record.target() {
            START => writeln!(std::io::stdout().lock(), "{}", record.args()),
            ACCESS => writeln!(std::io::stderr().lock(), "access: {}", record.args()),
            _ => writeln!(
                std::io::stderr().lock(),
                "{}: {}",
                record.level().as_str().to_lowercase(),
                record.args()
            ),
        };
    }

    fn flush(&self) {}
}

/// Prints wisp's log (and the program's own `log` records) as the `wisp`
/// binary does, up to `level` (`config.log.level` is the configured one):
/// errors, warnings and so on on stderr, one line each, and the start line
/// on stdout. Returns false, changing nothing, if the program installed
/// another logger already.
///
/// ```
/// let config = wisp::Config::default();
/// wisp::init_logging(config.log.level);
/// ```
pub fn init_logging(level: LevelFilter) -> bool {
    static LOGGER: Lines = Lines {
        level: AtomicUsize::new(LevelFilter::Info as usize),
    };
    if log::set_logger(&LOGGER).is_err() {
        return false;
    }
    LOGGER.level.store(level as usize, Ordering::Relaxed);
    let floor = if level == LevelFilter::Off {
        LevelFilter::Off
    } else {
        level.max(LevelFilter::Info)
    };
    log::set_max_level(floor);
    true
}
