//! The netlink → configuration rules, on hand-made messages shaped like the
//! kernel's dumps (what `ip -d addr` / `ip route` show on a typical VPS).

use std::net::IpAddr;

use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, CacheInfo};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::AddressFamily;

use super::*;

fn link(index: u32, name: &str, mac: &[u8], loopback: bool) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    if loopback {
        m.header.flags = LinkFlags::Loopback | LinkFlags::Up;
    }
    m.attributes.push(LinkAttribute::IfName(name.into()));
    m.attributes.push(LinkAttribute::Address(mac.to_vec()));
    m
}

fn addr(index: u32, ip: &str, len: u8, valid: Option<u32>, permanent: bool) -> AddressMessage {
    let ip: IpAddr = ip.parse().unwrap();
    let mut m = AddressMessage::default();
    m.header.index = index;
    m.header.prefix_len = len;
    m.header.family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.attributes.push(AddressAttribute::Address(ip));
    if ip.is_ipv4() {
        m.attributes.push(AddressAttribute::Local(ip));
    }
    let v = valid.unwrap_or(u32::MAX);
    let mut ci = CacheInfo::default();
    ci.ifa_preferred = v;
    ci.ifa_valid = v;
    m.attributes.push(AddressAttribute::CacheInfo(ci));
    m.attributes.push(AddressAttribute::Flags(if permanent {
        AddressFlags::Permanent
    } else {
        AddressFlags::empty()
    }));
    m
}

fn route(
    oif: u32,
    dst: Option<(&str, u8)>,
    gw: Option<&str>,
    proto: RouteProtocol,
) -> RouteMessage {
    let mut m = RouteMessage::default();
    let v6 = dst.map(|(d, _)| d.contains(':')).unwrap_or(false)
        || gw.map(|g| g.contains(':')).unwrap_or(false);
    m.header.address_family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    m.header.table = 254;
    m.header.kind = RouteType::Unicast;
    m.header.protocol = proto;
    m.header.scope = if gw.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    let ra = |s: &str| -> RouteAddress {
        match s.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => RouteAddress::Inet(a),
            IpAddr::V6(a) => RouteAddress::Inet6(a),
        }
    };
    if let Some((d, len)) = dst {
        m.header.destination_prefix_length = len;
        m.attributes.push(RouteAttribute::Destination(ra(d)));
    }
    if let Some(g) = gw {
        m.attributes.push(RouteAttribute::Gateway(ra(g)));
    }
    m.attributes.push(RouteAttribute::Table(254));
    m.attributes.push(RouteAttribute::Oif(oif));
    m
}

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const MAC2: [u8; 6] = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];

#[test]
fn static_vps_with_v4_and_v6() {
    let state = NetlinkState {
        links: vec![link(1, "lo", &[0; 6], true), link(2, "ens3", &MAC, false)],
        addresses: vec![
            addr(1, "127.0.0.1", 8, None, true),
            addr(1, "::1", 128, None, true),
            addr(2, "10.0.2.15", 24, None, true),
            addr(2, "2001:db8::15", 64, None, true),
            addr(2, "fe80::5054:ff:fe12:3456", 64, None, true),
        ],
        routes: vec![
            route(2, Some(("10.0.2.0", 24)), None, RouteProtocol::Kernel),
            route(2, None, Some("10.0.2.2"), RouteProtocol::Boot),
            route(2, Some(("2001:db8::", 64)), None, RouteProtocol::Kernel),
            route(2, Some(("fe80::", 64)), None, RouteProtocol::Kernel),
            route(2, None, Some("fe80::1"), RouteProtocol::Static),
        ],
    };
    let cfg = network_config(
        &state,
        "nameserver 1.1.1.1\nnameserver 2606:4700:4700::1111\n",
    );
    assert_eq!(cfg.interfaces.len(), 1, "{cfg:?}");
    let i = &cfg.interfaces[0];
    assert_eq!(i.mac, "52:54:00:12:34:56");
    assert_eq!(i.name, "ens3");
    assert!(!i.dhcp4);
    assert_eq!(i.addresses, ["10.0.2.15/24", "2001:db8::15/64"]);
    assert_eq!(
        i.routes,
        [
            RouteConfig {
                destination: "0.0.0.0/0".into(),
                gateway: "10.0.2.2".into()
            },
            RouteConfig {
                destination: "::/0".into(),
                gateway: "fe80::1".into()
            },
        ]
    );
    assert_eq!(cfg.nameservers, ["1.1.1.1", "2606:4700:4700::1111"]);
}

#[test]
fn dhcp_lease_sets_dhcp4_and_keeps_the_address() {
    let state = NetlinkState {
        links: vec![link(2, "eth0", &MAC, false)],
        addresses: vec![
            addr(2, "192.168.1.50", 24, Some(86000), false),
            // SLAAC: finite, not permanent → the kernel makes it again.
            addr(2, "2001:db8::5054:ff:fe12:3456", 64, Some(2000), false),
        ],
        routes: vec![
            route(2, None, Some("192.168.1.1"), RouteProtocol::Dhcp),
            route(2, None, Some("fe80::1"), RouteProtocol::Ra),
        ],
    };
    let cfg = network_config(&state, "");
    let i = &cfg.interfaces[0];
    assert!(i.dhcp4);
    assert_eq!(i.addresses, ["192.168.1.50/24"]);
    assert_eq!(
        i.routes,
        [RouteConfig {
            destination: "0.0.0.0/0".into(),
            gateway: "192.168.1.1".into()
        }]
    );
}

#[test]
fn onlink_gateway_route_comes_first_and_interfaces_stay_apart() {
    // A hosting provider's /32: the gateway is reached through a link route.
    let state = NetlinkState {
        links: vec![link(2, "eth0", &MAC, false), link(3, "eth1", &MAC2, false)],
        addresses: vec![
            addr(2, "203.0.113.7", 32, None, true),
            addr(3, "10.9.0.2", 16, None, true),
        ],
        routes: vec![
            route(2, None, Some("172.31.1.1"), RouteProtocol::Boot),
            route(2, Some(("172.31.1.1", 32)), None, RouteProtocol::Boot),
            route(
                3,
                Some(("10.10.0.0", 16)),
                Some("10.9.0.1"),
                RouteProtocol::Static,
            ),
        ],
    };
    let cfg = network_config(&state, "");
    assert_eq!(cfg.interfaces.len(), 2);
    assert_eq!(
        cfg.interfaces[0].routes,
        [
            RouteConfig {
                destination: "172.31.1.1/32".into(),
                gateway: String::new()
            },
            RouteConfig {
                destination: "0.0.0.0/0".into(),
                gateway: "172.31.1.1".into()
            },
        ]
    );
    assert_eq!(cfg.interfaces[1].mac, "52:54:00:ab:cd:ef");
    assert_eq!(
        cfg.interfaces[1].routes,
        [RouteConfig {
            destination: "10.10.0.0/16".into(),
            gateway: "10.9.0.1".into()
        }]
    );
}

#[test]
fn other_tables_multicast_and_macless_links_are_skipped() {
    let mut local_table = route(2, Some(("10.0.2.15", 32)), None, RouteProtocol::Kernel);
    local_table
        .attributes
        .retain(|a| !matches!(a, RouteAttribute::Table(_)));
    local_table.attributes.push(RouteAttribute::Table(255));
    local_table.header.protocol = RouteProtocol::Static;
    let mut other_table = route(2, None, Some("10.0.2.3"), RouteProtocol::Static);
    other_table
        .attributes
        .retain(|a| !matches!(a, RouteAttribute::Table(_)));
    other_table.attributes.push(RouteAttribute::Table(100));
    let mut broadcast = route(2, Some(("10.0.2.255", 32)), None, RouteProtocol::Static);
    broadcast.header.kind = RouteType::Broadcast;
    let state = NetlinkState {
        links: vec![link(2, "eth0", &MAC, false), link(4, "wg0", &[], false)],
        addresses: vec![addr(4, "10.100.0.1", 24, None, true)],
        routes: vec![
            local_table,
            other_table,
            broadcast,
            route(2, Some(("224.0.0.0", 4)), None, RouteProtocol::Static),
        ],
    };
    let cfg = network_config(&state, "");
    assert_eq!(cfg.interfaces.len(), 1);
    assert!(cfg.interfaces[0].routes.is_empty(), "{cfg:?}");
}

#[test]
fn resolv_conf_without_the_local_stub() {
    let text = "# generated\nsearch example.com\nnameserver 127.0.0.53\nnameserver 9.9.9.9 \noptions edns0\nnameserver bogus\n";
    assert_eq!(nameservers(text), ["9.9.9.9"]);
    assert!(only_local_stub(
        "nameserver 127.0.0.53\noptions edns0 trust-ad\n"
    ));
    assert!(!only_local_stub(""));
    assert!(!only_local_stub(text));
}
