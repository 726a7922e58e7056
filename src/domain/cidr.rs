use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

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

#[cfg(test)]
mod tests {
    use super::Cidr;

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
