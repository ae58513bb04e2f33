//! A small HTTP/1.1 GET client for binary caches: hyper's connection API
//! over a tokio TCP stream, wrapped in rustls for `https` (the webpki roots
//! built in, since the RAM image has no CA bundle, plus any extra CA given).
//! One connection per request, `Connection: close`; bodies are streamed.
//! Host names are resolved by the C library (musl's resolver reads the
//! /etc/resolv.conf `net::up` writes); a name that does not resolve is an
//! [`HttpError::Resolve`] naming the host. A proxy is either the
//! controller's, for every request ([`HttpClient::with_proxy`]), or chosen
//! per request from the old system's `http_proxy`/`https_proxy`/`no_proxy`
//! ([`HttpClient::with_proxy_settings`]).
//! A cache that does not answer within the connect timeout (connection, TLS
//! and response head), or stalls longer than the idle timeout between body
//! chunks, is an [`HttpError::Timeout`]: a slow cache is a failed one.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::net::proxy::{Proxy, ProxySettings, ProxyUrlError};

/// Why an HTTP request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is not `http(s)://host[:port]/path`.
    #[error("Not an http(s) URL: {0:?}")]
    BadUrl(String),
    /// An extra CA certificate does not parse.
    #[error("Cannot use the extra CA certificate")]
    BadCa(#[source] io::Error),
    /// The host name does not resolve (no such name, no nameserver answering).
    #[error("Cannot resolve the host {host} of {url}")]
    Resolve {
        /// The host name.
        host: String,
        /// The URL.
        url: String,
        /// The resolver's answer.
        #[source]
        source: io::Error,
    },
    /// The proxy the settings give for this URL is not usable.
    #[error("No usable proxy for {url}")]
    BadProxy {
        /// The URL.
        url: String,
        /// Which variable, and why.
        #[source]
        source: ProxyUrlError,
    },
    /// The TCP connection failed (refused, unreachable).
    #[error("Cannot connect to {url}")]
    Connect {
        /// The URL.
        url: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed (untrusted certificate, …).
    #[error("TLS handshake with {url} failed")]
    Tls {
        /// The URL.
        url: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The HTTP exchange failed before a response.
    #[error("HTTP request to {url} failed")]
    Request {
        /// The URL.
        url: String,
        /// The failure.
        #[source]
        source: hyper::Error,
    },
    /// The response status is not 200.
    #[error("{url} answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
    },
    /// The body broke off (the server stopped, the connection dropped).
    #[error("The body of {url} broke off")]
    Body {
        /// The URL.
        url: String,
        /// The failure.
        #[source]
        source: hyper::Error,
    },
    /// The server did not answer in time, or stalled mid-body.
    #[error("{url}: no {what} within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// What was awaited: "response" or "body data".
        what: &'static str,
        /// The timeout.
        timeout: Duration,
    },
    /// The proxy refused or broke the tunnel.
    #[error("The proxy {proxy} refused {url}: {reason}")]
    Proxy {
        /// The proxy.
        proxy: String,
        /// The URL asked for.
        url: String,
        /// Its answer.
        reason: String,
    },
    /// A redirect chain longer than [`MAX_REDIRECTS`] (or a loop).
    #[error("{url}: more than 5 redirects")]
    TooManyRedirects {
        /// The URL first asked for.
        url: String,
    },
    /// A small document (narinfo, nix-cache-info) was larger than allowed.
    #[error("{url} is larger than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
}

/// The client (cheap to clone).
#[derive(Clone)]
pub struct HttpClient {
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    proxy: ProxyRoute,
}

/// Which proxy a request goes through.
#[derive(Clone)]
enum ProxyRoute {
    Direct,
    /// The controller's proxy, for every request.
    Every(Proxy),
    /// Chosen per request by scheme and `no_proxy`.
    Settings(Arc<ProxySettings>),
}

/// Default time for connecting, TLS and the response head.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Default longest pause between body chunks.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

/// A streamed response body.
pub struct Body {
    url: String,
    inner: Incoming,
    idle_timeout: Duration,
}

impl Body {
    /// The next chunk of data; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Bytes, HttpError>> {
        loop {
            let frame = tokio::time::timeout(self.idle_timeout, self.inner.frame()).await;
            let Ok(frame) = frame else {
                return Some(Err(HttpError::Timeout {
                    url: self.url.clone(),
                    what: "body data",
                    timeout: self.idle_timeout,
                }));
            };
            match frame? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        return Some(Ok(data));
                    }
                }
                Err(source) => {
                    return Some(Err(HttpError::Body {
                        url: self.url.clone(),
                        source,
                    }))
                }
            }
        }
    }

    /// The whole body, refused beyond `limit` bytes.
    pub async fn collect_limited(mut self, limit: usize) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next().await {
            let chunk = chunk?;
            if out.len() + chunk.len() > limit {
                return Err(HttpError::TooLarge {
                    url: self.url,
                    limit,
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

impl HttpClient {
    /// A client trusting the webpki roots and the PEM certificates in
    /// `extra_ca_pem` (empty: none; text without a certificate is refused).
    pub fn new(extra_ca_pem: &[u8]) -> Result<Self, HttpError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut &extra_ca_pem[..]) {
            let cert = cert.map_err(HttpError::BadCa)?;
            roots
                .add(cert)
                .map_err(|e| HttpError::BadCa(io::Error::other(e)))?;
            added += 1;
        }
        if added == 0 && !extra_ca_pem.iter().all(u8::is_ascii_whitespace) {
            return Err(HttpError::BadCa(io::Error::new(
                io::ErrorKind::InvalidData,
                "no PEM certificate in it",
            )));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::BadCa(io::Error::other(e)))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: Arc::new(tls),
            proxy: ProxyRoute::Direct,
            connect_timeout: CONNECT_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        })
    }

    /// The same client with other timeouts.
    pub fn with_timeouts(mut self, connect: Duration, idle: Duration) -> Self {
        self.connect_timeout = connect;
        self.idle_timeout = idle;
        self
    }

    /// Goes through the HTTP proxy `url` (`http://host:port`, as in
    /// `http_proxy`/`https_proxy`): plain requests in absolute form, https
    /// through a `CONNECT` tunnel (TLS still ends at the cache).
    pub fn with_proxy(mut self, url: &str) -> Result<Self, HttpError> {
        let bad = || HttpError::BadUrl(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("http") {
            return Err(bad());
        }
        let host = uri.host().ok_or_else(bad)?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        self.proxy = ProxyRoute::Every(Proxy {
            host,
            port: uri.port_u16().unwrap_or(80),
            url: url.to_owned(),
        });
        Ok(self)
    }

    /// Chooses the proxy of each request from `settings` (the old system's
    /// `http_proxy`, `https_proxy`, `all_proxy`, `no_proxy`); no proxy set:
    /// direct connections.
    pub fn with_proxy_settings(mut self, settings: ProxySettings) -> Self {
        self.proxy = if settings.is_empty() {
            ProxyRoute::Direct
        } else {
            ProxyRoute::Settings(Arc::new(settings))
        };
        self
    }

    /// GETs `url`, following up to [`MAX_REDIRECTS`] redirects (S3 and CDN
    /// caches answer 301/302/307/308 with a `Location`); a 200 response's
    /// body, streamed. What a redirect leads to is checked as any answer:
    /// the narinfo by its signature, the NAR by its narHash.
    pub async fn get(&self, url: &str) -> Result<Body, HttpError> {
        let mut current = url.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            let answer =
                match tokio::time::timeout(self.connect_timeout, self.get_head(&current)).await {
                    Ok(r) => r?,
                    Err(_) => {
                        return Err(HttpError::Timeout {
                            url: current,
                            what: "response",
                            timeout: self.connect_timeout,
                        })
                    }
                };
            match answer {
                Answer::Body(b) => return Ok(b),
                Answer::Redirect(location) => {
                    current = resolve_location(&current, &location)
                        .ok_or_else(|| HttpError::BadUrl(location.clone()))?;
                }
            }
        }
        Err(HttpError::TooManyRedirects {
            url: url.to_owned(),
        })
    }

    async fn get_head(&self, url: &str) -> Result<Answer, HttpError> {
        let bad = || HttpError::BadUrl(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad()),
        };
        let host = uri.host().ok_or_else(bad)?.to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        // A bracketed IPv6 literal connects without its brackets.
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let proxy = match &self.proxy {
            ProxyRoute::Direct => None,
            ProxyRoute::Every(p) => Some(p.clone()),
            ProxyRoute::Settings(s) => s
                .proxy_for(if https { "https" } else { "http" }, &bare)
                .map_err(|source| HttpError::BadProxy {
                    url: url.to_owned(),
                    source,
                })?,
        };
        let (tcp, target) = match proxy {
            None => (connect(&bare, port, url).await?, path),
            Some(p) => {
                let mut tcp = connect(&p.host, p.port, &p.url).await?;
                if https {
                    connect_tunnel(&mut tcp, &host, port, &p.url, url).await?;
                    (tcp, path)
                } else {
                    (tcp, url.to_owned())
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
        let req = Request::get(target)
            .header(http::header::HOST, authority)
            .header(http::header::CONNECTION, "close")
            .header(http::header::USER_AGENT, "landfall-agent")
            .body(Empty::<Bytes>::new())
            .map_err(|_| bad())?;
        let resp = if https {
            let name = ServerName::try_from(bare).map_err(|_| bad())?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|source| HttpError::Tls {
                    url: url.to_owned(),
                    source,
                })?;
            send(url, TokioIo::new(tls), req).await?
        } else {
            send(url, TokioIo::new(tcp), req).await?
        };
        let status = resp.status();
        if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            if let Some(loc) = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
            {
                return Ok(Answer::Redirect(loc.to_owned()));
            }
        }
        if status != StatusCode::OK {
            return Err(HttpError::Status {
                url: url.to_owned(),
                status,
            });
        }
        Ok(Answer::Body(Body {
            url: url.to_owned(),
            inner: resp.into_body(),
            idle_timeout: self.idle_timeout,
        }))
    }
}

/// Resolves `host` and connects to its addresses in turn; errors name `url`.
async fn connect(host: &str, port: u16, url: &str) -> Result<TcpStream, HttpError> {
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| HttpError::Resolve {
            host: host.to_owned(),
            url: url.to_owned(),
            source,
        })?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = e,
        }
    }
    Err(HttpError::Connect {
        url: url.to_owned(),
        source: last,
    })
}

/// Opens a `CONNECT host:port` tunnel through the proxy on `tcp`.
async fn connect_tunnel(
    tcp: &mut TcpStream,
    host: &str,
    port: u16,
    proxy: &str,
    url: &str,
) -> Result<(), HttpError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let refused = |reason: String| HttpError::Proxy {
        proxy: proxy.to_owned(),
        url: url.to_owned(),
        reason,
    };
    let authority = format!("{host}:{port}");
    tcp.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await
        .map_err(|e| refused(e.to_string()))?;
    // The answer's head, byte by byte (nothing of the tunnel is read).
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err(refused("an answer head over 8 KiB".into()));
        }
        let b = tcp.read_u8().await.map_err(|e| refused(e.to_string()))?;
        head.push(b);
    }
    let text = String::from_utf8_lossy(&head);
    let status = text.lines().next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("200") {
        return Err(refused(status.to_owned()));
    }
    Ok(())
}

/// Redirects followed for one GET.
pub const MAX_REDIRECTS: usize = 5;

enum Answer {
    Body(Body),
    Redirect(String),
}

/// A `Location` resolved against the URL that answered it: absolute
/// http(s), absolute path, or relative to the answering URL's folder.
/// None for another scheme.
pub fn resolve_location(base: &str, location: &str) -> Option<String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_owned());
    }
    if location.contains("://") || location.starts_with("//") {
        return None;
    }
    let uri: Uri = base.parse().ok()?;
    let origin = format!("{}://{}", uri.scheme_str()?, uri.authority()?);
    if location.starts_with('/') {
        return Some(format!("{origin}{location}"));
    }
    let path = uri.path();
    let folder = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let folder = if folder.is_empty() { "/" } else { folder };
    Some(format!("{origin}{folder}{location}"))
}

async fn send<T>(
    url: &str,
    io: TokioIo<T>,
    req: Request<Empty<Bytes>>,
) -> Result<Response<Incoming>, HttpError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let rerr = |source| HttpError::Request {
        url: url.to_owned(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(rerr)?;
    // The connection task ends with the body (or when the body is dropped).
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(req).await.map_err(rerr)
}

#[cfg(test)]
mod tests {
    use super::resolve_location;

    #[test]
    fn locations_resolve_as_browsers_do() {
        let base = "https://cache.example.org/prefix/nar/abc.nar.xz";
        assert_eq!(
            resolve_location(base, "https://s3.example.com/b/abc?sig=1").as_deref(),
            Some("https://s3.example.com/b/abc?sig=1")
        );
        assert_eq!(
            resolve_location(base, "/other/abc.nar.xz").as_deref(),
            Some("https://cache.example.org/other/abc.nar.xz")
        );
        assert_eq!(
            resolve_location(base, "def.nar.xz").as_deref(),
            Some("https://cache.example.org/prefix/nar/def.nar.xz")
        );
        assert_eq!(
            resolve_location("http://h:8080", "x").as_deref(),
            Some("http://h:8080/x")
        );
        assert_eq!(resolve_location(base, "ftp://h/x"), None);
        assert_eq!(resolve_location(base, "//h/x"), None);
    }
}
