//! Serving: TCP listeners (dual-stack), our own TLS accept loop so every failed
//! handshake (a port scanner, plain HTTP, a wrong certificate) is one clear log
//! line, and the tonic server fed from the accepted streams, behind the panic
//! barrier ([`crate::panic_barrier`]); a request that does not decode is answered
//! INVALID_ARGUMENT.
//!
//! Under pressure (anyone who reaches the port can open connections):
//! - a connection is let in only within [`crate::admission`]'s caps (pending
//!   connections, and TLS handshakes in flight — counted from a complete
//!   ClientHello, so half-open connections never hold a handshake place),
//!   in all and per source address; beyond them it is closed at once;
//! - it has [`HANDSHAKE_TIMEOUT`] from accept to an established session;
//! - refusals are logged at a bounded rate ([`crate::refusal_log`]), and the
//!   console never blocks a logger ([`crate::console_writer`]);
//! - what an authenticated client can make the agent hold is bounded for a
//!   256 MiB machine: [`MAX_MESSAGE_BYTES`] per message, [`WINDOW_BYTES`] of
//!   HTTP/2 flow-control window per connection, [`MAX_STREAMS`] streams.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use landfall_proto::v1::agent_server::AgentServer;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use crate::admission::{self, Gate, Ticket};
use crate::refusal_log::RefusalLog;
use crate::service::{AgentService, AgentState};

/// Largest message the agent decodes or sends: a closure block is at most
/// 1 MiB (`MAX_BLOCK_DECOMPRESSED`), a layout a few KiB.
pub const MAX_MESSAGE_BYTES: usize = 2 << 20;
/// HTTP/2 flow-control window, per stream and per connection: what a client
/// can make the agent buffer on one connection before it reads.
pub const WINDOW_BYTES: u32 = 8 << 20;
/// Concurrent HTTP/2 streams (calls) per connection.
pub const MAX_STREAMS: u32 = 16;
/// The listen backlog (the kernel caps it at net.core.somaxconn).
const LISTEN_BACKLOG: i32 = 1024;
/// From accept to an established TLS session, at most.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The caps and the refusal log shared by every listener of one server.
struct Admission {
    pending: Gate,
    handshaking: Gate,
    log: RefusalLog,
}

impl Admission {
    fn new() -> Self {
        Self {
            pending: Gate::new(
                "waiting for their TLS session",
                admission::pending_total(
                    crate::sys::rlimit::nofile()
                        .map(|(soft, _)| soft)
                        .unwrap_or(1024),
                ),
                admission::PENDING_PER_IP,
            ),
            handshaking: Gate::new(
                "in a TLS handshake",
                admission::HANDSHAKES_TOTAL,
                admission::HANDSHAKES_PER_IP,
            ),
            log: RefusalLog::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("Cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS set-up failed")]
    Tls(#[from] crate::tls::TlsError),
    #[error("The gRPC server stopped")]
    Server(#[source] tonic::transport::Error),
}

/// What to serve and where.
pub struct ServeOptions {
    pub listen: Vec<SocketAddr>,
    pub tls_dir: PathBuf,
}

/// Binds one listener; `[::]` is made dual-stack so IPv4 clients reach it too.
fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    let err = |source| ServeError::Listen { addr, source };
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .map_err(err)?;
    if addr.is_ipv6() {
        sock.set_only_v6(false).map_err(err)?;
    }
    sock.set_reuse_address(true).map_err(err)?;
    sock.set_nonblocking(true).map_err(err)?;
    sock.bind(&addr.into()).map_err(err)?;
    // A deep backlog: under a flood, connections wait here to be accepted
    // (and counted) rather than being half-dropped by the kernel.
    sock.listen(LISTEN_BACKLOG).map_err(err)?;
    TcpListener::from_std(sock.into()).map_err(err)
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    admission: Arc<Admission>,
    tx: mpsc::Sender<TlsStream<TcpStream>>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: wait for descriptors to be freed.
                if admission
                    .log
                    .admit("accept", std::time::Instant::now())
                    .is_some()
                {
                    tracing::warn!("Accepting a connection failed: {e}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let pending = match admission.pending.try_enter(peer.ip()) {
            Ok(t) => t,
            Err(why) => {
                drop(tcp);
                admission.log.refused(peer, why);
                continue;
            }
        };
        tokio::spawn(handshake(
            tcp,
            peer,
            pending,
            config.clone(),
            admission.clone(),
            tx.clone(),
        ));
    }
}

/// Why a connection did not become a TLS session.
#[derive(Debug, thiserror::Error)]
enum HandshakeRefused {
    #[error("TLS handshake failed: {0}")]
    Failed(#[source] std::io::Error),
    #[error("{0}")]
    Busy(#[from] admission::Refusal),
    #[error("no TLS handshake within {HANDSHAKE_TIMEOUT:?}")]
    TimedOut,
}

/// One connection from accept to an established session (handed to tonic),
/// within [`HANDSHAKE_TIMEOUT`]. `_pending` holds its place until then.
async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    _pending: Ticket,
    config: Arc<ServerConfig>,
    admission: Arc<Admission>,
    tx: mpsc::Sender<TlsStream<TcpStream>>,
) {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let established = tokio::time::timeout_at(deadline, async {
        // Reading the ClientHello costs no crypto: half-open connections wait here.
        let hello = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp)
            .await
            .map_err(HandshakeRefused::Failed)?;
        let _handshaking = admission.handshaking.try_enter(peer.ip())?;
        hello
            .into_stream(config)
            .await
            .map_err(HandshakeRefused::Failed)
    })
    .await
    .unwrap_or(Err(HandshakeRefused::TimedOut));
    match established {
        Ok(tls) => {
            tracing::debug!("TLS session from {peer}");
            let _ = tx.send(tls).await;
        }
        Err(e) => admission.log.refused(peer, e),
    }
}

/// What prost says when a request's bytes are not the message they claim to be.
const PROTOBUF_DECODE_FAILED: &str = "failed to decode Protobuf message";

/// tonic answers a request that does not decode with INTERNAL (the gRPC
/// convention for a parse error); for the agent, INTERNAL means its own bug, so
/// a client's garbage becomes INVALID_ARGUMENT with our reason prefix.
fn garbage_is_invalid_argument<B>(mut resp: http::Response<B>) -> http::Response<B> {
    let h = resp.headers();
    let status = h.get("grpc-status").and_then(|v| v.to_str().ok());
    let msg = h
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    if status == Some("13") && msg.starts_with(PROTOBUF_DECODE_FAILED) {
        let s = tonic::Status::invalid_argument(format!(
            "{}: the request is not a valid landfall.v1 message ({msg})",
            crate::jobs::Reason::InvalidRequest
        ));
        let h = resp.headers_mut();
        h.remove("grpc-status");
        h.remove("grpc-message");
        let _ = s.add_header(h);
    }
    resp
}

/// Logs every reply that is an error right away (a malformed request is decoded
/// before any handler runs, so only here can it be seen).
fn log_error_replies<B>(resp: http::Response<B>) -> http::Response<B> {
    let resp = garbage_is_invalid_argument(resp);
    if let Some(code) = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
    {
        if code != "0" {
            let msg = resp
                .headers()
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .map(percent_decode)
                .unwrap_or_default();
            tracing::warn!("Request refused (gRPC status {code}): {msg}");
        }
    }
    resp
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves until the server fails; the caller decides whether to serve again.
pub async fn serve(opts: &ServeOptions, state: Arc<AgentState>) -> Result<(), ServeError> {
    let config = crate::tls::server_config(&opts.tls_dir)?;
    let admission = Arc::new(Admission::new());
    let (tx, rx) = mpsc::channel(16);
    for addr in &opts.listen {
        let listener = bind(*addr)?;
        tracing::info!("Serving landfall.v1.Agent on {addr} (mutual TLS)");
        tokio::spawn(accept_loop(
            listener,
            config.clone(),
            admission.clone(),
            tx.clone(),
        ));
    }
    drop(tx);
    let served_ns = crate::init::monotonic_ns().saturating_sub(state.started_mono_ns);
    if state.pid1 {
        let _ = std::fs::write(crate::init::READY_FILE, b"");
        crate::init::pid1_log::forward_to_buffer();
    }
    state
        .boot_to_serve_ms
        .store(served_ns / 1_000_000, Ordering::Relaxed);
    let _ = crate::init::inject::faults();
    tracing::info!(
        "Ready: {:.3} s from {} to serving",
        served_ns as f64 / 1e9,
        if state.pid1 { "PID 1 start" } else { "start" }
    );
    let service = AgentServer::new(AgentService::new(state))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        // Windows large enough to keep a high-latency link full while the
        // closure streams (8 MiB per 100 ms of round trip: 80 MB/s), small
        // enough for a 256 MiB machine.
        .initial_stream_window_size(Some(WINDOW_BYTES))
        .initial_connection_window_size(Some(WINDOW_BYTES))
        .max_concurrent_streams(Some(MAX_STREAMS))
        .concurrency_limit_per_connection(MAX_STREAMS as usize)
        .http2_max_header_list_size(Some(64 << 10))
        .layer(
            tower::ServiceBuilder::new()
                .map_response(log_error_replies)
                .layer(crate::panic_barrier::CatchPanicLayer),
        )
        .add_service(service)
        .serve_with_incoming(ReceiverStream::new(rx).map(Ok::<_, std::io::Error>))
        .await
        .map_err(ServeError::Server)
}

use tokio_stream::StreamExt as _;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The `grpc-status` and (percent-decoded) `grpc-message` of a reply.
    pub(crate) fn grpc_status(r: &http::Response<tonic::body::Body>) -> (String, String) {
        let h = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(percent_decode)
                .unwrap_or_default()
        };
        (h("grpc-status"), h("grpc-message"))
    }

    #[test]
    fn undecodable_requests_become_invalid_argument() {
        let r: http::Response<tonic::body::Body> =
            tonic::Status::internal(format!("{PROTOBUF_DECODE_FAILED}: invalid wire type"))
                .into_http();
        let (code, msg) = grpc_status(&log_error_replies(r));
        assert_eq!(code, "3");
        assert!(
            msg.starts_with("invalid-request: the request is not a valid landfall.v1 message"),
            "{msg}"
        );
        assert!(msg.contains("invalid wire type"), "{msg}");
        // The agent's own internal errors stay INTERNAL.
        let r: http::Response<tonic::body::Body> =
            tonic::Status::internal(format!("{}: boom", crate::jobs::Reason::Internal)).into_http();
        assert_eq!(grpc_status(&log_error_replies(r)).0, "13");
    }

    #[test]
    fn percent_decoding_of_grpc_messages() {
        assert_eq!(percent_decode("a%20b%3A"), "a b:");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
