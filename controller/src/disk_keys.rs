//! Disk encryption keys from the laptop's side: `--disk-encryption-keys
//! REMOTE LOCAL` (as nixos-anywhere's flag: LOCAL is read here and put at
//! REMOTE in the agent's RAM), `--disk-password-file NAME FILE`, and the
//! terminal prompt for `askPassword` LUKS devices.
//!
//! Invariants:
//! - Everything here runs on the laptop, after the layout is known and before
//!   anything reaches the target: a missing or empty local file, a key path
//!   the layout names but nobody provided, or a passphrase nobody can type
//!   is an error while the target is still untouched.
//! - Key bytes and passphrases are never logged nor printed: [`DiskSecrets`]'s
//!   `Debug` shows paths, device names and sizes only, and nothing here is
//!   serialised.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use landfall_proto::layout::{Content, Layout, Luks};

use crate::passphrase::{Passphrase, PassphraseError};

/// Why the disk keys cannot be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DiskKeyError {
    #[error(
        "--disk-encryption-keys {remote} {local}: cannot read the local key file {local}: {source}"
    )]
    Unreadable {
        remote: String,
        local: PathBuf,
        source: std::io::Error,
    },
    #[error("--disk-encryption-keys {remote} {local}: the local key file {local} is empty")]
    Empty { remote: String, local: PathBuf },
    #[error("--disk-encryption-keys {remote} …: {remote} is not an absolute path on the target")]
    NotAbsolute { remote: String },
    #[error("--disk-encryption-keys {remote} is given twice")]
    Twice { remote: String },
    #[error(
        "--disk-encryption-keys takes two values, REMOTE LOCAL (e.g. --disk-encryption-keys /tmp/disk.key ./disk.key)"
    )]
    Odd,
    #[error(
        "LUKS device \"{device}\" needs its {what} {path} on the target: pass --disk-encryption-keys {path} LOCAL_FILE"
    )]
    NotProvided {
        device: String,
        what: &'static str,
        path: String,
    },
    #[error("--disk-password-file {name} {file}: cannot read {file}: {source}")]
    PasswordFileUnreadable {
        name: String,
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("--disk-password-file {name} {file}: the passphrase in {file} is empty")]
    PasswordFileEmpty { name: String, file: PathBuf },
    #[error("--disk-password-file {name}: the layout has no LUKS device \"{name}\" that asks for a password (askPassword){}", known_list(.known))]
    PasswordFileUnknown { name: String, known: Vec<String> },
    #[error("--disk-password-file takes two values, NAME FILE (e.g. --disk-password-file crypted ./passphrase)")]
    PasswordFileOdd,
    #[error(
        "LUKS device \"{device}\" asks for a passphrase (askPassword), but there is no terminal to ask on: \
         run landfall in a terminal, or pass --disk-password-file {device} FILE"
    )]
    NoTerminal { device: String },
    #[error("The passphrase for LUKS device \"{device}\": {source}")]
    Prompt {
        device: String,
        source: PassphraseError,
    },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!(" (it asks for: {})", known.join(", "))
    }
}

/// The keys one install sends to the agent: files for PutSecrets, and
/// passphrases for `LayoutRequest.luks_passwords`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DiskSecrets {
    /// (absolute path on the target, content), in command-line order.
    pub files: Vec<(String, Vec<u8>)>,
    /// LUKS device name -> passphrase, for `askPassword` devices.
    pub passwords: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for DiskSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files: Vec<String> = self
            .files
            .iter()
            .map(|(p, c)| format!("{p} ({} bytes)", c.len()))
            .collect();
        let names: Vec<&String> = self.passwords.keys().collect();
        f.debug_struct("DiskSecrets")
            .field("files", &files)
            .field("passwords_for", &names)
            .finish()
    }
}

impl DiskSecrets {
    /// The secret files as PutSecrets wants them.
    pub fn request(&self) -> landfall_proto::v1::PutSecretsRequest {
        landfall_proto::v1::PutSecretsRequest {
            files: self
                .files
                .iter()
                .map(|(path, content)| landfall_proto::v1::SecretFile {
                    path: path.clone(),
                    content: content.clone(),
                })
                .collect(),
        }
    }
}

/// The command line's choices: `--disk-encryption-keys` values (REMOTE,
/// LOCAL pairs, flattened as clap collects them) and `--disk-password-file`
/// values (NAME, FILE pairs).
#[derive(Debug, Clone, Default)]
pub struct KeyArgs {
    pub encryption_keys: Vec<String>,
    pub password_files: Vec<String>,
}

/// One LUKS device of a layout and the keys it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuksNeed {
    pub device: String,
    /// (what, path on the target): "key file", "password file", "additional key file".
    pub files: Vec<(&'static str, String)>,
    pub ask_password: bool,
}

/// Every LUKS device of `layout`, in the layout's order (disks, partitions,
/// then volume groups' LVs).
pub fn luks_needs(layout: &Layout) -> Vec<LuksNeed> {
    fn walk(c: &Content, out: &mut Vec<LuksNeed>) {
        if let Content::Luks(l) = c {
            out.push(need_of(l));
            if let Some(inner) = &l.content {
                walk(inner, out);
            }
        }
    }
    let mut out = Vec::new();
    for p in layout.disks.iter().flat_map(|d| &d.partitions) {
        if let Some(c) = &p.content {
            walk(c, &mut out);
        }
    }
    for lv in layout.lvm_vgs.iter().flat_map(|vg| &vg.lvs) {
        if let Some(c) = &lv.content {
            walk(c, &mut out);
        }
    }
    out
}

fn need_of(l: &Luks) -> LuksNeed {
    let mut files = Vec::new();
    if let Some(k) = &l.key_file {
        files.push(("key file", k.clone()));
    }
    if let Some(p) = &l.password_file {
        files.push(("password file", p.clone()));
    }
    for k in &l.additional_key_files {
        files.push(("additional key file", k.clone()));
    }
    LuksNeed {
        device: l.name.clone(),
        files,
        ask_password: l.ask_password,
    }
}

/// What to type at the installed system's stage-1 prompts (`install --vm`
/// boots it and types as a person would): for each partition's LUKS device
/// unlocked in the initrd (`initrdUnlock`), its askPassword passphrase, else
/// the bytes of its key or password file without one trailing newline
/// (cryptsetup's prompt takes a line: write such keys with `printf`/`echo -n`).
pub fn console_passphrases(layout: &Layout, secrets: &DiskSecrets) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for p in layout.disks.iter().flat_map(|d| &d.partitions) {
        let Some(Content::Luks(l)) = &p.content else {
            continue;
        };
        if !l.initrd_unlock {
            continue;
        }
        let typed = secrets.passwords.get(&l.name).cloned().or_else(|| {
            [&l.key_file, &l.password_file]
                .into_iter()
                .flatten()
                .find_map(|path| secrets.files.iter().find(|(r, _)| r == path))
                .map(|(_, c)| passphrase_from_file(c).to_vec())
        });
        if let Some(t) = typed {
            out.push((l.name.clone(), t));
        }
    }
    out
}

/// Reads the `--disk-encryption-keys` files (refusing missing and empty ones).
pub fn read_key_files(pairs: &[String]) -> Result<Vec<(String, Vec<u8>)>, DiskKeyError> {
    if !pairs.len().is_multiple_of(2) {
        return Err(DiskKeyError::Odd);
    }
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for pair in pairs.chunks(2) {
        let (remote, local) = (pair[0].clone(), PathBuf::from(&pair[1]));
        if !remote.starts_with('/') || remote.contains('\0') {
            return Err(DiskKeyError::NotAbsolute { remote });
        }
        if out.iter().any(|(r, _)| *r == remote) {
            return Err(DiskKeyError::Twice { remote });
        }
        let content = std::fs::read(&local).map_err(|source| DiskKeyError::Unreadable {
            remote: remote.clone(),
            local: local.clone(),
            source,
        })?;
        if content.is_empty() {
            return Err(DiskKeyError::Empty { remote, local });
        }
        out.push((remote, content));
    }
    Ok(out)
}

/// Checks that every key path the layout names is among `files`.
pub fn check_provided(needs: &[LuksNeed], files: &[(String, Vec<u8>)]) -> Result<(), DiskKeyError> {
    for n in needs {
        for (what, path) in &n.files {
            if !files.iter().any(|(r, _)| r == path) {
                return Err(DiskKeyError::NotProvided {
                    device: n.device.clone(),
                    what,
                    path: path.clone(),
                });
            }
        }
    }
    Ok(())
}

/// A passphrase read from a `--disk-password-file` file: the file's bytes
/// without one trailing newline (`echo secret > FILE` and `printf secret >
/// FILE` give the same passphrase, the one typed at the prompt).
pub fn passphrase_from_file(bytes: &[u8]) -> &[u8] {
    let b = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    b.strip_suffix(b"\r").unwrap_or(b)
}

/// Prepares the keys of `layout`: the key files read and checked against
/// what the layout names, and a passphrase for each `askPassword` device —
/// from `--disk-password-file`, else asked with `ask` (the terminal prompt).
pub fn prepare(
    layout: &Layout,
    args: &KeyArgs,
    ask: &mut dyn FnMut(&str) -> Result<Passphrase, PassphraseError>,
) -> Result<DiskSecrets, DiskKeyError> {
    let files = read_key_files(&args.encryption_keys)?;
    let needs = luks_needs(layout);
    check_provided(&needs, &files)?;
    if !args.password_files.len().is_multiple_of(2) {
        return Err(DiskKeyError::PasswordFileOdd);
    }
    let asking: Vec<String> = needs
        .iter()
        .filter(|n| n.ask_password)
        .map(|n| n.device.clone())
        .collect();
    let mut passwords = BTreeMap::new();
    for pair in args.password_files.chunks(2) {
        let (name, file) = (pair[0].clone(), PathBuf::from(&pair[1]));
        if !asking.contains(&name) {
            return Err(DiskKeyError::PasswordFileUnknown {
                name,
                known: asking.clone(),
            });
        }
        let bytes = read_password_file(&name, &file)?;
        passwords.insert(name, bytes);
    }
    for device in &asking {
        if passwords.contains_key(device) {
            continue;
        }
        let p = ask(device).map_err(|source| match source {
            PassphraseError::NoTerminal => DiskKeyError::NoTerminal {
                device: device.clone(),
            },
            source => DiskKeyError::Prompt {
                device: device.clone(),
                source,
            },
        })?;
        passwords.insert(device.clone(), p.into_bytes());
    }
    Ok(DiskSecrets { files, passwords })
}

fn read_password_file(name: &str, file: &Path) -> Result<Vec<u8>, DiskKeyError> {
    let bytes = std::fs::read(file).map_err(|source| DiskKeyError::PasswordFileUnreadable {
        name: name.to_string(),
        file: file.to_path_buf(),
        source,
    })?;
    let p = passphrase_from_file(&bytes);
    if p.is_empty() {
        return Err(DiskKeyError::PasswordFileEmpty {
            name: name.to_string(),
            file: file.to_path_buf(),
        });
    }
    Ok(p.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(file: &str) -> Layout {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../examples/office")
                .join(file),
        )
        .unwrap();
        Layout::from_json(&text).unwrap()
    }

    fn shared(file: &str) -> Layout {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/layouts")
                .join(file),
        )
        .unwrap();
        Layout::from_json(&text).unwrap()
    }

    fn never_ask(device: &str) -> Result<Passphrase, PassphraseError> {
        panic!("asked for {device}'s passphrase")
    }

    #[test]
    fn the_office_luks_layout_needs_its_key_file() {
        let needs = luks_needs(&layout("disko-devices-luks-lvm.json"));
        assert_eq!(
            needs,
            [LuksNeed {
                device: "crypted".into(),
                files: vec![("key file", "/tmp/disk.key".into())],
                ask_password: false,
            }]
        );
    }

    #[test]
    fn a_layout_key_path_not_given_names_the_device_path_and_flag() {
        let d = tempfile::tempdir().unwrap();
        let other = d.path().join("other.key");
        std::fs::write(&other, b"x").unwrap();
        let args = KeyArgs {
            encryption_keys: vec!["/tmp/other.key".into(), other.display().to_string()],
            ..Default::default()
        };
        let e = prepare(
            &layout("disko-devices-luks-lvm.json"),
            &args,
            &mut never_ask,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "LUKS device \"crypted\" needs its key file /tmp/disk.key on the target: pass --disk-encryption-keys /tmp/disk.key LOCAL_FILE"
        );
        // disko's luks-lvm example: its additional key file is named too.
        let args = KeyArgs {
            encryption_keys: vec!["/tmp/secret.key".into(), other.display().to_string()],
            ..Default::default()
        };
        let e = prepare(&shared("disko-luks-lvm.json"), &args, &mut never_ask).unwrap_err();
        assert!(
            e.to_string()
                .contains("additional key file /tmp/additionalSecret.key"),
            "{e}"
        );
    }

    #[test]
    fn missing_and_empty_local_files_are_refused_with_their_path() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("nope.key");
        let e =
            read_key_files(&["/tmp/disk.key".into(), missing.display().to_string()]).unwrap_err();
        assert!(
            e.to_string().contains(&format!(
                "cannot read the local key file {}",
                missing.display()
            )),
            "{e}"
        );
        let empty = d.path().join("empty.key");
        std::fs::write(&empty, b"").unwrap();
        let e = read_key_files(&["/tmp/disk.key".into(), empty.display().to_string()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "--disk-encryption-keys /tmp/disk.key {0}: the local key file {0} is empty",
                empty.display()
            )
        );
        let e = read_key_files(&["disk.key".into(), empty.display().to_string()]).unwrap_err();
        assert!(e.to_string().contains("not an absolute path"), "{e}");
    }

    #[test]
    fn given_keys_are_read_byte_for_byte_and_debug_hides_them() {
        let d = tempfile::tempdir().unwrap();
        let k = d.path().join("disk.key");
        std::fs::write(&k, b"correct horse\n").unwrap();
        let args = KeyArgs {
            encryption_keys: vec!["/tmp/disk.key".into(), k.display().to_string()],
            ..Default::default()
        };
        let s = prepare(
            &layout("disko-devices-luks-lvm.json"),
            &args,
            &mut never_ask,
        )
        .unwrap();
        assert_eq!(
            s.files,
            [("/tmp/disk.key".to_string(), b"correct horse\n".to_vec())]
        );
        assert!(s.passwords.is_empty());
        let shown = format!("{s:?}");
        assert!(shown.contains("/tmp/disk.key (14 bytes)"), "{shown}");
        assert!(!shown.contains("horse"), "{shown}");
        assert_eq!(s.request().files[0].content, b"correct horse\n");
    }

    /// The office LUKS layout with its key file swapped for `askPassword`.
    fn asking_layout() -> Layout {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/office/disko-devices-luks-lvm.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let luks = &mut v["disk"]["main"]["content"]["partitions"]["luks"]["content"];
        luks["settings"] = serde_json::json!({});
        luks["askPassword"] = serde_json::json!(true);
        Layout::from_json(&v.to_string()).unwrap()
    }

    #[test]
    fn ask_password_devices_are_asked_or_read_from_a_password_file() {
        let l = asking_layout();
        let mut asked = Vec::new();
        let s = prepare(&l, &KeyArgs::default(), &mut |d: &str| {
            asked.push(d.to_string());
            Ok(Passphrase::new(b"typed".to_vec()))
        })
        .unwrap();
        assert_eq!(asked, ["crypted"]);
        assert_eq!(s.passwords["crypted"], b"typed");

        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("pass");
        std::fs::write(&f, b"from file\n").unwrap();
        let args = KeyArgs {
            password_files: vec!["crypted".into(), f.display().to_string()],
            ..Default::default()
        };
        let s = prepare(&l, &args, &mut never_ask).unwrap();
        assert_eq!(s.passwords["crypted"], b"from file");

        let args = KeyArgs {
            password_files: vec!["cryptd".into(), f.display().to_string()],
            ..Default::default()
        };
        let e = prepare(&l, &args, &mut never_ask).unwrap_err();
        assert!(
            e.to_string().contains("no LUKS device \"cryptd\"")
                && e.to_string().contains("it asks for: crypted"),
            "{e}"
        );
    }

    #[test]
    fn no_terminal_names_the_device_and_the_non_interactive_flag() {
        let l = asking_layout();
        let e = prepare(&l, &KeyArgs::default(), &mut |_: &str| {
            Err(PassphraseError::NoTerminal)
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("LUKS device \"crypted\" asks for a passphrase")
                && e.to_string().contains("--disk-password-file crypted FILE"),
            "{e}"
        );
    }

    #[test]
    fn the_installed_console_gets_the_key_file_bytes_for_the_luks_partition() {
        let secrets = DiskSecrets {
            files: vec![("/tmp/disk.key".into(), b"typed words\n".to_vec())],
            ..Default::default()
        };
        let p = console_passphrases(&layout("disko-devices-luks-lvm.json"), &secrets);
        assert_eq!(p, [("crypted".to_string(), b"typed words".to_vec())]);
        let asked = DiskSecrets {
            passwords: [("crypted".to_string(), b"asked".to_vec())].into(),
            ..Default::default()
        };
        let p = console_passphrases(&asking_layout(), &asked);
        assert_eq!(p, [("crypted".to_string(), b"asked".to_vec())]);
        assert!(console_passphrases(&layout("disko-devices.json"), &secrets).is_empty());
    }

    #[test]
    fn a_password_file_loses_one_trailing_newline_only() {
        assert_eq!(passphrase_from_file(b"abc\n"), b"abc");
        assert_eq!(passphrase_from_file(b"abc\r\n"), b"abc");
        assert_eq!(passphrase_from_file(b"abc\n\n"), b"abc\n");
        assert_eq!(passphrase_from_file(b"abc"), b"abc");
    }
}
