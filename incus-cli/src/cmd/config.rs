//! `incus config` (instances and the server), `config device`, and `incus profile`.

use super::{Ctx, edit_yaml, settings};
use crate::CliError;
use crate::args::{ConfigCmd, DeviceCmd, KeyCmd, ProfileCmd};
use crate::format::{render, to_yaml};
use incus_client::{Client, escape};
use serde_json::{Map, Value, json};

const INSTANCE_FIELDS: &[&str] = &[
    "architecture",
    "config",
    "devices",
    "ephemeral",
    "profiles",
    "description",
];
const PROFILE_FIELDS: &[&str] = &["config", "description", "devices"];
const SERVER_FIELDS: &[&str] = &["config"];
const PROJECT_FIELDS: &[&str] = &["config", "description"];

/// Something with writable fields behind one URL.
pub struct Object {
    client: Client,
    path: String,
    fields: &'static [&'static str],
}

impl Object {
    fn instance(client: Client, name: &str) -> Object {
        Object {
            client,
            path: format!("/1.0/instances/{}", escape(name)),
            fields: INSTANCE_FIELDS,
        }
    }

    fn profile(client: Client, name: &str) -> Object {
        Object {
            client,
            path: format!("/1.0/profiles/{}", escape(name)),
            fields: PROFILE_FIELDS,
        }
    }

    /// A project.
    pub fn project(client: Client, name: &str) -> Object {
        Object {
            client,
            path: format!("/1.0/projects/{}", escape(name)),
            fields: PROJECT_FIELDS,
        }
    }

    /// A storage pool (same writable fields as a project: config and description).
    pub fn pool(client: Client, name: &str) -> Object {
        Object {
            client,
            path: format!("/1.0/storage-pools/{}", escape(name)),
            fields: PROJECT_FIELDS,
        }
    }

    /// A managed network (config and description).
    pub fn network(client: Client, name: &str) -> Object {
        Object {
            client,
            path: format!("/1.0/networks/{}", escape(name)),
            fields: PROJECT_FIELDS,
        }
    }

    /// A custom storage volume.
    pub fn volume(client: Client, pool: &str, name: &str) -> Object {
        Object {
            client,
            path: format!(
                "/1.0/storage-pools/{}/volumes/custom/{}",
                escape(pool),
                escape(name)
            ),
            fields: PROJECT_FIELDS,
        }
    }

    /// An instance or a profile, for attaching devices.
    pub fn device_holder(client: Client, profile: bool, name: &str) -> Object {
        if profile {
            Object::profile(client, name)
        } else {
            Object::instance(client, name)
        }
    }

    /// `get KEY` on the object's config.
    pub async fn get_key(&self, key: &str) -> Result<(), CliError> {
        let (mut b, _) = self.get().await?;
        let v = map_of(&mut b, "config").get(key).cloned();
        println!("{}", v.as_ref().and_then(Value::as_str).unwrap_or(""));
        Ok(())
    }

    /// `set KEY VALUE` / `set KEY=VALUE...` on the object's config.
    pub async fn set_keys(&self, items: &[String]) -> Result<(), CliError> {
        let kv = settings(items)?;
        self.modify(|b| {
            let m = map_of(b, "config");
            for (k, v) in kv {
                m.insert(k, Value::String(v));
            }
            Ok(())
        })
        .await
    }

    /// `unset KEY` on the object's config.
    pub async fn unset_key(&self, key: &str) -> Result<(), CliError> {
        self.modify(|b| {
            map_of(b, "config").remove(key);
            Ok(())
        })
        .await
    }

    fn server(client: Client) -> Object {
        Object {
            client,
            path: "/1.0".into(),
            fields: SERVER_FIELDS,
        }
    }

    /// The writable part and the ETag.
    pub async fn get(&self) -> Result<(Map<String, Value>, String), CliError> {
        let (v, etag): (Value, String) = self.client.get_with_etag(&self.path).await?;
        let mut out = Map::new();
        for f in self.fields {
            out.insert((*f).to_string(), v.get(*f).cloned().unwrap_or(Value::Null));
        }
        Ok((out, etag))
    }

    async fn put(&self, body: &Map<String, Value>, etag: &str) -> Result<(), CliError> {
        self.client
            .send("PUT", &self.path, body, Some(etag))
            .await?;
        Ok(())
    }

    /// Read, change, write back with `If-Match`.
    pub async fn modify(
        &self,
        f: impl FnOnce(&mut Map<String, Value>) -> Result<(), CliError>,
    ) -> Result<(), CliError> {
        let (mut body, etag) = self.get().await?;
        f(&mut body)?;
        self.put(&body, &etag).await
    }

    pub async fn show(&self) -> Result<(), CliError> {
        let (body, _) = self.get().await?;
        print!("{}", to_yaml(&body)?);
        Ok(())
    }

    /// Edits the writable part as YAML.
    pub async fn edit(&self) -> Result<(), CliError> {
        let (body, etag) = self.get().await?;
        edit_yaml(to_yaml(&body)?, |text| {
            let etag = etag.clone();
            async move {
                let v: Map<String, Value> =
                    serde_saphyr::from_str(&text).map_err(|e| CliError::msg(e.to_string()))?;
                self.put(&v, &etag).await
            }
        })
        .await
    }
}

/// The object under `key` (made when missing).
pub fn map_of<'a>(body: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = body.entry(key.to_string()).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

fn device<'a>(
    body: &'a mut Map<String, Value>,
    dev: &str,
) -> Result<&'a mut Map<String, Value>, CliError> {
    match map_of(body, "devices").get_mut(dev) {
        Some(Value::Object(d)) => Ok(d),
        _ => Err(CliError::msg(format!("Device doesn't exist: {dev}"))),
    }
}

/// Device subcommands on an instance or a profile.
async fn device_cmd(obj: Object, cmd: DeviceCmd) -> Result<i32, CliError> {
    match cmd {
        DeviceCmd::Add {
            device: dev,
            kind,
            settings: s,
            ..
        } => {
            let mut conf = super::key_values(&s)?;
            conf.insert("type".into(), kind);
            obj.modify(|b| {
                let devices = map_of(b, "devices");
                if devices.contains_key(&dev) {
                    return Err(CliError::msg(format!("The device already exists: {dev}")));
                }
                devices.insert(dev.clone(), serde_json::to_value(&conf)?);
                Ok(())
            })
            .await?;
            println!("Device {dev} added");
        }
        DeviceCmd::Remove { devices, .. } => {
            obj.modify(|b| {
                let m = map_of(b, "devices");
                for d in &devices {
                    if m.remove(d).is_none() {
                        return Err(CliError::msg(format!("Device doesn't exist: {d}")));
                    }
                }
                Ok(())
            })
            .await?;
            for d in devices {
                println!("Device {d} removed");
            }
        }
        DeviceCmd::List { .. } => {
            let (mut b, _) = obj.get().await?;
            for k in map_of(&mut b, "devices").keys() {
                println!("{k}");
            }
        }
        DeviceCmd::Show { .. } => {
            let (mut b, _) = obj.get().await?;
            print!("{}", to_yaml(map_of(&mut b, "devices"))?);
        }
        DeviceCmd::Get {
            device: dev, key, ..
        } => {
            let (mut b, _) = obj.get().await?;
            let d = device(&mut b, &dev)?;
            println!("{}", d.get(&key).and_then(|v| v.as_str()).unwrap_or(""));
        }
        DeviceCmd::Set {
            device: dev,
            settings: s,
            ..
        } => {
            let kv = settings(&s)?;
            obj.modify(|b| {
                let d = device(b, &dev)?;
                for (k, v) in kv {
                    d.insert(k, Value::String(v));
                }
                Ok(())
            })
            .await?;
        }
        DeviceCmd::Unset {
            device: dev, key, ..
        } => {
            obj.modify(|b| {
                device(b, &dev)?.remove(&key);
                Ok(())
            })
            .await?;
        }
    }
    Ok(0)
}

fn device_target(cmd: &DeviceCmd) -> &str {
    match cmd {
        DeviceCmd::Add { name, .. }
        | DeviceCmd::Remove { name, .. }
        | DeviceCmd::List { name }
        | DeviceCmd::Show { name }
        | DeviceCmd::Get { name, .. }
        | DeviceCmd::Set { name, .. }
        | DeviceCmd::Unset { name, .. } => name,
    }
}

/// `[instance] key`: the object (the server without an instance) and the key.
fn key_target(ctx: &Ctx, args: &[String]) -> Result<(Object, String), CliError> {
    match args {
        [key] => Ok((Object::server(ctx.client()?), key.clone())),
        [inst, key] => {
            let (c, n) = ctx.resolve(inst)?;
            Ok((Object::instance(c, n), key.clone()))
        }
        _ => Err(CliError::msg("Invalid number of arguments")),
    }
}

pub async fn run(ctx: &Ctx, cmd: ConfigCmd) -> Result<i32, CliError> {
    match cmd {
        ConfigCmd::Trust { cmd } => return super::trust::run(ctx, cmd).await,
        ConfigCmd::Get { args } => {
            let (obj, key) = key_target(ctx, &args)?;
            obj.get_key(&key).await?;
        }
        ConfigCmd::Set { args } => {
            // `set key=value...` / `set key value` address the server; otherwise the first
            // argument is the instance.
            let (obj, rest) =
                if args[0].contains('=') || (args.len() == 2 && !args[1].contains('=')) {
                    (Object::server(ctx.client()?), &args[..])
                } else {
                    let (c, n) = ctx.resolve(&args[0])?;
                    (Object::instance(c, n), &args[1..])
                };
            obj.set_keys(rest).await?;
        }
        ConfigCmd::Unset { args } => {
            let (obj, key) = key_target(ctx, &args)?;
            obj.unset_key(&key).await?;
        }
        ConfigCmd::Show { name, expanded } => match name {
            None => Object::server(ctx.client()?).show().await?,
            Some(n) => {
                let (c, n) = ctx.resolve(&n)?;
                if expanded {
                    let (inst, _) = c.instance(n).await?;
                    let mut out = Map::new();
                    out.insert("architecture".into(), json!(inst.put.architecture));
                    out.insert("config".into(), json!(inst.expanded_config));
                    out.insert("devices".into(), json!(inst.expanded_devices));
                    out.insert("ephemeral".into(), json!(inst.put.ephemeral));
                    out.insert("profiles".into(), json!(inst.put.profiles));
                    out.insert("description".into(), json!(inst.put.description));
                    print!("{}", to_yaml(&out)?);
                } else {
                    Object::instance(c, n).show().await?;
                }
            }
        },
        ConfigCmd::Edit { name } => match name {
            None => Object::server(ctx.client()?).edit().await?,
            Some(n) => {
                let (c, n) = ctx.resolve(&n)?;
                Object::instance(c, n).edit().await?;
            }
        },
        ConfigCmd::Device { cmd } => {
            let (c, n) = ctx.resolve(device_target(&cmd))?;
            return device_cmd(Object::instance(c, n), cmd).await;
        }
    }
    Ok(0)
}

/// `get`/`set`/`unset`/`edit` on the configuration of `obj`.
pub async fn key_cmd(obj: Object, cmd: KeyCmd) -> Result<i32, CliError> {
    match cmd {
        KeyCmd::Get { key, .. } => obj.get_key(&key).await?,
        KeyCmd::Set { settings, .. } => obj.set_keys(&settings).await?,
        KeyCmd::Unset { key, .. } => obj.unset_key(&key).await?,
        KeyCmd::Edit { .. } => obj.edit().await?,
    }
    Ok(0)
}

pub async fn profile(ctx: &Ctx, cmd: ProfileCmd) -> Result<i32, CliError> {
    match cmd {
        ProfileCmd::List { format } => {
            let c = ctx.client()?;
            let profiles: Vec<incus_core::api::Profile> =
                c.get("/1.0/profiles?recursion=1").await?;
            let rows = profiles
                .iter()
                .map(|p| {
                    vec![
                        p.name.clone(),
                        p.put.description.clone(),
                        p.used_by.len().to_string(),
                    ]
                })
                .collect();
            let header = ["NAME", "DESCRIPTION", "USED BY"].map(String::from);
            print!("{}", render(format, &header, rows, &profiles)?);
        }
        ProfileCmd::Show { name } => {
            let (c, n) = ctx.resolve(&name)?;
            let p: Value = c.get(&format!("/1.0/profiles/{}", escape(n))).await?;
            let mut out = Map::new();
            for f in ["config", "description", "devices", "name", "used_by"] {
                out.insert(f.into(), p.get(f).cloned().unwrap_or(Value::Null));
            }
            print!("{}", to_yaml(&out)?);
        }
        ProfileCmd::Create { name, description } => {
            let (c, n) = ctx.resolve(&name)?;
            c.send(
                "POST",
                "/1.0/profiles",
                &json!({"name": n, "description": description.unwrap_or_default()}),
                None,
            )
            .await?;
            println!("Profile {n} created");
        }
        ProfileCmd::Delete { names } => {
            for name in names {
                let (c, n) = ctx.resolve(&name)?;
                c.send_empty("DELETE", &format!("/1.0/profiles/{}", escape(n)))
                    .await?;
                println!("Profile {n} deleted");
            }
        }
        ProfileCmd::Rename { old, new } => {
            let (c, n) = ctx.resolve(&old)?;
            c.send(
                "POST",
                &format!("/1.0/profiles/{}", escape(n)),
                &json!({ "name": new }),
                None,
            )
            .await?;
            println!("Profile {n} renamed to {new}");
        }
        ProfileCmd::Keys(cmd) => {
            let (c, n) = ctx.resolve(cmd.name())?;
            return key_cmd(Object::profile(c, n), cmd).await;
        }
        ProfileCmd::Add { instance, profile } => {
            let (c, n) = ctx.resolve(&instance)?;
            Object::instance(c, n)
                .modify(|b| {
                    let mut list: Vec<String> =
                        serde_json::from_value(b.get("profiles").cloned().unwrap_or(json!([])))
                            .unwrap_or_default();
                    if list.contains(&profile) {
                        return Err(CliError::msg(format!(
                            "Profile {profile} is already applied"
                        )));
                    }
                    list.push(profile.clone());
                    b.insert("profiles".into(), json!(list));
                    Ok(())
                })
                .await?;
            println!("Profile {profile} added to {n}");
        }
        ProfileCmd::Remove { instance, profile } => {
            let (c, n) = ctx.resolve(&instance)?;
            Object::instance(c, n)
                .modify(|b| {
                    let mut list: Vec<String> =
                        serde_json::from_value(b.get("profiles").cloned().unwrap_or(json!([])))
                            .unwrap_or_default();
                    if !list.contains(&profile) {
                        return Err(CliError::msg(format!(
                            "Profile {profile} isn't currently applied to {n}"
                        )));
                    }
                    list.retain(|p| p != &profile);
                    b.insert("profiles".into(), json!(list));
                    Ok(())
                })
                .await?;
            println!("Profile {profile} removed from {n}");
        }
        ProfileCmd::Assign { instance, profiles } => {
            let (c, n) = ctx.resolve(&instance)?;
            let list: Vec<String> = profiles
                .split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            Object::instance(c, n)
                .modify(|b| {
                    b.insert("profiles".into(), json!(list));
                    Ok(())
                })
                .await?;
            println!("Profiles {profiles} applied to {n}");
        }
        ProfileCmd::Device { cmd } => {
            let (c, n) = ctx.resolve(device_target(&cmd))?;
            return device_cmd(Object::profile(c, n), cmd).await;
        }
    }
    Ok(0)
}
