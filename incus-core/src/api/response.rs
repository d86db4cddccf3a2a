//! Response envelopes (`sync`, `async`, `error`) and status codes.

use serde::{Deserialize, Serialize};

/// Status codes of operations and instances (`shared/api/status_code.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "i32", try_from = "i32")]
pub enum StatusCode {
    /// 100
    OperationCreated,
    /// 101
    Started,
    /// 102
    Stopped,
    /// 103
    Running,
    /// 104
    Cancelling,
    /// 105
    Pending,
    /// 106
    Starting,
    /// 107
    Stopping,
    /// 108
    Aborting,
    /// 109
    Freezing,
    /// 110
    Frozen,
    /// 111
    Thawed,
    /// 112
    Error,
    /// 113
    Ready,
    /// 200
    Success,
    /// 400
    Failure,
    /// 401
    Cancelled,
}

const STATUS_TABLE: [(StatusCode, i32, &str); 17] = [
    (StatusCode::OperationCreated, 100, "Operation created"),
    (StatusCode::Started, 101, "Started"),
    (StatusCode::Stopped, 102, "Stopped"),
    (StatusCode::Running, 103, "Running"),
    (StatusCode::Cancelling, 104, "Cancelling"),
    (StatusCode::Pending, 105, "Pending"),
    (StatusCode::Starting, 106, "Starting"),
    (StatusCode::Stopping, 107, "Stopping"),
    (StatusCode::Aborting, 108, "Aborting"),
    (StatusCode::Freezing, 109, "Freezing"),
    (StatusCode::Frozen, 110, "Frozen"),
    (StatusCode::Thawed, 111, "Thawed"),
    (StatusCode::Error, 112, "Error"),
    (StatusCode::Ready, 113, "Ready"),
    (StatusCode::Success, 200, "Success"),
    (StatusCode::Failure, 400, "Failure"),
    (StatusCode::Cancelled, 401, "Cancelled"),
];

impl StatusCode {
    /// The numeric code sent on the wire.
    pub fn code(self) -> i32 {
        STATUS_TABLE
            .iter()
            .find(|(s, _, _)| *s == self)
            .map(|(_, c, _)| *c)
            .unwrap_or(0)
    }

    /// The human string Incus sends next to the code (`"Running"`, `"Operation created"`).
    pub fn as_str(self) -> &'static str {
        STATUS_TABLE
            .iter()
            .find(|(s, _, _)| *s == self)
            .map(|(_, _, n)| *n)
            .unwrap_or("")
    }

    /// Whether an operation in this state has finished.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StatusCode::Success | StatusCode::Failure | StatusCode::Cancelled
        )
    }
}

impl From<StatusCode> for i32 {
    fn from(s: StatusCode) -> i32 {
        s.code()
    }
}

impl TryFrom<i32> for StatusCode {
    type Error = String;
    fn try_from(v: i32) -> Result<Self, String> {
        STATUS_TABLE
            .iter()
            .find(|(_, c, _)| *c == v)
            .map(|(s, _, _)| *s)
            .ok_or_else(|| format!("unknown status code {v}"))
    }
}

impl std::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The raw response envelope every API answer is wrapped in (`api.ResponseRaw`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResponseRaw {
    /// `sync`, `async` or `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Status string (`Success`, `Operation created`, empty on error).
    pub status: String,
    /// Status code (200, 100, 0 on error).
    pub status_code: i32,
    /// Operation URL for async responses.
    pub operation: String,
    /// HTTP error code for error responses.
    pub error_code: i32,
    /// Error message for error responses.
    pub error: String,
    /// The payload.
    pub metadata: serde_json::Value,
}

impl ResponseRaw {
    /// A `sync` success envelope around `metadata`.
    pub fn sync(metadata: serde_json::Value) -> Self {
        ResponseRaw {
            kind: "sync".into(),
            status: StatusCode::Success.as_str().into(),
            status_code: StatusCode::Success.code(),
            metadata,
            ..Default::default()
        }
    }

    /// An `async` envelope for the operation at `operation_url`.
    pub fn async_op(operation_url: String, metadata: serde_json::Value) -> Self {
        ResponseRaw {
            kind: "async".into(),
            status: StatusCode::OperationCreated.as_str().into(),
            status_code: StatusCode::OperationCreated.code(),
            operation: operation_url,
            metadata,
            ..Default::default()
        }
    }

    /// An `error` envelope with the HTTP status `code`.
    pub fn error(code: u16, message: impl Into<String>) -> Self {
        ResponseRaw {
            kind: "error".into(),
            error_code: i32::from(code),
            error: message.into(),
            metadata: serde_json::Value::Null,
            ..Default::default()
        }
    }
}
