//! Turns the running system's network state (netlink link, address and route
//! dumps, and resolv.conf) into the [`NetworkConfig`] the RAM image restores.
//! Pure functions over parsed messages, so the rules are unit-tested.
//!
//! Rules:
//! - Links are kept by MAC (Ethernet-like, 6 bytes, not all zero); loopback is skipped.
//! - IPv4 addresses are kept as static addresses. One with a finite valid
//!   lifetime (IFA_CACHEINFO) came from DHCP: the interface also gets `dhcp4`,
//!   so the lease is renewed, while the static copy makes the machine reachable
//!   at once at the same address.
//! - IPv6: link-local addresses and those with a finite lifetime (SLAAC, DHCPv6)
//!   are skipped — the kernel makes them again from router advertisements once
//!   the link is up; permanent (static) ones are kept.
//! - Routes from the main table, unicast, single next hop. Kernel-made prefix
//!   routes and those learnt from router advertisements are skipped (they come
//!   back by themselves). On-link routes come before routes via a gateway, so
//!   a gateway outside the subnet (`/32` set-ups of hosting providers) is
//!   reachable when its route is added.

use std::net::IpAddr;

use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType,
};
use rtnetlink::packet_route::AddressFamily;

use super::config::{InterfaceConfig, NetworkConfig, RouteConfig};

const RT_TABLE_MAIN: u32 = 254;

/// What the netlink dumps held.
#[derive(Debug, Default, Clone)]
pub struct NetlinkState {
    pub links: Vec<LinkMessage>,
    pub addresses: Vec<AddressMessage>,
    pub routes: Vec<RouteMessage>,
}

fn mac_string(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 6 || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    Some(
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

fn link_interface(l: &LinkMessage) -> Option<(u32, InterfaceConfig)> {
    if l.header.flags.contains(LinkFlags::Loopback) {
        return None;
    }
    let mut name = String::new();
    let mut mac = None;
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Address(b) => mac = mac_string(b),
            _ => {}
        }
    }
    Some((
        l.header.index,
        InterfaceConfig {
            mac: mac?,
            name,
            ..InterfaceConfig::default()
        },
    ))
}

/// The address of an address message (IFA_LOCAL for IPv4 point-to-point, else IFA_ADDRESS)
/// and whether it has a finite lifetime.
fn address_of(a: &AddressMessage) -> Option<(IpAddr, bool, bool)> {
    let mut local = None;
    let mut address = None;
    let mut finite = false;
    let mut permanent = false;
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::CacheInfo(c) => finite = c.ifa_valid != u32::MAX,
            AddressAttribute::Flags(f) => permanent = f.contains(AddressFlags::Permanent),
            _ => {}
        }
    }
    let ip = match a.header.family {
        AddressFamily::Inet => local.or(address)?,
        _ => address.or(local)?,
    };
    Some((ip, finite, permanent))
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn is_ipv6_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// One kept route: (output interface, route).
fn route_of(r: &RouteMessage) -> Option<(u32, RouteConfig)> {
    let h = &r.header;
    if h.kind != RouteType::Unicast {
        return None;
    }
    if matches!(h.protocol, RouteProtocol::Kernel | RouteProtocol::Ra) {
        return None;
    }
    let mut table = u32::from(h.table);
    let mut dst = None;
    let mut gw = None;
    let mut oif = None;
    for a in &r.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = route_ip(d),
            RouteAttribute::Gateway(g) => gw = route_ip(g),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::MultiPath(_) => return None,
            _ => {}
        }
    }
    if table != RT_TABLE_MAIN {
        return None;
    }
    let dst = match (dst, h.address_family) {
        (Some(d), _) => d,
        (None, AddressFamily::Inet) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    if dst.is_multicast() || (is_ipv6_link_local(&dst) && gw.is_none()) {
        return None;
    }
    Some((
        oif?,
        RouteConfig {
            destination: format!("{dst}/{}", h.destination_prefix_length),
            gateway: gw.map(|g| g.to_string()).unwrap_or_default(),
        },
    ))
}

/// The configuration to restore, from the netlink dumps and resolv.conf's text.
pub fn network_config(state: &NetlinkState, resolv_conf: &str) -> NetworkConfig {
    let mut ifaces: Vec<(u32, InterfaceConfig)> =
        state.links.iter().filter_map(link_interface).collect();
    for a in &state.addresses {
        let Some((ip, finite, permanent)) = address_of(a) else {
            continue;
        };
        let Some((_, iface)) = ifaces.iter_mut().find(|(i, _)| *i == a.header.index) else {
            continue;
        };
        if ip.is_loopback() {
            continue;
        }
        match ip {
            IpAddr::V4(_) => {
                if finite {
                    iface.dhcp4 = true;
                }
            }
            IpAddr::V6(_) => {
                if is_ipv6_link_local(&ip) || (finite && !permanent) {
                    continue;
                }
            }
        }
        let cidr = format!("{ip}/{}", a.header.prefix_len);
        if !iface.addresses.contains(&cidr) {
            iface.addresses.push(cidr);
        }
    }
    let mut routes: Vec<(u32, RouteConfig)> = state.routes.iter().filter_map(route_of).collect();
    // On-link routes first (stable sort keeps the kernel's order otherwise).
    routes.sort_by_key(|(_, r)| !r.gateway.is_empty());
    for (oif, r) in routes {
        if let Some((_, iface)) = ifaces.iter_mut().find(|(i, _)| *i == oif) {
            if !iface.routes.contains(&r) {
                iface.routes.push(r);
            }
        }
    }
    NetworkConfig {
        interfaces: ifaces.into_iter().map(|(_, i)| i).collect(),
        nameservers: nameservers(resolv_conf),
        ..NetworkConfig::default()
    }
}

/// `nameserver` lines of a resolv.conf, without loopback resolvers (a local
/// stub such as systemd-resolved's 127.0.0.53 does not exist in the RAM image).
pub fn nameservers(resolv_conf: &str) -> Vec<String> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next())?
        })
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_loopback())
        .map(|ip| ip.to_string())
        .collect()
}

/// Whether resolv.conf points only at a local stub resolver (then the real
/// upstream servers are in /run/systemd/resolve/resolv.conf).
pub fn only_local_stub(resolv_conf: &str) -> bool {
    let any = resolv_conf
        .lines()
        .any(|l| l.split_whitespace().next() == Some("nameserver"));
    any && nameservers(resolv_conf).is_empty()
}

#[cfg(test)]
mod tests;
