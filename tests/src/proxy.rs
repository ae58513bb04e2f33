//! A TCP proxy a test can cut: it forwards every connection on a loopback
//! port to an upstream address, counting the bytes each way, and
//! [`CutProxy::cut`] closes every open connection (both sides see the
//! connection die, as when a link drops and a NAT forgets its state) and
//! refuses new ones (accepted and closed at once) for a while, then forwards
//! again; [`CutProxy::blackhole`] drops the link silently instead (open
//! connections stop forwarding but are never closed); [`CutProxy::set_rate`] slows it down. Plain `std` threads, no
//! async runtime.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Refuse new connections until this instant.
    refuse_until: Mutex<Option<Instant>>,
    /// Both ends of every open connection, by connection number.
    open: Mutex<Vec<(u64, TcpStream, TcpStream)>>,
    to_upstream: AtomicU64,
    from_upstream: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    cuts: AtomicU64,
    /// Bytes per second each way per connection; 0 = as fast as it goes.
    rate: AtomicU64,
    /// Connections that silently stopped forwarding (kept open, never closed).
    silenced: Mutex<Vec<u64>>,
}

/// The proxy; stops (and closes every connection) when dropped.
pub struct CutProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl CutProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        thread::Builder::new()
            .name("cut-proxy".into())
            .spawn(move || accept_loop(listener, upstream, s))?;
        Ok(Self { addr, shared })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every open connection and refuses new ones for `refuse_for`.
    /// Returns how many connections were cut.
    pub fn cut(&self, refuse_for: Duration) -> usize {
        if let Ok(mut r) = self.shared.refuse_until.lock() {
            *r = Some(Instant::now() + refuse_for);
        }
        self.shared.cuts.fetch_add(1, Ordering::Relaxed);
        close_all(&self.shared)
    }

    /// A silent drop, as when a link dies without a reset: every open
    /// connection stops forwarding but stays open (neither side is told), and
    /// new connections are refused for `refuse_for`. Only keepalives can
    /// notice. Returns how many connections went silent.
    pub fn blackhole(&self, refuse_for: Duration) -> usize {
        if let Ok(mut r) = self.shared.refuse_until.lock() {
            *r = Some(Instant::now() + refuse_for);
        }
        self.shared.cuts.fetch_add(1, Ordering::Relaxed);
        let ids: Vec<u64> = match self.shared.open.lock() {
            Ok(o) => o.iter().map(|(id, _, _)| *id).collect(),
            Err(_) => return 0,
        };
        if let Ok(mut s) = self.shared.silenced.lock() {
            s.extend(&ids);
        }
        ids.len()
    }

    /// Limits each direction of each connection to `bytes_per_sec` (0 = no limit),
    /// so a loopback transfer lasts long enough to be cut in its middle.
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.shared.rate.store(bytes_per_sec, Ordering::Relaxed);
    }

    /// Bytes forwarded from clients to the upstream so far.
    pub fn bytes_to_upstream(&self) -> u64 {
        self.shared.to_upstream.load(Ordering::Relaxed)
    }

    /// Bytes forwarded from the upstream to clients so far.
    pub fn bytes_from_upstream(&self) -> u64 {
        self.shared.from_upstream.load(Ordering::Relaxed)
    }

    /// Connections forwarded so far.
    pub fn connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Connections refused while cut.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        close_all(&self.shared);
    }
}

fn close_all(shared: &Shared) -> usize {
    let open = match shared.open.lock() {
        Ok(mut o) => std::mem::take(&mut *o),
        Err(_) => return 0,
    };
    for (_, a, b) in &open {
        let _ = a.shutdown(Shutdown::Both);
        let _ = b.shutdown(Shutdown::Both);
    }
    open.len()
}

fn refusing(shared: &Shared) -> bool {
    shared
        .refuse_until
        .lock()
        .map(|r| r.is_some_and(|t| Instant::now() < t))
        .unwrap_or(false)
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(client) = conn else { continue };
        if refusing(&shared) {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        ) else {
            continue;
        };
        if let Ok(mut o) = shared.open.lock() {
            o.push((id, c3, s3));
        }
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let (sa, sb) = (shared.clone(), shared.clone());
        let _ = thread::Builder::new()
            .name("cut-proxy-up".into())
            .spawn(move || pump(client, s2, &sa.to_upstream, &sa, id));
        let _ = thread::Builder::new()
            .name("cut-proxy-down".into())
            .spawn(move || pump(server, c2, &sb.from_upstream, &sb, id));
    }
}

fn is_silenced(shared: &Shared, id: u64) -> bool {
    shared
        .silenced
        .lock()
        .map(|s| s.contains(&id))
        .unwrap_or(false)
}

/// Copies `from` → `to` until either side ends, then closes both.
fn pump(mut from: TcpStream, mut to: TcpStream, count: &AtomicU64, shared: &Shared, id: u64) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if is_silenced(shared, id) {
                    // Swallow everything; never close (the peer must find out by itself).
                    if shared.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    continue;
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                count.fetch_add(n as u64, Ordering::Relaxed);
                let rate = shared.rate.load(Ordering::Relaxed);
                if rate > 0 {
                    thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    if let Ok(mut o) = shared.open.lock() {
        o.retain(|(i, _, _)| *i != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        thread::spawn(move || {
            for c in l.incoming().flatten() {
                thread::spawn(move || {
                    let mut r = c.try_clone().unwrap();
                    let mut w = c;
                    let _ = io::copy(&mut r, &mut w);
                });
            }
        });
        addr
    }

    fn roundtrip(addr: SocketAddr) -> io::Result<Vec<u8>> {
        let mut c = TcpStream::connect(addr)?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        c.write_all(b"hello")?;
        let mut got = [0u8; 5];
        c.read_exact(&mut got)?;
        Ok(got.to_vec())
    }

    #[test]
    fn forwards_cuts_refuses_and_forwards_again() {
        let proxy = CutProxy::start(echo_server()).unwrap();
        assert_eq!(roundtrip(proxy.addr()).unwrap(), b"hello");
        // The proxy counts a chunk after forwarding it: the echo can reach the
        // client before the count does (it did on a loaded CI machine).
        assert!(crate::wait_until(Duration::from_secs(5), || {
            proxy.bytes_to_upstream() == 5 && proxy.bytes_from_upstream() == 5
        }));
        assert_eq!(proxy.bytes_to_upstream(), 5);
        assert_eq!(proxy.bytes_from_upstream(), 5);

        // An open connection dies with the cut.
        let mut open = TcpStream::connect(proxy.addr()).unwrap();
        open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(crate::wait_until(Duration::from_secs(5), || proxy
            .connections()
            == 2));
        assert_eq!(proxy.cut(Duration::from_millis(1500)), 1);
        let mut b = [0u8; 1];
        assert!(matches!(open.read(&mut b), Ok(0) | Err(_)));

        // While cut, new connections are closed at once.
        assert!(roundtrip(proxy.addr()).is_err());
        assert!(crate::wait_until(Duration::from_secs(5), || proxy
            .refused()
            >= 1));

        // Then it forwards again.
        thread::sleep(Duration::from_millis(1600));
        assert_eq!(roundtrip(proxy.addr()).unwrap(), b"hello");
    }

    #[test]
    fn a_blackhole_keeps_connections_open_and_silent() {
        let proxy = CutProxy::start(echo_server()).unwrap();
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(800)))
            .unwrap();
        c.write_all(b"one").unwrap();
        let mut got = [0u8; 3];
        c.read_exact(&mut got).unwrap();
        assert_eq!(proxy.blackhole(Duration::from_millis(500)), 1);
        c.write_all(b"two").unwrap();
        let e = c.read(&mut got).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "the connection was closed or answered: {e}"
        );
        thread::sleep(Duration::from_millis(600));
        assert_eq!(roundtrip(proxy.addr()).unwrap(), b"hello");
    }
}
