//! Why a request was refused, and the status each reason earns.

use std::fmt;

/// A request the server refuses: before any handler sees it, or because the
/// file or WebSocket it asks for cannot be served.
///
/// Every variant maps to one HTTP status. After a parse error (`Malformed` to
/// `Busy`) the stream can no longer be trusted, so the connection closes once
/// the answer is written; a refused file (`NotFound`, `Forbidden`,
/// `PreconditionFailed`, `Internal`, `Unavailable`) leaves it open, and a
/// refused WebSocket upgrade closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// The request line or a header is not valid HTTP/1.x.
    Malformed,
    /// The request target is not origin-form (or `*` for OPTIONS, or absolute-form).
    BadTarget,
    /// An HTTP/1.1 request without exactly one `Host` header.
    BadHost,
    /// `Content-Length` is not a number, or repeated with different values.
    BadContentLength,
    /// Both `Content-Length` and `Transfer-Encoding` were sent (request smuggling).
    AmbiguousLength,
    /// A chunked body whose framing is broken.
    BadChunk,
    /// A transfer coding other than `chunked`.
    UnsupportedTransferEncoding,
    /// An `Expect` other than `100-continue`.
    UnsupportedExpectation,
    /// A method this server does not implement at all.
    UnknownMethod,
    /// A protocol version other than HTTP/1.0 or HTTP/1.1.
    UnsupportedVersion,
    /// The request target is longer than `limits.uri`.
    UriTooLong,
    /// The head is larger than `limits.header` or has more than `limits.headers` lines.
    HeadTooLarge,
    /// The body is larger than `limits.body`.
    BodyTooLarge,
    /// The head or body did not arrive within `timeouts.parse` / `timeouts.request`.
    Timeout,
    /// `limits.connections` are open already.
    Busy,
    /// Nothing servable is at the path, or what is there must not be revealed.
    NotFound,
    /// The server may not read the file, or the `Origin` may not open a WebSocket.
    Forbidden,
    /// The method is not one the resource allows (a WebSocket upgrade must be a GET).
    MethodNotAllowed,
    /// `If-Match` or `If-Unmodified-Since` does not hold for the file.
    PreconditionFailed,
    /// A `PUT` or `DELETE` names a directory, or something other than a regular file.
    Conflict,
    /// The file system is full: a `PUT`'s body did not fit.
    InsufficientStorage,
    /// A WebSocket resource asked for without `Upgrade: websocket`, or with an
    /// unsupported `Sec-WebSocket-Version`.
    UpgradeRequired,
    /// A WebSocket upgrade that breaks RFC 6455 §4.2.1 (HTTP/1.0, a body, a bad
    /// key or version header, no acceptable subprotocol).
    BadUpgrade,
    /// The server failed to produce the response (say, a file shrank while read).
    Internal,
    /// The resource cannot be opened now, say for want of file descriptors.
    Unavailable,
    /// A proxy route's downstream refused, is down, or answered what is not
    /// HTTP or not a WebSocket upgrade.
    BadGateway,
    /// A proxy route's downstream did not connect or answer within `timeouts.connect`.
    GatewayTimeout,
}

impl HttpError {
    /// The status code sent for this error.
    pub fn status(self) -> u16 {
        match self {
            HttpError::Malformed
            | HttpError::BadTarget
            | HttpError::BadHost
            | HttpError::BadContentLength
            | HttpError::AmbiguousLength
            | HttpError::BadChunk
            | HttpError::BadUpgrade => 400,
            HttpError::UnsupportedTransferEncoding | HttpError::UnknownMethod => 501,
            HttpError::UnsupportedExpectation => 417,
            HttpError::UnsupportedVersion => 505,
            HttpError::UriTooLong => 414,
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::Timeout => 408,
            HttpError::Busy | HttpError::Unavailable => 503,
            HttpError::NotFound => 404,
            HttpError::Forbidden => 403,
            HttpError::MethodNotAllowed => 405,
            HttpError::PreconditionFailed => 412,
            HttpError::Conflict => 409,
            HttpError::InsufficientStorage => 507,
            HttpError::UpgradeRequired => 426,
            HttpError::Internal => 500,
            HttpError::BadGateway => 502,
            HttpError::GatewayTimeout => 504,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpError::Malformed => "malformed request line or header",
            HttpError::BadTarget => "request target is not a valid path",
            HttpError::BadHost => "HTTP/1.1 request needs exactly one Host header",
            HttpError::BadContentLength => "invalid Content-Length",
            HttpError::AmbiguousLength => "both Content-Length and Transfer-Encoding",
            HttpError::BadChunk => "malformed chunked body",
            HttpError::UnsupportedTransferEncoding => "unsupported Transfer-Encoding",
            HttpError::UnsupportedExpectation => "unsupported Expect",
            HttpError::UnknownMethod => "method not implemented",
            HttpError::UnsupportedVersion => "HTTP version not supported",
            HttpError::UriTooLong => "request target too long",
            HttpError::HeadTooLarge => "request head too large",
            HttpError::BodyTooLarge => "request body too large",
            HttpError::Timeout => "request not received in time",
            HttpError::Busy => "too many connections",
            HttpError::NotFound => "nothing to serve at this path",
            HttpError::Forbidden => "access forbidden",
            HttpError::MethodNotAllowed => "method not allowed here",
            HttpError::PreconditionFailed => "precondition failed",
            HttpError::Conflict => "a directory or special file is at this path",
            HttpError::InsufficientStorage => "no space left to store the body",
            HttpError::UpgradeRequired => "a WebSocket upgrade is required",
            HttpError::BadUpgrade => "invalid WebSocket upgrade request",
            HttpError::Internal => "internal server error",
            HttpError::Unavailable => "temporarily unavailable",
            HttpError::BadGateway => "the downstream service failed",
            HttpError::GatewayTimeout => "the downstream service did not answer in time",
        })
    }
}

impl std::error::Error for HttpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_upgrade_refusals_have_their_statuses() {
        let cases = [
            (HttpError::NotFound, 404),
            (HttpError::Forbidden, 403),
            (HttpError::MethodNotAllowed, 405),
            (HttpError::PreconditionFailed, 412),
            (HttpError::Conflict, 409),
            (HttpError::InsufficientStorage, 507),
            (HttpError::UpgradeRequired, 426),
            (HttpError::BadUpgrade, 400),
            (HttpError::Internal, 500),
            (HttpError::Unavailable, 503),
            (HttpError::BadGateway, 502),
            (HttpError::GatewayTimeout, 504),
        ];
        for (err, status) in cases {
            assert_eq!(err.status(), status, "{err:?}");
            let msg = err.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "{err:?}: {msg:?}");
        }
    }
}
