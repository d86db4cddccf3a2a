//! Response envelopes (`sync`, `async` + `Location`, `error` with a matching HTTP status) and
//! request body parsing with clear 400 errors.

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use incus_core::api::ResponseRaw;
use incus_core::error::Error;
use incus_core::host::Operation;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An engine error rendered as an Incus error envelope.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.0.http_status();
        let body = ResponseRaw::error(code, self.0.message());
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(status, &body)
    }
}

/// Turns the plain-text errors of the HTTP layer (a body over its limit: 413, a malformed
/// request: 400, an unknown method: 405) into Incus error envelopes, so every client sees
/// its usual error shape.
pub(crate) async fn envelope_errors(resp: Response) -> Response {
    let status = resp.status();
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|t| t.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return resp;
    }
    let body = axum::body::to_bytes(resp.into_body(), 64 << 10)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("Error").to_string()
    } else {
        text
    };
    json_response(status, &ResponseRaw::error(status.as_u16(), &message))
}

/// What a handler returns.
pub type ApiResult = Result<Response, ApiError>;

fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let text = serde_json::to_vec(body).unwrap_or_default();
    let mut r = (status, text).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A `sync` response with `metadata`.
pub fn sync<T: Serialize>(metadata: &T) -> ApiResult {
    let v = serde_json::to_value(metadata).map_err(|e| Error::internal(e.to_string()))?;
    Ok(json_response(StatusCode::OK, &ResponseRaw::sync(v)))
}

/// A raw (non-envelope) body: file contents, logs, templates.
pub fn raw(body: impl Into<axum::body::Body>) -> Response {
    let mut r = Response::new(body.into());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r
}

/// An empty `sync` response.
pub fn sync_empty() -> ApiResult {
    Ok(json_response(
        StatusCode::OK,
        &ResponseRaw::sync(serde_json::json!({})),
    ))
}

/// A `202` `async` response for an operation, with its `Location`.
pub fn operation(op: &Operation) -> ApiResult {
    let o = op.get();
    let url = format!("/1.0/operations/{}", o.id);
    let v = serde_json::to_value(&o).map_err(|e| Error::internal(e.to_string()))?;
    let mut r = json_response(StatusCode::ACCEPTED, &ResponseRaw::async_op(url.clone(), v));
    if let Ok(h) = HeaderValue::from_str(&url) {
        r.headers_mut().insert(header::LOCATION, h);
    }
    Ok(r)
}

/// Parses a JSON body; malformed JSON is a 400 with the parser's message.
pub fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError(Error::invalid(format!("Invalid JSON body: {e}"))))
}

/// The ETag of an object's writable part: SHA-256 over its JSON, as a hex string.
pub fn etag<T: Serialize>(writable: &T) -> String {
    use std::fmt::Write;
    let bytes = serde_json::to_vec(writable).unwrap_or_default();
    let digest = sha256(&bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

/// A `sync` response with an `ETag` header.
pub fn sync_etag<T: Serialize>(metadata: &T, tag: &str) -> ApiResult {
    let mut r = sync(metadata)?;
    if let Ok(h) = HeaderValue::from_str(&format!("\"{tag}\"")) {
        r.headers_mut().insert(header::ETAG, h);
    }
    Ok(r)
}

/// Refuses with 412 when the request carries an `If-Match` that is not `current`.
pub fn check_if_match(headers: &axum::http::HeaderMap, current: &str) -> Result<(), ApiError> {
    let Some(given) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let given = given.trim().trim_matches('"');
    if given.is_empty() || given == "*" || given == current {
        Ok(())
    } else {
        Err(ApiError(Error::new(
            incus_core::ErrorKind::PreconditionFailed,
            "ETag doesn't match",
        )))
    }
}
