//! `ApiError`: every way a request can fail, mapped to one status and a JSON `{"error": ...}`.
//! The only place where errors become HTTP.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;

use crate::abi::GuestError;
use crate::class::ClassError;
use crate::ids::IdError;
use crate::object::ObjectError;

pub type Body = Full<Bytes>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// A request the admin API never answers, token or not (another site's, another host's).
    #[error("{0}")]
    Forbidden(String),
    /// A write whose body comes as a type the route does not take.
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    HeadersTooLarge(String),
    /// A WebSocket handshake of a version other than 13 (RFC 6455 4.2.2).
    #[error("{0}")]
    UpgradeRequired(String),
    #[error("{0}")]
    Unavailable(String),
    /// The disk has no room for what the request needs (an import's spool).
    #[error("{0}")]
    InsufficientStorage(String),
    /// The request conflicts with the state of what it names (an import into a non-empty
    /// object).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
    /// Cluster mode: the object's shard is not (or no longer) on this node.
    #[error("{0}")]
    Misdirected(String),
    /// Cluster mode: a failure on the node that runs the object, with its status.
    #[error("{message}")]
    Forwarded { status: StatusCode, message: String },
    /// A failure whose details (a guest's trap with its wasm backtrace, an internal fault) are
    /// for the operator: the client gets `public` and an error id, the log gets both.
    #[error("{public}")]
    Failed { public: String, detail: String },
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UpgradeRequired(_) => StatusCode::UPGRADE_REQUIRED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Internal(_) | Self::Failed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Misdirected(_) => StatusCode::MISDIRECTED_REQUEST,
            Self::Forwarded { status, .. } => *status,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        if let Self::Failed { public, detail } = self {
            let id = crate::ids::random_hex(6);
            tracing::warn!(%status, error_id = %id, error = %detail, "request failed");
            return json(
                status,
                &serde_json::json!({
                    "error": format!("{public} (error id {id}; the runtime's log has the details)"),
                    "error_id": id,
                }),
            );
        }
        if status.is_server_error() {
            tracing::warn!(%status, error = %self, "request failed");
        }
        let too_large = matches!(
            self,
            Self::PayloadTooLarge(_)
                | Self::RequestTimeout(_)
                | Self::Forbidden(_)
                | Self::UnsupportedMediaType(_)
        );
        let retry = matches!(self, Self::Unavailable(_));
        let upgrade = matches!(self, Self::UpgradeRequired(_));
        let mut response = json(status, &serde_json::json!({ "error": self.to_string() }));
        if too_large {
            // The rest of the body was never read, so the connection cannot carry another
            // request: say so, or a client may reuse it while it closes (and see its next request
            // fail instead of being answered).
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        if upgrade {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                header::HeaderValue::from_static("13"),
            );
        }
        if retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

impl From<IdError> for ApiError {
    fn from(error: IdError) -> Self {
        Self::BadRequest(error.to_string())
    }
}

impl From<ObjectError> for ApiError {
    fn from(error: ObjectError) -> Self {
        let failed = |public: &str, error: &ObjectError| Self::Failed {
            public: public.to_string(),
            detail: error.to_string(),
        };
        match &error {
            ObjectError::UnknownClass(_) => Self::NotFound(error.to_string()),
            ObjectError::BadEdit(_) => Self::BadRequest(error.to_string()),
            ObjectError::NotEmpty(_) | ObjectError::ImportIncomplete => {
                Self::Conflict(error.to_string())
            }
            ObjectError::Overloaded(_)
            | ObjectError::TooManyLive(_)
            | ObjectError::Guest(GuestError::MemoryBudget(_) | GuestError::Halted)
            | ObjectError::ShuttingDown
            | ObjectError::Unavailable(_) => Self::Unavailable(error.to_string()),
            ObjectError::NotHere => Self::Misdirected(error.to_string()),
            ObjectError::Remote { status, message } => Self::Forwarded {
                status: StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                message: message.clone(),
            },
            // The limits say what happened and nothing about the code: shown as they are.
            ObjectError::Guest(GuestError::CpuLimit(_) | GuestError::MemoryLimit(_))
            | ObjectError::ResponseTooLarge { .. }
            | ObjectError::BadUpgrade => Self::Internal(error.to_string()),
            ObjectError::Guest(GuestError::Instantiate(_)) => {
                failed("the object could not be instantiated", &error)
            }
            ObjectError::Guest(_) => failed("the object failed (guest trap)", &error),
            ObjectError::Commit(_) => failed("the event's writes could not be committed", &error),
            ObjectError::Internal(_) => failed("internal error", &error),
        }
    }
}

impl From<ClassError> for ApiError {
    fn from(error: ClassError) -> Self {
        match error {
            ClassError::Invalid(e) => Self::BadRequest(e.to_string()),
            error @ (ClassError::Migration { .. }
            | ClassError::Outbound(_)
            | ClassError::Vars(_)
            | ClassError::Assets(_)) => Self::BadRequest(error.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}
