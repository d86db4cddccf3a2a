//! Addresses with prefix lengths (`10.1.2.1/24`, `fd42::1/64`) as network config uses them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An interface address and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The address (the bridge's own address in network config).
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX`; the prefix must fit the family and leave room for hosts.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not an address with a prefix length (ADDR/N)"))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IP address"))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| format!("{p:?} is not a prefix length"))?;
        let max = if addr.is_ipv4() { 30 } else { 126 };
        if prefix == 0 || prefix > max {
            return Err(format!("Prefix length /{prefix} out of range 1-{max}"));
        }
        let c = Cidr { addr, prefix };
        if c.addr == c.network() {
            return Err(format!("{s} is the network address, not a host address"));
        }
        Ok(c)
    }

    fn bits(&self) -> u32 {
        if self.addr.is_ipv4() { 32 } else { 128 }
    }

    fn mask(&self) -> u128 {
        let host_bits = self.bits() - u32::from(self.prefix);
        let all = if self.bits() == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        all & !((1u128 << host_bits) - 1)
    }

    fn raw(addr: IpAddr) -> u128 {
        match addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn same_family(&self, v: u128) -> IpAddr {
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.same_family(Self::raw(self.addr) & self.mask())
    }

    /// The last address of the subnet (the IPv4 broadcast address).
    pub fn last(&self) -> IpAddr {
        let all = if self.bits() == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        self.same_family((Self::raw(self.addr) & self.mask()) | (all & !self.mask()))
    }

    /// Whether `ip` is inside the subnet.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4()
            && Self::raw(ip) & self.mask() == Self::raw(self.network())
    }

    /// Whether the two subnets share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        if self.addr.is_ipv4() != other.addr.is_ipv4() {
            return false;
        }
        let shorter = if self.prefix <= other.prefix {
            self
        } else {
            other
        };
        let longer = if shorter == self { other } else { self };
        shorter.contains(longer.network())
    }

    /// The address `n` after the network address.
    pub fn nth(&self, n: u128) -> IpAddr {
        self.same_family(Self::raw(self.network()) + n)
    }

    /// The subnet as `NETWORK/PREFIX`.
    pub fn subnet(&self) -> String {
        format!("{}/{}", self.network(), self.prefix)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_computes_ranges() {
        let c = Cidr::parse("10.1.2.1/24").expect("parse");
        assert_eq!(c.subnet(), "10.1.2.0/24");
        assert_eq!(c.last().to_string(), "10.1.2.255");
        assert_eq!(c.nth(2).to_string(), "10.1.2.2");
        assert!(c.contains("10.1.2.77".parse().expect("ip")));
        assert!(!c.contains("10.1.3.1".parse().expect("ip")));
        assert!(c.overlaps(&Cidr::parse("10.1.0.1/16").expect("parse")));
        assert!(!c.overlaps(&Cidr::parse("10.1.3.1/24").expect("parse")));
        let v6 = Cidr::parse("fd42:1:2:3::1/64").expect("parse");
        assert_eq!(v6.subnet(), "fd42:1:2:3::/64");
        assert!(!v6.overlaps(&c));
        for bad in [
            "10.1.2.1",
            "10.1.2.0/24",
            "10.1.2.1/31",
            "x/24",
            "10.1.2.1/x",
            "::1/128",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
