//! Brings networking up in the RAM image: every link up, the static
//! configuration the image carries applied to interfaces matched by MAC, and
//! DHCPv4 on links with carrier (or where the old system used DHCP). IPv6
//! addresses from router advertisements come from the kernel itself once a link
//! is up. Leases are renewed at half their lifetime.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use rtnetlink::LinkUnspec;
use rtnetlink::{Handle, LinkMessageBuilder, RouteMessageBuilder};

use super::config::{self as netconfig, parse_cidr, InterfaceConfig};
use super::dhcp::{self, Lease};

/// A network interface as sysfs shows it.
#[derive(Debug, Clone)]
struct Link {
    name: String,
    index: u32,
    mac: String,
}

fn links() -> Vec<Link> {
    let Ok(rd) = fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut out: Vec<Link> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let sys = e.path();
            let index = fs::read_to_string(sys.join("ifindex"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            let mac = fs::read_to_string(sys.join("address"))
                .unwrap_or_default()
                .trim()
                .to_lowercase();
            Some(Link { name, index, mac })
        })
        .collect();
    out.sort_by_key(|l| l.index);
    out
}

fn carrier(name: &str) -> bool {
    fs::read_to_string(format!("/sys/class/net/{name}/carrier"))
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
}

fn mac_bytes(mac: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = mac
        .split(':')
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect();
    v.try_into().ok()
}

async fn set_up(h: &Handle, l: &Link) {
    let msg = LinkMessageBuilder::<LinkUnspec>::new()
        .index(l.index)
        .up()
        .build();
    if let Err(e) = h.link().set(msg).execute().await {
        tracing::warn!("Cannot bring {} up: {e}", l.name);
    }
}

async fn add_address(h: &Handle, l: &Link, ip: IpAddr, len: u8) {
    match h.address().add(l.index, ip, len).execute().await {
        Ok(()) => tracing::info!("{}: address {ip}/{len}", l.name),
        Err(e) if e.to_string().contains("File exists") => {}
        Err(e) => tracing::warn!("{}: cannot add {ip}/{len}: {e}", l.name),
    }
}

async fn add_route(h: &Handle, l: &Link, dst: &str, gw: &str) {
    let Some((dip, dlen)) = parse_cidr(dst) else {
        tracing::warn!(
            "{}: ignoring the route to '{dst}': not an address/prefix",
            l.name
        );
        return;
    };
    let gw: Option<IpAddr> = if gw.is_empty() { None } else { gw.parse().ok() };
    let msg = match (dip, gw) {
        (IpAddr::V4(d), g) => {
            let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(d, dlen)
                .output_interface(l.index);
            if let Some(IpAddr::V4(g)) = g {
                b = b.gateway(g);
            }
            b.build()
        }
        (IpAddr::V6(d), g) => {
            let mut b = RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(d, dlen)
                .output_interface(l.index);
            if let Some(IpAddr::V6(g)) = g {
                b = b.gateway(g);
            }
            b.build()
        }
    };
    match h.route().add(msg).execute().await {
        Ok(()) => tracing::info!(
            "{}: route {dst} via {}",
            l.name,
            if gw.is_some() {
                gw.map(|g| g.to_string()).unwrap_or_default()
            } else {
                "link".into()
            }
        ),
        Err(e) if e.to_string().contains("File exists") => {}
        Err(e) => tracing::warn!("{}: cannot add the route to {dst}: {e}", l.name),
    }
}

async fn apply_static(h: &Handle, l: &Link, cfg: &InterfaceConfig) {
    for a in &cfg.addresses {
        match parse_cidr(a) {
            Some((ip, len)) => add_address(h, l, ip, len).await,
            None => tracing::warn!(
                "{}: ignoring the address '{a}': not an address/prefix",
                l.name
            ),
        }
    }
    for r in &cfg.routes {
        add_route(h, l, &r.destination, &r.gateway).await;
    }
}

async fn apply_lease(h: &Handle, l: &Link, lease: &Lease) {
    add_address(h, l, IpAddr::V4(lease.address), lease.prefix_len).await;
    if let Some(gw) = lease.router {
        add_route(h, l, "0.0.0.0/0", &gw.to_string()).await;
    }
}

fn write_resolv_conf(servers: &[String]) {
    if servers.is_empty() {
        return;
    }
    let text: String = servers
        .iter()
        .map(|s| format!("nameserver {s}\n"))
        .collect();
    let _ = fs::create_dir_all("/etc");
    if let Err(e) = fs::write("/etc/resolv.conf", text) {
        tracing::warn!("Cannot write /etc/resolv.conf: {e}");
    }
}

/// Waits up to `timeout` for carrier on `name`.
fn wait_for_carrier(name: &str, timeout: Duration) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if carrier(name) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    carrier(name)
}

/// DHCP on one link, renewing forever. Runs on its own thread.
fn dhcp_forever(l: Link) {
    let Some(mac) = mac_bytes(&l.mac) else { return };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("{}: no runtime for DHCP: {e}", l.name);
            return;
        }
    };
    let Ok((conn, h, _)) = rt.block_on(async { rtnetlink::new_connection() }) else {
        tracing::error!("{}: no netlink socket for DHCP", l.name);
        return;
    };
    rt.spawn(conn);
    loop {
        match dhcp::acquire(&l.name, mac, Duration::from_secs(30)) {
            Ok(lease) => {
                tracing::info!(
                    "{}: DHCP lease {}/{} router {:?} for {} s",
                    l.name,
                    lease.address,
                    lease.prefix_len,
                    lease.router,
                    lease.lease_secs
                );
                rt.block_on(apply_lease(&h, &l, &lease));
                write_resolv_conf(&lease.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>());
                std::thread::sleep(Duration::from_secs(u64::from(lease.lease_secs.max(60)) / 2));
            }
            Err(e) => {
                tracing::warn!("{e}; trying again");
                std::thread::sleep(Duration::from_secs(5));
            }
        }
    }
}

/// Brings the network up; returns once static configuration is applied, with
/// DHCP continuing on background threads.
pub fn bring_up() {
    let cfg = match netconfig::load(Path::new(netconfig::IMAGE_NETWORK_CONFIG)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}; falling back to DHCP everywhere");
            None
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("No runtime for network set-up: {e}");
            return;
        }
    };
    let (conn, h, _) = match rt.block_on(async { rtnetlink::new_connection() }) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("No netlink socket: {e}; the network stays down");
            return;
        }
    };
    rt.spawn(conn);
    let all = links();
    rt.block_on(async {
        for l in &all {
            set_up(&h, l).await;
        }
    });
    let static_cfg = cfg.clone().unwrap_or_default();
    for l in all.iter().filter(|l| l.name != "lo") {
        let matched = static_cfg
            .interfaces
            .iter()
            .find(|i| i.mac.eq_ignore_ascii_case(&l.mac));
        if let Some(ic) = matched {
            tracing::info!(
                "{}: restoring the configuration of {} ({})",
                l.name,
                ic.name,
                ic.mac
            );
            rt.block_on(apply_static(&h, l, ic));
        }
        let dhcp = match (&cfg, matched) {
            (Some(_), Some(ic)) => ic.dhcp4,
            // An interface the old system did not configure, or no saved configuration: DHCP where there is a cable.
            _ => true,
        };
        if dhcp {
            let l = l.clone();
            std::thread::spawn(move || {
                if wait_for_carrier(&l.name, Duration::from_secs(10)) {
                    dhcp_forever(l);
                } else {
                    tracing::info!("{}: no carrier, no DHCP", l.name);
                }
            });
        }
    }
    write_resolv_conf(&static_cfg.nameservers);
}
