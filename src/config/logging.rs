//! `web.log`: the log level and the access log, with their defaults and
//! the reader of their keys. (Named `logging`, not `log`, so that the `log`
//! crate keeps its name in this module's parent.)

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::read::{self, fail, Obj};

/// Logging: `log: 'info'` or `log: { level: 'info', access: true }`.
///
/// wisp logs through the `log` facade; the `wisp` binary prints the records
/// to stderr. A program using the library installs its own logger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// The most verbose level printed by the binary (`level`: `'off'`,
    /// `'error'`, `'warn'`, `'info'`, `'debug'`, `'trace'`; default `'info'`).
    pub level: log::LevelFilter,
    /// One `info` line per request, under the target `wisp::access`
    /// (`access`, default `false`).
    pub access: bool,
    /// The access line's format (`format`: `'combined'`, the default, or `'common'`).
    pub format: AccessFormat,
    /// A file the log goes to instead of stderr (`path`); rotated at `size`.
    pub path: Option<PathBuf>,
    /// The log file's size at which it is rotated (`size`, default 1MB).
    pub size: u64,
    /// Rotated files kept beside it, `path.1` the newest (`keep`, default 3).
    pub keep: usize,
}

/// The access log's line format: Apache's, with the duration and request id after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessFormat {
    /// `host - - [time] "request" status bytes`.
    Common,
    /// The common format, then `"referer" "user-agent"`.
    Combined,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: log::LevelFilter::Info,
            access: false,
            format: AccessFormat::Combined,
            path: None,
            size: 1024 * 1024,
            keep: 3,
        }
    }
}

pub(super) fn log_config(path: &str, v: &Value, base: &Path) -> read::Result<Log> {
    if let Value::String(level) = v {
        return Ok(Log {
            level: log_level(path, level)?,
            ..Log::default()
        });
    }
    let o = Obj::new(
        path,
        v,
        &["level", "access", "format", "path", "size", "keep"],
    )?;
    let d = Log::default();
    let format = match o.string("format")?.as_deref() {
        None | Some("combined") => AccessFormat::Combined,
        Some("common") => AccessFormat::Common,
        Some(other) => {
            return fail(
                &o.path_of("format"),
                format!("{other:?} is not 'combined' or 'common'"),
            )
        }
    };
    let size = o.size("size")?.unwrap_or(d.size);
    if size < 1024 {
        return fail(&o.path_of("size"), "must be at least 1K");
    }
    Ok(Log {
        level: match o.string("level")? {
            Some(level) => log_level(&o.path_of("level"), &level)?,
            None => d.level,
        },
        access: o.boolean("access")?.unwrap_or(d.access),
        format,
        path: o.string("path")?.map(|p| base.join(p)),
        size,
        keep: o.count("keep")?.unwrap_or(d.keep),
    })
}

/// Parses a log level name: off, error, warn, info, debug, trace.
fn log_level(path: &str, text: &str) -> read::Result<log::LevelFilter> {
    text.parse().or_else(|_| {
        fail(
            path,
            format!("{text:?} is not a log level (off, error, warn, info, debug, trace)"),
        )
    })
}
