//! Which connections may use the agent's resources before they have proven
//! who they are. Anyone who reaches port 7443 can open connections; only a
//! client with the session's certificate gets served. In between, every
//! connection costs a file descriptor and a task, and a TLS handshake costs
//! CPU (key exchange, certificate checks). This module bounds both, so a
//! flood of half-open connections cannot stop the real controller.
//!
//! Two stages, each a [`Gate`] with a total cap and a cap per source address:
//! - **pending**: from `accept` until the TLS session is established or the
//!   connection is dropped. Half-open connections (nothing sent, or a partial
//!   ClientHello) stay here and cost a descriptor, nothing more.
//! - **handshaking**: from a complete ClientHello to an established session
//!   (the crypto part). A real client needs milliseconds here.
//!
//! Invariants: at no time are more than `total` connections in a gate, nor
//! more than `per_ip` from one address; a [`Ticket`] frees its place when it
//! is dropped, whatever happened to the connection (error, timeout, panic).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Connections between accept and an established TLS session, in all (each
/// costs a descriptor, a task and a few KiB: 4096 are ~16 MiB), but never
/// more than the open-file limit leaves room for ([`pending_total`]).
pub const PENDING_TOTAL: usize = 4096;
/// Descriptors kept free of pending connections: the served sessions, the
/// disks, the store, the log.
pub const DESCRIPTORS_KEPT: u64 = 256;
/// Of those, from one source address.
pub const PENDING_PER_IP: usize = 64;
/// TLS handshakes in flight (ClientHello received, session not yet
/// established), in all.
pub const HANDSHAKES_TOTAL: usize = 32;
/// Of those, from one source address.
pub const HANDSHAKES_PER_IP: usize = 4;

/// The cap on pending connections under an open-file limit of `nofile`:
/// [`PENDING_TOTAL`], or what the limit leaves after [`DESCRIPTORS_KEPT`]
/// (at least [`PENDING_PER_IP`]), so `accept` itself never runs out.
pub fn pending_total(nofile: u64) -> usize {
    let room = nofile
        .saturating_sub(DESCRIPTORS_KEPT)
        .max(PENDING_PER_IP as u64);
    PENDING_TOTAL.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{held} connections from this address are already {stage} (at most {cap})")]
    PerIp {
        stage: &'static str,
        held: usize,
        cap: usize,
    },
    #[error("{cap} connections are already {stage}")]
    Total { stage: &'static str, cap: usize },
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// A bounded set of connections: at most `total`, at most `per_ip` from one
/// address. Cloning shares the counts.
#[derive(Debug, Clone)]
pub struct Gate {
    stage: &'static str,
    total: usize,
    per_ip: usize,
    counts: Arc<Mutex<Counts>>,
}

impl Gate {
    /// A gate named `stage` ("waiting for a TLS handshake", …) for messages.
    pub fn new(stage: &'static str, total: usize, per_ip: usize) -> Self {
        Self {
            stage,
            total,
            per_ip,
            counts: Arc::default(),
        }
    }

    /// Lets a connection from `ip` in, or says why not. Never waits.
    pub fn try_enter(&self, ip: IpAddr) -> Result<Ticket, Refusal> {
        let ip = canonical(ip);
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let held = c.by_ip.get(&ip).copied().unwrap_or(0);
        if held >= self.per_ip {
            return Err(Refusal::PerIp {
                stage: self.stage,
                held,
                cap: self.per_ip,
            });
        }
        if c.total >= self.total {
            return Err(Refusal::Total {
                stage: self.stage,
                cap: self.total,
            });
        }
        c.total += 1;
        *c.by_ip.entry(ip).or_insert(0) += 1;
        Ok(Ticket {
            ip,
            counts: self.counts.clone(),
        })
    }

    /// Connections in the gate now: (in all, from `ip`).
    pub fn held(&self, ip: IpAddr) -> (usize, usize) {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        (c.total, c.by_ip.get(&canonical(ip)).copied().unwrap_or(0))
    }
}

/// An IPv4 client on the dual-stack socket shows as `::ffff:a.b.c.d`: count
/// it under its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// A place in a [`Gate`], given back on drop.
#[derive(Debug)]
pub struct Ticket {
    ip: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_gets_at_most_its_share() {
        let g = Gate::new("handshaking", 32, 4);
        let held: Vec<Ticket> = (0..4)
            .map(|_| g.try_enter(ip("192.0.2.7")).unwrap())
            .collect();
        assert_eq!(
            g.try_enter(ip("192.0.2.7")).unwrap_err(),
            Refusal::PerIp {
                stage: "handshaking",
                held: 4,
                cap: 4
            }
        );
        // Another address is still let in.
        let other = g.try_enter(ip("198.51.100.1")).unwrap();
        assert_eq!(g.held(ip("192.0.2.7")), (5, 4));
        drop(other);
        drop(held);
        assert_eq!(g.held(ip("192.0.2.7")), (0, 0));
    }

    #[test]
    fn many_addresses_together_get_at_most_the_total() {
        let g = Gate::new("pending", 8, 2);
        let mut held = Vec::new();
        for i in 0..4 {
            for _ in 0..2 {
                held.push(g.try_enter(ip(&format!("10.0.0.{i}"))).unwrap());
            }
        }
        assert_eq!(
            g.try_enter(ip("10.0.0.99")).unwrap_err(),
            Refusal::Total {
                stage: "pending",
                cap: 8
            }
        );
        // One place freed: the next connection gets it.
        held.pop();
        assert!(g.try_enter(ip("10.0.0.99")).is_ok());
    }

    #[test]
    fn the_pending_cap_leaves_descriptors_free() {
        assert_eq!(pending_total(65_536), PENDING_TOTAL);
        // The kernel's default soft limit, when it could not be raised.
        assert_eq!(pending_total(1024), 1024 - 256);
        assert_eq!(pending_total(100), PENDING_PER_IP);
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_their_ipv4_address() {
        let g = Gate::new("pending", 8, 1);
        let _t = g.try_enter(ip("192.0.2.7")).unwrap();
        assert!(matches!(
            g.try_enter(ip("::ffff:192.0.2.7")),
            Err(Refusal::PerIp { .. })
        ));
    }

    #[test]
    fn a_ticket_dropped_by_a_panicking_task_frees_its_place() {
        let g = Gate::new("pending", 1, 1);
        let g2 = g.clone();
        let r = std::thread::spawn(move || {
            let _t = g2.try_enter(ip("192.0.2.1")).unwrap();
            panic!("the connection's task failed");
        })
        .join();
        assert!(r.is_err());
        assert!(g.try_enter(ip("192.0.2.1")).is_ok());
    }
}
