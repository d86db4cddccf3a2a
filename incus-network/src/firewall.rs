//! A network's firewall rules in an nftables table of its own (`inet incus_<network>`), so
//! that nothing else in the ruleset is ever touched: written whole with `nft -f` (atomic
//! replace), removed by deleting the table.

use incus_core::error::{Error, Result};
use tokio::io::AsyncWriteExt;

/// The table holding the rules of network `network`.
pub fn table_name(network: &str) -> String {
    format!("incus_{network}")
}

/// What the rules of one bridge say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// The bridge interface.
    pub bridge: String,
    /// IPv4 subnet to masquerade when leaving it (`ipv4.nat`).
    pub nat4: Option<String>,
    /// IPv6 subnet to masquerade when leaving it (`ipv6.nat`).
    pub nat6: Option<String>,
}

/// The nft script that (re)creates the table for `network`.
pub fn script(network: &str, r: &Rules) -> String {
    let t = table_name(network);
    let br = &r.bridge;
    let mut s = String::new();
    // Create-then-delete makes the replace work whether or not the table exists.
    s.push_str(&format!("table inet {t} {{}}\ndelete table inet {t}\n"));
    s.push_str(&format!("table inet {t} {{\n"));
    s.push_str("  chain incoming {\n    type filter hook input priority 0; policy accept;\n");
    s.push_str(&format!(
        "    iifname \"{br}\" udp dport {{ 53, 67, 547 }} accept\n    iifname \"{br}\" tcp dport 53 accept\n    iifname \"{br}\" icmp type {{ echo-request, destination-unreachable, time-exceeded }} accept\n    iifname \"{br}\" icmpv6 type {{ echo-request, nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert }} accept\n  }}\n"
    ));
    s.push_str(&format!(
        "  chain forwarded {{\n    type filter hook forward priority 0; policy accept;\n    iifname \"{br}\" accept\n    oifname \"{br}\" accept\n  }}\n"
    ));
    s.push_str(
        "  chain masquerading {\n    type nat hook postrouting priority 100; policy accept;\n",
    );
    if let Some(net) = &r.nat4 {
        s.push_str(&format!(
            "    ip saddr {net} ip daddr != {net} masquerade\n"
        ));
    }
    if let Some(net) = &r.nat6 {
        s.push_str(&format!(
            "    ip6 saddr {net} ip6 daddr != {net} masquerade\n"
        ));
    }
    s.push_str("  }\n}\n");
    s
}

async fn nft(input: &str) -> Result<()> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::internal(format!("Running nft: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|e| Error::internal(format!("Writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| Error::internal(format!("Running nft: {e}")))?;
    if !out.status.success() {
        return Err(Error::internal(format!(
            "nft failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Writes (or replaces) the table of `network`.
pub async fn apply(network: &str, rules: &Rules) -> Result<()> {
    nft(&script(network, rules)).await
}

/// Removes the table of `network` if it exists.
pub async fn remove(network: &str) -> Result<()> {
    let t = table_name(network);
    nft(&format!("table inet {t} {{}}\ndelete table inet {t}\n")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_masquerades_only_what_is_asked() {
        let r = Rules {
            bridge: "br1".into(),
            nat4: Some("10.0.3.0/24".into()),
            nat6: None,
        };
        let s = script("br1", &r);
        assert!(s.starts_with("table inet incus_br1 {}\ndelete table inet incus_br1\n"));
        assert!(s.contains("ip saddr 10.0.3.0/24 ip daddr != 10.0.3.0/24 masquerade"));
        assert!(!s.contains("ip6 saddr"));
        assert!(s.contains("iifname \"br1\" udp dport { 53, 67, 547 } accept"));
    }
}
