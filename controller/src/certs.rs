//! Session certificates: a fresh CA per target, an agent server certificate for
//! the fixed name `landfall-agent` (so the target's address does not matter), and
//! a controller client certificate. `not_before` is backdated a day because a
//! RAM-booted target's clock is often wrong.

use std::fs;
use std::path::{Path, PathBuf};

use landfall_proto::tlsnames::{
    AGENT_CERT, AGENT_KEY, AGENT_SERVER_NAME, CA_CERT, CA_KEY, CONTROLLER_CERT, CONTROLLER_KEY,
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{0} already holds session certificates; pass --force to replace them")]
    Exists(PathBuf),
    #[error("Cannot generate a certificate")]
    Generate(#[from] rcgen::Error),
    #[error("Cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn params(cn: &str, sans: Vec<String>) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(sans)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "landfall session");
    p.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(3650);
    Ok(p)
}

fn write(path: &Path, data: &str, secret: bool) -> Result<(), CertError> {
    let err = |source| CertError::Write {
        path: path.to_path_buf(),
        source,
    };
    fs::write(path, data).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if secret { 0o600 } else { 0o644 };
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(err)?;
    }
    Ok(())
}

/// Whether `dir` already holds a complete session.
pub fn exists(dir: &Path) -> bool {
    [
        CA_CERT,
        AGENT_CERT,
        AGENT_KEY,
        CONTROLLER_CERT,
        CONTROLLER_KEY,
    ]
    .iter()
    .all(|f| dir.join(f).is_file())
}

/// Creates a new session in `dir`: CA, agent and controller identities.
pub fn init(dir: &Path, label: &str, force: bool) -> Result<(), CertError> {
    if exists(dir) && !force {
        return Err(CertError::Exists(dir.to_path_buf()));
    }
    fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.to_path_buf(),
        source,
    })?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = params(&format!("landfall CA for {label}"), vec![])?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let agent_key = KeyPair::generate()?;
    let mut agent_params = params(AGENT_SERVER_NAME, vec![AGENT_SERVER_NAME.to_string()])?;
    agent_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    agent_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let agent_cert = agent_params.signed_by(&agent_key, &issuer)?;

    let ctl_key = KeyPair::generate()?;
    let mut ctl_params = params("landfall-controller", vec![])?;
    ctl_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    ctl_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let ctl_cert = ctl_params.signed_by(&ctl_key, &issuer)?;

    write(&dir.join(CA_CERT), &ca_cert.pem(), false)?;
    write(&dir.join(CA_KEY), &ca_key.serialize_pem(), true)?;
    write(&dir.join(AGENT_CERT), &agent_cert.pem(), false)?;
    write(&dir.join(AGENT_KEY), &agent_key.serialize_pem(), true)?;
    write(&dir.join(CONTROLLER_CERT), &ctl_cert.pem(), false)?;
    write(&dir.join(CONTROLLER_KEY), &ctl_key.serialize_pem(), true)?;
    Ok(())
}

/// The files the agent needs (CA certificate, its certificate and key), as
/// (file name, contents) — what goes into the image's session cpio.
pub fn agent_files(dir: &Path) -> std::io::Result<Vec<(&'static str, Vec<u8>)>> {
    [CA_CERT, AGENT_CERT, AGENT_KEY]
        .iter()
        .map(|f| Ok((*f, fs::read(dir.join(f))?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_a_complete_session_and_refuses_to_overwrite() {
        let d = tempfile::tempdir().unwrap();
        init(d.path(), "test", false).unwrap();
        assert!(exists(d.path()));
        let agent = fs::read_to_string(d.path().join(AGENT_CERT)).unwrap();
        assert!(agent.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(matches!(
            init(d.path(), "test", false),
            Err(CertError::Exists(_))
        ));
        init(d.path(), "test", true).unwrap();
        assert_ne!(
            agent,
            fs::read_to_string(d.path().join(AGENT_CERT)).unwrap()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = fs::metadata(d.path().join(AGENT_KEY))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(m & 0o777, 0o600);
        }
    }
}
