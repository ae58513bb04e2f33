//! Network interfaces from /sys/class/net and getifaddrs(3).

use std::fs;
use std::path::Path;

use landfall_proto::v1::Nic;

use crate::sys::sysfs::{entry_names, read_trimmed as read};

fn prefix_len(mask: &[u8]) -> u32 {
    mask.iter().map(|b| b.count_ones()).sum()
}

/// Addresses by interface name, in CIDR notation.
fn addresses() -> Vec<(String, String)> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|ifa| {
            let addr = ifa.address?;
            let mask = ifa.netmask;
            let cidr = if let Some(v4) = addr.as_sockaddr_in() {
                let m = mask
                    .as_ref()
                    .and_then(|m| m.as_sockaddr_in())
                    .map(|m| m.ip().octets());
                format!("{}/{}", v4.ip(), m.map(|m| prefix_len(&m)).unwrap_or(32))
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                let m = mask
                    .as_ref()
                    .and_then(|m| m.as_sockaddr_in6())
                    .map(|m| m.ip().octets());
                format!("{}/{}", v6.ip(), m.map(|m| prefix_len(&m)).unwrap_or(128))
            } else {
                return None;
            };
            Some((ifa.interface_name, cidr))
        })
        .collect()
}

/// Every interface except loopback, sorted by name.
pub fn list_nics() -> Vec<Nic> {
    let addrs = addresses();
    entry_names("/sys/class/net")
        .into_iter()
        .filter(|n| n != "lo")
        .map(|name| {
            let sys = Path::new("/sys/class/net").join(&name);
            Nic {
                mac: read(sys.join("address")),
                carrier: read(sys.join("carrier")) == "1",
                mtu: read(sys.join("mtu")).parse().unwrap_or(0),
                driver: fs::read_link(sys.join("device/driver"))
                    .ok()
                    .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
                    .unwrap_or_default(),
                addresses: addrs
                    .iter()
                    .filter(|(n, _)| n == &name)
                    .map(|(_, a)| a.clone())
                    .collect(),
                name,
            }
        })
        .collect()
}
