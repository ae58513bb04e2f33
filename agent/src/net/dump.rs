//! Reads the running system's links, addresses and routes through rtnetlink
//! (no `ip` binary needed), for [`super::capture::network_config`].

use futures::TryStreamExt;
use rtnetlink::packet_route::route::RouteMessage;
use rtnetlink::{IpVersion, RouteMessageBuilder};

use super::capture::NetlinkState;

/// Why the network state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NetDumpError {
    #[error("Cannot open a netlink socket")]
    Socket(#[source] std::io::Error),
    #[error("Cannot start a runtime for netlink")]
    Runtime(#[source] std::io::Error),
    #[error("Cannot list the {0}")]
    Dump(&'static str, #[source] rtnetlink::Error),
}

fn dump_request(v: IpVersion) -> RouteMessage {
    match v {
        IpVersion::V4 => RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
        IpVersion::V6 => RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
    }
}

async fn dump() -> Result<NetlinkState, NetDumpError> {
    let (conn, h, _) = rtnetlink::new_connection().map_err(NetDumpError::Socket)?;
    let task = tokio::spawn(conn);
    let links = h
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetDumpError::Dump("links", e))?;
    let addresses = h
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetDumpError::Dump("addresses", e))?;
    let mut routes: Vec<RouteMessage> = Vec::new();
    for v in [IpVersion::V4, IpVersion::V6] {
        let mut r: Vec<RouteMessage> = h
            .route()
            .get(dump_request(v))
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetDumpError::Dump("routes", e))?;
        routes.append(&mut r);
    }
    task.abort();
    Ok(NetlinkState {
        links,
        addresses,
        routes,
    })
}

/// Dumps links, addresses and routes (IPv4 and IPv6) of this network namespace.
pub fn read_netlink_state() -> Result<NetlinkState, NetDumpError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(NetDumpError::Runtime)?;
    rt.block_on(dump())
}
