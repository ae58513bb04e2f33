//! Connecting to an agent: gRPC over TLS with the session's client certificate.
//! The TLS is done here (tokio-rustls inside our own connector, the endpoint
//! itself is plain `http://`), so the agent's certificate gets two checks: the
//! usual chain check against the session CA and the fixed name
//! `landfall-agent` (rustls' webpki verifier: "invalid peer certificate: …"),
//! then the pin: its public key must be the one issued for the current boot
//! (`agent.pin`, see [`crate::certs`]). A key from an earlier boot is refused
//! even when its certificate is still valid and signed by the same CA.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use landfall_proto::tlsnames::{AGENT_SERVER_NAME, CA_CERT, CONTROLLER_CERT, CONTROLLER_KEY};
use landfall_proto::v1::agent_client::AgentClient;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("Cannot read {path} (make a session with `landfall certs init --dir DIR`)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("'{0}' is not HOST:PORT")]
    Address(String),
    #[error("Cannot set up TLS for {0}: {1}")]
    Tls(String, String),
    #[error(transparent)]
    Session(#[from] crate::certs::CertError),
    #[error(transparent)]
    Folder(#[from] crate::session_dir::SessionDirError),
    #[error("Cannot reach the agent at {addr} within {waited:?}: {last}")]
    Unreachable {
        addr: String,
        waited: Duration,
        last: String,
    },
}

fn read(path: PathBuf) -> Result<Vec<u8>, ClientError> {
    std::fs::read(&path).map_err(|source| ClientError::Read { path, source })
}

/// An agent whose certificate passed the chain check but holds another key
/// than the one pinned for this boot.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the agent at {addr} presents a key from another boot (its key's sha256 is {found}, this \
     session pinned {pinned}); either an older boot of this session still runs there, or \
     someone holding an older agent key poses as the agent. Nothing was sent to it. Run the \
     kexec again (`landfall install` or `landfall kexec`) to boot an agent with a fresh key"
)]
pub struct PinMismatch {
    pub addr: String,
    pub found: String,
    pub pinned: String,
}

/// The agent's certificate: the webpki chain check against the session CA
/// for `landfall-agent`, then the key pin.
#[derive(Debug)]
pub struct PinnedAgentVerifier {
    chain: Arc<rustls::client::WebPkiServerVerifier>,
    pin: [u8; 32],
    addr: String,
}

impl PinnedAgentVerifier {
    pub fn new(
        ca_pem: &[u8],
        pin: [u8; 32],
        addr: &str,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem) {
            roots
                .add(c.map_err(|e| format!("the session CA: {e}"))?)
                .map_err(|e| format!("the session CA: {e}"))?;
        }
        let chain =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| e.to_string())?;
        Ok(Self {
            chain,
            pin,
            addr: addr.to_string(),
        })
    }
}

impl ServerCertVerifier for PinnedAgentVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let found = crate::certs::spki_sha256(end_entity).ok_or(
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding),
        )?;
        if found != self.pin {
            return Err(rustls::Error::Other(rustls::OtherError(Arc::new(
                PinMismatch {
                    addr: self.addr.clone(),
                    found: hex::encode(found),
                    pinned: hex::encode(self.pin),
                },
            ))));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// The rustls client configuration for the session in `tls_dir` talking to
/// the agent at `addr`: the controller's certificate, the pinned verifier, ALPN h2.
fn tls_config(addr: &str, tls_dir: &Path) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let tls_err = |e: String| ClientError::Tls(addr.to_string(), e);
    let pin = crate::certs::agent_pin(tls_dir)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        PinnedAgentVerifier::new(&read(tls_dir.join(CA_CERT))?, pin, addr, provider.clone())
            .map_err(tls_err)?;
    let certs = CertificateDer::pem_slice_iter(&read(tls_dir.join(CONTROLLER_CERT))?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(format!("{}: {e}", tls_dir.join(CONTROLLER_CERT).display())))?;
    let key = PrivateKeyDer::from_pem_slice(&read(tls_dir.join(CONTROLLER_KEY))?)
        .map_err(|e| tls_err(format!("{}: {e}", tls_dir.join(CONTROLLER_KEY).display())))?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(certs, key)
        .map_err(|e| tls_err(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// Where and how to reach one agent: the gRPC endpoint (plain `http://`) and
/// the TLS configuration [`connect`]'s connector uses.
#[derive(Clone)]
pub struct AgentEndpoint {
    pub endpoint: Endpoint,
    tls: Arc<rustls::ClientConfig>,
}

/// Builds the endpoint for `addr` (HOST:PORT, IPv6 as [::1]:7443) with the
/// session in `tls_dir`, which must be private (see [`crate::session_dir`]).
/// Renews the controller certificate first when it is due.
pub fn endpoint(addr: &str, tls_dir: &Path) -> Result<AgentEndpoint, ClientError> {
    if addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .is_none()
    {
        return Err(ClientError::Address(addr.to_string()));
    }
    crate::session_dir::check_private(tls_dir)?;
    if crate::certs::renew_controller_if_due(tls_dir)? {
        tracing::info!(
            "Renewed the controller certificate in {}",
            tls_dir.display()
        );
    }
    let tls = tls_config(addr, tls_dir)?;
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|_| ClientError::Address(addr.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(16 << 20));
    Ok(AgentEndpoint { endpoint, tls })
}

/// A new connection this soon after the channel's last one was made means that
/// one broke at once.
const QUICK_BREAK: Duration = Duration::from_secs(2);
/// After this many connections in a row that broke at once, the channel's next
/// call fails instead of reconnecting again.
const QUICK_BREAKS_MAX: u32 = 3;

/// Why a channel stopped reconnecting.
pub const BROKE_AT_ONCE: &str = "the agent closed each of the last connections right after \
     it was made (does it refuse this session's certificate? is --tls the session the agent \
     was started with?)";

/// When the channel's last connection was made, and how many in a row broke at once.
#[derive(Debug, Default)]
struct Breaks {
    last_made: Option<Instant>,
    quick: u32,
}

impl Breaks {
    /// Called for each new connection: false when it should not be tried.
    fn may_connect(&mut self, now: Instant) -> bool {
        match self.last_made {
            Some(t) if now.duration_since(t) < QUICK_BREAK => self.quick += 1,
            _ => self.quick = 0,
        }
        if self.quick >= QUICK_BREAKS_MAX {
            // Refuse this one; a later call starts counting afresh.
            *self = Self::default();
            return false;
        }
        true
    }
}

/// A channel to `ep` whose connector stops a reconnect loop. tonic reconnects a
/// broken connection before the next request; with TLS 1.3 an agent that
/// refuses our certificate does so only after our side of the handshake is
/// done, so every new connection looks made and breaks at once, and a call
/// would wait for ever. After [`QUICK_BREAKS_MAX`] such connections in a row
/// the call fails with [`BROKE_AT_ONCE`]. A connection that lived longer (a
/// network cut, an agent restart) reconnects as before.
pub async fn connect(ep: &AgentEndpoint) -> Result<Channel, tonic::transport::Error> {
    let breaks = Arc::new(Mutex::new(Breaks::default()));
    let tls = tokio_rustls::TlsConnector::from(ep.tls.clone());
    let server_name = ServerName::try_from(AGENT_SERVER_NAME).expect("a valid DNS name");
    let connector = tower::service_fn(move |uri: http::Uri| {
        let breaks = breaks.clone();
        let tls = tls.clone();
        let server_name = server_name.clone();
        async move {
            let allowed = breaks
                .lock()
                .map_or(true, |mut b| b.may_connect(Instant::now()));
            if !allowed {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    BROKE_AT_ONCE,
                ));
            }
            let host = uri.host().unwrap_or_default();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = tokio::net::TcpStream::connect(format!("{host}:{port}")).await?;
            tcp.set_nodelay(true)?;
            let stream = tls
                .connect(server_name, tcp)
                .await
                .map_err(unwrap_pin_mismatch)?;
            if let Ok(mut b) = breaks.lock() {
                b.last_made = Some(Instant::now());
            }
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    ep.endpoint.connect_with_connector(connector).await
}

/// A handshake refused by the pin says so in its own words, not as rustls'
/// "other error: …".
fn unwrap_pin_mismatch(e: std::io::Error) -> std::io::Error {
    let pin = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|r| match r {
            rustls::Error::Other(rustls::OtherError(o)) => o.downcast_ref::<PinMismatch>(),
            _ => None,
        })
        .cloned();
    match pin {
        Some(p) => std::io::Error::new(std::io::ErrorKind::PermissionDenied, p),
        None => e,
    }
}

/// Connects, retrying every second until `wait` has passed (for an agent that is still booting).
pub async fn connect_with_retry(
    addr: &str,
    tls_dir: &Path,
    wait: Duration,
) -> Result<AgentClient<Channel>, ClientError> {
    let ep = endpoint(addr, tls_dir)?;
    let start = Instant::now();
    loop {
        match connect(&ep).await {
            Ok(ch) => return Ok(AgentClient::new(ch).max_decoding_message_size(64 << 20)),
            Err(e) => {
                // Another boot's key does not change by waiting.
                if start.elapsed() >= wait || is_pin_mismatch(&e) {
                    let mut last = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        // Wrappers (hyper's connect error, io::Error) repeat their cause's text.
                        let text = s.to_string();
                        if !last.ends_with(&text) {
                            last = format!("{last}: {text}");
                        }
                        src = s.source();
                    }
                    return Err(ClientError::Unreachable {
                        addr: addr.to_string(),
                        waited: start.elapsed(),
                        last,
                    });
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Whether `e` (or one of its causes) is a [`PinMismatch`].
fn is_pin_mismatch(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.downcast_ref::<PinMismatch>().is_some() {
            return true;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|i| i.downcast_ref::<PinMismatch>().is_some())
            {
                return true;
            }
        }
        cur = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_der(dir: &Path) -> CertificateDer<'static> {
        let pem = std::fs::read(dir.join(landfall_proto::tlsnames::AGENT_CERT)).unwrap();
        CertificateDer::from_pem_slice(&pem).unwrap()
    }

    fn verify(v: &PinnedAgentVerifier, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        v.verify_server_cert(
            cert,
            &[],
            &ServerName::try_from(AGENT_SERVER_NAME).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
    }

    #[test]
    fn the_verifier_takes_only_the_pinned_key_after_the_chain_check() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("session");
        crate::certs::init(&s, "test", false).unwrap();
        crate::certs::issue_agent(&s).unwrap();
        let old = cert_der(&s);
        crate::certs::issue_agent(&s).unwrap();
        let new = cert_der(&s);
        let ca = std::fs::read(s.join(CA_CERT)).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pin = crate::certs::agent_pin(&s).unwrap();
        let v = PinnedAgentVerifier::new(&ca, pin, "192.0.2.1:7443", provider.clone()).unwrap();
        verify(&v, &new).unwrap();
        // The old boot's certificate: valid, same CA, same name, another key.
        let e = verify(&v, &old).unwrap_err();
        let rustls::Error::Other(rustls::OtherError(inner)) = &e else {
            panic!("{e:?}");
        };
        let msg = inner.to_string();
        assert!(
            msg.contains("the agent at 192.0.2.1:7443 presents a key from another boot")
                && msg.contains(&hex::encode(pin)),
            "{msg}"
        );
        // The chain check comes first: another session's CA is UnknownIssuer.
        let other = d.path().join("other");
        crate::certs::init(&other, "other", false).unwrap();
        let e = verify(&v, &cert_der(&other)).unwrap_err().to_string();
        assert!(
            e.contains("invalid peer certificate") && e.contains("UnknownIssuer"),
            "{e}"
        );
        // And the pinned key from the wrong name would not pass either.
        let e = v
            .verify_server_cert(
                &new,
                &[],
                &ServerName::try_from("evil-agent").unwrap(),
                &[],
                UnixTime::now(),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid for name"), "{e}");
        // A pin mismatch as the connector returns it reads as the message itself.
        let io = unwrap_pin_mismatch(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            verify(&v, &old).unwrap_err(),
        ));
        assert!(io
            .to_string()
            .starts_with("the agent at 192.0.2.1:7443 presents a key from another boot"));
        assert!(is_pin_mismatch(&io));
    }

    #[test]
    fn an_open_session_folder_is_refused_before_any_connection() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("session");
        crate::certs::init(&s, "test", false).unwrap();
        endpoint("127.0.0.1:7443", &s).unwrap();
        std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o750)).unwrap();
        let e = endpoint("127.0.0.1:7443", &s).err().unwrap().to_string();
        assert!(
            e.contains("mode 0750") && e.contains(&s.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn three_connections_broken_at_once_stop_the_fourth() {
        let t0 = Instant::now();
        let mut b = Breaks::default();
        // The first connection, and three that each follow the last at once.
        assert!(b.may_connect(t0));
        for i in 1..QUICK_BREAKS_MAX {
            b.last_made = Some(t0);
            assert!(
                b.may_connect(t0 + Duration::from_millis(10 * i as u64)),
                "{i}"
            );
        }
        b.last_made = Some(t0);
        assert!(!b.may_connect(t0 + Duration::from_millis(50)));
        // The call after the refusal tries again.
        assert!(b.may_connect(t0 + Duration::from_millis(60)));
    }

    #[test]
    fn a_connection_that_lived_resets_the_count() {
        let t0 = Instant::now();
        let mut b = Breaks::default();
        for i in 0..10u64 {
            // Each connection lived three seconds: a network cut, not a refusal.
            b.last_made = Some(t0 + Duration::from_secs(3 * i));
            assert!(b.may_connect(t0 + Duration::from_secs(3 * i + 3)), "{i}");
        }
    }
}
