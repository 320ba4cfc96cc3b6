//! Unit tests of the TLS set-up and of the certificate fields read from DER.
