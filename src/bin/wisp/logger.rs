//! The binary's logger: one line per record on stderr, where systemd's
//! journal (or a terminal) picks it up with its own timestamps.

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut err = std::io::stderr().lock();
        // A failed write to stderr has nowhere better to be reported.
        let _ = if record.target() == "wisp::access" {
            writeln!(err, "access: {}", record.args())
        } else {
            writeln!(
                err,
                "{}: {}",
                record.level().as_str().to_lowercase(),
                record.args()
            )
        };
    }

    fn flush(&self) {}
}

/// Installs the stderr logger at `level`.
pub fn init(level: LevelFilter) {
    static LOGGER: Stderr = Stderr;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
