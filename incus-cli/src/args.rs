//! The command tree, with Incus's command names, aliases and flags.

use crate::format::Format;
use clap::{Args, Parser, Subcommand};

/// Command line client for Incus.
#[derive(Debug, Parser)]
#[command(name = "incus", version, about = "Command line client for Incus")]
pub struct Cli {
    /// Override the source project.
    #[arg(long, global = true)]
    pub project: Option<String>,
    /// Don't show progress information.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Instance creation flags shared by `launch` and `init`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Image (`[remote:]alias` or fingerprint).
    pub image: String,
    /// Instance name (generated when absent).
    pub name: Option<String>,
    /// Config key/value to apply to the new instance.
    #[arg(short, long = "config")]
    pub config: Vec<String>,
    /// Profile to apply to the new instance.
    #[arg(short, long = "profile")]
    pub profile: Vec<String>,
    /// Create the instance with no profiles applied.
    #[arg(long)]
    pub no_profiles: bool,
    /// Ephemeral instance.
    #[arg(short, long)]
    pub ephemeral: bool,
    /// Storage pool name.
    #[arg(short, long)]
    pub storage: Option<String>,
    /// New key/value to apply to a specific device (`device,key=value`).
    #[arg(short, long = "device")]
    pub device: Vec<String>,
    /// Instance description.
    #[arg(long)]
    pub description: Option<String>,
    /// Create a virtual machine (not supported yet).
    #[arg(long)]
    pub vm: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create and start instances from images.
    Launch(CreateArgs),
    /// Create instances from images.
    #[command(alias = "init")]
    Create(CreateArgs),
    /// Start instances.
    Start {
        /// Instances.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop instances.
    Stop {
        /// Instances.
        #[arg(required = true)]
        names: Vec<String>,
        /// Force the instance to stop.
        #[arg(short, long)]
        force: bool,
        /// Time to wait for the instance to shut down cleanly.
        #[arg(long, default_value_t = -1)]
        timeout: i64,
    },
    /// Restart instances.
    Restart {
        /// Instances.
        #[arg(required = true)]
        names: Vec<String>,
        /// Force the instance to restart.
        #[arg(short, long)]
        force: bool,
        /// Time to wait for the instance to shut down cleanly.
        #[arg(long, default_value_t = -1)]
        timeout: i64,
    },
    /// Pause instances.
    #[command(alias = "freeze")]
    Pause {
        /// Instances.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Delete instances.
    #[command(alias = "rm")]
    Delete {
        /// Instances.
        #[arg(required = true)]
        names: Vec<String>,
        /// Force the removal of running instances.
        #[arg(short, long)]
        force: bool,
    },
    /// Rename instances.
    Rename {
        /// Current name.
        old: String,
        /// New name.
        new: String,
    },
    /// Move (rename) instances within a server, or to another storage pool.
    Move {
        /// Current name.
        old: String,
        /// New name.
        new: Option<String>,
        /// Storage pool to move the (stopped) instance to.
        #[arg(short, long)]
        storage: Option<String>,
        /// Move the instance without its snapshots.
        #[arg(long)]
        instance_only: bool,
    },
    /// Export instance backups.
    Export {
        /// Instance.
        name: String,
        /// The backup file to write (default `backup.tar.gz`).
        target: Option<String>,
        /// Leave the snapshots out.
        #[arg(long)]
        instance_only: bool,
        /// Compression: `gzip` (default), `none`, `xz` or `zstd`.
        #[arg(long)]
        compression: Option<String>,
        /// Native storage format (not supported yet: refused by the server).
        #[arg(long)]
        optimized_storage: bool,
    },
    /// Import instance backups.
    Import {
        /// The backup file.
        file: String,
        /// Name of the new instance (default: the name in the backup).
        name: Option<String>,
        /// Storage pool for the instance.
        #[arg(short, long)]
        storage: Option<String>,
    },
    /// Copy instances within a server.
    #[command(alias = "cp")]
    Copy {
        /// Source instance.
        source: String,
        /// New instance name.
        target: String,
        /// Copy the instance without its snapshots.
        #[arg(long)]
        instance_only: bool,
        /// Config key/value to apply to the new instance.
        #[arg(short, long = "config")]
        config: Vec<String>,
        /// Ephemeral copy.
        #[arg(short, long)]
        ephemeral: bool,
        /// Storage pool for the copy.
        #[arg(short, long)]
        storage: Option<String>,
    },
    /// List instances.
    #[command(alias = "ls")]
    List {
        /// Filters: a name prefix, or `key=value` (status, type, config keys).
        filters: Vec<String>,
        /// Columns.
        #[arg(short, long, default_value = "ns46tS")]
        columns: String,
        /// Format.
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        /// Display instances from all projects.
        #[arg(long)]
        all_projects: bool,
    },
    /// Show instance or server information.
    Info {
        /// Instance (the server when absent).
        name: Option<String>,
        /// Show the instance's last 100 log lines.
        #[arg(long)]
        show_log: bool,
        /// Show the resources available to the server.
        #[arg(long)]
        resources: bool,
    },
    /// Execute commands in instances.
    Exec {
        /// Instance.
        name: String,
        /// Command and arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
        /// Environment variable to set (`KEY=VALUE`).
        #[arg(long = "env")]
        env: Vec<String>,
        /// Directory to run the command in.
        #[arg(long)]
        cwd: Option<String>,
        /// User ID to run the command as.
        #[arg(long)]
        user: Option<u32>,
        /// Group ID to run the command as.
        #[arg(long)]
        group: Option<u32>,
        /// Force pseudo-terminal allocation.
        #[arg(short = 't', long)]
        force_interactive: bool,
        /// Disable pseudo-terminal allocation.
        #[arg(short = 'T', long)]
        force_noninteractive: bool,
    },
    /// Attach to instance consoles.
    Console {
        /// Instance.
        name: String,
        /// Retrieve the instance's console log.
        #[arg(long)]
        show_log: bool,
        /// Type of connection to establish: 'console' for serial console, 'vga' for SPICE
        /// graphical output.
        #[arg(short = 't', long = "type", default_value = "console")]
        kind: String,
    },
    /// Manage files in instances.
    File {
        /// The subcommand.
        #[command(subcommand)]
        cmd: FileCmd,
    },
    /// Manage instance snapshots.
    Snapshot {
        /// The subcommand.
        #[command(subcommand)]
        cmd: SnapshotCmd,
    },
    /// Manage instance and server configuration options.
    Config {
        /// The subcommand.
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Manage profiles.
    Profile {
        /// The subcommand.
        #[command(subcommand)]
        cmd: ProfileCmd,
    },
    /// Manage images.
    Image {
        /// The subcommand.
        #[command(subcommand)]
        cmd: ImageCmd,
    },
    /// Manage projects.
    Project {
        /// The subcommand.
        #[command(subcommand)]
        cmd: ProjectCmd,
    },
    /// Manage storage pools.
    Storage {
        /// The subcommand.
        #[command(subcommand)]
        cmd: StorageCmd,
    },
    /// Manage networks.
    Network {
        /// The subcommand.
        #[command(subcommand)]
        cmd: NetworkCmd,
    },
    /// List, show and delete background operations.
    Operation {
        /// The subcommand.
        #[command(subcommand)]
        cmd: OperationCmd,
    },
    /// Monitor a local or remote server (events as YAML).
    Monitor {
        /// Event type to listen for (`lifecycle`, `logging`, `operation`).
        #[arg(long = "type")]
        kinds: Vec<String>,
    },
    /// Send a raw query to the server.
    Query {
        /// API path (`/1.0/instances`).
        path: String,
        /// Action (GET, POST, PUT, PATCH, DELETE).
        #[arg(short = 'X', long = "request", default_value = "GET")]
        method: String,
        /// Input data.
        #[arg(short, long)]
        data: Option<String>,
        /// Wait for the operation to complete.
        #[arg(long)]
        wait: bool,
        /// Print the raw response.
        #[arg(long)]
        raw: bool,
    },
    /// Manage the list of remote servers.
    Remote {
        /// The subcommand.
        #[command(subcommand)]
        cmd: RemoteCmd,
    },
    /// Manage the daemon.
    Admin {
        /// The subcommand.
        #[command(subcommand)]
        cmd: AdminCmd,
    },
    /// Show local and remote versions.
    Version,
    /// Generate the shell completion script.
    Completion {
        /// Shell.
        shell: clap_complete::Shell,
    },
}

/// `incus file`.
#[derive(Debug, Subcommand)]
pub enum FileCmd {
    /// Push files into instances.
    Push {
        /// Sources, then the target (`instance/path`).
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
        /// Recursively transfer files.
        #[arg(short, long)]
        recursive: bool,
        /// Create any directories necessary.
        #[arg(short = 'p', long)]
        create_dirs: bool,
        /// Set the file's uid on push.
        #[arg(long)]
        uid: Option<u32>,
        /// Set the file's gid on push.
        #[arg(long)]
        gid: Option<u32>,
        /// Set the file's perms on push.
        #[arg(long)]
        mode: Option<String>,
    },
    /// Pull files from instances.
    Pull {
        /// Sources (`instance/path`), then the local target (`-` for stdout).
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
        /// Recursively transfer files.
        #[arg(short, long)]
        recursive: bool,
        /// Create any directories necessary.
        #[arg(short = 'p', long)]
        create_dirs: bool,
    },
    /// Delete files in instances.
    #[command(alias = "rm")]
    Delete {
        /// Paths (`instance/path`).
        #[arg(required = true)]
        paths: Vec<String>,
        /// Force deleting files, directories, and subdirectories.
        #[arg(short, long)]
        force: bool,
    },
    /// Create files and directories in instances.
    Create {
        /// Path (`instance/path`).
        path: String,
        /// Symlink target.
        target: Option<String>,
        /// The type to create (file, symlink, or directory).
        #[arg(long = "type", default_value = "file")]
        kind: String,
        /// Create any directories necessary.
        #[arg(short = 'p', long)]
        create_dirs: bool,
        /// Force creating files or directories.
        #[arg(short, long)]
        force: bool,
        /// Set the file's uid on create.
        #[arg(long)]
        uid: Option<u32>,
        /// Set the file's gid on create.
        #[arg(long)]
        gid: Option<u32>,
        /// Set the file's perms on create.
        #[arg(long)]
        mode: Option<String>,
    },
    /// Edit files in instances.
    Edit {
        /// Path (`instance/path`).
        path: String,
    },
}

/// `incus snapshot`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// Create instance snapshots.
    Create {
        /// Instance.
        name: String,
        /// Snapshot name (`snapN` when absent).
        snapshot: Option<String>,
    },
    /// List instance snapshots.
    #[command(alias = "ls")]
    List {
        /// Instance.
        name: String,
        /// Format.
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Restore instance snapshots.
    Restore {
        /// Instance.
        name: String,
        /// Snapshot.
        snapshot: String,
    },
    /// Rename instance snapshots.
    Rename {
        /// Instance.
        name: String,
        /// Current name.
        old: String,
        /// New name.
        new: String,
    },
    /// Delete instance snapshots.
    #[command(alias = "rm")]
    Delete {
        /// Instance.
        name: String,
        /// Snapshot.
        snapshot: String,
    },
    /// Show instance snapshot configuration.
    Show {
        /// Instance.
        name: String,
        /// Snapshot.
        snapshot: String,
    },
}

/// `incus config`.
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Get values for instance or server configuration keys.
    Get {
        /// `[instance] key`.
        #[arg(required = true, num_args = 1..=2)]
        args: Vec<String>,
    },
    /// Set instance or server configuration keys.
    Set {
        /// `[instance] key value` or `[instance] key=value...`.
        #[arg(required = true, num_args = 1..)]
        args: Vec<String>,
    },
    /// Unset instance or server configuration keys.
    Unset {
        /// `[instance] key`.
        #[arg(required = true, num_args = 1..=2)]
        args: Vec<String>,
    },
    /// Show instance or server configurations.
    Show {
        /// Instance (the server when absent).
        name: Option<String>,
        /// Show the expanded configuration.
        #[arg(short, long)]
        expanded: bool,
    },
    /// Edit instance or server configurations as YAML.
    Edit {
        /// Instance (the server when absent).
        name: Option<String>,
    },
    /// Manage devices.
    Device {
        /// The subcommand.
        #[command(subcommand)]
        cmd: DeviceCmd,
    },
    /// Manage trusted clients.
    Trust {
        /// The subcommand.
        #[command(subcommand)]
        cmd: TrustCmd,
    },
}

/// `incus config trust`.
#[derive(Debug, Subcommand)]
pub enum TrustCmd {
    /// Add new trusted client: issues a single-use token for `incus remote add`.
    Add {
        /// `[<remote>:]<name>`.
        name: String,
        /// Restrict the certificate to one or more projects.
        #[arg(long)]
        restricted: bool,
        /// List of projects to restrict the certificate to (comma-separated).
        #[arg(long)]
        projects: Option<String>,
    },
    /// Add new trusted client certificate.
    AddCertificate {
        /// `[<remote>:]<cert>`: a PEM file.
        cert: String,
        /// Alternative certificate name.
        #[arg(long)]
        name: Option<String>,
        /// Certificate type (client or metrics).
        #[arg(long = "type", default_value = "client")]
        kind: String,
        /// Restrict the certificate to one or more projects.
        #[arg(long)]
        restricted: bool,
        /// List of projects to restrict the certificate to (comma-separated).
        #[arg(long)]
        projects: Option<String>,
        /// Certificate description.
        #[arg(long)]
        description: Option<String>,
    },
    /// List trusted clients.
    #[command(alias = "ls")]
    List {
        /// `[<remote>:]`.
        remote: Option<String>,
        /// Format.
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        /// Columns (`n` name, `t` type, `c` common name, `f` fingerprint, `d` description,
        /// `i` issue date, `e` expiry date, `r` restricted, `p` projects).
        #[arg(short, long, default_value = "ntdfe")]
        columns: String,
    },
    /// List all active certificate add tokens.
    ListTokens {
        /// `[<remote>:]`.
        remote: Option<String>,
        /// Format.
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Remove trusted client.
    #[command(aliases = ["rm", "delete"])]
    Remove {
        /// `[<remote>:]<fingerprint>`.
        fingerprint: String,
    },
    /// Revoke certificate add token.
    RevokeToken {
        /// `[<remote>:]<name>`.
        name: String,
    },
    /// Show trust configurations.
    Show {
        /// `[<remote>:]<fingerprint>`.
        fingerprint: String,
    },
    /// Edit trust configurations as YAML.
    Edit {
        /// `[<remote>:]<fingerprint>`.
        fingerprint: String,
    },
}

/// `incus config device` and `incus profile device`.
#[derive(Debug, Subcommand)]
pub enum DeviceCmd {
    /// Add devices.
    Add {
        /// Instance or profile.
        name: String,
        /// Device name.
        device: String,
        /// Device type.
        kind: String,
        /// `key=value` settings.
        settings: Vec<String>,
    },
    /// Remove devices.
    #[command(alias = "rm")]
    Remove {
        /// Instance or profile.
        name: String,
        /// Device names.
        #[arg(required = true)]
        devices: Vec<String>,
    },
    /// List devices.
    #[command(alias = "ls")]
    List {
        /// Instance or profile.
        name: String,
    },
    /// Show full device configuration.
    Show {
        /// Instance or profile.
        name: String,
    },
    /// Get values for device configuration keys.
    Get {
        /// Instance or profile.
        name: String,
        /// Device.
        device: String,
        /// Key.
        key: String,
    },
    /// Set device configuration keys.
    Set {
        /// Instance or profile.
        name: String,
        /// Device.
        device: String,
        /// `key value` or `key=value...`.
        #[arg(required = true)]
        settings: Vec<String>,
    },
    /// Unset device configuration keys.
    Unset {
        /// Instance or profile.
        name: String,
        /// Device.
        device: String,
        /// Key.
        key: String,
    },
}

/// The configuration-key subcommands shared by profiles, projects and storage pools.
#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Get values for configuration keys.
    Get {
        /// Name.
        name: String,
        /// Key.
        key: String,
    },
    /// Set configuration keys.
    Set {
        /// Name.
        name: String,
        /// `key value` or `key=value...`.
        #[arg(required = true)]
        settings: Vec<String>,
    },
    /// Unset configuration keys.
    Unset {
        /// Name.
        name: String,
        /// Key.
        key: String,
    },
    /// Edit configurations as YAML.
    Edit {
        /// Name.
        name: String,
    },
}

impl KeyCmd {
    /// The object the subcommand addresses.
    pub fn name(&self) -> &str {
        match self {
            KeyCmd::Get { name, .. }
            | KeyCmd::Set { name, .. }
            | KeyCmd::Unset { name, .. }
            | KeyCmd::Edit { name } => name,
        }
    }
}

/// `incus profile`.
#[derive(Debug, Subcommand)]
pub enum ProfileCmd {
    /// List profiles.
    #[command(alias = "ls")]
    List {
        /// Format.
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Show profile configurations.
    Show {
        /// Profile.
        name: String,
    },
    /// Create profiles.
    Create {
        /// Profile.
        name: String,
        /// Description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete profiles.
    #[command(alias = "rm")]
    Delete {
        /// Profiles.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Rename profiles.
    Rename {
        /// Current name.
        old: String,
        /// New name.
        new: String,
    },
    /// Add profiles to instances.
    Add {
        /// Instance.
        instance: String,
        /// Profile.
        profile: String,
    },
    /// Remove profiles from instances.
    Remove {
        /// Instance.
        instance: String,
        /// Profile.
        profile: String,
    },
    /// Assign sets of profiles to instances (comma-separated).
    #[command(alias = "apply")]
    Assign {
        /// Instance.
        instance: String,
        /// Profiles, comma-separated.
        profiles: String,
    },
    /// Manage devices.
    Device {
        /// The subcommand.
        #[command(subcommand)]
        cmd: DeviceCmd,
    },
    /// Get, set, unset and edit configuration keys.
    #[command(flatten)]
    Keys(KeyCmd),
}

/// `incus image`.
#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Import images into the image store.
    Import {
        /// Tarball (unified), or metadata tarball followed by the rootfs (split).
        #[arg(required = true, num_args = 1..=2)]
        files: Vec<String>,
        /// New aliases to add to the image.
        #[arg(long)]
        alias: Vec<String>,
        /// Make the image public.
        #[arg(long)]
        public: bool,
    },
    /// List images.
    #[command(alias = "ls")]
    List {
        /// `[<remote>:]` first, then filters: an alias or fingerprint prefix, or
        /// `key=value` on the image's properties.
        filters: Vec<String>,
        /// Columns (`l` alias, `L` all aliases, `f` short fingerprint, `F` fingerprint,
        /// `p` public, `d` description, `a` architecture, `t` type, `s` size,
        /// `u` upload date).
        #[arg(short, long, default_value = "lfpdatsu")]
        columns: String,
        /// Format.
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Show useful information about images.
    Info {
        /// Image.
        image: String,
    },
    /// Show image properties.
    Show {
        /// Image.
        image: String,
    },
    /// Edit image properties as YAML.
    Edit {
        /// Image.
        image: String,
    },
    /// Delete images.
    #[command(alias = "rm")]
    Delete {
        /// Images.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Export and download images.
    Export {
        /// Image.
        image: String,
        /// Target directory or file name (the current directory when absent).
        target: Option<String>,
    },
    /// Manage image aliases.
    Alias {
        /// The subcommand.
        #[command(subcommand)]
        cmd: AliasCmd,
    },
}

/// `incus image alias`.
#[derive(Debug, Subcommand)]
pub enum AliasCmd {
    /// Create aliases for existing images.
    Create {
        /// Alias.
        alias: String,
        /// Image fingerprint.
        fingerprint: String,
    },
    /// Delete image aliases.
    #[command(alias = "rm")]
    Delete {
        /// Alias.
        alias: String,
    },
    /// List image aliases.
    #[command(alias = "ls")]
    List {
        /// Format.
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
    },
}

/// `incus project`.
#[derive(Debug, Subcommand)]
pub enum ProjectCmd {
    /// List projects.
    #[command(alias = "ls")]
    List {
        /// Format.
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Create projects.
    Create {
        /// Project.
        name: String,
        /// Config key/value to apply to the new project.
        #[arg(short, long = "config")]
        config: Vec<String>,
    },
    /// Delete projects.
    #[command(alias = "rm")]
    Delete {
        /// Projects.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show project options.
    Show {
        /// Project.
        name: String,
    },
    /// Switch the current project.
    Switch {
        /// Project.
        name: String,
    },
    /// Rename projects (empty ones).
    Rename {
        /// Current name.
        old: String,
        /// New name.
        new: String,
    },
    /// Get, set, unset and edit configuration keys.
    #[command(flatten)]
    Keys(KeyCmd),
}

/// `incus storage`.
#[derive(Debug, Subcommand)]
pub enum StorageCmd {
    /// List available storage pools.
    #[command(alias = "ls")]
    List {
        /// Format.
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Show storage pool configurations.
    Show {
        /// Pool.
        name: String,
    },
    /// Show useful information about storage pools.
    Info {
        /// Pool.
        name: String,
        /// Show the used and free space in bytes.
        #[arg(long)]
        bytes: bool,
    },
    /// Create storage pools.
    Create {
        /// Pool.
        name: String,
        /// Driver (`dir`).
        driver: String,
        /// `key=value` configuration.
        config: Vec<String>,
    },
    /// Delete storage pools.
    #[command(alias = "rm")]
    Delete {
        /// Pool.
        name: String,
    },
    /// Manage storage volumes.
    Volume {
        /// The subcommand.
        #[command(subcommand)]
        cmd: VolumeCmd,
    },
    /// Get, set, unset and edit configuration keys.
    #[command(flatten)]
    Keys(KeyCmd),
}

/// `incus storage volume`.
#[derive(Debug, Subcommand)]
pub enum VolumeCmd {
    /// Export custom storage volumes.
    Export {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
        /// The backup file to write (default `backup.tar.gz`).
        target: Option<String>,
        /// Leave the snapshots out.
        #[arg(long)]
        volume_only: bool,
        /// Compression: `gzip` (default), `none`, `xz` or `zstd`.
        #[arg(long)]
        compression: Option<String>,
        /// Native storage format (not supported yet: refused by the server).
        #[arg(long)]
        optimized_storage: bool,
    },
    /// Import custom storage volumes.
    Import {
        /// Pool.
        pool: String,
        /// The backup file.
        file: String,
        /// Name of the new volume (default: the name in the backup).
        name: Option<String>,
    },
    /// List storage volumes.
    #[command(alias = "ls")]
    List {
        /// Pool.
        pool: String,
        /// Format.
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Show storage volume configurations.
    Show {
        /// Pool.
        pool: String,
        /// Volume (`[<type>/]<name>[/<snapshot>]`; the type defaults to `custom`).
        volume: String,
    },
    /// Show storage volume state information.
    Info {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
    },
    /// Create new custom storage volumes.
    Create {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
        /// `key=value` configuration.
        config: Vec<String>,
        /// Content type (`filesystem`; `block` needs virtual machines, not supported yet).
        #[arg(long = "type", default_value = "filesystem")]
        content_type: String,
        /// Volume description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete custom storage volumes.
    #[command(alias = "rm")]
    Delete {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
    },
    /// Get values for storage volume configuration keys.
    Get {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
        /// Key.
        key: String,
    },
    /// Set storage volume configuration keys.
    Set {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
        /// `key value` or `key=value...`.
        #[arg(required = true)]
        settings: Vec<String>,
    },
    /// Unset storage volume configuration keys.
    Unset {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
        /// Key.
        key: String,
    },
    /// Edit storage volume configurations as YAML.
    Edit {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
    },
    /// Rename custom storage volumes.
    Rename {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
        /// New name.
        new_name: String,
    },
    /// Copy custom storage volumes (`<pool>/<volume> <pool>/<volume>`).
    Copy {
        /// Source `<pool>/<volume>`.
        source: String,
        /// Target `<pool>/<volume>`.
        target: String,
        /// Copy without snapshots.
        #[arg(long)]
        volume_only: bool,
        /// Copy to another project.
        #[arg(long)]
        target_project: Option<String>,
    },
    /// Move custom storage volumes between pools (`<pool>/<volume> <pool>/<volume>`).
    #[command(alias = "mv")]
    Move {
        /// Source `<pool>/<volume>`.
        source: String,
        /// Target `<pool>/<volume>`.
        target: String,
        /// Move to another project.
        #[arg(long)]
        target_project: Option<String>,
    },
    /// Attach new custom storage volumes to instances (`<pool> <volume> <instance>
    /// [<device name>] <path>`).
    Attach {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
        /// Instance.
        instance: String,
        /// `[<device name>] <path>`.
        #[arg(num_args = 1..=2, required = true)]
        rest: Vec<String>,
    },
    /// Attach new custom storage volumes to profiles.
    AttachProfile {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
        /// Profile.
        profile: String,
        /// `[<device name>] <path>`.
        #[arg(num_args = 1..=2, required = true)]
        rest: Vec<String>,
    },
    /// Detach custom storage volumes from instances.
    Detach {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
        /// Instance.
        instance: String,
        /// Device name (found from the volume when absent).
        device: Option<String>,
    },
    /// Detach custom storage volumes from profiles.
    DetachProfile {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
        /// Profile.
        profile: String,
        /// Device name (found from the volume when absent).
        device: Option<String>,
    },
    /// Manage storage volume snapshots.
    Snapshot {
        /// The subcommand.
        #[command(subcommand)]
        cmd: VolumeSnapshotCmd,
    },
}

/// `incus storage volume snapshot`.
#[derive(Debug, Subcommand)]
pub enum VolumeSnapshotCmd {
    /// Snapshot storage volumes.
    Create {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
        /// Snapshot name (from `snapshots.pattern`, else `snapN`, when absent).
        snapshot: Option<String>,
        /// Expiry (`2d 4H`); `snapshots.expiry` when absent.
        #[arg(long)]
        expiry: Option<String>,
        /// Create without an expiry.
        #[arg(long)]
        no_expiry: bool,
    },
    /// List storage volume snapshots.
    #[command(alias = "ls")]
    List {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
        /// Format.
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Delete storage volume snapshots.
    #[command(alias = "rm")]
    Delete {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
        /// Snapshot.
        snapshot: String,
    },
    /// Rename storage volume snapshots.
    Rename {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
        /// Snapshot.
        snapshot: String,
        /// New name.
        new_name: String,
    },
    /// Restore storage volume snapshots.
    Restore {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
        /// Snapshot.
        snapshot: String,
    },
    /// Show storage volume snapshot configurations.
    Show {
        /// Pool.
        pool: String,
        /// Volume.
        volume: String,
        /// Snapshot.
        snapshot: String,
    },
}

/// `incus network`.
#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// List available networks.
    #[command(alias = "ls")]
    List {
        /// Format.
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Show network configurations.
    Show {
        /// Network (`[<remote>:]<network>`).
        name: String,
    },
    /// Create new networks (`key=value` settings; YAML on stdin when it is not a terminal).
    Create {
        /// Network (`[<remote>:]<network>`).
        name: String,
        /// `key=value` configuration.
        config: Vec<String>,
        /// Network type (`bridge`, `macvlan`); the server's default is `bridge`.
        #[arg(short = 't', long = "type", default_value = "")]
        kind: String,
    },
    /// Delete networks.
    #[command(alias = "rm")]
    Delete {
        /// Network.
        name: String,
    },
    /// Rename networks.
    #[command(alias = "mv")]
    Rename {
        /// Network.
        name: String,
        /// New name.
        new_name: String,
    },
    /// Get runtime information on networks.
    Info {
        /// Network.
        name: String,
    },
    /// List DHCP leases.
    ListLeases {
        /// Network.
        name: String,
        /// Format.
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Attach network interfaces to instances.
    Attach {
        /// Network.
        network: String,
        /// Instance.
        instance: String,
        /// Device name (default: the network's name).
        device: Option<String>,
        /// Interface name inside the instance.
        interface: Option<String>,
    },
    /// Attach network interfaces to profiles.
    AttachProfile {
        /// Network.
        network: String,
        /// Profile.
        profile: String,
        /// Device name (default: the network's name).
        device: Option<String>,
        /// Interface name inside the instance.
        interface: Option<String>,
    },
    /// Detach network interfaces from instances.
    Detach {
        /// Network.
        network: String,
        /// Instance.
        instance: String,
        /// Device name (default: the one nic on this network).
        device: Option<String>,
    },
    /// Detach network interfaces from profiles.
    DetachProfile {
        /// Network.
        network: String,
        /// Profile.
        profile: String,
        /// Device name (default: the one nic on this network).
        device: Option<String>,
    },
    /// Get, set, unset and edit configuration keys.
    #[command(flatten)]
    Keys(KeyCmd),
}

/// `incus operation`.
#[derive(Debug, Subcommand)]
pub enum OperationCmd {
    /// List background operations.
    #[command(alias = "ls")]
    List {
        /// Format.
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Show details on a background operation.
    Show {
        /// Operation id.
        id: String,
    },
    /// Delete (cancel) a background operation.
    #[command(alias = "rm")]
    Delete {
        /// Operation id.
        id: String,
    },
}

/// `incus remote`.
#[derive(Debug, Subcommand)]
pub enum RemoteCmd {
    /// List the available remotes.
    #[command(alias = "ls")]
    List {
        /// Format.
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Add new remote servers: `[<remote>] <IP|FQDN|URL|token>` (HTTPS servers, whose
    /// certificate is pinned, or unix sockets `unix:///path/to/unix.socket`).
    Add {
        /// Name (or, alone, the address; then it names the remote too).
        name: String,
        /// Address: `https://host[:port]`, `host[:port]`, `unix:///path`, or a trust token.
        addr: Option<String>,
        /// Accept certificate.
        #[arg(long)]
        accept_certificate: bool,
        /// Remote trust token.
        #[arg(long)]
        token: Option<String>,
        /// Public image server.
        #[arg(long)]
        public: bool,
        /// Server protocol (incus).
        #[arg(long, default_value = "incus")]
        protocol: String,
        /// Server authentication type (tls). The project to use for the remote is the
        /// global `--project`.
        #[arg(long)]
        auth_type: Option<String>,
    },
    /// Generate the client certificate.
    GenerateCertificate,
    /// Remove remotes.
    #[command(aliases = ["rm", "delete"])]
    Remove {
        /// Name.
        name: String,
    },
    /// Rename remotes.
    #[command(alias = "mv")]
    Rename {
        /// Current name.
        name: String,
        /// New name.
        new_name: String,
    },
    /// Switch the default remote.
    #[command(alias = "set-default")]
    Switch {
        /// Name.
        name: String,
    },
    /// Show the default remote.
    GetDefault,
    /// Set the URL for the remote.
    #[command(alias = "set-urls")]
    SetUrl {
        /// Name.
        name: String,
        /// New address.
        url: String,
    },
}

/// `incus admin`.
#[derive(Debug, Subcommand)]
pub enum AdminCmd {
    /// Configure the daemon.
    Init {
        /// Automatic (non-interactive) mode.
        #[arg(long)]
        auto: bool,
        /// Pre-seed mode, expects YAML config from stdin.
        #[arg(long)]
        preseed: bool,
        /// Storage backend to use (`dir`).
        #[arg(long)]
        storage_backend: Option<String>,
        /// Address to bind to (default: none): sets `core.https_address`.
        #[arg(long)]
        network_address: Option<String>,
        /// Port to bind to (default: 8443).
        #[arg(long)]
        network_port: Option<u16>,
    },
    /// Wait for the daemon to be ready to process requests.
    Waitready {
        /// Number of seconds to wait before giving up.
        #[arg(short, long, default_value_t = 0)]
        timeout: u64,
    },
}
