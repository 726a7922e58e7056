use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};

/// A source network in canonical form: host bits clear, a bare address as /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

impl Cidr {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Ok(addr) = raw.parse::<IpAddr>() {
            return Ok(Self(IpNet::from(addr)));
        }
        let net: IpNet = raw
            .parse()
            .map_err(|_| format!("{raw:?} is not an IPv4 or IPv6 address or CIDR (like 10.0.0.0/8)"))?;
        if net.trunc() != net {
            return Err(format!("{raw} has host bits set; the network is {}", net.trunc()));
        }
        Ok(Self(net))
    }

    pub fn net(&self) -> IpNet {
        self.0
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.contains(&addr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The address block of a VPC: a canonical private IPv4 network (RFC 1918), /16 to /28.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VpcBlock(Ipv4Net);

impl VpcBlock {
    pub const PRIVATE: [&'static str; 3] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];
    pub const LARGEST: u8 = 16;
    pub const SMALLEST: u8 = 28;

    /// Each rule broken is named in the error, with the canonical network when host bits are set.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let net: Ipv4Net = raw
            .parse()
            .map_err(|_| format!("{raw:?} is not an IPv4 network with a prefix length (like 10.0.0.0/16)"))?;
        if net.trunc() != net {
            return Err(format!("{raw} has host bits set; the network is {}", net.trunc()));
        }
        let private = Self::PRIVATE.iter().any(|p| p.parse::<Ipv4Net>().is_ok_and(|p| p.contains(&net)));
        if !private {
            return Err(format!(
                "{net} is not a private block; use one inside {} (RFC 1918)",
                Self::PRIVATE.join(", ")
            ));
        }
        if !(Self::LARGEST..=Self::SMALLEST).contains(&net.prefix_len()) {
            return Err(format!(
                "{net} is a /{}; a VPC's block is /{} to /{}",
                net.prefix_len(),
                Self::LARGEST,
                Self::SMALLEST
            ));
        }
        Ok(Self(net))
    }

    pub fn net(&self) -> Ipv4Net {
        self.0
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.0.contains(other) || other.contains(&self.0)
    }
}

impl fmt::Display for VpcBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The gateway of a VPC's block: its first host address, held by the network itself.
pub fn gateway(block: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(block.network()) + 1)
}

/// The addresses a VPC hands to nodes, in order: every host address but the gateway.
pub fn node_addresses(block: Ipv4Net) -> impl Iterator<Item = Ipv4Addr> {
    block.hosts().skip(1)
}

#[cfg(test)]
mod tests {
    use super::{Cidr, VpcBlock, gateway, node_addresses};

    #[test]
    fn vpc_blocks_are_private_canonical_and_sized() {
        assert_eq!(VpcBlock::parse(" 10.61.0.0/24 ").unwrap().to_string(), "10.61.0.0/24");
        for ok in ["172.16.0.0/16", "192.168.10.0/28", "10.255.0.0/16"] {
            assert!(VpcBlock::parse(ok).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("10.0.0.0/8", "/16 to /28"),
            ("10.0.0.0/29", "/16 to /28"),
            ("10.61.0.1/24", "the network is 10.61.0.0/24"),
            ("8.8.8.0/24", "RFC 1918"),
            ("172.32.0.0/16", "RFC 1918"),
            ("10.0.0.1", "prefix length"),
            ("fd00::/64", "IPv4"),
            ("10.0.0.0/24; drop", "IPv4"),
        ] {
            let e = VpcBlock::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn nodes_get_host_addresses_after_the_gateway() {
        let block = "10.61.0.0/28".parse().unwrap();
        assert_eq!(gateway(block).to_string(), "10.61.0.1");
        let all: Vec<String> = node_addresses(block).map(|a| a.to_string()).collect();
        assert_eq!(all.first().unwrap(), "10.61.0.2");
        assert_eq!(all.last().unwrap(), "10.61.0.14", "not the broadcast address");
        assert_eq!(all.len(), 13);
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(Cidr::parse("127.0.0.2").unwrap().to_string(), "127.0.0.2/32");
        assert_eq!(Cidr::parse("2001:db8::1").unwrap().to_string(), "2001:db8::1/128");
        assert_eq!(Cidr::parse(" 10.0.0.0/8 ").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(Cidr::parse("2001:db8::/32").unwrap().to_string(), "2001:db8::/32");
        let e = Cidr::parse("10.1.2.3/8").unwrap_err();
        assert!(e.contains("10.0.0.0/8"), "{e}");
        let e = Cidr::parse("2001:db8::1/32").unwrap_err();
        assert!(e.contains("2001:db8::/32"), "{e}");
        for bad in ["", "10.0.0.0/33", "300.1.1.1", "abc", "10.0.0.0/8; drop table x", "host all all"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
