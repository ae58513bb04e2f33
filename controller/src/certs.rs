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

/// Writes a session file with its final mode from the start (0600 for a
/// secret, else 0644), atomically (see [`crate::secret_file`]).
fn write(path: &Path, data: &str, secret: bool) -> Result<(), CertError> {
    let mode = if secret { 0o600 } else { 0o644 };
    crate::secret_file::write_atomic(path, data.as_bytes(), mode).map_err(|source| {
        CertError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Creates `dir` (and missing parents) mode 0700, and tightens it to 0700
/// when it exists already.
fn private_dir(dir: &Path) -> Result<(), CertError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let err = |source| CertError::Write {
        path: dir.to_path_buf(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(err)
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
    private_dir(dir)?;

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
        // Someone holding the old key open never sees the new one.
        let mut old_key = fs::File::open(d.path().join(AGENT_KEY)).unwrap();
        let old_text = fs::read_to_string(d.path().join(AGENT_KEY)).unwrap();
        init(d.path(), "test", true).unwrap();
        let mut seen = String::new();
        std::io::Read::read_to_string(&mut old_key, &mut seen).unwrap();
        assert_eq!(seen, old_text);
        assert_ne!(
            old_text,
            fs::read_to_string(d.path().join(AGENT_KEY)).unwrap()
        );
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

    #[test]
    fn session_folders_are_private_from_the_start() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let session = d.path().join("state/target/session");
        init(&session, "test", false).unwrap();
        for dir in [&session, &d.path().join("state/target")] {
            let m = fs::metadata(dir).unwrap().permissions().mode();
            assert_eq!(m & 0o777, 0o700, "{}", dir.display());
        }
        for (f, mode) in [(CA_KEY, 0o600), (CONTROLLER_KEY, 0o600), (CA_CERT, 0o644)] {
            let m = fs::metadata(session.join(f)).unwrap().permissions().mode();
            assert_eq!(m & 0o777, mode, "{f}");
        }
        // An existing folder open to others is tightened.
        let open = d.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        init(&open, "test", false).unwrap();
        let m = fs::metadata(&open).unwrap().permissions().mode();
        assert_eq!(m & 0o777, 0o700);
        assert!(fs::read_dir(&open).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp-")));
    }
}
