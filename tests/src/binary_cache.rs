//! Real Nix binary caches for tests: key pairs made by `nix key
//! generate-secret`, caches written by `nix copy --to file://…` (signed with
//! `secret-key=` or not), served over HTTP/1.1 or HTTPS (a test CA) on
//! loopback, with the ways a cache goes wrong ([`Serve`]).
//!
//! ```no_run
//! use landfall_tests::binary_cache::{copy_to_cache, key_pair, serve, Serve};
//! let dir = std::path::Path::new("/tmp/t");
//! let (secret, public) = key_pair(dir, "test-1");
//! copy_to_cache(&dir.join("cache"), &["/nix/store/…-top"], "xz", Some(&secret));
//! let url = serve(dir.join("cache"), Serve::Whole);
//! ```

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::nixstore::TEST_NIX_CONFIG;

/// `program` (nix, nix-store) with the tests' Nix settings.
pub fn nix(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env("NIX_CONFIG", TEST_NIX_CONFIG);
    c
}

/// Runs `c`, which must succeed; its stdout.
pub fn run_ok(mut c: Command) -> Vec<u8> {
    let out = c.output().expect("nix not found: install nix-bin");
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A key pair named `name`: its secret key file (in `dir`) and public key.
pub fn key_pair(dir: &Path, name: &str) -> (PathBuf, String) {
    let mut c = nix("nix");
    c.args(["key", "generate-secret", "--key-name", name]);
    let secret = run_ok(c);
    let file = dir.join(format!("{name}.secret"));
    std::fs::write(&file, &secret).unwrap();
    let mut c = nix("nix");
    c.args(["key", "convert-secret-to-public"])
        .stdin(std::fs::File::open(&file).unwrap());
    let public = String::from_utf8(run_ok(c)).unwrap().trim().to_owned();
    (file, public)
}

/// `nix copy --to file://DEST?compression=…[&secret-key=…] PATHS…`: a cache
/// holding the closures of `paths`, signed with `secret` when given.
pub fn copy_to_cache(dest: &Path, paths: &[&str], compression: &str, secret: Option<&Path>) {
    let mut url = format!("file://{}?compression={compression}", dest.display());
    if let Some(s) = secret {
        url.push_str(&format!("&secret-key={}", s.display()));
    }
    let mut c = nix("nix");
    c.args(["copy", "--to", &url]).args(paths);
    run_ok(c);
}

/// The narinfo file of `path` in the cache folder `cache`.
pub fn narinfo_file(cache: &Path, path: &str) -> PathBuf {
    let base = path.trim_start_matches("/nix/store/");
    let hash = base.split('-').next().unwrap_or(base);
    cache.join(format!("{hash}.narinfo"))
}

/// The NAR file its narinfo's `URL` names.
pub fn nar_file(cache: &Path, path: &str) -> PathBuf {
    let text = std::fs::read_to_string(narinfo_file(cache, path)).unwrap();
    let url = text.lines().find_map(|l| l.strip_prefix("URL: ")).unwrap();
    cache.join(url)
}

/// The closure of `top` as the host has it: (path, narSize), sorted by path.
pub fn closure_nar_sizes(top: &str) -> Vec<(String, u64)> {
    crate::nixstore::comparable_path_info(None, top)
        .iter()
        .map(|v| {
            (
                v["path"].as_str().unwrap().to_owned(),
                v["narSize"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Every other path of the closure (a mix: referrers and references on both sides).
pub fn every_other(all: &[(String, u64)]) -> Vec<String> {
    all.iter().step_by(2).map(|(p, _)| p.clone()).collect()
}

/// Keeps only the narinfos of `keep` in the cache: the others are absent (404).
pub fn keep_only(cache: &Path, all: &[(String, u64)], keep: &[String]) {
    for (p, _) in all {
        if !keep.contains(p) {
            std::fs::remove_file(narinfo_file(cache, p)).unwrap();
        }
    }
}

/// Flips one byte in the middle of a file.
pub fn flip_middle(file: &Path) {
    let mut b = std::fs::read(file).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x55;
    std::fs::write(file, b).unwrap();
}

/// Asserts that each of `fetched` is registered in `installed` (`nix
/// path-info` JSON of the installed store) with the `Sig` its narinfo in
/// `cache` carries: the path came from the cache.
pub fn assert_cache_signatures(cache: &Path, installed: &[serde_json::Value], fetched: &[String]) {
    for p in fetched {
        let text = std::fs::read_to_string(narinfo_file(cache, p)).unwrap();
        let sig = text.lines().find_map(|l| l.strip_prefix("Sig: ")).unwrap();
        let info = installed.iter().find(|v| v["path"] == p.as_str()).unwrap();
        let sigs = info["signatures"].as_array().cloned().unwrap_or_default();
        assert!(
            sigs.iter().any(|s| s == sig),
            "{p}: fetched from the cache but its signature is not registered: {sigs:?}"
        );
    }
}

/// What the test server does with files under `nar/`.
#[derive(Clone, Copy, Debug)]
pub enum Serve {
    Whole,
    /// Announces the full length, sends this many bytes, closes.
    CutAfter(usize),
    /// Announces the full length, sends this many bytes, then holds the
    /// connection open without sending more.
    StallAfter(usize),
    /// Reads the request and never answers (every file).
    Silent,
}

/// Serves `dir` over HTTP/1.1 on 127.0.0.1 (one thread per connection),
/// over TLS when `tls` is given; returns the base URL. The server lives as
/// long as the test process.
pub fn serve_with(dir: PathBuf, mode: Serve, tls: Option<Arc<rustls::ServerConfig>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let dir = dir.clone();
            let tls = tls.clone();
            std::thread::spawn(move || match tls {
                None => answer(conn, &dir, mode),
                Some(cfg) => {
                    let Ok(server) = rustls::ServerConnection::new(cfg) else {
                        return;
                    };
                    answer(rustls::StreamOwned::new(server, conn), &dir, mode)
                }
            });
        }
    });
    url
}

/// [`serve_with`] over plain HTTP.
pub fn serve(dir: PathBuf, mode: Serve) -> String {
    serve_with(dir, mode, None)
}

fn answer(mut conn: impl Read + Write, dir: &Path, mode: Serve) {
    // A GET has no body: read up to the blank line.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    if matches!(mode, Serve::Silent) {
        std::thread::sleep(std::time::Duration::from_secs(600));
        return;
    }
    let request = String::from_utf8_lossy(&head);
    let target = request.split(' ').nth(1).unwrap_or("/");
    let rel = target.trim_start_matches('/');
    let file = dir.join(rel);
    let body = match (rel.contains(".."), std::fs::read(&file)) {
        (false, Ok(b)) => b,
        _ => {
            let _ = conn.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            let _ = conn.flush();
            return;
        }
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let send = match mode {
        Serve::CutAfter(n) | Serve::StallAfter(n) if rel.starts_with("nar/") => {
            &body[..n.min(body.len())]
        }
        _ => &body[..],
    };
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(send);
    let _ = conn.flush();
    if matches!(mode, Serve::StallAfter(_)) && rel.starts_with("nar/") {
        std::thread::sleep(std::time::Duration::from_secs(600));
    }
    // Dropping the socket closes it: a cut body ends early.
}

/// A test CA and a server certificate for 127.0.0.1 signed by it:
/// (the CA's PEM, the server's TLS configuration).
pub fn test_tls() -> (String, Arc<rustls::ServerConfig>) {
    test_tls_for(&["127.0.0.1"])
}

/// [`test_tls`] with a certificate for `names` (IP addresses or DNS names).
pub fn test_tls_for(names: &[&str]) -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    (ca_cert.pem(), Arc::new(cfg))
}

/// An HTTP server on 127.0.0.1 that answers every GET with `302 Found` and
/// `Location: TO + the path asked for` (TO = None: its own URL, a loop), as
/// S3-style caches send clients elsewhere. Returns its base URL.
pub fn serve_redirects(to: Option<String>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let to = to.unwrap_or_else(|| url.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let to = to.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let request = String::from_utf8_lossy(&head);
                let target = request.split(' ').nth(1).unwrap_or("/");
                let _ = write!(
                    conn,
                    "HTTP/1.1 302 Found\r\nLocation: {to}{target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = conn.flush();
            });
        }
    });
    url
}

/// An HTTP proxy on 127.0.0.1, as `http_proxy`/`https_proxy` name one:
/// `GET http://…` in absolute form is forwarded in origin form, `CONNECT
/// host:port` opens a tunnel. Returns its URL and how many requests it took.
pub fn serve_proxy() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::net::TcpStream;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                seen.fetch_add(1, Ordering::Relaxed);
                let text = String::from_utf8_lossy(&head).into_owned();
                let mut first = text.lines().next().unwrap_or_default().split(' ');
                let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
                let (authority, request) = if method == "CONNECT" {
                    (target.to_owned(), None)
                } else {
                    let rest = target.trim_start_matches("http://");
                    let (auth, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                    let path = if path.is_empty() { "/" } else { path };
                    let tail = &text[text.find("\r\n").unwrap_or(0)..];
                    (
                        auth.to_owned(),
                        Some(format!("{method} {path} HTTP/1.1{tail}")),
                    )
                };
                let Ok(mut up) = TcpStream::connect(&authority) else {
                    let _ =
                        conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
                    return;
                };
                match request {
                    None => {
                        let _ = conn.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                    }
                    Some(r) => {
                        let _ = up.write_all(r.as_bytes());
                    }
                }
                let (Ok(mut up2), Ok(mut conn2)) = (up.try_clone(), conn.try_clone()) else {
                    return;
                };
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut conn2, &mut up2);
                    let _ = up2.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut up, &mut conn);
                let _ = conn.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (url, count)
}
