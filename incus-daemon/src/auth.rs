//! Who may do what, decided once per request before any handler runs.
//!
//! - Unix socket (no [`Peer`]): the socket's permissions (0660, root and the admin group) are
//!   the check; the caller is an administrator.
//! - HTTPS with a client certificate in the trust store (type `client`): trusted; a
//!   `restricted` one only within its projects (see [`restricted_allows`]).
//! - Anyone else over HTTPS is untrusted and reaches only what Incus opens to strangers:
//!   `GET /` and `GET /1.0` (the untrusted view), public images and their aliases (read and
//!   export), `POST /1.0/certificates` (which then wants a trust token), operation
//!   websockets and waits (which want a secret).
//!
//! Cross-site browser requests are refused on every listener (CSRF): a state-changing
//! request whose `Sec-Fetch-Site` says `cross-site` or `same-site`, or whose `Origin` names
//! another host than the one addressed.

use crate::https::Peer;
use crate::response::ApiError;
use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use incus_core::api;
use incus_core::error::Error;
use std::sync::Arc;

/// What the caller of a request may do (a request extension handlers can read).
#[derive(Clone, Debug)]
pub enum Access {
    /// Local administrator (unix socket, or the in-process API).
    Admin,
    /// A trusted TLS client.
    Trusted(Arc<api::Certificate>),
    /// An untrusted TLS client, with its certificate if it showed one.
    Untrusted(Option<Arc<Vec<u8>>>),
}

impl Access {
    /// Whether the caller is trusted (administrator or trusted certificate).
    pub fn trusted(&self) -> bool {
        !matches!(self, Access::Untrusted(_))
    }

    /// The projects the caller is confined to (`None`: all).
    pub fn projects(&self) -> Option<&[String]> {
        match self {
            Access::Trusted(c) if c.put.restricted => Some(&c.put.projects),
            Access::Untrusted(_) => Some(&[]),
            _ => None,
        }
    }

    /// `auth_user_name` / `auth_user_method` of `GET /1.0`.
    pub fn user(&self) -> (String, &'static str) {
        match self {
            Access::Admin => ("root".into(), "unix"),
            Access::Trusted(c) => (c.fingerprint.clone(), "tls"),
            Access::Untrusted(_) => (String::new(), "tls"),
        }
    }
}

/// The middleware: works out the [`Access`], refuses what it does not allow, and hands it to
/// the handlers.
pub(crate) async fn authorize(
    axum::extract::State(daemon): axum::extract::State<Arc<crate::Daemon>>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Err(e) = cross_site(&req) {
        return e.into_response();
    }
    let access = match req.extensions().get::<Peer>() {
        None => Access::Admin,
        Some(peer) => match peer
            .fingerprint
            .as_deref()
            .and_then(|fp| daemon.host.trusted_certificate(fp))
        {
            Some(cert) if cert.put.kind == "client" => Access::Trusted(cert),
            _ => Access::Untrusted(peer.certificate.clone()),
        },
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let allowed = match &access {
        Access::Admin => true,
        Access::Untrusted(_) => untrusted_allows(&method, &path),
        Access::Trusted(cert) => {
            !path.starts_with("/internal")
                && (!cert.put.restricted
                    || restricted_allows(&method, &path, req.uri().query(), &cert.put.projects))
        }
    };
    if !allowed {
        return ApiError(Error::forbidden("not authorized")).into_response();
    }
    req.extensions_mut().insert(access);
    next.run(req).await
}

fn untrusted_allows(method: &Method, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    match *method {
        Method::GET => {
            path.is_empty()
                || path == "/1.0"
                || (path.starts_with("/1.0/operations/")
                    && (path.ends_with("/websocket") || path.ends_with("/wait")))
                || public_image_path(path)
        }
        Method::POST => path == "/1.0/certificates",
        _ => false,
    }
}

/// The image endpoints an untrusted caller may read (the handlers show it public images
/// only): the list, one image, its export, the aliases.
fn public_image_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/1.0/images") else {
        return false;
    };
    if !rest.is_empty() && !rest.starts_with('/') {
        return false;
    }
    let parts: Vec<&str> = rest.split('/').skip(1).collect();
    match parts.as_slice() {
        // Alias names may hold slashes (`debian/12`).
        [] | ["aliases", ..] => true,
        [fp] | [fp, "export"] => !fp.is_empty() && *fp != "aliases",
        _ => false,
    }
}

fn query_value<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// A restricted certificate may work inside its projects: every project-scoped endpoint
/// with `?project=` one of them (default `default`), reading the server, its events and
/// operations; never server config, the trust store, other projects, pools or networks
/// themselves (reading them is allowed), `all-projects`, or the host's resources.
fn restricted_allows(
    method: &Method,
    path: &str,
    query: Option<&str>,
    projects: &[String],
) -> bool {
    let path = path.trim_end_matches('/');
    if query_value(query, "all-projects").is_some_and(|v| v == "true" || v == "1") {
        return false;
    }
    let project = query_value(query, "project")
        .filter(|p| !p.is_empty())
        .unwrap_or("default");
    let read = *method == Method::GET;
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    match segments.as_slice() {
        [] | ["1.0"] => read,
        ["1.0", "certificates", ..] | ["1.0", "resources"] | ["1.0", "warnings", ..] => false,
        ["1.0", "projects"] => read,
        ["1.0", "projects", name, ..] => read && projects.iter().any(|p| p == name),
        ["1.0", "storage-pools"] | ["1.0", "storage-pools", _] => read,
        ["1.0", "storage-pools", _, "resources"] => false,
        ["1.0", "networks", ..] => read,
        _ => projects.iter().any(|p| p == project),
    }
}

/// Refuses a browser's cross-site state-changing request (what Go's
/// `CrossOriginProtection`, which Incus uses, refuses).
fn cross_site(req: &Request) -> Result<(), ApiError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let h = req.headers();
    let refuse = || Err(ApiError(Error::forbidden("Cross-origin request refused")));
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return match site {
            "same-origin" | "none" => Ok(()),
            _ => refuse(),
        };
    }
    let Some(origin) = h.get("origin").and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let host = h.get("host").and_then(|v| v.to_str().ok()).unwrap_or("");
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        refuse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_reaches_only_the_public_endpoints() {
        assert!(untrusted_allows(&Method::GET, "/1.0"));
        assert!(untrusted_allows(&Method::GET, "/"));
        assert!(untrusted_allows(&Method::POST, "/1.0/certificates"));
        assert!(untrusted_allows(
            &Method::GET,
            "/1.0/operations/x/websocket"
        ));
        assert!(!untrusted_allows(&Method::GET, "/1.0/instances"));
        assert!(!untrusted_allows(&Method::GET, "/1.0/certificates"));
        assert!(!untrusted_allows(&Method::PUT, "/1.0"));
        assert!(!untrusted_allows(&Method::GET, "/1.0/operations/x"));
        assert!(untrusted_allows(&Method::GET, "/1.0/operations/x/wait"));
        assert!(!untrusted_allows(&Method::DELETE, "/1.0/operations/x"));
        for p in [
            "/1.0/images",
            "/1.0/images/abc",
            "/1.0/images/abc/export",
            "/1.0/images/aliases",
            "/1.0/images/aliases/busybox",
            "/1.0/images/aliases/debian/12",
        ] {
            assert!(untrusted_allows(&Method::GET, p), "{p}");
        }
        for p in [
            "/1.0/imagesx",
            "/1.0/images/abc/secret",
            "/1.0/images/abc/refresh",
        ] {
            assert!(!untrusted_allows(&Method::GET, p), "{p}");
        }
        assert!(!untrusted_allows(&Method::DELETE, "/1.0/images/abc"));
        assert!(!untrusted_allows(&Method::POST, "/1.0/images"));
        assert!(!untrusted_allows(&Method::PUT, "/1.0/images/abc"));
    }

    #[test]
    fn restricted_stays_in_its_projects() {
        let p = vec!["blue".to_string()];
        let ok = |m: Method, path: &str, q: Option<&str>| restricted_allows(&m, path, q, &p);
        assert!(ok(Method::GET, "/1.0/instances", Some("project=blue")));
        assert!(ok(Method::POST, "/1.0/instances", Some("project=blue")));
        assert!(!ok(Method::GET, "/1.0/instances", None));
        assert!(!ok(Method::GET, "/1.0/instances", Some("project=default")));
        assert!(!ok(
            Method::GET,
            "/1.0/instances",
            Some("project=blue&all-projects=true")
        ));
        assert!(ok(Method::GET, "/1.0", None));
        assert!(!ok(Method::PUT, "/1.0", None));
        assert!(!ok(Method::GET, "/1.0/certificates", None));
        assert!(ok(Method::GET, "/1.0/projects/blue", None));
        assert!(!ok(Method::GET, "/1.0/projects/default", None));
        assert!(!ok(Method::DELETE, "/1.0/projects/blue", None));
        assert!(!ok(Method::POST, "/1.0/storage-pools", None));
        assert!(ok(
            Method::GET,
            "/1.0/storage-pools/default/volumes",
            Some("project=blue")
        ));
        assert!(!ok(Method::POST, "/1.0/networks", Some("project=blue")));
    }

    fn req(method: Method, headers: &[(&str, &str)]) -> Request {
        let mut b = axum::http::Request::builder()
            .method(method)
            .uri("/1.0/instances");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn cross_site_requests_refused() {
        assert!(cross_site(&req(Method::POST, &[])).is_ok());
        assert!(cross_site(&req(Method::POST, &[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(cross_site(&req(Method::POST, &[("sec-fetch-site", "cross-site")])).is_err());
        assert!(cross_site(&req(Method::POST, &[("sec-fetch-site", "same-site")])).is_err());
        assert!(cross_site(&req(Method::GET, &[("sec-fetch-site", "cross-site")])).is_ok());
        assert!(
            cross_site(&req(
                Method::DELETE,
                &[("origin", "https://evil.example"), ("host", "h:8443")]
            ))
            .is_err()
        );
        assert!(
            cross_site(&req(
                Method::DELETE,
                &[("origin", "https://h:8443"), ("host", "h:8443")]
            ))
            .is_ok()
        );
    }
}
