//! [`ConfigError`]: why a configuration could not be used, printed as one
//! line, and the json5 parser's messages worded so they lead to the mistake.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::read::KeyError;

/// Why a configuration could not be used. Prints as one line.
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The text is not valid json5.
    Syntax {
        /// The file, if the text came from one.
        path: Option<PathBuf>,
        /// The parser's message.
        message: String,
    },
    /// A key is unknown or its value is wrong.
    Invalid {
        /// The file, if the text came from one.
        path: Option<PathBuf>,
        /// The key's path, such as `web.limits.maxFrame`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The same one line as `Display`: a program whose `main` returns this
/// error prints that line, not the variant's fields.
impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| format!("{}: ", p.display()))
                .unwrap_or_default()
        };
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ConfigError::Syntax { path, message } => write!(f, "{}{message}", file(path)),
            ConfigError::Invalid { path, key, message } => {
                write!(f, "{}{key}: {message}", file(path))
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<KeyError> for ConfigError {
    fn from(e: KeyError) -> Self {
        ConfigError::Invalid {
            path: None,
            key: e.key,
            message: e.message,
        }
    }
}

/// The parser's message, said so that it leads to the mistake: at the end
/// of the text, a brace, bracket or quote left open is reported where it was
/// opened (often line 1), so the message says that the text ended first.
pub(super) fn syntax_message(text: &str, e: &json5::Error) -> String {
    use json5::ErrorCode as C;
    let opened = match e.code() {
        Some(C::EofParsingObject) => "an object ({ … })",
        Some(C::EofParsingArray) => "a list ([ … ])",
        Some(C::EofParsingString) => "a string",
        Some(C::EofParsingComment) => "a comment",
        Some(C::EofParsingValue) => "a key's value",
        _ => return e.to_string(),
    };
    let at = e
        .position()
        .map(|p| format!(" (opened at line {} column {})", p.line + 1, p.column + 1))
        .unwrap_or_default();
    let lines = text.lines().count().max(1);
    format!("the text ends at line {lines} inside {opened}{at}: a closing brace, bracket or quote is missing")
}

impl ConfigError {
    pub(super) fn in_file(self, file: &Path) -> ConfigError {
        let file = Some(file.to_path_buf());
        match self {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: file,
                message,
            },
            ConfigError::Invalid { key, message, .. } => ConfigError::Invalid {
                path: file,
                key,
                message,
            },
            other => other,
        }
    }
}
