//! Client addresses behind a reverse proxy: [`TrustedProxies`] and the
//! `X-Forwarded-For` walk.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::error::Error;

/// The reverse proxies whose `X-Forwarded-For` header pawl believes: IP
/// addresses and CIDR networks (`127.0.0.1`, `10.0.0.0/8`, `::1`,
/// `fd00::/8`). Empty by default: a client that connects directly could
/// write any `X-Forwarded-For` it likes, so none is believed.
///
/// ```
/// use pawl::TrustedProxies;
///
/// let proxies: TrustedProxies = "127.0.0.1, 10.0.0.0/8".parse()?;
/// assert!(proxies.contains("10.1.2.3".parse().unwrap()));
/// assert!(!proxies.contains("192.168.0.1".parse().unwrap()));
/// # Ok::<(), pawl::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<Net>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Net {
    type Err = Error;

    fn from_str(text: &str) -> Result<Net, Error> {
        let bad = || {
            Error::Config(format!(
                "trusted proxy {text:?}: expected an IP address or a CIDR network like 10.0.0.0/8"
            ))
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Net { addr, prefix })
    }
}

impl TrustedProxies {
    /// No trusted proxy: `X-Forwarded-For` is ignored.
    pub fn new() -> TrustedProxies {
        TrustedProxies::default()
    }

    /// Adds an address or CIDR network; an unparsable one is an
    /// [`Error::Config`].
    pub fn add(&mut self, net: &str) -> Result<&mut Self, Error> {
        self.nets.push(net.trim().parse()?);
        Ok(self)
    }

    /// True if `ip` is one of the trusted proxies. IPv4-mapped IPv6
    /// addresses (a dual-stack listener's view of IPv4 peers) count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The client behind `peer` according to the `X-Forwarded-For` values
    /// (each a comma-separated list, oldest hop first), or `None` when
    /// `peer` is not trusted or the header names nobody usable.
    ///
    /// Walks from the right, the hop nearest to us, past trusted proxies:
    /// the first untrusted address is the client. Entries left of it were
    /// written by the client itself and prove nothing. A port is kept when
    /// the entry has one (`203.0.113.7:5123`, `[2001:db8::1]:443`), else 0.
    pub fn client<'a>(
        &self,
        peer: SocketAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> Option<SocketAddr> {
        if self.nets.is_empty() || !self.contains(peer.ip()) {
            return None;
        }
        let entries: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        let mut client = None;
        for entry in entries.into_iter().rev() {
            // "unknown", an obfuscated name (RFC 7239): stop at what we have.
            let Some(addr) = parse_entry(entry) else {
                break;
            };
            client = Some(addr);
            if !self.contains(addr.ip()) {
                break;
            }
        }
        client
    }
}

fn parse_entry(entry: &str) -> Option<SocketAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip.to_canonical(), 0));
    }
    entry
        .parse::<SocketAddr>()
        .ok()
        .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()))
}

impl FromStr for TrustedProxies {
    type Err = Error;

    /// A comma-separated list of addresses and networks.
    fn from_str(text: &str) -> Result<TrustedProxies, Error> {
        let mut proxies = TrustedProxies::new();
        for net in text.split(',').filter(|n| !n.trim().is_empty()) {
            proxies.add(net)?;
        }
        Ok(proxies)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}/{}", net.addr, net.prefix)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(text: &str) -> SocketAddr {
        SocketAddr::new(text.parse().expect("ip"), 40000)
    }

    #[test]
    fn networks() {
        let p: TrustedProxies = "127.0.0.1, 10.0.0.0/8, fd00::/8, 0.0.0.0/0"
            .parse()
            .unwrap();
        assert!(p.contains("10.255.0.1".parse().unwrap()));
        assert!(p.contains("8.8.8.8".parse().unwrap()), "/0 is everything");
        assert!(p.contains("fd12::1".parse().unwrap()));
        assert!(!p.contains("fe80::1".parse().unwrap()));
        let p: TrustedProxies = "127.0.0.1".parse().unwrap();
        assert!(p.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!p.contains("127.0.0.2".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nginx", "1.2.3.4/x", "::1/129"] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for() {
        let p: TrustedProxies = "127.0.0.1, 10.0.0.0/8".parse().unwrap();
        let direct = peer("203.0.113.9");
        assert_eq!(p.client(direct, ["198.51.100.1"]), None, "untrusted peer");
        let proxy = peer("127.0.0.1");
        assert_eq!(p.client(proxy, []), None);
        assert_eq!(
            p.client(proxy, ["198.51.100.1"]),
            Some(peer("198.51.100.1").ip()).map(|ip| SocketAddr::new(ip, 0))
        );
        // The client forged the left part; the rightmost untrusted hop wins.
        assert_eq!(
            p.client(proxy, ["6.6.6.6, 198.51.100.1, 10.0.0.2"])
                .map(|a| a.ip()),
            Some("198.51.100.1".parse().unwrap())
        );
        // Several header lines are one list.
        assert_eq!(
            p.client(proxy, ["6.6.6.6", "198.51.100.1:5123"]),
            Some("198.51.100.1:5123".parse().unwrap())
        );
        assert_eq!(
            p.client(proxy, ["[2001:db8::1]:443"]),
            Some("[2001:db8::1]:443".parse().unwrap())
        );
        // Nothing usable: the caller falls back to the peer.
        assert_eq!(p.client(proxy, ["unknown"]), None);
        // All hops trusted: the leftmost is the best we know.
        assert_eq!(
            p.client(proxy, ["10.0.0.5, 10.0.0.2"]).map(|a| a.ip()),
            Some("10.0.0.5".parse().unwrap())
        );
        assert_eq!(TrustedProxies::new().client(proxy, ["1.2.3.4"]), None);
    }
}
