//! Managed bridge networks, driven with the unmodified `incus` 6.0.4 client against our
//! `incusd` running inside a network namespace this test creates (`ip netns exec`), so the
//! bridge, its nftables table and its dnsmasq exist only there: nothing reaches the host's
//! interfaces or ruleset, and the namespace has no route out. Runs with
//! `INCUS_TEST_PRIVILEGED=1` (as root).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    conf: tempfile::TempDir,
    ns: String,
}

fn sh(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().expect("run command")
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Containers it left running, then the dnsmasq of every network it made.
        common::stop_leftover_containers(self.dir.path(), &["ip", "netns", "exec", &self.ns]);
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("networks")) {
            for e in entries.flatten() {
                if let Some(pid) = incus_network::dnsmasq::running(&e.path()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = sh("ip", &["netns", "del", &self.ns]);
    }
}

impl Daemon {
    fn start(test: &str) -> Daemon {
        let ns = format!("inct{}{test}", std::process::id());
        let _ = sh("ip", &["netns", "del", &ns]);
        assert!(
            sh("ip", &["netns", "add", &ns]).status.success(),
            "ip netns add"
        );
        assert!(
            sh("ip", &["-n", &ns, "link", "set", "lo", "up"])
                .status
                .success()
        );
        let dir = tempfile::Builder::new()
            .prefix("incusd-test-")
            .tempdir()
            .expect("tempdir");
        let conf = tempfile::tempdir().expect("tempdir");
        let mut d = Daemon {
            child: None,
            dir,
            conf,
            ns,
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.dir.path().join("unix.socket"));
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(env!("CARGO_BIN_EXE_incusd"))
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("start incusd");
        self.child = Some(child);
        for _ in 0..400 {
            if self.dir.path().join("unix.socket").exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("incusd did not create its socket");
    }

    fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
        self.spawn();
    }

    fn incus(&self, args: &[&str]) -> Output {
        common::incus(self.dir.path(), self.conf.path(), args, b"")
    }

    fn ok(&self, args: &[&str]) -> String {
        common::succeeded(args, self.incus(args))
    }

    /// Runs our own CLI (not the real client) with `stdin`.
    fn ours(&self, args: &[&str], stdin: &[u8]) -> Output {
        common::run_client(
            &common::our_cli(),
            self.dir.path(),
            self.conf.path(),
            args,
            stdin,
        )
    }

    fn ours_ok(&self, args: &[&str]) -> String {
        common::succeeded(args, self.ours(args, b""))
    }

    fn fails(&self, args: &[&str]) -> String {
        common::failed(args, self.incus(args))
    }

    /// Gets a DHCP lease on `nic` of `container` with busybox's udhcpc (through our CLI when
    /// `ours`, else the real client); the lease lands in the container's `/tmp/lease`.
    fn dhcp(&self, container: &str, nic: &str, ours: bool) {
        let run = |args: &[&str]| {
            if ours {
                self.ours_ok(args)
            } else {
                self.ok(args)
            }
        };
        let script = self.dir.path().join("dhcp.sh");
        std::fs::write(&script, DHCP_SCRIPT).expect("write");
        let target = format!("{container}/tmp/dhcp.sh");
        let path = script.to_str().expect("path");
        run(&["file", "push", "--mode=0755", path, &target]);
        run(&[
            "exec",
            container,
            "--",
            "udhcpc",
            "-i",
            nic,
            "-n",
            "-q",
            "-t",
            "10",
            "-s",
            "/tmp/dhcp.sh",
        ]);
    }

    /// Imports the busybox test image from `images` as `busybox` (through our CLI when
    /// `ours`).
    fn import_busybox(&self, images: &Path, ours: bool) {
        let path = images.join("busybox.tar.xz");
        let args = [
            "image",
            "import",
            path.to_str().expect("path"),
            "--alias",
            "busybox",
        ];
        if ours {
            self.ours_ok(&args);
        } else {
            self.ok(&args);
        }
    }

    /// Runs a command inside the test's network namespace.
    fn in_ns(&self, args: &[&str]) -> String {
        let mut full = vec!["netns", "exec", &self.ns];
        full.extend_from_slice(args);
        let out = sh("ip", &full);
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// Pings `addr` once from inside `container`; fails the test when no answer comes.
    fn ping_from(&self, container: &str, addr: &str) {
        self.ok(&["exec", container, "--", "ping", "-c", "1", "-W", "3", addr]);
    }

    /// Polls `f` for up to `secs` seconds.
    fn wait_for(&self, secs: u64, what: &str, f: impl Fn() -> bool) {
        for _ in 0..secs * 10 {
            if f() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}");
    }
}

fn image_dir(test: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("incusd-test-images-{}-{test}", std::process::id()));
    incus_tests::build_busybox_images(&dir);
    dir
}

const DHCP_SCRIPT: &str = "#!/bin/sh\ncase \"$1\" in\n  bound|renew)\n    ip addr flush dev \"$interface\" scope global\n    ip addr add \"$ip/$mask\" dev \"$interface\"\n    [ -n \"$router\" ] && ip route replace default via \"${router%% *}\" dev \"$interface\"\n    echo \"$ip $router $dns $domain\" > /tmp/lease ;;\nesac\n";

#[test]
fn bridge_network_with_dhcp_dns_nat_and_cleanup() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED bridge_network: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    for tool in ["incus", "dnsmasq", "nft", "ip"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} is missing: run tests/install-deps.sh"
        );
    }
    let images = image_dir("net");
    let mut d = Daemon::start("br");
    d.import_busybox(&images, false);

    // Bad input is refused and leaves nothing behind.
    for bad in [
        vec!["network", "create", "tbad", "ipv4.address=10.201.7.0/24"],
        vec!["network", "create", "tbad", "ipv4.address=10.201.7.1"],
        vec!["network", "create", "tbad", "bogus.key=1"],
        vec!["network", "create", "tbad", "ipv4.nat=perhaps"],
        vec!["network", "create", "a-name-too-long-for-linux"],
    ] {
        d.fails(&bad);
    }
    assert!(!d.ok(&["network", "list", "-f", "csv"]).contains("tbad"));
    assert!(!d.in_ns(&["ip", "link"]).contains("tbad"));

    // A bridge with explicit addresses.
    d.ok(&[
        "network",
        "create",
        "tnet",
        "ipv4.address=10.201.7.1/24",
        "ipv4.nat=true",
        "ipv6.address=fd42:7:7:7::1/64",
        "dns.domain=lab.test",
    ]);
    // An overlapping subnet is refused.
    let err = d.fails(&["network", "create", "tover", "ipv4.address=10.201.7.9/16"]);
    assert!(err.to_lowercase().contains("overlap"), "{err}");
    // `auto` addresses are picked, stored and NAT turned on, as Incus does.
    d.ok(&["network", "create", "tauto"]);
    let auto = d.ok(&["network", "get", "tauto", "ipv4.address"]);
    assert!(
        auto.trim().starts_with("10.") && auto.trim().ends_with(".1/24"),
        "{auto}"
    );
    assert!(
        d.ok(&["network", "get", "tauto", "ipv6.address"])
            .starts_with("fd42:")
    );
    assert_eq!(
        d.ok(&["network", "get", "tauto", "ipv4.nat"]).trim(),
        "true"
    );
    d.ok(&["network", "delete", "tauto"]);

    let addrs = d.in_ns(&["ip", "-br", "addr", "show", "tnet"]);
    assert!(
        addrs.contains("10.201.7.1/24") && addrs.contains("fd42:7:7:7::1/64"),
        "{addrs}"
    );
    let table = d.in_ns(&["nft", "list", "table", "inet", "incus_tnet"]);
    assert!(table.contains("masquerade"), "{table}");
    // Nothing of it in the host's own namespace.
    assert!(
        !String::from_utf8_lossy(&sh("nft", &["list", "tables"]).stdout).contains("incus_tnet")
    );
    assert!(!Path::new("/sys/class/net/tnet").exists());
    let list = d.ok(&["network", "list", "-f", "csv"]);
    assert!(list.contains("tnet,bridge,YES"), "{list}");

    // Two containers: c1 by DHCP, c2 with a static address.
    d.ok(&["init", "busybox", "c1"]);
    d.ok(&[
        "config",
        "device",
        "add",
        "c1",
        "eth0",
        "nic",
        "network=tnet",
    ]);
    d.ok(&["init", "busybox", "c2"]);
    d.ok(&[
        "config",
        "device",
        "add",
        "c2",
        "eth0",
        "nic",
        "network=tnet",
        "ipv4.address=10.201.7.50",
    ]);
    d.ok(&["start", "c1", "c2"]);
    let mac = d.ok(&["config", "get", "c1", "volatile.eth0.hwaddr"]);
    assert!(mac.starts_with("00:16:3e:"), "{mac}");
    for c in ["c1", "c2"] {
        d.dhcp(c, "eth0", false);
    }
    let lease1 = d.ok(&["exec", "c1", "--", "cat", "/tmp/lease"]);
    assert!(
        lease1.starts_with("10.201.7.") && lease1.contains("10.201.7.1"),
        "{lease1}"
    );
    let lease2 = d.ok(&["exec", "c2", "--", "cat", "/tmp/lease"]);
    assert!(lease2.starts_with("10.201.7.50 "), "{lease2}");
    assert!(lease2.contains("lab.test"), "{lease2}");
    // The bridge answers, and the other container resolves by name.
    d.ping_from("c1", "10.201.7.1");
    d.ping_from("c1", "10.201.7.50");
    let lookup = d.ok(&["exec", "c1", "--", "nslookup", "c2.lab.test", "10.201.7.1"]);
    assert!(lookup.contains("10.201.7.50"), "{lookup}");
    // IPv6 by router advertisement (SLAAC), seen from inside the container.
    d.wait_for(20, "an IPv6 address on c1", || {
        d.ok(&["list", "c1", "-f", "csv", "-c", "6"])
            .contains("fd42:7:7:7:")
    });
    let ipv4 = d.ok(&["list", "c1", "-f", "csv", "-c", "4"]);
    assert!(
        ipv4.contains("10.201.7.") && ipv4.contains("(eth0)"),
        "{ipv4}"
    );

    let leases = d.ok(&["network", "list-leases", "tnet", "-f", "csv"]);
    assert!(leases.contains("c1,") && leases.contains("c2,"), "{leases}");
    assert!(leases.contains("10.201.7.50,STATIC"), "{leases}");
    let info = d.ok(&["network", "info", "tnet"]);
    assert!(info.contains("10.201.7.1/24"), "{info}");
    let shown = d.ok(&["network", "show", "tnet"]);
    assert!(
        shown.contains("/1.0/instances/c1") && shown.contains("/1.0/instances/c2"),
        "{shown}"
    );
    let err = d.fails(&["network", "delete", "tnet"]);
    assert!(err.contains("in use"), "{err}");

    // Live config change: NAT off.
    d.ok(&["network", "set", "tnet", "ipv4.nat", "false"]);
    let table = d.in_ns(&["nft", "list", "table", "inet", "incus_tnet"]);
    assert!(!table.contains("ip saddr 10.201.7.0/24"), "{table}");
    d.ping_from("c1", "10.201.7.1");

    // The network comes back after a daemon restart, with the same MAC on the nic.
    d.ok(&["stop", "c1", "c2", "--force"]);
    d.restart();
    assert!(
        d.in_ns(&["ip", "-br", "addr", "show", "tnet"])
            .contains("10.201.7.1/24")
    );
    d.ok(&["start", "c1"]);
    assert_eq!(d.ok(&["config", "get", "c1", "volatile.eth0.hwaddr"]), mac);
    d.ok(&["stop", "c1", "--force"]);

    // Delete: no interface, table or dnsmasq left.
    d.ok(&["delete", "c1", "c2"]);
    let state_dir = d.dir.path().join("networks/tnet");
    let dnsmasq = incus_network::dnsmasq::running(&state_dir).expect("dnsmasq runs");
    d.ok(&["network", "delete", "tnet"]);
    assert!(!d.in_ns(&["ip", "link"]).contains("tnet"));
    assert!(!d.in_ns(&["nft", "list", "tables"]).contains("incus_tnet"));
    // Gone, or a zombie waiting for init to reap it (an empty command line).
    d.wait_for(5, "dnsmasq to exit", || {
        std::fs::read(format!("/proc/{dnsmasq}/cmdline")).map_or(true, |c| c.is_empty())
    });
    assert!(!state_dir.exists());
    let _ = std::fs::remove_dir_all(&images);
}

/// Our own `incus network` commands against our daemon (the test above drives the same
/// daemon features with the real client).
#[test]
fn our_cli_network_commands() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED our_cli_network_commands: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    let images = image_dir("cli");
    let d = Daemon::start("cli");
    d.import_busybox(&images, true);

    // create: key=value arguments, and YAML on stdin.
    let out = d.ours_ok(&[
        "network",
        "create",
        "tcli",
        "--type",
        "bridge",
        "ipv4.address=10.202.8.1/24",
        "ipv6.address=none",
    ]);
    assert_eq!(out, "Network tcli created\n");
    let yaml =
        b"description: from yaml\nconfig:\n  ipv4.address: 10.202.9.1/24\n  ipv6.address: none\n";
    common::succeeded(
        &["network", "create"],
        d.ours(&["network", "create", "tyaml"], yaml),
    );
    let shown = d.ours_ok(&["network", "show", "tyaml"]);
    assert!(
        shown.contains("description: from yaml") && shown.contains("10.202.9.1/24"),
        "{shown}"
    );
    let list = d.ours_ok(&["network", "list", "-f", "csv"]);
    assert!(
        list.contains("tcli,bridge,YES,10.202.8.1/24,none,,0,CREATED"),
        "{list}"
    );
    assert!(list.contains("lo,loopback,NO,"), "{list}");

    // get, set (both forms), unset, edit.
    assert_eq!(
        d.ours_ok(&["network", "get", "tcli", "ipv4.address"]),
        "10.202.8.1/24\n"
    );
    d.ours_ok(&[
        "network",
        "set",
        "tcli",
        "ipv4.nat=true",
        "dns.domain=cli.test",
    ]);
    d.ours_ok(&["network", "set", "tcli", "bridge.mtu", "1400"]);
    assert_eq!(d.ours_ok(&["network", "get", "tcli", "ipv4.nat"]), "true\n");
    assert!(
        d.in_ns(&["ip", "link", "show", "tcli"])
            .contains("mtu 1400")
    );
    d.ours_ok(&["network", "unset", "tcli", "ipv4.nat"]);
    assert_eq!(d.ours_ok(&["network", "get", "tcli", "ipv4.nat"]), "\n");
    let mut edited = d.ours_ok(&["network", "show", "tcli"]);
    edited = edited.replace("description: \"\"", "description: edited");
    common::succeeded(
        &["network", "edit"],
        d.ours(&["network", "edit", "tcli"], edited.as_bytes()),
    );
    assert!(
        d.ours_ok(&["network", "show", "tcli"])
            .contains("description: edited")
    );
    let err = common::failed(
        &["set"],
        d.ours(&["network", "set", "tcli", "bogus.key=1"], b""),
    );
    assert!(err.contains("bogus.key"), "{err}");
    let err = common::failed(
        &["set"],
        d.ours(&["network", "set", "lo", "ipv4.nat=true"], b""),
    );
    assert!(
        err.contains("Only managed networks can be modified"),
        "{err}"
    );

    // info.
    let info = d.ours_ok(&["network", "info", "tcli"]);
    assert!(info.starts_with("Name: tcli\nMAC address: "), "{info}");
    assert!(
        info.contains("MTU: 1400\n") && info.contains("10.202.8.1/24 (global)"),
        "{info}"
    );
    assert!(
        info.contains("Network usage:\n  Bytes received: "),
        "{info}"
    );

    // attach/detach on an instance and on a profile.
    d.ours_ok(&["init", "busybox", "c1"]);
    d.ours_ok(&["network", "attach", "tcli", "c1", "eth0"]);
    let devs = d.ours_ok(&["config", "device", "show", "c1"]);
    assert!(
        devs.contains("network: tcli") && devs.contains("type: nic"),
        "{devs}"
    );
    d.ours_ok(&[
        "network",
        "attach-profile",
        "tyaml",
        "default",
        "eth7",
        "eth7",
    ]);
    let prof = d.ours_ok(&["profile", "device", "show", "default"]);
    assert!(
        prof.contains("network: tyaml") && prof.contains("name: eth7"),
        "{prof}"
    );
    d.ours_ok(&["network", "detach-profile", "tyaml", "default"]);
    assert!(!d.ours_ok(&["profile", "show", "default"]).contains("tyaml"));
    let err = common::failed(
        &["detach"],
        d.ours(&["network", "detach", "tyaml", "c1"], b""),
    );
    assert!(err.contains("No device found for this network"), "{err}");

    // A lease, listed.
    d.ours_ok(&["start", "c1"]);
    d.dhcp("c1", "eth0", true);
    let leases = d.ours_ok(&["network", "list-leases", "tcli", "-f", "csv"]);
    let mac = d.ours_ok(&["config", "get", "c1", "volatile.eth0.hwaddr"]);
    assert!(
        leases.starts_with(&format!("c1,{},10.202.8.", mac.trim())) && leases.contains(",DYNAMIC"),
        "{leases}"
    );
    let err = common::failed(
        &["rename"],
        d.ours(&["network", "rename", "tcli", "tren"], b""),
    );
    assert!(err.contains("in use"), "{err}");

    // Hot-plug on the running container: a nic on the second network arrives (down, as with
    // Incus) with its MAC, gets a lease once up, and goes away again with its host end.
    let host_links = || d.in_ns(&["ip", "-o", "link"]).lines().count();
    let links_before = host_links();
    d.ours_ok(&["network", "attach", "tyaml", "c1", "eth1"]);
    let mac1 = d.ours_ok(&["config", "get", "c1", "volatile.eth1.hwaddr"]);
    let link = d.ours_ok(&["exec", "c1", "--", "ip", "link", "show", "eth1"]);
    assert!(
        link.contains(mac1.trim()) && !link.contains(",UP") && !link.contains("<UP"),
        "{link}"
    );
    assert_eq!(host_links(), links_before + 1, "one host-side veth");
    d.ours_ok(&["exec", "c1", "--", "ip", "link", "set", "eth1", "up"]);
    d.dhcp("c1", "eth1", true);
    let lease = d.ours_ok(&["exec", "c1", "--", "cat", "/tmp/lease"]);
    assert!(lease.starts_with("10.202.9."), "{lease}");
    d.ours_ok(&["network", "detach", "tyaml", "c1"]);
    let gone = d.ours(&["exec", "c1", "--", "ip", "link", "show", "eth1"], b"");
    assert!(!gone.status.success(), "eth1 still in the container");
    assert_eq!(host_links(), links_before, "the host-side veth is gone");

    // macvlan on a veth parent (inside the test's namespace): at start and hot-plugged.
    d.in_ns(&[
        "ip", "link", "add", "tmvp", "type", "veth", "peer", "name", "tmvq",
    ]);
    d.in_ns(&["ip", "link", "set", "tmvp", "up"]);
    let add_macvlan = |extra: &[&str]| {
        let mut args = vec![
            "config",
            "device",
            "add",
            "c1",
            "mv",
            "nic",
            "nictype=macvlan",
        ];
        args.extend_from_slice(extra);
        d.ours(&args, b"")
    };
    common::succeeded(
        &["add mv"],
        add_macvlan(&["parent=tmvp", "name=eth2", "mtu=1300"]),
    );
    let link = d.ours_ok(&["exec", "c1", "--", "ip", "link", "show", "eth2"]);
    assert!(link.contains("mtu 1300") && link.contains("@"), "{link}");
    let mac2 = d.ours_ok(&["config", "get", "c1", "volatile.mv.hwaddr"]);
    assert!(link.contains(mac2.trim()), "{link}");
    d.ours_ok(&["config", "device", "remove", "c1", "mv"]);
    let gone = d.ours(&["exec", "c1", "--", "ip", "link", "show", "eth2"], b"");
    assert!(!gone.status.success(), "eth2 still in the container");
    // A bad parent is refused and the device is not added.
    let err = common::failed(&["add mv"], add_macvlan(&["parent=nope0"]));
    assert!(err.contains("nope0"), "{err}");
    let devices = d.ours_ok(&["config", "device", "show", "c1"]);
    assert!(!devices.contains("nope0"), "{devices}");
    common::succeeded(&["add mv"], add_macvlan(&["parent=tmvp"]));
    d.ours_ok(&["restart", "c1", "--force"]);
    let link = d.ours_ok(&["exec", "c1", "--", "ip", "link", "show", "mv"]);
    assert!(link.contains(mac2.trim()) && link.contains(",UP"), "{link}");

    // A managed macvlan network on that parent: nics on it are macvlans with its MTU.
    let err = common::failed(
        &["create"],
        d.ours(
            &[
                "network",
                "create",
                "tmvbad",
                "--type",
                "macvlan",
                "parent=nope0",
            ],
            b"",
        ),
    );
    assert!(err.contains("nope0"), "{err}");
    d.ours_ok(&[
        "network",
        "create",
        "tmv",
        "--type",
        "macvlan",
        "parent=tmvp",
        "mtu=1350",
    ]);
    let list = d.ours_ok(&["network", "list", "-f", "csv"]);
    assert!(
        list.contains("tmv,macvlan,YES") && !list.contains("tmvbad"),
        "{list}"
    );
    d.ours_ok(&["network", "attach", "tmv", "c1", "eth3", "eth3"]);
    let link = d.ours_ok(&["exec", "c1", "--", "ip", "link", "show", "eth3"]);
    assert!(link.contains("mtu 1350") && link.contains("@"), "{link}");
    assert!(
        d.ours_ok(&["network", "show", "tmv"])
            .contains("/1.0/instances/c1")
    );
    d.ours_ok(&["network", "detach", "tmv", "c1"]);
    d.ours_ok(&["network", "delete", "tmv"]);
    assert!(
        d.in_ns(&["ip", "link", "show", "tmvp"]).contains("tmvp"),
        "the parent stays"
    );

    // Detach (stopped), rename, delete.
    d.ours_ok(&["stop", "c1", "--force"]);
    d.ours_ok(&["network", "detach", "tcli", "c1"]);
    assert!(
        !d.ours_ok(&["config", "device", "show", "c1"])
            .contains("tcli")
    );
    d.ours_ok(&["delete", "c1"]);
    assert_eq!(
        d.ours_ok(&["network", "rename", "tcli", "tren"]),
        "Network tcli renamed to tren\n"
    );
    assert!(d.in_ns(&["ip", "link", "show", "tren"]).contains("tren"));
    assert_eq!(
        d.ours_ok(&["network", "delete", "tren"]),
        "Network tren deleted\n"
    );
    d.ours_ok(&["network", "rm", "tyaml"]);
    let list = d.ours_ok(&["network", "list", "-f", "csv"]);
    assert!(!list.contains("tren") && !list.contains("tyaml"), "{list}");
    let _ = std::fs::remove_dir_all(&images);
}

/// `admin init --auto` on a fresh daemon (our CLI): a `default` pool, `incusbr0` with `auto`
/// addresses and NAT, an `eth0` on it in the default profile, so a launched container gets a
/// lease; a second run changes nothing. Then a preseed with networks and a profile merge.
#[test]
fn admin_init_auto_and_preseed_make_networks() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED admin_init_auto: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    let images = image_dir("init");
    let d = Daemon::start("init");
    d.ours_ok(&["admin", "init", "--auto"]);
    d.ours_ok(&["admin", "init", "--auto"]);
    let list = d.ours_ok(&["network", "list", "-f", "csv"]);
    assert!(list.contains("incusbr0,bridge,YES,10."), "{list}");
    assert!(!list.contains("incusbr1"), "{list}");
    assert_eq!(
        d.ours_ok(&["network", "get", "incusbr0", "ipv4.nat"]),
        "true\n"
    );
    let table = d.in_ns(&["nft", "list", "table", "inet", "incus_incusbr0"]);
    assert!(table.contains("masquerade"), "{table}");
    let profile = d.ours_ok(&["profile", "show", "default"]);
    assert!(
        profile.contains("network: incusbr0") && profile.contains("pool: default"),
        "{profile}"
    );

    d.import_busybox(&images, true);
    d.ours_ok(&["launch", "busybox", "c1"]);
    d.dhcp("c1", "eth0", true);
    let subnet = d.ours_ok(&["network", "get", "incusbr0", "ipv4.address"]);
    let prefix = subnet
        .rsplit_once('.')
        .map(|(p, _)| p.to_string())
        .expect("ipv4");
    let lease = d.ours_ok(&["exec", "c1", "--", "cat", "/tmp/lease"]);
    assert!(
        lease.starts_with(&format!("{prefix}.")),
        "{lease} not in {subnet}"
    );

    // Preseed: a new network, keys merged into an existing one, a profile device added.
    let seed = b"networks:\n- name: tpre\n  type: bridge\n  config:\n    ipv4.address: 10.203.1.1/24\n    ipv6.address: none\n- name: incusbr0\n  config:\n    user.note: seeded\nprofiles:\n- name: default\n  devices:\n    eth1:\n      type: nic\n      network: tpre\n      name: eth1\n";
    common::succeeded(
        &["admin", "init", "--preseed"],
        d.ours(&["admin", "init", "--preseed"], seed),
    );
    assert_eq!(
        d.ours_ok(&["network", "get", "tpre", "ipv4.address"]),
        "10.203.1.1/24\n"
    );
    assert_eq!(
        d.ours_ok(&["network", "get", "incusbr0", "user.note"]),
        "seeded\n"
    );
    assert_eq!(
        d.ours_ok(&["network", "get", "incusbr0", "ipv4.address"]),
        subnet
    );
    let profile = d.ours_ok(&["profile", "show", "default"]);
    assert!(
        profile.contains("network: tpre")
            && profile.contains("network: incusbr0")
            && profile.contains("pool: default"),
        "{profile}"
    );
    d.ours_ok(&["delete", "-f", "c1"]);
    let _ = std::fs::remove_dir_all(&images);
}
