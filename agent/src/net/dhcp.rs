//! A small DHCPv4 client (DISCOVER → OFFER → REQUEST → ACK) for the RAM image,
//! over a UDP socket bound to one interface. Replies are asked for by broadcast,
//! since the interface has no address yet.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

/// What the server gave us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub lease_secs: u32,
    pub server: Ipv4Addr,
}

#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    #[error("Cannot open the DHCP socket on {0}")]
    Socket(String, #[source] std::io::Error),
    #[error("Cannot encode a DHCP message")]
    Encode(#[source] dhcproto::error::EncodeError),
    #[error("No DHCP offer on {0} within {1:?}")]
    NoOffer(String, Duration),
    #[error("The DHCP server refused the request on {0} (NAK)")]
    Nak(String),
}

fn socket(ifname: &str) -> Result<UdpSocket, DhcpError> {
    let err = |e| DhcpError::Socket(ifname.to_string(), e);
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).map_err(err)?;
    s.set_reuse_address(true).map_err(err)?;
    s.set_broadcast(true).map_err(err)?;
    s.bind_device(Some(ifname.as_bytes())).map_err(err)?;
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68).into())
        .map_err(err)?;
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(err)?;
    Ok(s.into())
}

fn message(kind: MessageType, xid: u32, mac: &[u8; 6], extra: &[DhcpOption]) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootRequest)
        .set_xid(xid)
        .set_chaddr(mac)
        .set_flags(Flags::default().set_broadcast());
    let opts = m.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::AddressLeaseTime,
    ]));
    for o in extra {
        opts.insert(o.clone());
    }
    m
}

fn send(sock: &UdpSocket, m: &Message, ifname: &str) -> Result<(), DhcpError> {
    let mut buf = Vec::with_capacity(600);
    m.encode(&mut Encoder::new(&mut buf))
        .map_err(DhcpError::Encode)?;
    sock.send_to(&buf, SocketAddrV4::new(Ipv4Addr::BROADCAST, 67))
        .map_err(|e| DhcpError::Socket(ifname.to_string(), e))?;
    Ok(())
}

/// Waits for a reply of `want` to `xid`; None on timeout.
fn receive(sock: &UdpSocket, xid: u32, want: &[MessageType], until: Instant) -> Option<Message> {
    let mut buf = [0u8; 1500];
    while Instant::now() < until {
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let Ok(m) = Message::decode(&mut Decoder::new(&buf[..n])) else {
            continue;
        };
        if m.xid() == xid
            && m.opcode() == Opcode::BootReply
            && m.opts().msg_type().is_some_and(|t| want.contains(&t))
        {
            return Some(m);
        }
    }
    None
}

fn lease_of(m: &Message) -> Lease {
    let opts = m.opts();
    let mask = match opts.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(m)) => *m,
        _ => Ipv4Addr::new(255, 255, 255, 0),
    };
    Lease {
        address: m.yiaddr(),
        prefix_len: u32::from(mask).count_ones() as u8,
        router: match opts.get(OptionCode::Router) {
            Some(DhcpOption::Router(r)) => r.first().copied(),
            _ => None,
        },
        dns: match opts.get(OptionCode::DomainNameServer) {
            Some(DhcpOption::DomainNameServer(d)) => d.clone(),
            _ => Vec::new(),
        },
        lease_secs: match opts.get(OptionCode::AddressLeaseTime) {
            Some(DhcpOption::AddressLeaseTime(t)) => *t,
            _ => 3600,
        },
        server: match opts.get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(s)) => *s,
            _ => m.siaddr(),
        },
    }
}

/// Runs one DORA exchange on `ifname`, retrying DISCOVER for up to `timeout`.
pub fn acquire(ifname: &str, mac: [u8; 6], timeout: Duration) -> Result<Lease, DhcpError> {
    let sock = socket(ifname)?;
    let xid = u32::from_le_bytes([mac[2] ^ 0x5a, mac[3], mac[4], mac[5]]) ^ std::process::id();
    let deadline = Instant::now() + timeout;
    let mut wait = Duration::from_secs(1);
    while Instant::now() < deadline {
        send(
            &sock,
            &message(MessageType::Discover, xid, &mac, &[]),
            ifname,
        )?;
        let Some(offer) = receive(
            &sock,
            xid,
            &[MessageType::Offer],
            (Instant::now() + wait).min(deadline),
        ) else {
            wait = (wait * 2).min(Duration::from_secs(4));
            continue;
        };
        let offered = lease_of(&offer);
        let req = message(
            MessageType::Request,
            xid,
            &mac,
            &[
                DhcpOption::RequestedIpAddress(offered.address),
                DhcpOption::ServerIdentifier(offered.server),
            ],
        );
        send(&sock, &req, ifname)?;
        match receive(
            &sock,
            xid,
            &[MessageType::Ack, MessageType::Nak],
            Instant::now() + Duration::from_secs(3),
        ) {
            Some(m) if m.opts().msg_type() == Some(MessageType::Ack) => return Ok(lease_of(&m)),
            Some(_) => return Err(DhcpError::Nak(ifname.to_string())),
            None => continue,
        }
    }
    Err(DhcpError::NoOffer(ifname.to_string(), timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discover_encodes_and_decodes_with_broadcast_flag() {
        let m = message(
            MessageType::Discover,
            42,
            &[0x52, 0x54, 0, 0x12, 0x34, 0x56],
            &[],
        );
        let mut buf = Vec::new();
        m.encode(&mut Encoder::new(&mut buf)).unwrap();
        let back = Message::decode(&mut Decoder::new(&buf)).unwrap();
        assert_eq!(back.xid(), 42);
        assert!(back.flags().broadcast());
        assert_eq!(back.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(&back.chaddr()[..6], &[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    }
}
