//! Errors that stop the server from starting.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;

/// Why the server could not start. Each prints as one line for the operator.
pub enum StartError {
    /// The configuration is invalid.
    Config(ConfigError),
    /// A listen address could not be bound.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// A documents folder does not exist or cannot be read.
    Documents {
        /// The folder asked for.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The TLS configuration (`web.tls`) could not be used.
    #[cfg(feature = "tls")]
    Tls(crate::TlsError),
    /// The event loop could not be created.
    Io(io::Error),
}

/// The same one line as `Display`: a program whose `main` returns this
/// error prints that line, not the variant's fields.
impl fmt::Debug for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::Bind { addr, source } => {
                write!(f, "cannot listen on {addr}: {}", plain(source))
            }
            StartError::Documents { path, source } => {
                write!(f, "documents folder {}: {}", path.display(), plain(source))
            }
            #[cfg(feature = "tls")]
            StartError::Tls(e) => write!(f, "{e}"),
            StartError::Io(e) => write!(f, "cannot start the event loop: {}", plain(e)),
        }
    }
}

/// The OS message without Rust's " (os error N)" suffix.
fn plain(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_lowercase(),
        None => text,
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Config(e) => Some(e),
            StartError::Bind { source, .. } | StartError::Documents { source, .. } => Some(source),
            #[cfg(feature = "tls")]
            StartError::Tls(e) => Some(e),
            StartError::Io(e) => Some(e),
        }
    }
}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> Self {
        StartError::Config(e)
    }
}

#[cfg(feature = "tls")]
impl From<crate::TlsError> for StartError {
    fn from(e: crate::TlsError) -> Self {
        StartError::Tls(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_the_one_line_display() {
        let e = StartError::Bind {
            addr: "127.0.0.1:80".parse().unwrap(),
            source: io::ErrorKind::AddrInUse.into(),
        };
        assert_eq!(format!("{e:?}"), e.to_string());
        assert!(
            e.to_string().starts_with("cannot listen on 127.0.0.1:80: "),
            "{e}"
        );
    }
}
