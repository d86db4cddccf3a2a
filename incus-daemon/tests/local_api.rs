//! The in-process API (`incus_daemon::local::LocalApi`): the daemon's router answering
//! without a socket, as the Python module's embedded `Host` uses it. Runs as root with
//! `INCUS_TEST_PRIVILEGED=1` (the engine opens a real state directory).

use axum::body::Body;
use axum::http::Request;
use incus_core::drivers::DriverRegistry;
use incus_core::error::ErrorKind;
use incus_core::host::{Host, HostConfig};
use incus_daemon::local::LocalApi;

async fn call(api: &LocalApi, method: &str, uri: &str, body: &str) -> (u16, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let resp = api.call(req).await;
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, bytes.to_vec())
}

#[tokio::test]
async fn the_router_answers_in_process_with_the_daemons_envelopes() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED the_router_answers_in_process_with_the_daemons_envelopes: set INCUS_TEST_PRIVILEGED=1 (as root)"
        );
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("incusd-test-local-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let mut drivers = DriverRegistry::new();
    incus_storage::register_all(&mut drivers);
    let mut config = HostConfig::new(dir.path(), drivers);
    config.helper = Some(env!("CARGO_BIN_EXE_incusd").into());
    config.helper_args = vec!["forklxc".into()];
    let host = Host::open(config).await.expect("open");
    let api = LocalApi::new(incus_daemon::Daemon::new(host));

    let (status, body) = call(&api, "GET", "/1.0", "").await;
    let r = incus_client::decode_envelope(status, None, &body).expect("GET /1.0");
    assert_eq!(r.raw.metadata["api_version"], "1.0");

    let (status, body) = call(&api, "GET", "/1.0/instances/nope", "").await;
    assert_eq!(status, 404);
    let e = incus_client::decode_envelope(status, None, &body).expect_err("404");
    assert_eq!(e.kind(), ErrorKind::NotFound);

    // The same validation as on the socket: bad JSON, a bad name, then a good profile,
    // then the same name again (409 "already exists"), then in use (409, busy).
    let (status, _) = call(&api, "POST", "/1.0/profiles", "{not json").await;
    assert_eq!(status, 400);
    let (status, _) = call(&api, "POST", "/1.0/profiles", r#"{"name":"a/b"}"#).await;
    assert_eq!(status, 400);
    let (status, _) = call(&api, "POST", "/1.0/profiles", r#"{"name":"p1"}"#).await;
    assert_eq!(status, 200);
    let (status, body) = call(&api, "POST", "/1.0/profiles", r#"{"name":"p1"}"#).await;
    let e = incus_client::decode_envelope(status, None, &body).expect_err("409");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    let (status, body) = call(&api, "DELETE", "/1.0/profiles/default", "").await;
    let e = incus_client::decode_envelope(status, None, &body).expect_err("default profile");
    assert_ne!(e.kind(), ErrorKind::AlreadyExists, "{e}");

    // Projects are a query parameter, as on the socket.
    let (status, body) = call(&api, "GET", "/1.0/profiles?project=nope", "").await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));

    // A websocket endpoint cannot upgrade without a connection: an error, not a hang.
    let (status, _) = call(&api, "GET", "/1.0/events", "").await;
    assert!(status >= 400, "{status}");
}
