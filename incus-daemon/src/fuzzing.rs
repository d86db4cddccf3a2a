//! Entry points for fuzzers: one per parser that sees untrusted input. Each takes arbitrary
//! bytes, runs the daemon's own parsing (and the validation that follows it) and returns
//! `Err` with a description when an invariant breaks; a panic is a failure too. The
//! invariants: a bad input is refused with an "invalid input" error (a 4xx), never an
//! internal one, and never escapes where it is put.
//!
//! `incus-daemon/tests/fuzz.rs` mutates a seed corpus through them for a bounded time (in CI);
//! `tests/fuzz` is a libFuzzer harness over the same functions for long runs by hand.

use crate::response::{ApiError, parse};
use axum::body::Bytes;
use incus_core::api;
use incus_core::error::{Error, ErrorKind};
use std::path::Path;

/// The outcome of one fuzz input: `Err` names a broken invariant.
pub type Verdict = Result<(), String>;

/// Refusing bad input is fine; failing as if the daemon were broken is not.
fn refusal(what: &str, e: &Error) -> Verdict {
    match e.kind() {
        ErrorKind::Internal => Err(format!("{what}: an internal error for bad input: {e}")),
        _ => Ok(()),
    }
}

fn check<T>(what: &str, r: Result<T, Error>) -> Result<Option<T>, String> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) => refusal(what, &e).map(|()| None),
    }
}

fn typed<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<Option<T>, String> {
    check("JSON body", parse::<T>(body).map_err(|ApiError(e)| e))
}

/// A JSON request body, as every route reads it: decoded into each request type, then the
/// names, configuration keys and devices validated as the routes do.
pub fn json_body(data: &[u8]) -> Verdict {
    let body = Bytes::copy_from_slice(data);
    let validate = |config: &api::ConfigMap, devices: &api::DevicesMap| -> Verdict {
        check(
            "instance config",
            incus_core::config::validate_instance_config(config, false),
        )?;
        check(
            "devices",
            incus_core::config::validate_devices(devices, false),
        )?;
        Ok(())
    };
    if let Some(p) = typed::<api::InstancesPost>(&body)? {
        check(
            "instance name",
            incus_core::config::validate_instance_name(&p.name),
        )?;
        validate(&p.put.config, &p.put.devices)?;
    }
    if let Some(p) = typed::<api::InstancePut>(&body)? {
        validate(&p.config, &p.devices)?;
    }
    if let Some(p) = typed::<api::ProfilesPost>(&body)? {
        check(
            "profile name",
            incus_core::config::validate_entity_name("profile", &p.name),
        )?;
        validate(&p.put.config, &p.put.devices)?;
    }
    typed::<api::InstancePost>(&body)?;
    typed::<api::InstanceStatePut>(&body)?;
    typed::<api::InstanceSnapshotsPost>(&body)?;
    typed::<api::InstanceExecPost>(&body)?;
    typed::<api::ProjectsPost>(&body)?;
    typed::<api::NetworksPost>(&body)?;
    typed::<api::StoragePoolsPost>(&body)?;
    typed::<api::StorageVolumesPost>(&body)?;
    typed::<api::ServerPut>(&body)?;
    typed::<api::ImagesPost>(&body)?;
    typed::<api::CertificatesPost>(&body)?;
    Ok(())
}

/// A gzip-encoded request body: decoded with the 2 MiB limit, never more.
pub fn gzip_body(data: &[u8]) -> Verdict {
    match crate::encoding::gunzip_bytes(data) {
        Ok(out) if out.len() > 2 << 20 => Err(format!("{} bytes decoded", out.len())),
        Ok(_) => Ok(()),
        Err(ApiError(e)) => refusal("gzip body", &e),
    }
}

/// A `filter=` expression of a list request, matched against a sample instance.
pub fn filter(data: &[u8]) -> Verdict {
    let text = String::from_utf8_lossy(data);
    if let Some(Some(f)) = check("filter", incus_core::filter::parse(&text))? {
        let sample = serde_json::json!({
            "name": "c1", "status": "Running", "type": "container",
            "config": {"image.os": "busybox", "limits.cpu": "2"},
            "expanded_config": {"user.x": "1"}, "devices": {}, "profiles": ["default"],
        });
        let _ = f.matches(&sample);
    }
    Ok(())
}

/// An image's `metadata.yaml`.
pub fn image_metadata(data: &[u8]) -> Verdict {
    check("image metadata", incus_core::host::parse_metadata(data))?;
    Ok(())
}

/// The `X-Incus-*` headers of a file upload: each input line is `name: value` (the first
/// line that is not a header starts the body).
pub fn file_headers(data: &[u8]) -> Verdict {
    let text = String::from_utf8_lossy(data);
    let mut headers = axum::http::HeaderMap::new();
    let mut body = "";
    for (i, line) in text.split('\n').enumerate() {
        match line.split_once(':') {
            Some((k, v)) if i < 16 => {
                if let (Ok(k), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(k.trim().as_bytes()),
                    axum::http::HeaderValue::from_str(v.trim()),
                ) {
                    headers.append(k, v);
                }
            }
            _ => {
                body = line;
                break;
            }
        }
    }
    match crate::routes::files::put_request(&headers, body.as_bytes()) {
        Ok((attrs, _)) if attrs.mode.is_some_and(|m| m > 0o7777) => Err(format!(
            "mode {:o} accepted",
            attrs.mode.unwrap_or_default()
        )),
        Ok(_) => Ok(()),
        Err(ApiError(e)) => refusal("file headers", &e),
    }
}

/// A tar stream (image, backup) extracted into `scratch/root` (made empty first): nothing
/// may be written outside `root`. `scratch` also holds a sentinel the stream must not touch.
pub fn tar_stream(data: &[u8], scratch: &Path) -> Verdict {
    let root = scratch.join("root");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    let sentinel = scratch.join("sentinel");
    std::fs::write(&sentinel, b"untouched").map_err(|e| e.to_string())?;
    if let Err(e) = incus_core::host::archive::extract(data, &root, None) {
        refusal("tar stream", &e)?;
    }
    let mut names: Vec<String> = std::fs::read_dir(scratch)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    if names != ["root", "sentinel"] {
        return Err(format!("the stream wrote beside its root: {names:?}"));
    }
    if std::fs::read(&sentinel).map_err(|e| e.to_string())? != b"untouched" {
        return Err("the stream changed a file outside its root".into());
    }
    Ok(())
}

/// What users paste: trust tokens, certificates (PEM or base64 DER), listen addresses.
pub fn credentials(data: &[u8]) -> Verdict {
    let text = String::from_utf8_lossy(data);
    let _ = api::CertificateAddToken::decode(&text);
    if let Some(der) = check("certificate", incus_core::tls::certificate_der(&text))? {
        check("certificate", incus_core::tls::describe(&der))?;
    }
    check(
        "listen address",
        incus_core::config::parse_listen_address(&text, 8443),
    )?;
    Ok(())
}

/// Every target by name, for drivers that pick one (`tar_stream` gets its scratch
/// directory from the driver: see [`tar_stream`]).
pub const TARGETS: &[&str] = &[
    "json_body",
    "gzip_body",
    "filter",
    "image_metadata",
    "file_headers",
    "tar_stream",
    "credentials",
];

/// Runs target `name` on `data` (`scratch`: a private directory for `tar_stream`).
pub fn run(name: &str, data: &[u8], scratch: &Path) -> Verdict {
    match name {
        "json_body" => json_body(data),
        "gzip_body" => gzip_body(data),
        "filter" => filter(data),
        "image_metadata" => image_metadata(data),
        "file_headers" => file_headers(data),
        "tar_stream" => tar_stream(data, scratch),
        "credentials" => credentials(data),
        other => Err(format!("no fuzz target {other:?}")),
    }
}
