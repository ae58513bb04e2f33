//! Hostile TLS peers against the real agent and controller binaries on loopback:
//! clients with expired, not-yet-valid, wrong-CA, wrong-usage (server-auth only)
//! and self-signed certificates, and plain-text junk, are refused — the error the
//! client sees and the agent's log line are asserted, and the agent keeps serving
//! a good client after each. The reverse too: the controller refuses an agent
//! whose certificate is from another CA, for another name, expired, self-signed
//! or made for client use, with a message saying so.

use crate::hostile_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use hostile_common::{
    agent_dir, assert_serving, controller_dir, landfall, self_signed, Agent, Ca, Flavour, Session,
};
use landfall_proto::tlsnames::AGENT_SERVER_NAME;
use landfall_tests::TestDir;

/// One refused client: what the controller prints, what the agent logs.
struct BadClient {
    label: &'static str,
    /// Part of the agent's log line (rustls' reason).
    agent_says: &'static str,
}

/// What a gRPC client sees when its identity is refused: the status and every cause.
fn client_error_chain(addr: &str, tls: &std::path::Path) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ch = hostile_common::channel_once(addr, tls).await;
        let mut c = landfall_proto::v1::agent_client::AgentClient::new(ch);
        let e = tokio::time::timeout(
            Duration::from_secs(30),
            c.status(landfall_proto::v1::StatusRequest {}),
        )
        .await
        .expect("a refused client waited 30 s for an answer")
        .expect_err("a refused client got an answer");
        let mut out = format!("{:?}: {}", e.code(), e.message());
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            out.push_str(&format!(": {s}"));
            src = s.source();
        }
        out
    })
}

#[test]
fn bad_client_certificates_are_refused_and_the_agent_keeps_serving() {
    let tdir = TestDir::new("hostile-tls-client").unwrap();
    let dir = tdir.path();
    let s = Session::new(dir);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let agent = Agent::start(dir, &s.agent_tls, &root, &[]);
    assert_serving(&agent.addr, &s.controller_tls);

    let other = Ca::new("other");
    let cases = [
        (
            BadClient {
                label: "expired",
                agent_says: "invalid peer certificate: certificate expired",
            },
            s.ca.controller(Flavour::Expired),
        ),
        (
            BadClient {
                label: "not-yet-valid",
                agent_says: "invalid peer certificate: certificate not valid",
            },
            s.ca.controller(Flavour::NotYetValid),
        ),
        (
            BadClient {
                label: "wrong-ca",
                agent_says: "invalid peer certificate: UnknownIssuer",
            },
            other.controller(Flavour::Good),
        ),
        (
            BadClient {
                label: "server-auth-only",
                agent_says: "invalid peer certificate: certificate does not allow extended key usage for client authentication",
            },
            s.ca.controller(Flavour::WrongUsage),
        ),
        (
            BadClient {
                label: "self-signed",
                agent_says: "invalid peer certificate: UnknownIssuer",
            },
            self_signed("landfall-controller"),
        ),
    ];
    for (case, ident) in cases {
        // The client trusts the real session CA, so only its own identity is bad.
        let tls = controller_dir(&dir.join(case.label), &s.ca.pem, &ident, &s.agent_pin);
        let before = agent.log_text().matches("Refused a connection").count();
        let out = landfall(&["status"], &agent.addr, &tls);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{}: accepted", case.label);
        // TLS 1.3: the server checks the client's certificate after the client
        // thinks the handshake is done, so the client sees the server's alert
        // on its first request.
        assert!(
            (err.contains("Status failed: transport error")
                || err.contains("Status failed: operation was canceled")
                || err.contains("closed each of the last connections right after it was made"))
                && err.contains("the agent refused this session's certificate"),
            "{}: {err}",
            case.label
        );
        eprintln!("{}: the controller says: {}", case.label, err.trim());
        // Below the controller's summary, the gRPC error's cause names the alert.
        let chain = client_error_chain(&agent.addr, &tls);
        eprintln!("{}: the gRPC error's causes: {chain}", case.label);
        // The agent closes the connection with an alert; whether the client reads
        // the alert or first hits the closed socket is a race, so the client only
        // learns that the transport failed. The agent's log says why (below).
        assert!(
            chain.contains("transport error")
                || chain.contains("Cancelled")
                || chain.contains(hostile_common::NOT_RECONNECTING),
            "{}: {chain}",
            case.label
        );
        let log = agent.wait_log(case.agent_says);
        assert!(
            log.matches("Refused a connection").count() > before,
            "{}: no refusal logged",
            case.label
        );
        let line = log.lines().rfind(|l| l.contains(case.agent_says)).unwrap();
        assert!(
            line.contains("from 127.0.0.1:") && line.contains("TLS handshake failed"),
            "{line}"
        );
        eprintln!("{}: the agent logs: {line}", case.label);
        assert_serving(&agent.addr, &s.controller_tls);
    }

    // Plain text (a port scanner, curl without TLS) and a silent connection.
    let mut c = TcpStream::connect(&agent.addr).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"),
        "plain HTTP was answered"
    );
    agent.wait_log("TLS handshake failed: received corrupt message");
    assert_serving(&agent.addr, &s.controller_tls);
    assert!(
        root.read_dir().unwrap().next().is_none(),
        "refused clients wrote into the root"
    );
}

#[test]
fn the_controller_refuses_an_agent_with_a_wrong_server_certificate() {
    let tdir = TestDir::new("hostile-tls-server").unwrap();
    let dir = tdir.path();
    let s = Session::new(dir);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let other = Ca::new("other");
    let cases = [
        (
            "other-ca",
            other.agent(AGENT_SERVER_NAME, Flavour::Good),
            "UnknownIssuer",
        ),
        (
            "other-name",
            s.ca.agent("evil-agent", Flavour::Good),
            "certificate not valid for name",
        ),
        (
            "expired",
            s.ca.agent(AGENT_SERVER_NAME, Flavour::Expired),
            "certificate expired",
        ),
        (
            "client-auth-only",
            s.ca.agent(AGENT_SERVER_NAME, Flavour::WrongUsage),
            "extended key usage for server authentication",
        ),
        (
            "self-signed",
            self_signed(AGENT_SERVER_NAME),
            "UnknownIssuer",
        ),
    ];
    for (label, ident, says) in cases {
        // The impostor trusts the session CA (so it would accept the controller);
        // only its own certificate is wrong.
        let tls = agent_dir(&dir.join(format!("agent-{label}")), &s.ca.pem, &ident);
        let agent = Agent::start(dir, &tls, &root, &[]);
        let out = landfall(&["status"], &agent.addr, &s.controller_tls);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{label}: the controller accepted it");
        assert!(
            err.contains("invalid peer certificate") && err.contains(says),
            "{label}: unclear refusal: {err}"
        );
        eprintln!("{label}: the controller says: {}", err.trim());
        assert!(
            root.read_dir().unwrap().next().is_none(),
            "{label}: something was written"
        );
    }
}

/// Copies a session's agent files (what a kexec sends the agent) into `to`.
fn agent_files(session: &std::path::Path, to: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for f in ["ca.pem", "agent.pem", "agent.key", "boot-id"] {
        std::fs::copy(session.join(f), to.join(f)).unwrap();
    }
    to.to_path_buf()
}

#[test]
fn an_impostor_with_an_older_boots_key_is_refused_and_status_reports_this_boot() {
    let tdir = TestDir::new("hostile-tls-old-key").unwrap();
    let dir = tdir.path();
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    // A session as the real controller makes it; its first agent identity
    // leaks (the impostor keeps a copy: key, certificate, boot ID).
    let session = hostile_common::certs_init(&dir.join("session"));
    let old = agent_files(&session, &dir.join("old-agent"));
    // The next boot: a fresh identity, as a kexec issues it.
    hostile_common::certs(&["agent"], &session);
    let boot_id = std::fs::read_to_string(session.join("boot-id"))
        .unwrap()
        .trim()
        .to_string();
    assert_ne!(
        boot_id,
        std::fs::read_to_string(old.join("boot-id")).unwrap().trim()
    );
    let now = agent_files(&session, &dir.join("this-boot"));

    // The agent of this boot answers, and Status reports the boot ID the session carried.
    let agent = Agent::start(dir, &now, &root, &[]);
    let out = landfall(&["status", "--json"], &agent.addr, &session);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["boot_id"], boot_id.as_str(), "{st}");
    assert!(!stderr.contains("Note:"), "{stderr}");
    let text = landfall(&["status"], &agent.addr, &session);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains(&format!("Boot ID: {boot_id}")),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    drop(agent);

    // The impostor: the older boot's key and certificate (valid, same CA,
    // same name) on the agent's address. Refused while connecting, with the
    // pin message, before any request reaches it.
    let impostor = Agent::start(dir, &old, &root, &[]);
    let out = landfall(&["status"], &impostor.addr, &session);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "the controller accepted the old key");
    assert!(
        err.contains(&format!(
            "the agent at {} presents a key from another boot",
            impostor.addr
        )) && err.contains("Nothing was sent to it"),
        "unclear refusal: {err}"
    );
    eprintln!("old key: the controller says: {}", err.trim());
    // The controller broke the handshake off: the impostor logs the alert.
    let log = impostor.wait_log("TLS handshake failed");
    eprintln!(
        "old key: the impostor logs: {}",
        log.lines()
            .rfind(|l| l.contains("TLS handshake failed"))
            .unwrap()
    );
    drop(impostor);

    // The right key but another boot's ID (an agent restarted from an older
    // image): it answers, and status says it is not this boot.
    let stale = agent_files(&session, &dir.join("stale-boot"));
    std::fs::write(stale.join("boot-id"), "00112233445566778899aabbccddeeff\n").unwrap();
    let agent = Agent::start(dir, &stale, &root, &[]);
    let out = landfall(&["status"], &agent.addr, &session);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Note: the agent reports boot ID \"00112233445566778899aabbccddeeff\"")
            && stderr.contains(&format!("last started boot {boot_id}")),
        "{stderr}"
    );

    // A session folder open to others is refused before any connection.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&session, std::fs::Permissions::from_mode(0o750)).unwrap();
    let out = landfall(&["status"], &agent.addr, &session);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "The session folder {} is mode 0750, open to group or others",
            session.display()
        )),
        "{err}"
    );
    assert!(
        root.read_dir().unwrap().next().is_none(),
        "something was written"
    );
}
