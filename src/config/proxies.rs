//! `server.trusted_proxies`: the load balancers whose `X-Forwarded-For` the service believes.
//!
//! A list of addresses and CIDR ranges, in a file as a TOML array (`["10.0.0.0/8", "127.0.0.1"]`)
//! and in the environment as one comma-separated value
//! (`ADS_STATS_SERVER__TRUSTED_PROXIES=10.0.0.0/8,127.0.0.1`): the environment layer gives every
//! value as text, so a list needs parsing here. Empty by default: the header is then ignored,
//! since any client can write it.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{de, Deserialize, Deserializer};

/// The parsed list; `contains` answers whether an address belongs to one of the proxies.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses entries such as `10.0.0.0/8`, `127.0.0.1`, `::1`, `fd00::/8`. The error names the
    /// entry (an address is not a secret).
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in entries {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let net = entry
                .parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "`{entry}` is not an IP address or CIDR range (e.g. 10.0.0.0/8, 127.0.0.1)"
                    )
                })?;
            nets.push(net);
        }
        Ok(Self(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy. IPv4 addresses seen through an IPv6 socket
    /// (`::ffff:10.0.0.1`) count as the IPv4 address they are.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|n| n.to_string()))
            .finish()
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    /// A TOML array of strings, or one comma-separated string (the environment's form).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = TrustedProxies;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of IP addresses or CIDR ranges, or one comma-separated string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                TrustedProxies::parse(v.split(',')).map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = seq.next_element::<String>()? {
                    entries.push(entry);
                }
                TrustedProxies::parse(entries.iter().map(String::as_str)).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_and_ranges_of_both_families() {
        let t =
            TrustedProxies::parse(["10.0.0.0/8", " 127.0.0.1 ", "fd00::/8", "", "::1"]).unwrap();
        assert!(t.contains(ip("10.200.3.4")));
        assert!(t.contains(ip("127.0.0.1")));
        assert!(!t.contains(ip("127.0.0.2")));
        assert!(t.contains(ip("fd12::1")));
        assert!(t.contains(ip("::1")));
        assert!(t.contains(ip("::ffff:10.1.1.1")), "IPv4-mapped");
        assert!(!t.contains(ip("11.0.0.1")));
        assert!(!TrustedProxies::default().contains(ip("127.0.0.1")));
    }

    #[test]
    fn a_bad_entry_is_named() {
        for bad in ["10.0.0.0/33", "localhost", "10.0.0", "1.2.3.4/8/1"] {
            let err = TrustedProxies::parse(["127.0.0.1", bad]).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn the_environment_form_is_one_comma_separated_string() {
        use figment::providers::{Format, Toml};
        #[derive(Deserialize)]
        struct S {
            p: TrustedProxies,
        }
        // The error is figment's (large); only whether there is one matters here.
        let from = |toml: &str| {
            figment::Figment::from(Toml::string(toml))
                .extract::<S>()
                .map_err(|e| e.to_string())
        };
        let list = from("p = \"10.0.0.0/8,127.0.0.1\"").unwrap().p;
        assert_eq!(
            list,
            TrustedProxies::parse(["10.0.0.0/8", "127.0.0.1"]).unwrap()
        );
        let array = from("p = [\"10.0.0.0/8\", \"127.0.0.1\"]").unwrap().p;
        assert_eq!(array, list);
        assert!(from("p = []").unwrap().p.is_empty());
        assert!(from("p = \"10.0.0.0/8,nope\"").is_err());
    }
}
