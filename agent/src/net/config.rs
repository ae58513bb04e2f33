//! The static network configuration a RAM image may carry
//! (`/etc/landfall/network.json`, written by `landfall-agent kexec` from what the
//! old system had). Interfaces are matched by MAC address, because names change
//! when there is no udev to rename them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::proxy::ProxySettings;

pub const IMAGE_NETWORK_CONFIG: &str = "/etc/landfall/network.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkConfig {
    pub interfaces: Vec<InterfaceConfig>,
    pub nameservers: Vec<String>,
    /// The old system's proxy variables, for binary-cache requests.
    pub proxy: ProxySettings,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InterfaceConfig {
    /// aa:bb:cc:dd:ee:ff, lower case.
    pub mac: String,
    /// The name the old system used (informational).
    pub name: String,
    /// Static addresses in CIDR notation, v4 and v6.
    pub addresses: Vec<String>,
    /// Routes through this interface.
    pub routes: Vec<RouteConfig>,
    /// Run DHCPv4 here (the old system got its address by DHCP).
    pub dhcp4: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteConfig {
    /// Destination in CIDR notation; `0.0.0.0/0` or `::/0` for the default route.
    pub destination: String,
    /// Next hop; empty for an on-link route.
    pub gateway: String,
}

#[derive(Debug, thiserror::Error)]
pub enum NetConfigError {
    #[error("Cannot read {0}")]
    Read(String, #[source] std::io::Error),
    #[error("{0} is not a valid network configuration")]
    Parse(String, #[source] serde_json::Error),
}

/// Reads the configuration; `Ok(None)` when the image carries none.
pub fn load(path: &Path) -> Result<Option<NetworkConfig>, NetConfigError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| NetConfigError::Parse(path.display().to_string(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NetConfigError::Read(path.display().to_string(), e)),
    }
}

/// Parses `a.b.c.d/len` or `x::y/len`.
pub fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (ip, len) = s.split_once('/')?;
    let ip: std::net::IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

/// The proxy settings the serving agent uses when the controller names no
/// proxy: those the image carries (captured at kexec), else its own
/// environment's.
pub fn agent_proxy() -> ProxySettings {
    carried_proxy_or(
        load(Path::new(IMAGE_NETWORK_CONFIG)).ok().flatten(),
        ProxySettings::from_env(),
    )
}

/// The proxy settings an image's network configuration carries, if it names
/// a proxy, else `env`.
pub fn carried_proxy_or(image: Option<NetworkConfig>, env: ProxySettings) -> ProxySettings {
    match image {
        Some(cfg) if !cfg.proxy.is_empty() => cfg.proxy,
        _ => env,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            parse_cidr("10.0.2.15/24"),
            Some(("10.0.2.15".parse().unwrap(), 24))
        );
        assert_eq!(
            parse_cidr("fe80::1/64"),
            Some(("fe80::1".parse().unwrap(), 64))
        );
        assert_eq!(parse_cidr("10.0.2.15/33"), None);
        assert_eq!(parse_cidr("10.0.2.15"), None);
    }

    #[test]
    fn lenient_json() {
        let c: NetworkConfig =
            serde_json::from_str(r#"{"interfaces":[{"mac":"52:54:00:12:34:56","dhcp4":true}]}"#)
                .unwrap();
        assert!(c.interfaces[0].dhcp4);
        assert!(c.interfaces[0].addresses.is_empty());
    }

    #[test]
    fn the_images_settings_win_over_the_agents_environment() {
        let env = ProxySettings {
            http_proxy: "http://env:1".into(),
            ..ProxySettings::default()
        };
        let image: NetworkConfig = serde_json::from_str(
            r#"{"proxy":{"https_proxy":"http://captured:3128","no_proxy":".lan"}}"#,
        )
        .unwrap();
        let got = carried_proxy_or(Some(image), env.clone());
        assert_eq!(got.https_proxy, "http://captured:3128");
        assert_eq!(got.http_proxy, "");
        // An image without proxy settings (older ones have no "proxy" key) or none at all.
        let bare: NetworkConfig =
            serde_json::from_str(r#"{"interfaces":[],"nameservers":["192.0.2.53"]}"#).unwrap();
        assert_eq!(carried_proxy_or(Some(bare), env.clone()), env);
        assert_eq!(carried_proxy_or(None, env.clone()), env);
    }
}
