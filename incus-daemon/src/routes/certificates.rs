//! `/1.0/certificates`: the trust store, and trust tokens.

use super::{Q, St, names_or_objects};
use crate::auth::Access;
use crate::response::{ApiError, ApiResult, check_if_match, etag, parse, sync_empty, sync_etag};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::HeaderMap;
use incus_core::api;
use incus_core::error::Error;

pub(crate) async fn list(st: St, q: Q) -> ApiResult {
    let list = st.host.list_certificates();
    names_or_objects(&q, list, |c| format!("/1.0/certificates/{}", c.fingerprint))
}

/// `POST /1.0/certificates`: an administrator adds a certificate or asks for a token; an
/// untrusted client adds its own TLS certificate with a token.
pub(crate) async fn create(st: St, Extension(access): Extension<Access>, body: Bytes) -> ApiResult {
    let req: api::CertificatesPost = parse(&body)?;
    if req.token && !req.put.certificate.is_empty() {
        return Err(ApiError(Error::invalid(
            "Can't use certificate if token is requested",
        )));
    }
    match &access {
        Access::Untrusted(peer) => {
            if req.token || req.trust_token.is_empty() {
                return Err(ApiError(Error::forbidden("not authorized")));
            }
            let Some(der) = peer else {
                return Err(ApiError(Error::invalid("No client certificate provided")));
            };
            // What the token was issued for; the caller cannot override any of it.
            let put = st.host.redeem_trust_token(&req.trust_token)?;
            st.host.add_certificate(put, Some(der))?;
            sync_empty()
        }
        Access::Trusted(c) if c.put.restricted => Err(ApiError(Error::forbidden("not authorized"))),
        _ if req.token => {
            let Some(addr) = st.https.address().await else {
                return Err(ApiError(Error::invalid(
                    "Can't issue token when server isn't listening on network",
                )));
            };
            let cert = st.https.cert(st.host.state_dir())?;
            let op = st.host.issue_trust_token(
                req.put,
                &cert.fingerprint,
                crate::https::client_addresses(addr),
            )?;
            crate::response::operation(&op)
        }
        _ => {
            if req.put.certificate.trim().is_empty() {
                return Err(ApiError(Error::invalid(match access {
                    Access::Admin => "Can't use TLS data on non-TLS link",
                    _ => "Client is already trusted",
                })));
            }
            st.host.add_certificate(req.put, None)?;
            sync_empty()
        }
    }
}

pub(crate) async fn get(st: St, Path(fp): Path<String>) -> ApiResult {
    let c = st.host.get_certificate(&fp)?;
    sync_etag(&c, &etag(&c.put))
}

pub(crate) async fn put(st: St, Path(fp): Path<String>, h: HeaderMap, body: Bytes) -> ApiResult {
    write(&st, &fp, &h, &body, false)
}

pub(crate) async fn patch(st: St, Path(fp): Path<String>, h: HeaderMap, body: Bytes) -> ApiResult {
    write(&st, &fp, &h, &body, true)
}

/// PUT replaces the writable fields; PATCH replaces only the fields its body names.
fn write(st: &St, fp: &str, h: &HeaderMap, body: &Bytes, patch: bool) -> ApiResult {
    let c = st.host.get_certificate(fp)?;
    check_if_match(h, &etag(&c.put))?;
    let put: api::CertificatePut = if patch {
        let mut current =
            serde_json::to_value(&c.put).map_err(|e| Error::internal(e.to_string()))?;
        let serde_json::Value::Object(fields) = parse::<serde_json::Value>(body)? else {
            return Err(ApiError(Error::invalid("The body must be a JSON object")));
        };
        if let Some(cur) = current.as_object_mut() {
            cur.extend(fields);
        }
        serde_json::from_value(current)
            .map_err(|e| ApiError(Error::invalid(format!("Invalid JSON body: {e}"))))?
    } else {
        parse(body)?
    };
    st.host.update_certificate(&c.fingerprint, put)?;
    sync_empty()
}

pub(crate) async fn delete(st: St, Path(fp): Path<String>) -> ApiResult {
    st.host.delete_certificate(&fp)?;
    sync_empty()
}
