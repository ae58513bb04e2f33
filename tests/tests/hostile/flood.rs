//! A connection flood against the real agent on loopback (issue 14, item 5;
//! security review finding 5). From one test process, while the real
//! controller needs the agent:
//! - 300 silent TCP connections from 127.0.0.2 (more than its per-address
//!   share: the rest are closed at once);
//! - 1200 silent connections spread over 127.0.0.3–127.0.0.22, more than the
//!   kernel's default 1024 descriptors (an agent that kept that limit could
//!   no longer `accept`, as the security review found);
//! - 60 connections from 127.0.0.23 that send a partial TLS record and stall;
//! - 40 connections from 127.0.0.24 that send a real ClientHello and then
//!   never answer (each would hold a TLS handshake place).
//!
//! With all of them open, a real client from 127.0.0.1 calls Status and
//! Inventory, and `landfall status` succeeds. Then the handshake timeout
//! closes the silent connections; the agent's log holds a bounded number of
//! "Refused" lines and says how many it left out; its open-file limit was
//! raised.

use crate::hostile_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hostile_common::{assert_serving, Agent, Session};
use landfall_proto::tlsnames::AGENT_SERVER_NAME;
use landfall_tests::TestDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The agent's handshake timeout (agent/src/server.rs HANDSHAKE_TIMEOUT).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sets this process's soft open-file limit (the hard one stays); returns the hard one.
fn set_own_soft_nofile(soft: Option<u64>) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `struct rlimit` to a live local.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    r.rlim_cur = soft.unwrap_or(r.rlim_max).min(r.rlim_max);
    // SAFETY: setrlimit reads one live `struct rlimit`.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
    r.rlim_max
}

/// A TCP connection to `agent` from `source` (any 127.0.0.0/8 address is loopback).
async fn connect_from(source: &str, agent: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(format!("{source}:0").parse().unwrap())?;
    s.connect(agent).await
}

/// `n` connections from `source`, all at once; the ones the kernel did not
/// even accept (backlog full) are left out.
async fn open_many(source: &str, agent: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let source = source.to_string();
        set.spawn(async move {
            tokio::time::timeout(Duration::from_secs(2), connect_from(&source, agent)).await
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(Ok(Ok(s))) = r {
            out.push(s);
        }
    }
    out
}

/// Whether the agent has not closed `s` yet (nothing to read, no EOF).
fn still_open(s: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(s.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// A real TLS 1.3 ClientHello for the agent's name, as rustls sends it.
fn client_hello() -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca = hostile_common::self_signed("flood-ca");
    let der = rustls_pemfile_der(&ca.cert);
    roots.add(der).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(AGENT_SERVER_NAME).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    assert_eq!(hello[0], 0x16, "a TLS handshake record");
    hello
}

/// The DER of the first certificate in a PEM text.
fn rustls_pemfile_der(pem: &str) -> rustls::pki_types::CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// Whether the agent closed `s` (EOF or reset) within `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // The agent's ServerHello and the rest: keep reading.
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// The agent's (soft, hard) open-file limits, from /proc.
fn nofile_of(pid: i32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let n: Vec<u64> = line
        .split_whitespace()
        .skip(3)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    (n[0], n[1])
}

#[test]
fn a_connection_flood_does_not_stop_the_real_controller() {
    // The agent inherits the kernel's usual soft limit of 1024.
    let hard = set_own_soft_nofile(Some(1024));
    let tdir = TestDir::new("hostile-flood").unwrap();
    let dir = tdir.path();
    let s = Session::new(dir);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let agent = Agent::start(dir, &s.agent_tls, &root, &[]);
    let started = Instant::now();
    let addr: SocketAddr = agent.addr.parse().unwrap();
    // Raised: to 65536 with CAP_SYS_RESOURCE, else at least to the hard limit.
    let (soft, agent_hard) = nofile_of(agent.proc.pid());
    eprintln!("FIGURE flood: the agent's open-file limit is {soft} (hard {agent_hard})");
    assert!(
        soft >= hard.min(65_536) && soft > 1024,
        "the agent did not raise its open-file limit: {soft} (hard {agent_hard})"
    );
    // The flood holds ~1600 sockets here.
    set_own_soft_nofile(None);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let hello = client_hello();
        let flood_start = Instant::now();
        // Silent connections, over one address's share and spread out.
        let mut silent = open_many("127.0.0.2", addr, 300).await;
        let mut spread = Vec::new();
        for i in 3..=22 {
            spread.extend(open_many(&format!("127.0.0.{i}"), addr, 60).await);
        }
        // A TLS record header announcing 16 KiB, 3 bytes of it, then nothing.
        let mut partial = open_many("127.0.0.23", addr, 60).await;
        for c in &mut partial {
            let _ = c
                .write_all(&[0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0x3f])
                .await;
        }
        // Complete ClientHellos, then silence: each would hold a handshake place.
        let mut stalled = open_many("127.0.0.24", addr, 40).await;
        for c in &mut stalled {
            let _ = c.write_all(&hello).await;
        }
        let opened = silent.len() + spread.len() + partial.len() + stalled.len();
        eprintln!(
            "FIGURE flood: {opened} connections opened in {:.2} s",
            flood_start.elapsed().as_secs_f64()
        );
        assert!(
            opened > 1100,
            "the flood opened only {opened} connections (more than 1024 are needed)"
        );
        // Let the agent take them all in (accept, read the hellos).
        tokio::time::sleep(Duration::from_millis(500)).await;

        // The real controller, from 127.0.0.1, with every flood connection open.
        let t = Instant::now();
        let ch = hostile_common::channel(&agent.addr, &s.controller_tls).await;
        let mut c = landfall_proto::v1::agent_client::AgentClient::new(ch);
        c.status(landfall_proto::v1::StatusRequest {})
            .await
            .expect("Status during the flood");
        let inv = c
            .inventory(landfall_proto::v1::InventoryRequest {})
            .await
            .expect("Inventory during the flood")
            .into_inner();
        assert!(!inv.agent_version.is_empty());
        eprintln!(
            "FIGURE flood: the real client connected and got Status and Inventory in {:.3} s",
            t.elapsed().as_secs_f64()
        );
        let (addr_s, tls) = (agent.addr.clone(), s.controller_tls.clone());
        tokio::task::spawn_blocking(move || assert_serving(&addr_s, &tls))
            .await
            .unwrap();
        // ... and it was served while the flood was still there: the spread
        // connections (each address within its share) are all still open.
        let open = spread.iter().filter(|c| still_open(c)).count();
        assert_eq!(
            open,
            spread.len(),
            "the real client was served only after the agent had dropped the flood"
        );

        // The handshake timeout closes what stayed silent (or stalled).
        let limit = HANDSHAKE_TIMEOUT + Duration::from_secs(15);
        let t = Instant::now();
        silent.extend(spread);
        for (what, conns) in [
            ("silent", &mut silent),
            ("partial-record", &mut partial),
            ("stalled-handshake", &mut stalled),
        ] {
            for (i, conn) in conns.iter_mut().enumerate().step_by(10) {
                assert!(
                    closed_within(conn, limit.saturating_sub(t.elapsed())).await,
                    "{what} connection {i} still open {:.1} s after the flood",
                    t.elapsed().as_secs_f64()
                );
            }
        }
        eprintln!(
            "FIGURE flood: the sampled flood connections were all closed {:.1} s after the flood",
            flood_start.elapsed().as_secs_f64()
        );
    });

    // The log: refusals named, bounded, and the rest counted.
    let log = agent.wait_log("more refused connections not logged");
    let refused_lines = log.matches("Refused a connection from").count();
    assert!(
        log.contains("connections from this address are already waiting for their TLS session"),
        "{log}"
    );
    assert!(
        log.contains("connections from this address are already in a TLS handshake")
            || log.contains("no TLS handshake within 10s"),
        "{log}"
    );
    // Hundreds of refusals; at most 60 lines per 10 s window.
    let windows = started.elapsed().as_secs() / 10 + 1;
    eprintln!(
        "FIGURE flood: {refused_lines} Refused lines in the agent's log over {:.0} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        refused_lines as u64 <= 60 * windows,
        "{refused_lines} Refused lines:\n{log}"
    );
    assert_serving(&agent.addr, &s.controller_tls);
}
