//! Network cards of a test VM: qemu user-mode networking, `restrict=on`
//! unless a test lets DNS through ([`Nic::host_dns`]).
//!
//! The guest cannot reach the host's network or the internet; the only way in
//! is a host port forward `127.0.0.1:HOST -> guest:GUEST`. The guest's address
//! is qemu's default 10.0.2.15 (its built-in DHCP server hands it out), which
//! is where forwards land.
//!
//! Beware: a TCP connect to a forwarded host port succeeds as soon as qemu
//! runs, whether or not anything listens in the guest (qemu accepts, then
//! drops the connection when the guest refuses). "Port open" proves nothing:
//! retry until the application answers (`retry_until`), e.g. a TLS handshake
//! or a greeting line.

use crate::disk::escape_option;

/// The emulated network card.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NicModel {
    /// `virtio-net-pci` (guest driver virtio_net).
    #[default]
    VirtioNet,
    /// `e1000` (guest driver e1000).
    E1000,
    /// Any other qemu NIC device name, e.g. "e1000e".
    Other(String),
}

impl NicModel {
    fn device(&self) -> &str {
        match self {
            NicModel::VirtioNet => "virtio-net-pci",
            NicModel::E1000 => "e1000",
            NicModel::Other(name) => name,
        }
    }
}

/// One user-mode network card.
#[derive(Debug, Clone, Default)]
pub struct Nic {
    model: NicModel,
    mac: Option<String>,
    forwards: Vec<Forward>,
    guest_forwards: Vec<GuestForward>,
    host_dns: bool,
}

/// Debian's busybox-static (scripts/setup.sh), whose `nc` carries guest forwards.
const BUSYBOX: &str = "/bin/busybox";

/// A TCP forward the other way: the guest connects to `addr` (an address of
/// the user network, e.g. `10.0.2.100:80`) and reaches the host's loopback
/// port `host_port`. qemu's `guestfwd` with a `busybox nc` per connection; it
/// works with `restrict=on`, which only blocks what no rule names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestForward {
    pub addr: String,
    pub host_port: u16,
}

/// A TCP port forward from the host's loopback to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// The guest's port.
    pub guest: u16,
    /// The host port; `None` lets the harness pick a free one at start.
    pub host: Option<u16>,
}

impl Nic {
    /// A virtio-net card on a restricted user-mode network.
    pub fn user() -> Nic {
        Nic::default()
    }

    /// Chooses the card model.
    pub fn model(mut self, model: NicModel) -> Nic {
        self.model = model;
        self
    }

    /// A fixed MAC address, e.g. "52:54:00:12:34:56".
    pub fn mac(mut self, mac: &str) -> Nic {
        self.mac = Some(mac.to_owned());
        self
    }

    /// Forwards a free host port (chosen at start; see `Vm::host_port`) to `guest_port`.
    pub fn forward(mut self, guest_port: u16) -> Nic {
        self.forwards.push(Forward {
            guest: guest_port,
            host: None,
        });
        self
    }

    /// Forwards a given host port to `guest_port`.
    pub fn forward_fixed(mut self, host_port: u16, guest_port: u16) -> Nic {
        self.forwards.push(Forward {
            guest: guest_port,
            host: Some(host_port),
        });
        self
    }

    /// Lets the guest reach the host's `127.0.0.1:host_port` at `addr`
    /// (`"10.0.2.100:80"`): a service of the test (a binary cache) for the guest.
    pub fn guest_forward(mut self, addr: &str, host_port: u16) -> Nic {
        self.guest_forwards.push(GuestForward {
            addr: addr.to_owned(),
            host_port,
        });
        self
    }

    /// Lets the guest's DNS queries to 10.0.2.3 reach the nameserver of the
    /// host's /etc/resolv.conf (as qemu's mount namespace shows it):
    /// `restrict=off`, because a restricted user network drops every UDP
    /// datagram of the guest but DHCP and TFTP. The guest can then reach
    /// what the host reaches.
    pub fn host_dns(mut self) -> Nic {
        self.host_dns = true;
        self
    }

    /// The forwards as configured (host ports may still be unchosen).
    pub fn forwards(&self) -> &[Forward] {
        &self.forwards
    }

    /// The qemu arguments for the `index`-th card, with host ports `resolved`
    /// (one per forward, same order).
    pub fn args(&self, index: usize, resolved: &[u16]) -> Vec<String> {
        let id = format!("net{index}");
        let restrict = if self.host_dns { "off" } else { "on" };
        let mut netdev = format!("user,id={id},restrict={restrict}");
        for (fwd, host) in self.forwards.iter().zip(resolved) {
            netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{}", fwd.guest));
        }
        for g in &self.guest_forwards {
            // `cmd:` starts the command for each guest connection (a
            // `tcp:` chardev would carry one connection only, made when qemu
            // starts); Debian's static busybox is the harness's netcat.
            netdev.push_str(&format!(
                ",guestfwd=tcp:{}-cmd:{BUSYBOX} nc 127.0.0.1 {}",
                escape_option(&g.addr),
                g.host_port
            ));
        }
        let mut device = format!("{},netdev={id}", self.model.device());
        if let Some(mac) = &self.mac {
            device.push_str(&format!(",mac={}", escape_option(mac)));
        }
        vec!["-netdev".into(), netdev, "-device".into(), device]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_forwards_reach_the_hosts_loopback() {
        let nic = Nic::user()
            .forward(7443)
            .guest_forward("10.0.2.100:80", 41000);
        assert_eq!(
            nic.args(0, &[40000]),
            [
                "-netdev",
                "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40000-:7443,guestfwd=tcp:10.0.2.100:80-cmd:/bin/busybox nc 127.0.0.1 41000",
                "-device",
                "virtio-net-pci,netdev=net0",
            ]
        );
    }

    #[test]
    fn restricted_with_loopback_forwards() {
        let nic = Nic::user()
            .model(NicModel::E1000)
            .mac("52:54:00:00:00:01")
            .forward(7443)
            .forward_fixed(2222, 22);
        assert_eq!(
            nic.args(0, &[40000, 2222]),
            [
                "-netdev",
                "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40000-:7443,hostfwd=tcp:127.0.0.1:2222-:22",
                "-device",
                "e1000,netdev=net0,mac=52:54:00:00:00:01",
            ]
        );
        assert_eq!(Nic::user().args(1, &[])[3], "virtio-net-pci,netdev=net1");
    }

    #[test]
    fn host_dns_lifts_the_restriction() {
        let args = Nic::user()
            .host_dns()
            .guest_forward("10.0.2.100:80", 41000)
            .args(0, &[]);
        assert!(
            args[1].starts_with("user,id=net0,restrict=off,guestfwd="),
            "{args:?}"
        );
    }
}
