//! Shared by the hostile-input tests: a session made in the test with rcgen (so
//! bad variants can be issued by the same CA), the real agent binary serving on
//! loopback, a gRPC client with a chosen identity, and the agent's log.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use landfall_proto::tlsnames::{
    AGENT_CERT, AGENT_KEY, AGENT_PIN, AGENT_SERVER_NAME, CA_CERT, CONTROLLER_CERT, CONTROLLER_KEY,
};
use landfall_tests::bins::{agent_static_bin, landfall_bin};
use landfall_tests::{free_port, retry_until, Spawned};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use sha2::{Digest, Sha256};
use time::{Duration as Days, OffsetDateTime};

/// A certificate and its key, PEM, and the key's pin (SHA-256 of its
/// SubjectPublicKeyInfo, hex: what the controller keeps in `agent.pin`).
pub struct Ident {
    pub cert: String,
    pub key: String,
    pub pin: String,
}

fn pin_of(key: &KeyPair) -> String {
    Sha256::digest(key.subject_public_key_info())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A CA that can issue good and bad certificates.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// Which way a certificate is bad (or not).
#[derive(Clone, Copy, Debug)]
pub enum Flavour {
    Good,
    Expired,
    NotYetValid,
    /// The other side's extended key usage (server-auth for a client, and back).
    WrongUsage,
}

fn params(cn: &str, sans: Vec<String>) -> CertificateParams {
    let mut p = CertificateParams::new(sans).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Days::days(1);
    p.not_after = now + Days::days(30);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p
}

impl Ca {
    pub fn new(label: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut p = params(&format!("test CA {label}"), vec![]);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    fn issue(&self, mut p: CertificateParams, server: bool, f: Flavour) -> Ident {
        let now = OffsetDateTime::now_utc();
        match f {
            Flavour::Good => {}
            Flavour::Expired => {
                p.not_before = now - Days::days(30);
                p.not_after = now - Days::days(1);
            }
            Flavour::NotYetValid => {
                p.not_before = now + Days::days(2);
                p.not_after = now + Days::days(30);
            }
            Flavour::WrongUsage => {}
        }
        let usage_server = server != matches!(f, Flavour::WrongUsage);
        p.extended_key_usages = vec![if usage_server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Ident {
            cert: cert.pem(),
            pin: pin_of(&key),
            key: key.serialize_pem(),
        }
    }

    /// An agent (server) certificate for `name`.
    pub fn agent(&self, name: &str, f: Flavour) -> Ident {
        self.issue(params(name, vec![name.to_string()]), true, f)
    }

    /// A controller (client) certificate.
    pub fn controller(&self, f: Flavour) -> Ident {
        self.issue(params("landfall-controller", vec![]), false, f)
    }
}

/// A self-signed certificate (its own issuer), with client and server usage.
pub fn self_signed(name: &str) -> Ident {
    let key = KeyPair::generate().unwrap();
    let mut p = params(name, vec![name.to_string()]);
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    Ident {
        cert: p.self_signed(&key).unwrap().pem(),
        pin: pin_of(&key),
        key: key.serialize_pem(),
    }
}

/// Writes an agent's TLS folder (what `landfall-agent serve --tls` reads).
pub fn agent_dir(dir: &Path, ca_pem: &str, id: &Ident) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(CA_CERT), ca_pem).unwrap();
    std::fs::write(dir.join(AGENT_CERT), &id.cert).unwrap();
    std::fs::write(dir.join(AGENT_KEY), &id.key).unwrap();
    dir.to_path_buf()
}

/// Writes a controller's session folder (what `landfall --tls` reads): mode
/// 0700 (the controller refuses a folder open to others), pinning the agent
/// key `agent_pin`.
pub fn controller_dir(dir: &Path, ca_pem: &str, id: &Ident, agent_pin: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(dir.join(CA_CERT), ca_pem).unwrap();
    std::fs::write(dir.join(CONTROLLER_CERT), &id.cert).unwrap();
    std::fs::write(dir.join(CONTROLLER_KEY), &id.key).unwrap();
    std::fs::write(dir.join(AGENT_PIN), agent_pin).unwrap();
    dir.to_path_buf()
}

/// A good session: CA, agent folder and controller folder under `dir`.
pub struct Session {
    pub ca: Ca,
    pub agent_tls: PathBuf,
    pub controller_tls: PathBuf,
    /// The pin of the agent's key (in the controller's folder).
    pub agent_pin: String,
}

impl Session {
    pub fn new(dir: &Path) -> Self {
        let ca = Ca::new("session");
        let agent = ca.agent(AGENT_SERVER_NAME, Flavour::Good);
        let agent_tls = agent_dir(&dir.join("agent-tls"), &ca.pem, &agent);
        let controller_tls = controller_dir(
            &dir.join("controller-tls"),
            &ca.pem,
            &ca.controller(Flavour::Good),
            &agent.pin,
        );
        Self {
            ca,
            agent_tls,
            controller_tls,
            agent_pin: agent.pin,
        }
    }
}

/// The real agent binary serving on a loopback port.
pub struct Agent {
    pub proc: Spawned,
    pub addr: String,
    pub log: PathBuf,
}

impl Agent {
    /// Starts `landfall-agent serve` with `tls` and `root`; `env` adds variables
    /// (e.g. fault injection). Does not wait for it to answer.
    pub fn start(dir: &Path, tls: &Path, root: &Path, env: &[(&str, &str)]) -> Self {
        let port = free_port().unwrap();
        let addr = format!("127.0.0.1:{port}");
        let log = dir.join(format!("agent-{port}.log"));
        let mut cmd = Command::new(agent_static_bin());
        cmd.args(["serve", "--listen", &addr, "--tls"])
            .arg(tls)
            .arg("--root")
            .arg(root)
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let proc = Spawned::spawn("landfall-agent", &mut cmd, None).unwrap();
        let agent = Self { proc, addr, log };
        retry_until(Duration::from_secs(20), || {
            if agent.log_text().contains("Ready:") {
                Ok(())
            } else {
                std::thread::sleep(Duration::from_millis(50));
                Err(())
            }
        })
        .unwrap_or_else(|_| panic!("the agent did not start: {}", agent.log_text()));
        agent
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle` (log lines are written asynchronously).
    pub fn wait_log(&self, needle: &str) -> String {
        retry_until(Duration::from_secs(10), || {
            let t = self.log_text();
            if t.contains(needle) {
                Ok(t)
            } else {
                std::thread::sleep(Duration::from_millis(50));
                Err(t)
            }
        })
        .unwrap_or_else(|t| panic!("the agent's log lacks {needle:?}:\n{t}"))
    }

    /// The agent's peak resident memory (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.proc.pid())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }
}

/// Runs the real controller: `landfall ARGS --agent ADDR --tls TLS`.
pub fn landfall(args: &[&str], addr: &str, tls: &Path) -> std::process::Output {
    Command::new(landfall_bin())
        .args(args)
        .args(["--agent", addr, "--tls"])
        .arg(tls)
        .output()
        .unwrap()
}

/// `landfall status` succeeds against the agent (it is serving).
pub fn assert_serving(addr: &str, tls: &Path) {
    let out = landfall(&["status"], addr, tls);
    assert!(
        out.status.success(),
        "the agent no longer serves a good client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What [`channel_once`] answers when tonic asks it for a second connection.
pub const NOT_RECONNECTING: &str = "the connection broke and this client does not reconnect";

/// A channel like [`channel`] that makes one connection only: when the agent
/// drops it (a refused certificate), the next call fails with
/// [`NOT_RECONNECTING`] instead of tonic reconnecting (and, against an agent
/// that refuses every connection, reconnecting for ever).
pub async fn channel_once(addr: &str, tls: &Path) -> tonic::transport::Channel {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let used = Arc::new(AtomicBool::new(false));
    let target = addr.to_string();
    let connector = tower::service_fn(move |_: http::Uri| {
        let (used, target) = (used.clone(), target.clone());
        async move {
            if used.swap(true, Ordering::SeqCst) {
                return Err(std::io::Error::other(NOT_RECONNECTING));
            }
            let tcp = tokio::net::TcpStream::connect(target).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tcp))
        }
    });
    endpoint(addr, tls)
        .connect_timeout(Duration::from_secs(10))
        .connect_with_connector(connector)
        .await
        .expect("connect to the agent")
}

/// The endpoint of the agent at `addr` for the controller identity in `tls`.
fn endpoint(addr: &str, tls: &Path) -> tonic::transport::Endpoint {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let read = |f: &str| std::fs::read(tls.join(f)).unwrap();
    let cfg = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(CA_CERT)))
        .identity(Identity::from_pem(
            read(CONTROLLER_CERT),
            read(CONTROLLER_KEY),
        ))
        .domain_name(AGENT_SERVER_NAME);
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(cfg)
        .unwrap()
}

/// A gRPC channel to the agent with the controller identity in `tls`.
pub async fn channel(addr: &str, tls: &Path) -> tonic::transport::Channel {
    endpoint(addr, tls)
        .connect()
        .await
        .expect("connect to the agent")
}

/// `landfall image build` with the Debian kernel, the static agent, the
/// session's agent identity and the given modules folder; returns the image folder.
pub fn build_image(dir: &Path, session: &Path, modules: &Path) -> PathBuf {
    let kernel = landfall_tests::debian_kernel().expect("Debian kernel (scripts/fetch-kernel.sh)");
    let image = dir.join("image");
    let out = Command::new(landfall_bin())
        .args(["image", "build", "--kernel"])
        .arg(&kernel.image)
        .arg("--modules")
        .arg(modules)
        .arg("--agent")
        .arg(agent_static_bin())
        .arg("--out")
        .arg(&image)
        .arg("--tls")
        .arg(session)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "landfall image build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It holds the agent's key: readable by its owner only.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(image.join("initrd"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the key-bearing initrd is not 0600");
    image
}

/// `landfall certs init --dir DIR`: a session as the real controller makes it.
pub fn certs_init(dir: &Path) -> PathBuf {
    certs(&["init"], dir);
    dir.to_path_buf()
}

/// `landfall certs SUB… --dir DIR`, which must succeed.
pub fn certs(sub: &[&str], dir: &Path) {
    let out = Command::new(landfall_bin())
        .arg("certs")
        .args(sub)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "landfall certs {sub:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every log line the agent has (`Logs` without follow), as `LEVEL message`.
pub async fn agent_logs(ch: tonic::transport::Channel) -> Vec<String> {
    let mut c = landfall_proto::v1::agent_client::AgentClient::new(ch);
    let mut s = c
        .logs(landfall_proto::v1::LogsRequest { follow: false })
        .await
        .expect("Logs")
        .into_inner();
    let mut out = Vec::new();
    while let Some(l) = s.message().await.expect("Logs stream") {
        out.push(format!("{} {}", l.level, l.message));
    }
    out
}
