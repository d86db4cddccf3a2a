//! `incus remote`: the list of servers in the client configuration, and joining HTTPS
//! servers as the Incus client does (client certificate made on first use, server
//! certificate pinned after the user or a trust token vouches for its fingerprint, the client
//! trusted by redeeming a token).

use super::Ctx;
use crate::CliError;
use crate::args::RemoteCmd;
use crate::conf::{self, Remote};
use crate::format::render;
use incus_client::Client;
use incus_core::api;
use std::io::Write;

/// A client for remote `name` at `addr` (`unix://[path]` or `https://host:port`).
pub fn connect(name: &str, addr: &str) -> Result<Client, CliError> {
    if let Some(path) = addr.strip_prefix("unix://") {
        let socket = if path.is_empty() {
            incus_client::default_socket()
        } else {
            path.into()
        };
        return Ok(Client::new(socket)?);
    }
    if addr.starts_with("https://") {
        return Ok(Client::https(addr, &conf::remote_tls(name)?)?);
    }
    Err(CliError::msg(format!(
        "Remote \"{name}\" has an address this client cannot use: {addr}"
    )))
}

/// Whether an address is a unix socket or an HTTPS server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Unix,
    Https,
}

/// An address as users type it (`host`, `host:port`, `[v6]:port`, `https://...`, `/path`,
/// `unix:///path`) in the form the configuration keeps: `https://host:port` (port 8443 by
/// default) or `unix://[path]`.
fn normalize_address(addr: &str) -> Result<(String, Scheme), CliError> {
    if addr.is_empty() {
        return Err(CliError::msg("Addresses cannot be empty"));
    }
    if let Some((scheme, _)) = addr.split_once("://")
        && scheme != "unix"
        && scheme != "https"
    {
        return Err(CliError::msg(format!(
            "Invalid URL scheme \"{scheme}\" in \"{addr}\""
        )));
    }
    let is_socket = || {
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata(addr).is_ok_and(|m| m.file_type().is_socket())
    };
    if addr.starts_with("unix:") || addr.starts_with('/') || is_socket() {
        let path = addr.trim_start_matches("unix:").trim_start_matches("//");
        return Ok((format!("unix://{path}"), Scheme::Unix));
    }
    let url = if addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("https://{addr}")
    };
    let (base, _, _) = incus_client::tls::authority(&url)
        .map_err(|_| CliError::msg(format!("Invalid address: {addr}")))?;
    Ok((base, Scheme::Https))
}

/// Prints `prompt` and reads one line from stdin (without its newline).
fn ask(prompt: &str) -> Result<String, CliError> {
    print!("{prompt}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Writes remote `name`'s pinned server certificate.
fn pin_certificate(name: &str, der: &[u8]) -> Result<(), CliError> {
    let path = conf::server_cert_path(name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
    }
    std::fs::write(&path, incus_core::tls::certificate_pem(der))
        .map_err(|e| CliError::msg(format!("Could not write server cert file {path:?}: {e}")))
}

/// The project a new remote uses: the one asked for (it must exist), else the only one the
/// server lets us see, else `default` when we may use it, else the user's choice.
async fn find_project(c: &Client, wanted: Option<&str>) -> Result<String, CliError> {
    if let Some(p) = wanted.filter(|p| !p.is_empty()) {
        c.project_info(p).await?;
        return Ok(p.to_string());
    }
    let urls: Vec<String> = c.get("/1.0/projects").await?;
    let names: Vec<String> = urls
        .iter()
        .filter_map(|u| u.rsplit('/').next())
        .map(str::to_string)
        .collect();
    match names.as_slice() {
        [] => Ok(String::new()),
        [one] => Ok(one.clone()),
        many if many.iter().any(|n| n == "default") => Ok(String::new()),
        many => {
            println!("Available projects:");
            for n in many {
                println!(" - {n}");
            }
            loop {
                let choice = ask("Name of the project to use for this remote: ")?;
                if many.contains(&choice) {
                    return Ok(choice);
                }
                if choice.is_empty() {
                    return Err(CliError::msg("No project chosen"));
                }
                println!("Invalid input, try again.");
            }
        }
    }
}

/// The options of `remote add`.
struct AddOpts {
    accept_certificate: bool,
    token: Option<String>,
    public: bool,
    protocol: String,
    auth_type: Option<String>,
    project: Option<String>,
    quiet: bool,
}

/// `incus remote add NAME TOKEN`: the token names the server's addresses and the
/// fingerprint of its certificate; the first address that answers with that certificate is
/// pinned and the token redeemed there.
async fn add_from_token(
    ctx: &mut Ctx,
    name: &str,
    token: &str,
    raw: &api::CertificateAddToken,
    opts: &AddOpts,
) -> Result<(), CliError> {
    conf::ensure_client_certificate(opts.quiet)?;
    let identity = conf::remote_tls(name)?;
    let mut errors = Vec::new();
    let mut found = None;
    for addr in &raw.addresses {
        let url = format!("https://{addr}");
        match incus_client::tls::fetch_server_certificate(&url, &identity).await {
            Ok(der) if incus_core::tls::fingerprint(&der) == raw.fingerprint => {
                found = Some((url, der));
                break;
            }
            Ok(_) => {
                return Err(CliError::msg(format!(
                    "Certificate fingerprint mismatch between certificate token and server \"{url}\""
                )));
            }
            Err(e) => errors.push(format!("{url}: {}", e.message())),
        }
    }
    let Some((url, der)) = found else {
        return Err(CliError::msg(format!(
            "Unavailable remote server: {}",
            errors.join("; ")
        )));
    };
    pin_certificate(name, &der)?;
    let joined = async {
        let c = connect(name, &url)?;
        c.trust_with_token(token)
            .await
            .map_err(|e| CliError::msg(format!("Failed to create certificate: {}", e.message())))?;
        let project = find_project(&c, opts.project.as_deref())
            .await
            .map_err(|e| CliError::msg(format!("Failed to find project: {}", e.0)))?;
        Ok::<_, CliError>(project)
    }
    .await;
    let project = match joined {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_file(conf::server_cert_path(name));
            return Err(e);
        }
    };
    ctx.conf.remotes.insert(
        name.to_string(),
        Remote {
            addr: url,
            auth_type: "tls".into(),
            project,
            protocol: "incus".into(),
            ..Remote::default()
        },
    );
    ctx.conf.save()
}

/// `incus remote add NAME ADDRESS`.
async fn add(ctx: &mut Ctx, name: &str, target: &str, opts: AddOpts) -> Result<(), CliError> {
    if name.contains(':') {
        return Err(CliError::msg("Remote names may not contain colons"));
    }
    if let Some(r) = ctx.conf.remotes.get(name) {
        return Err(CliError::msg(format!(
            "Remote {name} exists as <{}>",
            r.addr
        )));
    }
    if let Some(raw) = api::CertificateAddToken::decode(target) {
        return add_from_token(ctx, name, target, &raw, &opts).await;
    }
    if opts.protocol != "incus" {
        return Err(CliError::msg(format!(
            "Invalid protocol: {}",
            opts.protocol
        )));
    }
    let auth_type = opts.auth_type.clone().unwrap_or_default();
    if !auth_type.is_empty() && auth_type != "tls" {
        return Err(CliError::msg(format!(
            "Authentication type '{auth_type}' not supported by this client"
        )));
    }
    let (addr, scheme) = normalize_address(target)?;
    if scheme == Scheme::Unix {
        let c = connect(name, &addr)?;
        c.server().await?;
        let project = find_project(&c, opts.project.as_deref()).await?;
        ctx.conf.remotes.insert(
            name.to_string(),
            Remote {
                addr,
                project,
                protocol: "incus".into(),
                ..Remote::default()
            },
        );
        return ctx.conf.save();
    }
    if !opts.public {
        conf::ensure_client_certificate(opts.quiet)?;
    }
    // First as the system's authorities would vouch for it; a self-signed server then
    // shows its certificate for the user to accept (or `--accept-certificate`).
    let _ = std::fs::remove_file(conf::server_cert_path(name));
    let identity = conf::remote_tls(name)?;
    let system = Client::https(&addr, &identity)?;
    let mut pinned = false;
    if system.server().await.is_err() {
        let der = incus_client::tls::fetch_server_certificate(&addr, &identity).await?;
        if !opts.accept_certificate {
            let digest = incus_core::tls::fingerprint(&der);
            println!("Certificate fingerprint: {digest}");
            let line = ask("ok (y/n/[fingerprint])? ")?;
            if line != digest {
                match line.chars().next().map(|c| c.to_ascii_lowercase()) {
                    Some('y') => {}
                    None | Some('n') => {
                        return Err(CliError::msg("Server certificate NACKed by user"));
                    }
                    Some(_) => {
                        return Err(CliError::msg("Please type 'y', 'n' or the fingerprint:"));
                    }
                }
            }
        }
        pin_certificate(name, &der)?;
        pinned = true;
    }
    let result = finish_add(ctx, name, &addr, &opts).await;
    if result.is_err() && pinned {
        let _ = std::fs::remove_file(conf::server_cert_path(name));
    }
    result
}

/// The rest of `remote add` for an HTTPS server whose certificate is now trusted: become
/// trusted by it (a token), pick the project, save.
async fn finish_add(ctx: &mut Ctx, name: &str, addr: &str, opts: &AddOpts) -> Result<(), CliError> {
    let c = connect(name, addr)?;
    let (srv, _) = c.server().await?;
    if opts.public || srv.untrusted.public {
        ctx.conf.remotes.insert(
            name.to_string(),
            Remote {
                addr: addr.to_string(),
                public: true,
                ..Remote::default()
            },
        );
        return ctx.conf.save();
    }
    if srv.untrusted.auth != "trusted" {
        let token = match &opts.token {
            Some(t) => t.clone(),
            None => ask(&format!("Trust token for {name}: "))?,
        };
        c.trust_with_token(token.trim()).await?;
        let (srv, _) = c.server().await?;
        if srv.untrusted.auth != "trusted" {
            return Err(CliError::msg(
                "Server doesn't trust us after authentication",
            ));
        }
        println!("Client certificate now trusted by server: {name}");
    }
    let project = find_project(&c, opts.project.as_deref()).await?;
    ctx.conf.remotes.insert(
        name.to_string(),
        Remote {
            addr: addr.to_string(),
            auth_type: "tls".into(),
            project,
            protocol: "incus".into(),
            ..Remote::default()
        },
    );
    ctx.conf.save()
}

/// How a remote authenticates, as `remote list` shows it.
fn auth_type(r: &Remote) -> String {
    if !r.auth_type.is_empty() {
        r.auth_type.clone()
    } else if r.addr.starts_with("unix:") {
        "file access".into()
    } else if !r.protocol.is_empty() && r.protocol != "incus" {
        "none".into()
    } else {
        "tls".into()
    }
}

fn yes_no(b: bool) -> String {
    if b { "YES" } else { "NO" }.to_string()
}

/// Fails for a remote that does not exist or may not be changed.
fn changeable(ctx: &Ctx, name: &str) -> Result<(), CliError> {
    if !ctx.conf.remotes.contains_key(name) {
        return Err(CliError::msg(format!("Remote {name} doesn't exist")));
    }
    if conf::is_static(name) {
        return Err(CliError::msg(format!(
            "Remote {name} is static and cannot be modified"
        )));
    }
    Ok(())
}

/// Runs `incus remote ...`.
pub async fn run(mut ctx: Ctx, cmd: RemoteCmd) -> Result<i32, CliError> {
    match cmd {
        RemoteCmd::List { format } => {
            let rows = ctx
                .conf
                .remotes
                .iter()
                .map(|(n, r)| {
                    let name = if *n == ctx.conf.default_remote {
                        format!("{n} (current)")
                    } else {
                        n.clone()
                    };
                    let protocol = if r.protocol.is_empty() {
                        "incus".to_string()
                    } else {
                        r.protocol.clone()
                    };
                    vec![
                        name,
                        r.addr.clone(),
                        protocol,
                        auth_type(r),
                        yes_no(r.public),
                        yes_no(conf::is_static(n)),
                        "NO".into(),
                    ]
                })
                .collect();
            let header = [
                "NAME",
                "URL",
                "PROTOCOL",
                "AUTH TYPE",
                "PUBLIC",
                "STATIC",
                "GLOBAL",
            ]
            .map(String::from);
            print!("{}", render(format, &header, rows, &ctx.conf.remotes)?);
        }
        RemoteCmd::Add {
            name,
            addr,
            accept_certificate,
            token,
            public,
            protocol,
            auth_type,
        } => {
            // One argument: it is the address and names the remote too.
            let target = addr.unwrap_or_else(|| name.clone());
            let opts = AddOpts {
                accept_certificate,
                token,
                public,
                protocol,
                auth_type,
                project: ctx.project.take(),
                quiet: ctx.quiet,
            };
            add(&mut ctx, &name, &target, opts).await?;
        }
        RemoteCmd::GenerateCertificate => {
            let (crt, key) = conf::client_cert_paths();
            if crt.exists() && key.exists() {
                return Err(CliError::msg("A client certificate is already present"));
            }
            conf::ensure_client_certificate(ctx.quiet)?;
        }
        RemoteCmd::Remove { name } => {
            changeable(&ctx, &name)?;
            if name == ctx.conf.default_remote {
                return Err(CliError::msg("Can't remove the default remote"));
            }
            ctx.conf.remotes.remove(&name);
            let _ = std::fs::remove_file(conf::server_cert_path(&name));
            ctx.conf.save()?;
        }
        RemoteCmd::Rename { name, new_name } => {
            changeable(&ctx, &name)?;
            if new_name.contains(':') {
                return Err(CliError::msg("Remote names may not contain colons"));
            }
            if ctx.conf.remotes.contains_key(&new_name) {
                return Err(CliError::msg(format!("Remote {new_name} already exists")));
            }
            let old_cert = conf::server_cert_path(&name);
            if old_cert.exists() {
                std::fs::rename(&old_cert, conf::server_cert_path(&new_name))?;
            }
            if let Some(r) = ctx.conf.remotes.remove(&name) {
                ctx.conf.remotes.insert(new_name.clone(), r);
            }
            if ctx.conf.default_remote == name {
                ctx.conf.default_remote = new_name;
            }
            ctx.conf.save()?;
        }
        RemoteCmd::Switch { name } => {
            if !ctx.conf.remotes.contains_key(&name) {
                return Err(CliError::msg(format!("Remote {name} doesn't exist")));
            }
            ctx.conf.default_remote = name;
            ctx.conf.save()?;
        }
        RemoteCmd::GetDefault => println!("{}", ctx.conf.default_remote),
        RemoteCmd::SetUrl { name, url } => {
            changeable(&ctx, &name)?;
            let (addr, _) = normalize_address(&url)?;
            if let Some(r) = ctx.conf.remotes.get_mut(&name) {
                r.addr = addr;
            }
            ctx.conf.save()?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalized_as_incus_does() {
        let n = |a: &str| normalize_address(a).map(|(s, _)| s).unwrap_or_else(|e| e.0);
        assert_eq!(n("10.0.0.1"), "https://10.0.0.1:8443");
        assert_eq!(n("10.0.0.1:9000"), "https://10.0.0.1:9000");
        assert_eq!(n("https://host.example"), "https://host.example:8443");
        assert_eq!(n("https://host.example:1/x"), "https://host.example:1");
        assert_eq!(n("::1"), "https://[::1]:8443");
        assert_eq!(n("[::1]:8444"), "https://[::1]:8444");
        assert_eq!(n("unix://"), "unix://");
        assert_eq!(n("unix:///run/x.sock"), "unix:///run/x.sock");
        assert_eq!(n("/run/x.sock"), "unix:///run/x.sock");
        assert_eq!(n("ftp://y"), "Invalid URL scheme \"ftp\" in \"ftp://y\"");
        assert_eq!(n(""), "Addresses cannot be empty");
        assert!(n("host:notaport").starts_with("Invalid address"));
        assert!(n("user@host").starts_with("Invalid address"));
    }
}
