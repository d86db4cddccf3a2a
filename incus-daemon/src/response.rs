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
