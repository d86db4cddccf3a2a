//! `incus config trust`: the server's trust store (certificates of trusted clients) and the
//! tokens that let a new client add itself.

use super::{Ctx, edit_yaml};
use crate::CliError;
use crate::args::TrustCmd;
use crate::format::{render, to_yaml};
use incus_client::escape;
use incus_core::api;

/// `2006/01/02 15:04 UTC`, the layout Incus shows certificate dates in.
fn date(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| d.format("%Y/%m/%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// One column of `trust list` for `cert`, whose parsed certificate is `info`.
fn column(
    c: char,
    cert: &api::Certificate,
    info: Option<&incus_core::tls::CertificateInfo>,
) -> Result<String, CliError> {
    Ok(match c {
        'n' => cert.put.name.clone(),
        't' => cert.put.kind.clone(),
        'c' => info.map(|i| i.common_name.clone()).unwrap_or_default(),
        'f' => cert.fingerprint.chars().take(12).collect(),
        'd' => cert.put.description.clone(),
        'i' => info.map(|i| date(i.not_before)).unwrap_or_default(),
        'e' => info.map(|i| date(i.not_after)).unwrap_or_default(),
        'r' => if cert.put.restricted { "YES" } else { "NO" }.to_string(),
        'p' => cert.put.projects.join("\n"),
        other => {
            return Err(CliError::msg(format!(
                "Unknown column shorthand char '{other}'"
            )));
        }
    })
}

fn header(c: char) -> &'static str {
    match c {
        'n' => "NAME",
        't' => "TYPE",
        'c' => "COMMON NAME",
        'f' => "FINGERPRINT",
        'd' => "DESCRIPTION",
        'i' => "ISSUE DATE",
        'e' => "EXPIRY DATE",
        'r' => "RESTRICTED",
        _ => "PROJECTS",
    }
}

fn projects(list: Option<String>) -> Vec<String> {
    list.map(|p| {
        p.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// The pending trust tokens: `(name, token, expiry, operation id)`.
async fn tokens(
    c: &incus_client::Client,
) -> Result<Vec<(String, String, String, String)>, CliError> {
    let ops: std::collections::BTreeMap<String, Vec<api::Operation>> =
        c.get("/1.0/operations?recursion=1").await?;
    let mut out = Vec::new();
    for op in ops.into_values().flatten() {
        let pending = op.class == "token" && op.status == "Running";
        let Some(meta) = op.metadata.as_ref().filter(|_| pending) else {
            continue;
        };
        let name = meta
            .get("request")
            .and_then(|r| r.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        let expires = meta
            .get("expiresAt")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let token = api::CertificateAddToken::from_operation(&name, meta);
        out.push((name, token.encode(), expires, op.id.clone()));
    }
    out.sort();
    Ok(out)
}

/// Runs `incus config trust ...`.
pub async fn run(ctx: &Ctx, cmd: TrustCmd) -> Result<i32, CliError> {
    match cmd {
        TrustCmd::Add {
            name,
            restricted,
            projects: list,
        } => {
            let (c, name) = ctx.resolve(&name)?;
            let token = c
                .issue_trust_token(&api::CertificatePut {
                    name: name.to_string(),
                    kind: "client".into(),
                    restricted,
                    projects: projects(list),
                    ..Default::default()
                })
                .await?;
            if !ctx.quiet {
                println!("Client {name} certificate add token:");
            }
            println!("{token}");
        }
        TrustCmd::AddCertificate {
            cert,
            name,
            kind,
            restricted,
            projects: list,
            description,
        } => {
            let (c, path) = ctx.resolve(&cert)?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::msg(format!("Could not read certificate {path}: {e}")))?;
            let name = name.unwrap_or_else(|| {
                std::path::Path::new(path)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            let req = api::CertificatesPost {
                put: api::CertificatePut {
                    name,
                    kind,
                    restricted,
                    projects: projects(list),
                    certificate: text,
                    description: description.unwrap_or_default(),
                },
                trust_token: String::new(),
                token: false,
            };
            c.add_certificate(&req).await?;
        }
        TrustCmd::List {
            remote,
            format,
            columns,
        } => {
            let (c, _) = ctx.resolve(remote.as_deref().unwrap_or(""))?;
            let certs = c.certificates().await?;
            let cols: Vec<char> = columns.chars().filter(|c| *c != ',').collect();
            let rows = certs
                .iter()
                .map(|cert| {
                    let info = incus_core::tls::certificate_der(&cert.put.certificate)
                        .and_then(|der| incus_core::tls::describe(&der))
                        .ok();
                    cols.iter()
                        .map(|&k| column(k, cert, info.as_ref()))
                        .collect()
                })
                .collect::<Result<Vec<Vec<String>>, CliError>>()?;
            let head: Vec<String> = cols.iter().map(|&k| header(k).to_string()).collect();
            print!("{}", render(format, &head, rows, &certs)?);
        }
        TrustCmd::ListTokens { remote, format } => {
            let (c, _) = ctx.resolve(remote.as_deref().unwrap_or(""))?;
            let all = tokens(&c).await?;
            let rows = all
                .iter()
                .map(|(n, t, e, _)| vec![n.clone(), t.clone(), e.clone()])
                .collect();
            let objects: Vec<serde_json::Value> = all
                .iter()
                .map(
                    |(n, t, e, _)| serde_json::json!({"ClientName": n, "Token": t, "ExpiresAt": e}),
                )
                .collect();
            let head = ["NAME", "TOKEN", "EXPIRES AT"].map(String::from);
            print!("{}", render(format, &head, rows, &objects)?);
        }
        TrustCmd::Remove { fingerprint } => {
            let (c, fp) = ctx.resolve(&fingerprint)?;
            c.delete_certificate(fp).await?;
        }
        TrustCmd::RevokeToken { name } => {
            let (c, name) = ctx.resolve(&name)?;
            let all = tokens(&c).await?;
            let Some((_, _, _, id)) = all.iter().find(|(n, ..)| n == name) else {
                return Err(CliError::msg(format!(
                    "No certificate add token for member {name}"
                )));
            };
            c.cancel_operation(id).await?;
        }
        TrustCmd::Show { fingerprint } => {
            let (c, fp) = ctx.resolve(&fingerprint)?;
            let (cert, _) = c.certificate(fp).await?;
            print!("{}", to_yaml(&cert)?);
        }
        TrustCmd::Edit { fingerprint } => {
            let (c, fp) = ctx.resolve(&fingerprint)?;
            let (cert, etag) = c.certificate(fp).await?;
            let path = format!("/1.0/certificates/{}", escape(&cert.fingerprint));
            let current = to_yaml(&cert.put)?;
            edit_yaml(current, |text| {
                let (c, path, etag) = (c.clone(), path.clone(), etag.clone());
                async move {
                    let put: api::CertificatePut =
                        serde_saphyr::from_str(&text).map_err(|e| CliError::msg(e.to_string()))?;
                    c.send("PUT", &path, &put, Some(&etag)).await?;
                    Ok(())
                }
            })
            .await?;
        }
    }
    Ok(0)
}
