//! HTTP/1.1, sans-IO: request heads and bodies in, response heads out.

pub(crate) mod body;
pub(crate) mod conditional;
pub(crate) mod date;
pub(crate) mod encoding;
pub(crate) mod error;
pub(crate) mod fields;
pub(crate) mod head;
pub(crate) mod multipart;
pub(crate) mod range;
pub(crate) mod request;
pub(crate) mod response;
