//! MLflow's `error_code` values and the parsing of its error bodies.
//!
//! A failed MLflow REST call answers with a JSON body
//! `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "..."}` and an HTTP
//! status derived from the code (see "Error codes" in
//! <https://mlflow.org/docs/latest/api_reference/rest-api.html> and
//! `mlflow/protos/databricks.proto`). [`crate::Error::Mlflow`] carries both.

use std::fmt;

use serde::Deserialize;

use crate::Error;

/// MLflow's `error_code`: the common codes by name, anything else kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `RESOURCE_ALREADY_EXISTS` (HTTP 400): e.g. an experiment name taken.
    ResourceAlreadyExists,
    /// `RESOURCE_DOES_NOT_EXIST` (HTTP 404): no such experiment, run or metric.
    ResourceDoesNotExist,
    /// `INVALID_PARAMETER_VALUE` (HTTP 400): a field failed validation.
    InvalidParameterValue,
    /// `INVALID_STATE` (HTTP 400): e.g. logging to a deleted run.
    InvalidState,
    /// `BAD_REQUEST` (HTTP 400).
    BadRequest,
    /// `MALFORMED_REQUEST` (HTTP 400): unparsable JSON.
    MalformedRequest,
    /// `ENDPOINT_NOT_FOUND` (HTTP 404): the server does not have this endpoint.
    EndpointNotFound,
    /// `PERMISSION_DENIED` (HTTP 403).
    PermissionDenied,
    /// `UNAUTHENTICATED` (HTTP 401).
    Unauthenticated,
    /// `REQUEST_LIMIT_EXCEEDED` (HTTP 429).
    RequestLimitExceeded,
    /// `TEMPORARILY_UNAVAILABLE` (HTTP 503).
    TemporarilyUnavailable,
    /// `INTERNAL_ERROR` (HTTP 500).
    InternalError,
    /// The response carried no MLflow error body (e.g. a proxy's plain 503).
    Unspecified,
    /// Any other code, spelled as the server sent it.
    Other(String),
}

impl ErrorCode {
    /// Parses MLflow's spelling of a code.
    pub fn parse(code: &str) -> Self {
        match code {
            "RESOURCE_ALREADY_EXISTS" => Self::ResourceAlreadyExists,
            "RESOURCE_DOES_NOT_EXIST" => Self::ResourceDoesNotExist,
            "INVALID_PARAMETER_VALUE" => Self::InvalidParameterValue,
            "INVALID_STATE" => Self::InvalidState,
            "BAD_REQUEST" => Self::BadRequest,
            "MALFORMED_REQUEST" => Self::MalformedRequest,
            "ENDPOINT_NOT_FOUND" => Self::EndpointNotFound,
            "PERMISSION_DENIED" => Self::PermissionDenied,
            "UNAUTHENTICATED" => Self::Unauthenticated,
            "REQUEST_LIMIT_EXCEEDED" => Self::RequestLimitExceeded,
            "TEMPORARILY_UNAVAILABLE" => Self::TemporarilyUnavailable,
            "INTERNAL_ERROR" => Self::InternalError,
            "" => Self::Unspecified,
            other => Self::Other(other.to_owned()),
        }
    }

    /// MLflow's spelling of the code (empty for [`ErrorCode::Unspecified`]).
    pub fn as_str(&self) -> &str {
        match self {
            Self::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            Self::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            Self::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            Self::InvalidState => "INVALID_STATE",
            Self::BadRequest => "BAD_REQUEST",
            Self::MalformedRequest => "MALFORMED_REQUEST",
            Self::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::RequestLimitExceeded => "REQUEST_LIMIT_EXCEEDED",
            Self::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
            Self::InternalError => "INTERNAL_ERROR",
            Self::Unspecified => "",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unspecified => f.write_str("(no error_code)"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// MLflow's `error_code` of `err`, if it is an error answer from the server.
pub fn error_code(err: &Error) -> Option<&ErrorCode> {
    match err {
        Error::Mlflow { error_code, .. } => Some(error_code),
        _ => None,
    }
}

/// Whether `err` is MLflow's `RESOURCE_DOES_NOT_EXIST`.
pub fn is_not_found(err: &Error) -> bool {
    error_code(err) == Some(&ErrorCode::ResourceDoesNotExist)
}

/// Whether `err` is MLflow's `RESOURCE_ALREADY_EXISTS`.
pub fn is_already_exists(err: &Error) -> bool {
    error_code(err) == Some(&ErrorCode::ResourceAlreadyExists)
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    message: String,
}

/// Builds [`Error::Mlflow`] from a non-success answer.
pub(crate) fn from_response(endpoint: &str, status: u16, body: &[u8], attempts: u32) -> Error {
    let (error_code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) if !b.error_code.is_empty() => (ErrorCode::parse(&b.error_code), b.message),
        _ => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(500).collect();
            (ErrorCode::Unspecified, text)
        }
    };
    Error::Mlflow { endpoint: endpoint.to_owned(), status, error_code, message, attempts }
}
