//! Connecting to an agent: gRPC over TLS with the session's client certificate,
//! checking the agent's certificate against the session CA and the fixed name
//! `landfall-agent`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use landfall_proto::tlsnames::{AGENT_SERVER_NAME, CA_CERT, CONTROLLER_CERT, CONTROLLER_KEY};
use landfall_proto::v1::agent_client::AgentClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

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
    #[error("Cannot set up TLS for {0}")]
    Tls(String, #[source] tonic::transport::Error),
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

/// Builds the endpoint for `addr` (HOST:PORT, IPv6 as [::1]:7443).
pub fn endpoint(addr: &str, tls_dir: &Path) -> Result<Endpoint, ClientError> {
    if addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .is_none()
    {
        return Err(ClientError::Address(addr.to_string()));
    }
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(tls_dir.join(CA_CERT))?))
        .identity(Identity::from_pem(
            read(tls_dir.join(CONTROLLER_CERT))?,
            read(tls_dir.join(CONTROLLER_KEY))?,
        ))
        .domain_name(AGENT_SERVER_NAME);
    Endpoint::from_shared(format!("https://{addr}"))
        .map_err(|_| ClientError::Address(addr.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(16 << 20))
        .tls_config(tls)
        .map_err(|e| ClientError::Tls(addr.to_string(), e))
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
pub async fn connect(ep: &Endpoint) -> Result<Channel, tonic::transport::Error> {
    let breaks = Arc::new(Mutex::new(Breaks::default()));
    let connector = tower::service_fn(move |uri: http::Uri| {
        let breaks = breaks.clone();
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
            if let Ok(mut b) = breaks.lock() {
                b.last_made = Some(Instant::now());
            }
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tcp))
        }
    });
    ep.connect_with_connector(connector).await
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
                if start.elapsed() >= wait {
                    let mut last = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        last = format!("{last}: {s}");
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

/// A failed call's message, with a hint when the connection itself broke: in
/// TLS 1.3 the agent checks the controller's certificate after the client has
/// finished its handshake, so a refused certificate shows up here as a vague
/// transport error on the first call.
pub fn explain(s: &tonic::Status) -> String {
    let vague = matches!(
        s.code(),
        tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Unavailable
    ) && (s.message().contains("transport error")
        || s.message().contains("operation was canceled")
        || s.message().contains("connection"));
    if vague {
        format!(
            "{} ({:?}). The connection broke: either the network, or the agent refused this \
             session's certificate (is --tls the session the agent was started with? The agent's \
             console says `Refused a connection` with the reason)",
            s.message(),
            s.code()
        )
    } else {
        format!("{} ({:?})", s.message(), s.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn transport_errors_get_a_hint_and_answers_do_not() {
        let hint = explain(&tonic::Status::unknown("transport error"));
        assert!(
            hint.contains("refused this session's certificate"),
            "{hint}"
        );
        let answer = explain(&tonic::Status::failed_precondition("busy: a job runs"));
        assert_eq!(answer, "busy: a job runs (FailedPrecondition)");
    }
}
