//! The agent's TLS identity: loads the session certificate, key and CA from a
//! folder and builds a rustls server configuration that *requires* a client
//! certificate signed by that CA. There is no other mode.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use landfall_proto::tlsnames::{AGENT_CERT, AGENT_KEY, CA_CERT};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("Cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key")]
    NoKey { path: PathBuf },
    #[error("{path} is not valid PEM")]
    Pem {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("The CA certificate in {path} is not usable")]
    BadCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("Cannot build the client-certificate verifier")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    #[error("The agent certificate and key do not form a usable identity")]
    Identity(#[source] rustls::Error),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.into(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| TlsError::Pem {
            path: path.into(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey { path: path.into() })
}

/// Builds the server configuration from `dir/{ca.pem,agent.pem,agent.key}`.
/// ALPN offers h2 only (gRPC).
pub fn server_config(dir: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca_path = dir.join(CA_CERT);
    let mut roots = RootCertStore::empty();
    for ca in certs(&ca_path)? {
        roots.add(ca).map_err(|source| TlsError::BadCa {
            path: ca_path.clone(),
            source,
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(TlsError::Verifier)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Identity)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&dir.join(AGENT_CERT))?, key(&dir.join(AGENT_KEY))?)
        .map_err(TlsError::Identity)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
