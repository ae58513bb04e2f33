//! The old system's HTTP proxy settings (`http_proxy`, `https_proxy`,
//! `all_proxy`, `no_proxy`), captured at kexec with the network and used for
//! binary-cache requests when the controller names no proxy of its own.
//!
//! Rules, as curl applies them:
//! - An `http://` URL goes through `http_proxy` (lower case only: `HTTP_PROXY`
//!   is ignored, it can be set by a CGI request's `Proxy:` header), else
//!   `all_proxy`/`ALL_PROXY`; an `https://` URL through `https_proxy` or
//!   `HTTPS_PROXY`, else `all_proxy`. Lower case wins over upper case.
//! - A proxy without a scheme (`proxy:3128`) is `http://proxy:3128`. Only
//!   plain HTTP proxies are spoken (https through `CONNECT`); any other
//!   scheme (`socks5://`, `https://`) makes the request fail with a reason
//!   naming the variable.
//! - `no_proxy` (or `NO_PROXY`): entries separated by commas or spaces; `*`
//!   alone bypasses the proxy for every host; an entry matches the host
//!   itself and every name under it (`example.org` and `.example.org` both
//!   match `example.org` and `cache.example.org`, not `badexample.org`),
//!   case-insensitively, a trailing dot ignored; an IP address matches
//!   itself, `addr/len` every address in that network.
//!
//! Where they come from ([`ProxySettings::capture`]): the environment
//! `landfall-agent kexec` runs in, or — when that sets none of them —
//! `/etc/environment` (what PAM gives login sessions). The agent serving
//! ([`crate::net::config::agent_proxy`]) takes those the image carries
//! (`/etc/landfall/network.json`), else its own environment.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The proxy variables of a system; empty strings are unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxySettings {
    pub http_proxy: String,
    pub https_proxy: String,
    pub all_proxy: String,
    pub no_proxy: String,
}

/// A proxy that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("The proxy {variable}={value:?} is not an http:// proxy (host:port)")]
pub struct ProxyUrlError {
    /// The variable that named it.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
}

/// A proxy to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Host name or address, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// The URL as written (`http://` added when it had no scheme).
    pub url: String,
}

impl Proxy {
    /// Parses `http://host[:port][/]` or `host[:port]` (port 1080 when none,
    /// as curl does).
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let url = if value.contains("://") {
            value.to_owned()
        } else {
            format!("http://{value}")
        };
        let uri: http::Uri = url.parse().ok()?;
        if !uri.scheme_str()?.eq_ignore_ascii_case("http") {
            return None;
        }
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return None;
        }
        Some(Self {
            host: host.to_owned(),
            port: uri.port_u16().unwrap_or(1080),
            url,
        })
    }
}

impl ProxySettings {
    /// The settings from variable lookups (`get(name)`), lower case before
    /// upper case; `HTTP_PROXY` is not read.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: &[&str]| {
            names
                .iter()
                .filter_map(|n| get(n))
                .map(|v| v.trim().to_owned())
                .find(|v| !v.is_empty())
                .unwrap_or_default()
        };
        Self {
            http_proxy: first(&["http_proxy"]),
            https_proxy: first(&["https_proxy", "HTTPS_PROXY"]),
            all_proxy: first(&["all_proxy", "ALL_PROXY"]),
            no_proxy: first(&["no_proxy", "NO_PROXY"]),
        }
    }

    /// The settings of this process's environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|n| std::env::var(n).ok())
    }

    /// The settings of an `/etc/environment` text (`NAME=value` lines,
    /// optionally quoted, `export ` and comments allowed).
    pub fn from_environment_file(text: &str) -> Self {
        let vars: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                let l = l.strip_prefix("export ").unwrap_or(l).trim_start();
                if l.starts_with('#') {
                    return None;
                }
                let (name, value) = l.split_once('=')?;
                let value = value.trim();
                let unquoted = ['"', '\'']
                    .iter()
                    .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
                    .unwrap_or(value);
                Some((name.trim().to_owned(), unquoted.to_owned()))
            })
            .collect();
        // The last assignment of a name wins, as in a shell.
        Self::from_lookup(|n| {
            vars.iter()
                .rev()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        })
    }

    /// Whether no proxy is set.
    pub fn is_empty(&self) -> bool {
        self.http_proxy.is_empty() && self.https_proxy.is_empty() && self.all_proxy.is_empty()
    }

    /// What `landfall-agent kexec` captures: its environment's settings, or
    /// `/etc/environment`'s when the environment sets no proxy.
    pub fn capture() -> Self {
        let env = Self::from_env();
        if !env.is_empty() {
            return env;
        }
        let file = std::fs::read_to_string("/etc/environment").unwrap_or_default();
        Self::from_environment_file(&file)
    }

    /// The proxy for a request to `scheme://host`: `Ok(None)` to connect
    /// directly (no proxy set for the scheme, or `no_proxy` matches).
    pub fn proxy_for(&self, scheme: &str, host: &str) -> Result<Option<Proxy>, ProxyUrlError> {
        let (variable, value) = match scheme {
            "https" if !self.https_proxy.is_empty() => ("https_proxy", &self.https_proxy),
            "http" if !self.http_proxy.is_empty() => ("http_proxy", &self.http_proxy),
            _ if !self.all_proxy.is_empty() => ("all_proxy", &self.all_proxy),
            _ => return Ok(None),
        };
        if no_proxy_matches(&self.no_proxy, host) {
            return Ok(None);
        }
        Proxy::parse(value).map(Some).ok_or_else(|| ProxyUrlError {
            variable,
            value: value.clone(),
        })
    }
}

/// Whether `no_proxy` exempts `host` (a name, or an address, IPv6 with or
/// without brackets).
pub fn no_proxy_matches(no_proxy: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let ip: Option<IpAddr> = host.parse().ok();
    no_proxy
        .split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Some(ip) = ip {
                return ip_entry_matches(entry, ip);
            }
            let entry = entry
                .trim_start_matches('.')
                .trim_end_matches('.')
                .to_ascii_lowercase();
            !entry.is_empty()
                && (host == entry
                    || (host.len() > entry.len()
                        && host.ends_with(&entry)
                        && host.as_bytes()[host.len() - entry.len() - 1] == b'.'))
        })
}

/// An address entry (`10.0.0.1`, `[::1]`, `10.0.0.0/8`) against an address.
fn ip_entry_matches(entry: &str, ip: IpAddr) -> bool {
    let entry = entry.trim_start_matches('[').trim_end_matches(']');
    let (addr, len) = match entry.split_once('/') {
        Some((a, l)) => match l.parse::<u8>() {
            Ok(l) => (a, Some(l)),
            Err(_) => return false,
        },
        None => (entry, None),
    };
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            prefix_equal(&n.octets(), &a.octets(), len.unwrap_or(32).min(32))
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            prefix_equal(&n.octets(), &a.octets(), len.unwrap_or(128).min(128))
        }
        _ => false,
    }
}

fn prefix_equal(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> ProxySettings {
        ProxySettings::from_lookup(|n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn variables_are_read_as_curl_reads_them() {
        let s = settings(&[
            ("HTTP_PROXY", "http://ignored:1"),
            ("HTTPS_PROXY", "http://upper:2"),
            ("https_proxy", "http://lower:3"),
            ("ALL_PROXY", "http://all:4"),
            ("NO_PROXY", "internal"),
        ]);
        assert_eq!(s.http_proxy, "");
        assert_eq!(s.https_proxy, "http://lower:3");
        assert_eq!(s.all_proxy, "http://all:4");
        assert_eq!(s.no_proxy, "internal");
        // http falls back to all_proxy (HTTP_PROXY is never read).
        assert_eq!(s.proxy_for("http", "h").unwrap().unwrap().host, "all");
        assert_eq!(s.proxy_for("https", "h").unwrap().unwrap().host, "lower");
        assert_eq!(s.proxy_for("https", "a.internal").unwrap(), None);
        assert_eq!(settings(&[]).proxy_for("http", "h").unwrap(), None);
    }

    #[test]
    fn proxy_urls_parse_with_and_without_a_scheme() {
        let p = Proxy::parse("http://proxy.lan:3128/").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.lan", 3128));
        let p = Proxy::parse("proxy.lan:8080").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.url.as_str()),
            ("proxy.lan", 8080, "http://proxy.lan:8080")
        );
        let p = Proxy::parse("http://[fd00::1]:3128").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("fd00::1", 3128));
        assert_eq!(Proxy::parse("proxy.lan").unwrap().port, 1080);
        assert_eq!(Proxy::parse("socks5://proxy.lan:1080"), None);
        assert_eq!(Proxy::parse("https://proxy.lan:443"), None);
        let e = settings(&[("https_proxy", "socks5h://p:1")])
            .proxy_for("https", "cache.nixos.org")
            .unwrap_err();
        assert_eq!(e.variable, "https_proxy");
        assert!(e.to_string().contains("socks5h://p:1"), "{e}");
    }

    #[test]
    fn no_proxy_matches_hosts_their_subdomains_addresses_and_networks() {
        let list = "localhost, .example.org,cache.lan. 10.1.2.3,192.168.0.0/16,[::1],fd00::/8";
        for host in [
            "localhost",
            "example.org",
            "cache.example.org",
            "CACHE.Example.Org.",
            "cache.lan",
            "x.cache.lan",
            "10.1.2.3",
            "192.168.44.5",
            "[::1]",
            "fd12::5",
        ] {
            assert!(no_proxy_matches(list, host), "{host}");
        }
        for host in [
            "badexample.org",
            "org",
            "lan",
            "10.1.2.4",
            "192.169.0.1",
            "::2",
            "fe80::1",
            "cache.nixos.org",
        ] {
            assert!(!no_proxy_matches(list, host), "{host}");
        }
        assert!(no_proxy_matches("*", "anything.at.all"));
        assert!(!no_proxy_matches("", "host"));
        assert!(no_proxy_matches("10.0.0.0/12", "10.15.255.255"));
        assert!(!no_proxy_matches("10.0.0.0/12", "10.16.0.0"));
    }

    #[test]
    fn etc_environment_is_parsed_with_quotes_comments_and_exports() {
        let s = ProxySettings::from_environment_file(
            "PATH=\"/usr/bin\"\n# http_proxy=http://commented:1\nhttp_proxy=\"http://proxy:3128\"\nexport https_proxy='http://proxy:3129'\nno_proxy=localhost,.lan\nno_proxy=localhost,.corp\n",
        );
        assert_eq!(
            s,
            ProxySettings {
                http_proxy: "http://proxy:3128".into(),
                https_proxy: "http://proxy:3129".into(),
                all_proxy: String::new(),
                no_proxy: "localhost,.corp".into(),
            }
        );
        assert!(ProxySettings::from_environment_file("LANG=C\n").is_empty());
    }
}
