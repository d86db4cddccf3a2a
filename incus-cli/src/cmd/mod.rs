//! Command implementations, one module per command family.

mod backup;
pub mod config;
mod exec;
mod file;
mod image;
mod instance;
mod misc;
mod network;
mod remote;
mod trust;
mod volume;

use crate::CliError;
use crate::args::{Cli, Cmd};
use crate::conf::Config;
use incus_client::Client;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};

/// What every command needs: the client configuration and global flags.
pub struct Ctx {
    /// The client configuration file.
    pub conf: Config,
    /// `--project`.
    pub project: Option<String>,
    /// `--quiet`.
    pub quiet: bool,
}

impl Ctx {
    /// A client for `remote` (or the default remote), scoped to the current project.
    pub fn client_for(&self, remote: &str) -> Result<Client, CliError> {
        let r = self
            .conf
            .remotes
            .get(remote)
            .ok_or_else(|| CliError::msg(format!("The remote \"{remote}\" doesn't exist")))?;
        let project = self
            .project
            .clone()
            .or_else(|| (!r.project.is_empty()).then(|| r.project.clone()))
            .unwrap_or_default();
        Ok(remote::connect(remote, &r.addr)?.with_project(project))
    }

    /// Splits `[remote:]name` and gives the client for it.
    pub fn resolve<'a>(&self, arg: &'a str) -> Result<(Client, &'a str), CliError> {
        let (remote, rest) = self.conf.split(arg);
        Ok((self.client_for(&remote)?, rest))
    }

    /// The client for the default remote.
    pub fn client(&self) -> Result<Client, CliError> {
        self.client_for(&self.conf.default_remote.clone())
    }
}

/// `key=value` arguments as a map.
pub fn key_values(items: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| CliError::msg(format!("Bad key=value pair: {kv}")))
        })
        .collect()
}

/// `key value` or `key=value...` as a map.
pub fn settings(items: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    if items.len() == 2 && !items[0].contains('=') {
        return Ok([(items[0].clone(), items[1].clone())].into_iter().collect());
    }
    key_values(items)
}

/// Edits `current` as YAML: from stdin when it is not a terminal, else in `$EDITOR`
/// (re-opened on a validation error, as Incus does). `apply` gets the new text.
pub async fn edit_yaml<F, Fut>(current: String, mut apply: F) -> Result<(), CliError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), CliError>>,
{
    if !std::io::stdin().is_terminal() {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return apply(text).await;
    }
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let path = std::env::temp_dir().join(format!("incus_editor_{}.yaml", std::process::id()));
    std::fs::write(&path, current)?;
    let result = loop {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(&path)
            .status()?;
        if !status.success() {
            break Err(CliError::msg("The editor failed"));
        }
        let text = std::fs::read_to_string(&path)?;
        match apply(text).await {
            Ok(()) => break Ok(()),
            Err(e) => {
                eprintln!("Config parsing error: {}", e.0);
                eprintln!("Press enter to open the editor again or ctrl+c to abort change");
                let mut line = String::new();
                if std::io::stdin().read_line(&mut line)? == 0 {
                    break Err(e);
                }
            }
        }
    };
    let _ = std::fs::remove_file(&path);
    result
}

/// Runs the parsed command line; the result is the process exit status.
pub async fn run(cli: Cli) -> Result<i32, CliError> {
    let ctx = Ctx {
        conf: Config::load()?,
        project: cli.project,
        quiet: cli.quiet,
    };
    match cli.command {
        Cmd::Launch(a) => instance::create(&ctx, a, true).await,
        Cmd::Create(a) => instance::create(&ctx, a, false).await,
        Cmd::Start { names } => instance::state(&ctx, &names, "start", false, -1).await,
        Cmd::Stop {
            names,
            force,
            timeout,
        } => instance::state(&ctx, &names, "stop", force, timeout).await,
        Cmd::Restart {
            names,
            force,
            timeout,
        } => instance::state(&ctx, &names, "restart", force, timeout).await,
        Cmd::Pause { names } => instance::state(&ctx, &names, "freeze", false, -1).await,
        Cmd::Delete { names, force } => instance::delete(&ctx, &names, force).await,
        Cmd::Rename { old, new } => instance::rename(&ctx, &old, &new).await,
        Cmd::Move {
            old,
            new,
            storage,
            instance_only,
        } => {
            instance::move_to(
                &ctx,
                &old,
                new.as_deref(),
                storage.as_deref(),
                instance_only,
            )
            .await
        }
        Cmd::Copy {
            source,
            target,
            instance_only,
            config,
            ephemeral,
            storage,
        } => {
            let opts = instance::CopyOpts {
                instance_only,
                config,
                ephemeral,
                storage,
            };
            instance::copy(&ctx, &source, &target, opts).await
        }
        Cmd::Export {
            name,
            target,
            instance_only,
            compression,
            optimized_storage,
        } => {
            let opts = backup::Opts {
                without_snapshots: instance_only,
                compression,
                optimized_storage,
            };
            backup::export(&ctx, backup::What::Instance(&name), target, opts).await
        }
        Cmd::Import {
            file,
            name,
            storage,
        } => backup::import_instance(&ctx, &file, name.as_deref(), storage.as_deref()).await,
        Cmd::List {
            filters,
            columns,
            format,
            all_projects,
        } => instance::list(&ctx, &filters, &columns, format, all_projects).await,
        Cmd::Info {
            name,
            show_log,
            resources,
        } => match name {
            Some(n) => instance::info(&ctx, &n, show_log).await,
            None => misc::server_info(&ctx, resources).await,
        },
        Cmd::Exec {
            name,
            command,
            env,
            cwd,
            user,
            group,
            force_interactive,
            force_noninteractive,
        } => {
            exec::exec(
                &ctx,
                &name,
                exec::Opts {
                    command,
                    env,
                    cwd,
                    user,
                    group,
                    force_interactive,
                    force_noninteractive,
                },
            )
            .await
        }
        Cmd::Console {
            name,
            show_log,
            kind,
        } => instance::console(&ctx, &name, show_log, &kind).await,
        Cmd::File { cmd } => file::run(&ctx, cmd).await,
        Cmd::Snapshot { cmd } => instance::snapshot(&ctx, cmd).await,
        Cmd::Config { cmd } => config::run(&ctx, cmd).await,
        Cmd::Profile { cmd } => config::profile(&ctx, cmd).await,
        Cmd::Image { cmd } => image::run(&ctx, cmd).await,
        Cmd::Project { cmd } => misc::project(ctx, cmd).await,
        Cmd::Storage { cmd } => misc::storage(&ctx, cmd).await,
        Cmd::Network { cmd } => network::run(&ctx, cmd).await,
        Cmd::Operation { cmd } => misc::operation(&ctx, cmd).await,
        Cmd::Monitor { kinds } => misc::monitor(&ctx, &kinds).await,
        Cmd::Query {
            path,
            method,
            data,
            wait,
            raw,
        } => misc::query(&ctx, &path, &method, data.as_deref(), wait, raw).await,
        Cmd::Remote { cmd } => remote::run(ctx, cmd).await,
        Cmd::Admin { cmd } => misc::admin(&ctx, cmd).await,
        Cmd::Version => misc::version(&ctx).await,
        Cmd::Completion { shell } => {
            let mut c = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut c, "incus", &mut std::io::stdout());
            Ok(0)
        }
    }
}
