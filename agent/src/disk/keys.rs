//! The keys of a layout's LUKS devices, resolved before the first write:
//! `settings.keyFile` (the file's bytes, as `cryptsetup --key-file` reads
//! them), `passwordFile` (its text without trailing newlines, as disko's
//! `echo -n "$(cat FILE)"` hands it over) or, for `askPassword`, the
//! passphrase the caller was given (the controller's prompt, `disk apply
//! --luks-password`); `additionalKeyFiles` become further keyslots.
//!
//! Invariants: every key is read (and found non-empty) before any step
//! writes, so a missing key file or passphrase leaves the disks untouched;
//! keys live in `Zeroizing` buffers, no `Debug` here prints them, and errors
//! name the device and the path only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use landfall_proto::layout::{Content, Luks, Plan};
use zeroize::Zeroizing;

/// Errors resolving keys; each says what to give.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("LUKS {name}: key file {path} is not on this machine (the controller sends it with --disk-encryption-keys {path} LOCAL); nothing was written to any disk")]
    Missing { name: String, path: PathBuf },
    #[error("LUKS {name}: cannot read key file {path}; nothing was written to any disk")]
    Read {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("LUKS {name}: key file {path} is empty, and an empty key unlocks nothing; nothing was written to any disk")]
    EmptyFile { name: String, path: PathBuf },
    #[error("LUKS {name}: no passphrase was given for askPassword (the controller asks for it; `disk apply` takes --luks-password {name}=FILE); nothing was written to any disk")]
    NoPassphrase { name: String },
    #[error("LUKS {name}: the passphrase is empty, and an empty key unlocks nothing; nothing was written to any disk")]
    EmptyPassphrase { name: String },
}

/// Passphrases for `askPassword` LUKS devices, by LUKS name.
#[derive(Clone, Default)]
pub struct LuksPassphrases(BTreeMap<String, Zeroizing<Vec<u8>>>);

impl LuksPassphrases {
    pub fn new() -> Self {
        Self::default()
    }

    /// Give the passphrase of LUKS device `name`.
    pub fn insert(&mut self, name: impl Into<String>, passphrase: Zeroizing<Vec<u8>>) {
        self.0.insert(name.into(), passphrase);
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(|p| p.as_slice())
    }
}

impl std::fmt::Debug for LuksPassphrases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.0.keys().map(|k| format!("{k}: <redacted>")))
            .finish()
    }
}

/// The keys of one LUKS device.
pub struct LuksKey {
    /// Formats and opens the device (keyslot 0).
    pub primary: Zeroizing<Vec<u8>>,
    /// `additionalKeyFiles`, in order: keyslots 1, 2, …
    pub additional: Vec<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for LuksKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LuksKey(<redacted>, {} additional)",
            self.additional.len()
        )
    }
}

/// Every LUKS content of the plan: on partitions (with their disk and
/// number) and on LVs (with their VG and LV name), in plan order.
pub fn luks_contents(plan: &Plan) -> Vec<&Luks> {
    fn luks(c: &Content) -> Option<&Luks> {
        match c {
            Content::Luks(l) => Some(l),
            _ => None,
        }
    }
    let on_partitions = plan
        .disks
        .iter()
        .flat_map(|d| &d.partitions)
        .filter_map(|p| p.content.as_ref().and_then(luks));
    let on_lvs = plan
        .volume_groups
        .iter()
        .flat_map(|vg| &vg.lvs)
        .filter_map(|lv| lv.content.as_ref().and_then(luks));
    on_partitions.chain(on_lvs).collect()
}

fn read_key(name: &str, path: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let p = PathBuf::from(path);
    match std::fs::read(&p) {
        Ok(bytes) if bytes.is_empty() => Err(KeyError::EmptyFile {
            name: name.to_string(),
            path: p,
        }),
        Ok(bytes) => Ok(Zeroizing::new(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(KeyError::Missing {
            name: name.to_string(),
            path: p,
        }),
        Err(source) => Err(KeyError::Read {
            name: name.to_string(),
            path: p,
            source,
        }),
    }
}

/// The key of one LUKS device.
pub fn resolve_key(l: &Luks, given: &LuksPassphrases) -> Result<LuksKey, KeyError> {
    let primary = if let Some(path) = &l.key_file {
        read_key(&l.name, path)?
    } else if let Some(path) = &l.password_file {
        let mut text = read_key(&l.name, path)?;
        while text.last() == Some(&b'\n') {
            text.pop();
        }
        if text.is_empty() {
            return Err(KeyError::EmptyFile {
                name: l.name.clone(),
                path: PathBuf::from(path),
            });
        }
        text
    } else {
        match given.get(&l.name) {
            None => {
                return Err(KeyError::NoPassphrase {
                    name: l.name.clone(),
                })
            }
            Some([]) => {
                return Err(KeyError::EmptyPassphrase {
                    name: l.name.clone(),
                })
            }
            Some(p) => Zeroizing::new(p.to_vec()),
        }
    };
    let additional = l
        .additional_key_files
        .iter()
        .map(|p| read_key(&l.name, p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LuksKey {
        primary,
        additional,
    })
}

/// The keys of every LUKS device of the plan, by name.
pub fn resolve_keys(
    plan: &Plan,
    given: &LuksPassphrases,
) -> Result<BTreeMap<String, LuksKey>, KeyError> {
    luks_contents(plan)
        .into_iter()
        .map(|l| Ok((l.name.clone(), resolve_key(l, given)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn luks(key_file: Option<&str>, password_file: Option<&str>) -> Luks {
        Luks {
            name: "crypted".into(),
            key_file: key_file.map(str::to_string),
            password_file: password_file.map(str::to_string),
            ask_password: key_file.is_none() && password_file.is_none(),
            additional_key_files: Vec::new(),
            allow_discards: false,
            no_read_workqueue: false,
            no_write_workqueue: false,
            format_args: Default::default(),
            open_args: Default::default(),
            initrd_unlock: true,
            content: None,
        }
    }

    #[test]
    fn key_files_are_read_whole_and_password_files_without_trailing_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("disk.key");
        std::fs::write(&key, b"secret\n").unwrap();
        let k = key.to_str().unwrap();
        let got = resolve_key(&luks(Some(k), None), &LuksPassphrases::new()).unwrap();
        assert_eq!(got.primary.as_slice(), b"secret\n");
        let got = resolve_key(&luks(None, Some(k)), &LuksPassphrases::new()).unwrap();
        assert_eq!(got.primary.as_slice(), b"secret");
    }

    #[test]
    fn missing_and_empty_keys_are_errors_naming_the_device_not_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.key");
        let e = resolve_key(
            &luks(Some(missing.to_str().unwrap()), None),
            &LuksPassphrases::new(),
        )
        .unwrap_err();
        assert!(matches!(e, KeyError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("--disk-encryption-keys"), "{e}");
        let empty = dir.path().join("empty.key");
        std::fs::write(&empty, b"").unwrap();
        let e = resolve_key(
            &luks(Some(empty.to_str().unwrap()), None),
            &LuksPassphrases::new(),
        )
        .unwrap_err();
        assert!(matches!(e, KeyError::EmptyFile { .. }), "{e}");
        let newline_only = dir.path().join("nl.key");
        std::fs::write(&newline_only, b"\n\n").unwrap();
        let e = resolve_key(
            &luks(None, Some(newline_only.to_str().unwrap())),
            &LuksPassphrases::new(),
        )
        .unwrap_err();
        assert!(matches!(e, KeyError::EmptyFile { .. }), "{e}");
    }

    #[test]
    fn ask_password_takes_the_given_passphrase() {
        let l = luks(None, None);
        let e = resolve_key(&l, &LuksPassphrases::new()).unwrap_err();
        assert!(matches!(e, KeyError::NoPassphrase { .. }), "{e}");
        let mut given = LuksPassphrases::new();
        given.insert("crypted", Zeroizing::new(Vec::new()));
        let e = resolve_key(&l, &given).unwrap_err();
        assert!(matches!(e, KeyError::EmptyPassphrase { .. }), "{e}");
        given.insert("crypted", Zeroizing::new(b"hunter2".to_vec()));
        assert_eq!(
            resolve_key(&l, &given).unwrap().primary.as_slice(),
            b"hunter2"
        );
        assert!(!format!("{given:?}").contains("hunter2"));
    }
}
