//! `--generate-hardware-config nixos-generate-config PATH`: where the
//! generated NixOS hardware configuration goes, and writing it there.
//!
//! Invariants:
//! - The request is checked on the laptop before anything reaches the target:
//!   the generator is one this build knows, and PATH's folder exists.
//! - The file is written whole or not at all (a temporary file in the same
//!   folder, then a rename), so a flake never sees half a file.
//! - Inside a git work tree the file is added with `git add --intent-to-add`:
//!   a flake only sees files git knows about.
//!
//! The text itself is [`landfall_proto::hardware_config::render`]'s.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use landfall_proto::v1::InventoryReply;

/// The one generator landfall has: nixos-generate-config's rules.
pub const NIXOS_GENERATE_CONFIG: &str = "nixos-generate-config";

/// Why a hardware configuration cannot be made or written.
#[derive(Debug, thiserror::Error)]
pub enum HardwareConfigError {
    #[error(
        "Unknown hardware configuration generator {0:?}: the supported one is \
         `{NIXOS_GENERATE_CONFIG}` (--generate-hardware-config {NIXOS_GENERATE_CONFIG} PATH)"
    )]
    UnknownGenerator(String),
    #[error("--generate-hardware-config needs two values: {NIXOS_GENERATE_CONFIG} PATH")]
    WrongArity,
    #[error("The folder {0} for the hardware configuration does not exist")]
    NoFolder(PathBuf),
    #[error("{0} is a folder; name the file to write, e.g. {0}/hardware-configuration.nix")]
    IsFolder(PathBuf),
    #[error("The agent did not report its hardware (an agent older than this controller?)")]
    NoHardware,
    #[error("Writing {0} failed")]
    Write(PathBuf, #[source] std::io::Error),
    #[error("`git add --intent-to-add {0}` failed: {1}")]
    GitAdd(PathBuf, String),
}

/// A checked `--generate-hardware-config GENERATOR PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardwareConfigTarget {
    pub path: PathBuf,
}

impl HardwareConfigTarget {
    /// Checks the two values of the flag: the generator's name, and a PATH
    /// whose folder exists (a relative PATH is relative to the current folder).
    pub fn parse(values: &[String]) -> Result<Self, HardwareConfigError> {
        let [generator, path] = values else {
            return Err(HardwareConfigError::WrongArity);
        };
        if generator != NIXOS_GENERATE_CONFIG {
            return Err(HardwareConfigError::UnknownGenerator(generator.clone()));
        }
        let path = PathBuf::from(path);
        if path.is_dir() {
            return Err(HardwareConfigError::IsFolder(path));
        }
        let folder = folder_of(&path);
        if !folder.is_dir() {
            return Err(HardwareConfigError::NoFolder(folder));
        }
        Ok(Self { path })
    }
}

/// The folder `path` goes into ("." for a bare file name).
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The hardware configuration of the machine `inv` describes.
pub fn render(inv: &InventoryReply) -> Result<String, HardwareConfigError> {
    let hw = inv
        .hardware
        .as_ref()
        .ok_or(HardwareConfigError::NoHardware)?;
    Ok(landfall_proto::hardware_config::render(hw))
}

/// What [`write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    /// The file was added to a git work tree with --intent-to-add.
    pub git_added: bool,
}

/// Writes `text` to the target's path (replacing what is there), then adds
/// it with `git add --intent-to-add` when its folder is in a git work tree.
pub fn write(target: &HardwareConfigTarget, text: &str) -> Result<Written, HardwareConfigError> {
    let path = &target.path;
    let folder = folder_of(path);
    let err = |e| HardwareConfigError::Write(path.clone(), e);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = folder.join(format!(".{name}.landfall-{}", std::process::id()));
    let result = (|| {
        // World-readable, as nixos-generate-config leaves it (umask 022).
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    let git_added = if in_git_work_tree(&folder) {
        git_add_intent(&folder, path)?;
        true
    } else {
        false
    };
    Ok(Written {
        path: path.clone(),
        git_added,
    })
}

/// `git rev-parse --is-inside-work-tree` in `folder` says true (no git, or
/// not a work tree: false).
fn in_git_work_tree(folder: &Path) -> bool {
    Command::new("git")
        .arg("-C")
        .arg(folder)
        .args(["rev-parse", "--is-inside-work-tree"])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "true")
        .unwrap_or(false)
}

fn git_add_intent(folder: &Path, path: &Path) -> Result<(), HardwareConfigError> {
    let name = path.file_name().map(PathBuf::from).unwrap_or_default();
    let out = Command::new("git")
        .arg("-C")
        .arg(folder)
        .args(["add", "--intent-to-add", "--"])
        .arg(&name)
        .output()
        .map_err(|e| HardwareConfigError::GitAdd(path.to_path_buf(), e.to_string()))?;
    if !out.status.success() {
        return Err(HardwareConfigError::GitAdd(
            path.to_path_buf(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(a: &str, b: &str) -> Vec<String> {
        vec![a.into(), b.into()]
    }

    #[test]
    fn only_nixos_generate_config_is_known_and_the_error_names_it() {
        let e = HardwareConfigTarget::parse(&values("nixos-facter", "/tmp/hw.nix")).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("\"nixos-facter\""), "{text}");
        assert!(text.contains("`nixos-generate-config`"), "{text}");
    }

    #[test]
    fn a_path_whose_folder_is_missing_is_refused_with_the_folder() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("no-such-dir/hardware-configuration.nix");
        let e =
            HardwareConfigTarget::parse(&values("nixos-generate-config", path.to_str().unwrap()))
                .unwrap_err();
        assert!(
            matches!(e, HardwareConfigError::NoFolder(ref f) if f == &d.path().join("no-such-dir"))
        );
        assert!(e.to_string().contains("does not exist"), "{e}");
        // A folder is not a file name.
        let e = HardwareConfigTarget::parse(&values(
            "nixos-generate-config",
            d.path().to_str().unwrap(),
        ))
        .unwrap_err();
        assert!(matches!(e, HardwareConfigError::IsFolder(_)), "{e}");
    }

    #[test]
    fn a_bare_file_name_goes_into_the_current_folder() {
        let t = HardwareConfigTarget::parse(&values("nixos-generate-config", "hw.nix")).unwrap();
        assert_eq!(folder_of(&t.path), PathBuf::from("."));
    }

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .expect("git is missing: apt-get install -y git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn written_whole_and_added_with_intent_in_a_git_work_tree() {
        let d = tempfile::tempdir().unwrap();
        git(d.path(), &["init", "-q"]);
        let path = d.path().join("hardware-configuration.nix");
        std::fs::write(&path, "old").unwrap();
        let t =
            HardwareConfigTarget::parse(&values("nixos-generate-config", path.to_str().unwrap()))
                .unwrap();
        let w = write(&t, "{ }\n").unwrap();
        assert!(w.git_added);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ }\n");
        // Intent to add: git lists the file as added, its content not staged.
        let status = git(d.path(), &["status", "--porcelain"]);
        assert_eq!(status.trim(), "A hardware-configuration.nix", "{status}");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o644);
        // Nothing else is left in the folder (the temporary file was renamed).
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != ".git")
            .collect();
        assert_eq!(names, ["hardware-configuration.nix"]);
    }

    #[test]
    fn outside_git_it_is_only_written() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("hw.nix");
        let t =
            HardwareConfigTarget::parse(&values("nixos-generate-config", path.to_str().unwrap()))
                .unwrap();
        let w = write(&t, "{ }\n").unwrap();
        assert!(!w.git_added);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ }\n");
    }

    #[test]
    fn an_agent_without_hardware_facts_is_a_clear_error() {
        let e = render(&InventoryReply::default()).unwrap_err();
        assert!(matches!(e, HardwareConfigError::NoHardware));
    }
}
