//! `Content-Encoding: gzip` request bodies, as Go clients may send them: decoded before the
//! routes see them, with the same 2 MiB limit on the decoded size (a small compressed body
//! cannot expand into a large one). Other encodings are refused.

use crate::response::ApiError;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use incus_core::error::Error;
use std::io::Read;

/// The largest decoded body accepted.
const LIMIT: usize = 2 << 20;

/// Decodes a gzip request body in place.
pub(crate) async fn decode(req: Request, next: Next) -> Response {
    let encoding = req
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => next.run(req).await,
        Some("gzip") | Some("x-gzip") => match gunzip(req).await {
            Ok(req) => next.run(req).await,
            Err(e) => e.into_response(),
        },
        Some(other) => ApiError(Error::invalid(format!(
            "Unsupported Content-Encoding {other:?} (gzip and identity are accepted)"
        )))
        .into_response(),
    }
}

/// Decodes a gzip body of at most [`LIMIT`] bytes once decoded.
pub(crate) fn gunzip_bytes(raw: &[u8]) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .take(LIMIT as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError(Error::invalid(format!("Invalid gzip request body: {e}"))))?;
    if out.len() > LIMIT {
        return Err(ApiError(Error::invalid(
            "Request body too large once decompressed",
        )));
    }
    Ok(out)
}

async fn gunzip(req: Request) -> Result<Request, ApiError> {
    let (mut parts, body) = req.into_parts();
    let raw = axum::body::to_bytes(body, LIMIT)
        .await
        .map_err(|_| ApiError(Error::invalid("Request body too large")))?;
    let out = gunzip_bytes(&raw)?;
    parts.headers.remove(CONTENT_ENCODING);
    parts.headers.insert(CONTENT_LENGTH, out.len().into());
    Ok(Request::from_parts(parts, Body::from(out)))
}
