//! The one error type of the engine, with a small stable [`ErrorKind`] that maps to an HTTP
//! status. Messages name the object or path they concern and do not repeat their source.

use std::fmt;

/// The kind of an error: stable, small, and mapped one-to-one to an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The object does not exist (404).
    NotFound,
    /// An object of that name exists already (409).
    AlreadyExists,
    /// The request is malformed or a value is invalid (400).
    InvalidInput,
    /// The object is in use or in the wrong state for this action (409).
    Busy,
    /// The caller may not do this (403).
    Forbidden,
    /// An `If-Match` ETag did not match (412).
    PreconditionFailed,
    /// This engine or host cannot do this (501).
    Unsupported,
    /// The operation was cancelled (400 in the REST API, as Incus reports it).
    Cancelled,
    /// Something failed inside the engine or on the host (500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status this kind is reported with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::AlreadyExists | ErrorKind::Busy => 409,
            ErrorKind::InvalidInput | ErrorKind::Cancelled => 400,
            ErrorKind::Forbidden => 403,
            ErrorKind::PreconditionFailed => 412,
            ErrorKind::Unsupported => 501,
            ErrorKind::Internal => 500,
        }
    }
}

/// An engine error: a kind and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    /// 409, the object exists.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::AlreadyExists, message)
    }

    /// 400.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }

    /// 409, in use or wrong state.
    pub fn busy(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Busy, message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Forbidden, message)
    }

    /// The work was cancelled (400 when it reaches a caller directly).
    pub fn cancelled(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Cancelled, message)
    }

    /// 501.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unsupported, message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status of this error.
    pub fn http_status(&self) -> u16 {
        self.kind.http_status()
    }

    /// Prefixes the message with context (`"Failed unpacking image: " + message`).
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error {
            kind: self.kind,
            message: format!("{what}: {}", self.message),
        }
    }

    /// An internal error from an I/O error on `path`, keeping `NotFound` as not found.
    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            std::io::ErrorKind::PermissionDenied => ErrorKind::Forbidden,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, format!("{what}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::invalid(format!("Invalid JSON: {e}"))
    }
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_http_status() {
        assert_eq!(Error::not_found("x").http_status(), 404);
        assert_eq!(Error::already_exists("x").http_status(), 409);
        assert_eq!(Error::invalid("x").http_status(), 400);
        assert_eq!(Error::busy("x").http_status(), 409);
        assert_eq!(Error::unsupported("x").http_status(), 501);
        assert_eq!(Error::internal("x").http_status(), 500);
        assert_eq!(
            Error::new(ErrorKind::PreconditionFailed, "x").http_status(),
            412
        );
    }

    #[test]
    fn io_errors_keep_not_found() {
        let e = Error::io("/x", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.message().starts_with("/x: "));
    }
}
