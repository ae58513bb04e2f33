//! Session certificates: a fresh CA per target, a controller client
//! certificate, and an agent server certificate for the fixed name
//! `landfall-agent` (so the target's address does not matter).
//!
//! The agent identity is per boot: [`issue_agent`] makes a new key, a
//! certificate valid [`AGENT_DAYS`] days, a random boot ID and the pin (the
//! SHA-256 of the certificate's SubjectPublicKeyInfo, see [`spki_sha256`]) for
//! every kexec and every `image build --tls`; the controller accepts only the
//! pinned key (see [`crate::client`]), so a key from an earlier boot (which
//! may have leaked with that boot's RAM image) is worth nothing.
//!
//! The controller certificate lives [`CONTROLLER_DAYS`] days and is re-issued
//! (with the CA key, which never leaves the laptop) when it has less than
//! [`CONTROLLER_RENEW_DAYS`] left: at every issue of an agent identity and
//! before each connection (see [`renew_controller_if_due`]). That bounds what a
//! stolen controller key is worth without making a long install, or a
//! `landfall status` weeks later, fail on an expired certificate. The CA stays
//! valid for years: it is the session's root, only its key signs, and that key
//! stays in the private session folder.
//!
//! `not_before` is backdated a day because a RAM-booted target's clock is often wrong.

use std::fs;
use std::path::{Path, PathBuf};

use landfall_proto::tlsnames::{
    AGENT_CERT, AGENT_KEY, AGENT_PIN, AGENT_SERVER_NAME, BOOT_ID, CA_CERT, CA_KEY, CONTROLLER_CERT,
    CONTROLLER_KEY,
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// How long the session CA is valid.
pub const CA_DAYS: i64 = 3650;
/// How long an agent certificate (one boot) is valid.
pub const AGENT_DAYS: i64 = 3;
/// How long a controller certificate is valid.
pub const CONTROLLER_DAYS: i64 = 30;
/// A controller certificate with less than this left is re-issued.
pub const CONTROLLER_RENEW_DAYS: i64 = 7;
/// How far `not_before` is backdated (a RAM target's clock is often behind).
const BACKDATE_DAYS: i64 = 1;

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
    #[error("Cannot read {path} (make a session with `landfall certs init --dir DIR`)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is not a certificate landfall can read")]
    Parse(PathBuf),
    #[error(transparent)]
    Folder(#[from] crate::session_dir::SessionDirError),
    #[error("Cannot get random bytes for the boot ID")]
    Random(#[source] getrandom::Error),
}

fn params(cn: &str, sans: Vec<String>, days: i64) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(sans)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "landfall session");
    p.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(BACKDATE_DAYS);
    p.not_after = now + Duration::days(days);
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

fn read(path: PathBuf) -> Result<Vec<u8>, CertError> {
    fs::read(&path).map_err(|source| CertError::Read { path, source })
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

/// The SHA-256 of a DER certificate's SubjectPublicKeyInfo (what the
/// controller pins), or None when it does not parse.
pub fn spki_sha256(cert_der: &[u8]) -> Option<[u8; 32]> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(Sha256::digest(cert.public_key().raw).into())
}

/// The DER of the first certificate in a PEM file.
fn pem_to_der(path: &Path, pem: &[u8]) -> Result<Vec<u8>, CertError> {
    let (_, p) =
        x509_parser::pem::parse_x509_pem(pem).map_err(|_| CertError::Parse(path.to_path_buf()))?;
    Ok(p.contents)
}

/// Unix seconds at which the PEM certificate at `path` expires.
fn not_after(path: &Path) -> Result<i64, CertError> {
    let der = pem_to_der(path, &read(path.to_path_buf())?)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|_| CertError::Parse(path.to_path_buf()))?;
    Ok(cert.validity().not_after.timestamp())
}

/// The session CA, as an issuer (from `ca.pem` and `ca.key`).
fn load_issuer(dir: &Path) -> Result<Issuer<'static, KeyPair>, CertError> {
    let ca_key_path = dir.join(CA_KEY);
    let ca_key_pem = String::from_utf8(read(ca_key_path.clone())?)
        .map_err(|_| CertError::Parse(ca_key_path.clone()))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem)?;
    let ca_path = dir.join(CA_CERT);
    let ca_pem =
        String::from_utf8(read(ca_path.clone())?).map_err(|_| CertError::Parse(ca_path.clone()))?;
    Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|_| CertError::Parse(ca_path))
}

/// Creates a new session in `dir`: CA, controller identity and a first agent
/// identity (for an agent started with `landfall-agent serve --tls DIR`).
pub fn init(dir: &Path, label: &str, force: bool) -> Result<(), CertError> {
    if exists(dir) && !force {
        return Err(CertError::Exists(dir.to_path_buf()));
    }
    private_dir(dir)?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = params(&format!("landfall CA for {label}"), vec![], CA_DAYS)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    write(&dir.join(CA_CERT), &ca_cert.pem(), false)?;
    write(&dir.join(CA_KEY), &ca_key.serialize_pem(), true)?;
    let issuer = Issuer::new(ca_params, ca_key);
    write_controller(dir, &issuer)?;
    write_agent(dir, &issuer)?;
    Ok(())
}

fn write_controller(dir: &Path, issuer: &Issuer<'_, KeyPair>) -> Result<(), CertError> {
    let key = KeyPair::generate()?;
    let mut p = params("landfall-controller", vec![], CONTROLLER_DAYS)?;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = p.signed_by(&key, issuer)?;
    // A crash between the two writes leaves a pair that does not match;
    // [`controller_due`] sees that and the next run re-issues both.
    write(&dir.join(CONTROLLER_KEY), &key.serialize_pem(), true)?;
    write(&dir.join(CONTROLLER_CERT), &cert.pem(), false)
}

/// A freshly issued agent identity.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    /// The agent's files in `landfall_proto::session_stream::SESSION_FILES`
    /// order: CA certificate, agent certificate, agent key, boot ID.
    pub files: Vec<(&'static str, Vec<u8>)>,
    /// The pinned SPKI SHA-256, hex.
    pub pin: String,
    pub boot_id: String,
}

fn write_agent(dir: &Path, issuer: &Issuer<'_, KeyPair>) -> Result<AgentIdentity, CertError> {
    let key = KeyPair::generate()?;
    let mut p = params(
        AGENT_SERVER_NAME,
        vec![AGENT_SERVER_NAME.to_string()],
        AGENT_DAYS,
    )?;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = p.signed_by(&key, issuer)?;
    let pin =
        hex::encode(spki_sha256(cert.der()).ok_or_else(|| CertError::Parse(dir.join(AGENT_CERT)))?);
    let boot_id = random_id().map_err(CertError::Random)?;
    // The pin last: until it is written, the controller still accepts only the
    // previous boot's key, never a half-written identity.
    write(&dir.join(AGENT_KEY), &key.serialize_pem(), true)?;
    write(&dir.join(AGENT_CERT), &cert.pem(), false)?;
    write(&dir.join(BOOT_ID), &format!("{boot_id}\n"), false)?;
    write(&dir.join(AGENT_PIN), &format!("{pin}\n"), true)?;
    Ok(AgentIdentity {
        files: vec![
            (CA_CERT, read(dir.join(CA_CERT))?),
            (AGENT_CERT, cert.pem().into_bytes()),
            (AGENT_KEY, key.serialize_pem().into_bytes()),
            (BOOT_ID, format!("{boot_id}\n").into_bytes()),
        ],
        pin,
        boot_id,
    })
}

/// Issues a fresh agent identity for one boot into the session `dir`: a new
/// key, a certificate valid [`AGENT_DAYS`] days, a new boot ID; pins its key.
/// Renews the controller certificate too when it is due. Any agent still
/// running with the previous identity is no longer accepted.
pub fn issue_agent(dir: &Path) -> Result<AgentIdentity, CertError> {
    crate::session_dir::check_private(dir)?;
    let issuer = load_issuer(dir)?;
    renew_controller_with(dir, &issuer)?;
    write_agent(dir, &issuer)
}

/// A fresh random ID: 16 bytes from the OS's random source, as 32 hex digits
/// (boot IDs here; install IDs in [`crate::install_id`]).
pub fn random_id() -> Result<String, getrandom::Error> {
    let mut raw = [0u8; 16];
    getrandom::getrandom(&mut raw)?;
    Ok(hex::encode(raw))
}

/// True when the controller certificate in `dir` expires within
/// [`CONTROLLER_RENEW_DAYS`], or it and its key cannot be read as a pair.
fn controller_due(dir: &Path) -> bool {
    use rcgen::PublicKeyData;
    let soon = (OffsetDateTime::now_utc() + Duration::days(CONTROLLER_RENEW_DAYS)).unix_timestamp();
    let cert_path = dir.join(CONTROLLER_CERT);
    if not_after(&cert_path).map_or(true, |t| t < soon) {
        return true;
    }
    let key = fs::read_to_string(dir.join(CONTROLLER_KEY))
        .ok()
        .and_then(|pem| KeyPair::from_pem(&pem).ok());
    let cert_spki = read(cert_path.clone())
        .and_then(|pem| pem_to_der(&cert_path, &pem))
        .ok()
        .and_then(|der| spki_sha256(&der));
    match (key, cert_spki) {
        (Some(k), Some(c)) => <[u8; 32]>::from(Sha256::digest(k.subject_public_key_info())) != c,
        _ => true,
    }
}

fn renew_controller_with(dir: &Path, issuer: &Issuer<'_, KeyPair>) -> Result<bool, CertError> {
    if !controller_due(dir) {
        return Ok(false);
    }
    write_controller(dir, issuer)?;
    Ok(true)
}

/// Re-issues the controller certificate in `dir` when it is due, if the
/// folder holds the CA key (a folder made by hand may hold only the
/// controller's identity: then it is left as it is). Returns whether it did.
pub fn renew_controller_if_due(dir: &Path) -> Result<bool, CertError> {
    if !dir.join(CA_KEY).is_file() || !controller_due(dir) {
        return Ok(false);
    }
    write_controller(dir, &load_issuer(dir)?)?;
    Ok(true)
}

/// The pinned agent key of the session in `dir` (SHA-256 of its SPKI), from
/// `agent.pin`; a session made before pins existed has none, and then the
/// key of its `agent.pem` is pinned.
pub fn agent_pin(dir: &Path) -> Result<[u8; 32], CertError> {
    let pin_path = dir.join(AGENT_PIN);
    match fs::read_to_string(&pin_path) {
        Ok(text) => {
            let mut pin = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut pin).map_err(|_| CertError::Parse(pin_path))?;
            Ok(pin)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cert_path = dir.join(AGENT_CERT);
            let der = pem_to_der(&cert_path, &read(cert_path.clone())?)?;
            spki_sha256(&der).ok_or(CertError::Parse(cert_path))
        }
        Err(source) => Err(CertError::Read {
            path: pin_path,
            source,
        }),
    }
}

/// The boot ID of the session's current agent identity, if it has one.
pub fn boot_id(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join(BOOT_ID)).ok()?;
    landfall_proto::boot_id::parse(&text).map(str::to_string)
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

    /// (not_before, not_after) of a PEM certificate, Unix seconds.
    fn validity(path: &Path) -> (i64, i64) {
        let der = pem_to_der(path, &fs::read(path).unwrap()).unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        (
            c.validity().not_before.timestamp(),
            c.validity().not_after.timestamp(),
        )
    }

    fn days(n: i64) -> i64 {
        n * 86_400
    }

    #[test]
    fn agent_and_controller_certificates_are_short_lived_and_backdated() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("session");
        init(&s, "test", false).unwrap();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        for (file, life) in [
            (AGENT_CERT, AGENT_DAYS),
            (CONTROLLER_CERT, CONTROLLER_DAYS),
            (CA_CERT, CA_DAYS),
        ] {
            let (nb, na) = validity(&s.join(file));
            assert!((nb - (now - days(1))).abs() < 120, "{file} not_before");
            assert!((na - (now + days(life))).abs() < 120, "{file} not_after");
        }
        const { assert!(AGENT_DAYS <= 3 && CONTROLLER_DAYS <= 30) };
    }

    #[test]
    fn each_issue_is_a_new_key_a_new_pin_and_a_new_boot_id() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("session");
        init(&s, "test", false).unwrap();
        let first_pin = agent_pin(&s).unwrap();
        let a = issue_agent(&s).unwrap();
        let b = issue_agent(&s).unwrap();
        assert_ne!(a.pin, b.pin);
        assert_ne!(a.boot_id, b.boot_id);
        assert_ne!(hex::encode(first_pin), a.pin);
        assert_eq!(b.boot_id.len(), 32);
        assert_eq!(boot_id(&s).as_deref(), Some(b.boot_id.as_str()));
        assert_eq!(hex::encode(agent_pin(&s).unwrap()), b.pin);
        // The pin is the key of the certificate on disk and in the files sent.
        let der = pem_to_der(&s.join(AGENT_CERT), &fs::read(s.join(AGENT_CERT)).unwrap()).unwrap();
        assert_eq!(hex::encode(spki_sha256(&der).unwrap()), b.pin);
        let names: Vec<&str> = b.files.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, landfall_proto::session_stream::SESSION_FILES);
        assert_eq!(b.files[2].1, fs::read(s.join(AGENT_KEY)).unwrap());
        for (f, mode) in [(AGENT_PIN, 0o600), (AGENT_KEY, 0o600)] {
            let m = fs::metadata(s.join(f)).unwrap().permissions().mode();
            assert_eq!(m & 0o777, mode, "{f}");
        }
        // The new agent certificate chains to the session CA.
        let ca = pem_to_der(&s.join(CA_CERT), &fs::read(s.join(CA_CERT)).unwrap()).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(&ca).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        cert.verify_signature(Some(ca.public_key())).unwrap();
        // A folder open to others gets no new identity.
        fs::set_permissions(&s, fs::Permissions::from_mode(0o755)).unwrap();
        let e = issue_agent(&s).unwrap_err().to_string();
        assert!(e.contains("mode 0755"), "{e}");
        assert_eq!(hex::encode(agent_pin(&s).unwrap()), b.pin);
    }

    #[test]
    fn a_controller_certificate_near_its_end_is_renewed() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("session");
        init(&s, "test", false).unwrap();
        assert!(!renew_controller_if_due(&s).unwrap(), "a fresh one stays");
        let before = fs::read(s.join(CONTROLLER_CERT)).unwrap();
        // Re-issue it by hand with five days left.
        let issuer = load_issuer(&s).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut p = params("landfall-controller", vec![], 5).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &issuer).unwrap();
        write(&s.join(CONTROLLER_KEY), &key.serialize_pem(), true).unwrap();
        write(&s.join(CONTROLLER_CERT), &cert.pem(), false).unwrap();
        assert!(renew_controller_if_due(&s).unwrap());
        let after = fs::read(s.join(CONTROLLER_CERT)).unwrap();
        assert_ne!(before, after);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let (_, na) = validity(&s.join(CONTROLLER_CERT));
        assert!((na - (now + days(CONTROLLER_DAYS))).abs() < 120);
        assert!(
            !controller_due(&s),
            "the new key matches the new certificate"
        );
        // A key that does not match its certificate (a crash between the writes) is due.
        write(
            &s.join(CONTROLLER_KEY),
            &KeyPair::generate().unwrap().serialize_pem(),
            true,
        )
        .unwrap();
        assert!(controller_due(&s));
        // A folder without the CA key (made by hand) is left alone.
        fs::remove_file(s.join(CA_KEY)).unwrap();
        assert!(!renew_controller_if_due(&s).unwrap());
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
