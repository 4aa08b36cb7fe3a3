//! The crate's one error type: MLflow's error answers (with their `error_code`), transport failures, bad input.
//!
//! A failed MLflow REST call answers with a non-2xx status and a JSON body
//! `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "..."}`; the status is
//! derived from the code (400 for `INVALID_PARAMETER_VALUE` and
//! `RESOURCE_ALREADY_EXISTS`, 404 for `RESOURCE_DOES_NOT_EXIST`, 429 for
//! `REQUEST_LIMIT_EXCEEDED`, 5xx for server trouble). [`Error::Mlflow`] keeps
//! both, so callers can branch on the code instead of parsing messages.

use std::path::PathBuf;

/// Everything that can go wrong talking to a tracking server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a non-2xx status.
    #[error("{endpoint}: HTTP {status} {error_code}: {message} (after {attempts} attempt(s))")]
    Mlflow {
        /// The endpoint called, e.g. `experiments/create`.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// MLflow's `error_code`, e.g. `RESOURCE_ALREADY_EXISTS`; empty when the body had none.
        error_code: String,
        /// MLflow's `message`, or the start of the body when it was not MLflow's JSON.
        message: String,
        /// How many attempts were made (1 when the error was not retried).
        attempts: u32,
    },
    /// No answer: connection refused or broken, timeout.
    #[error("{endpoint}: no answer from the tracking server after {attempts} attempt(s): {source}")]
    Transport {
        /// The endpoint called.
        endpoint: String,
        /// How many attempts were made.
        attempts: u32,
        /// What reqwest reported.
        #[source]
        source: reqwest::Error,
    },
    /// A 2xx answer whose body is not the JSON the REST API documents.
    #[error("{endpoint}: unexpected answer: {message}")]
    Response {
        /// The endpoint called.
        endpoint: String,
        /// What did not parse, and the start of the body.
        message: String,
    },
    /// Input the client refuses before sending anything (a bad URL, an artifact path with `..`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A local file or folder could not be read (artifact upload).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// `std::result::Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Task c3w1.client (part of 15 points): the error for a non-2xx answer.
    ///
    /// `body` is the raw answer. When it is MLflow's JSON error object with a
    /// non-empty `error_code`, keep its `error_code` and `message`. Otherwise
    /// (a proxy's plain-text 503, an HTML page, an empty body) the
    /// `error_code` is empty and the `message` is the body as (lossy) UTF-8,
    /// cut to at most 500 characters.
    pub fn from_response(endpoint: &str, status: u16, body: &[u8], attempts: u32) -> Error {
        todo!("c3w1.client")
    }

    /// MLflow's `error_code` of an error answer (`None` for other errors). Given.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Error::Mlflow { error_code, .. } => Some(error_code),
            _ => None,
        }
    }

    /// The HTTP status of an error answer. Given.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Mlflow { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How many attempts were made, for error answers and transport failures. Given.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            Error::Mlflow { attempts, .. } | Error::Transport { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }

    /// Whether this is MLflow's `RESOURCE_DOES_NOT_EXIST`. Given.
    pub fn is_not_found(&self) -> bool {
        self.error_code() == Some("RESOURCE_DOES_NOT_EXIST")
    }

    /// Whether this is MLflow's `RESOURCE_ALREADY_EXISTS`. Given.
    pub fn is_already_exists(&self) -> bool {
        self.error_code() == Some("RESOURCE_ALREADY_EXISTS")
    }
}
