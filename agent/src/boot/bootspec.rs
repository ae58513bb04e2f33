//! Reading the installed system's `boot.json` (bootspec v1, with the `bootspec`
//! crate), and resolving store paths and profile links inside the root.
//!
//! Invariant: every path returned by [`resolve_in_root`] is an absolute path
//! *of the installed system* with no symlink left in it; joined onto the root
//! it names a file inside the root, whatever the symlinks in the closure say.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use ::bootspec::generation::Generation;
use ::bootspec::v1::{BootSpecV1, GenerationV1};
use ::bootspec::BootJson;

/// Where NixOS keeps the current system generation.
pub const SYSTEM_PROFILE: &str = "/nix/var/nix/profiles/system";

/// How many symlinks one resolution may follow (as the kernel's ELOOP limit).
const MAX_LINKS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum BootSpecError {
    #[error("Cannot resolve {path} inside {root}")]
    Resolve {
        root: PathBuf,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not an absolute path")]
    NotAbsolute { path: PathBuf },
    #[error("{path} is not in the Nix store")]
    NotInStore { path: PathBuf },
    #[error("Cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not bootspec v1")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} has bootspec version {version}; only v1 is understood")]
    Version { path: PathBuf, version: u64 },
}

fn in_root(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

/// Resolves `path` (absolute, in the installed system) inside `root`: every
/// symlink is followed with `root` as `/`, `..` never climbs above it. The
/// final component must exist.
pub fn resolve_in_root(root: &Path, path: &Path) -> Result<PathBuf, BootSpecError> {
    let err = |source| BootSpecError::Resolve {
        root: root.to_path_buf(),
        path: path.to_path_buf(),
        source,
    };
    if !path.is_absolute() {
        return Err(BootSpecError::NotAbsolute {
            path: path.to_path_buf(),
        });
    }
    // Components still to walk, in reverse (a stack), and the resolved prefix.
    let mut todo: Vec<OsString> = components(path);
    todo.reverse();
    let mut done = PathBuf::from("/");
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        let next = done.join(&c);
        let meta = fs::symlink_metadata(in_root(root, &next)).map_err(err)?;
        if !meta.file_type().is_symlink() {
            done = next;
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(err(io::Error::from_raw_os_error(libc::ELOOP)));
        }
        let target = fs::read_link(in_root(root, &next)).map_err(err)?;
        if target.is_absolute() {
            done = PathBuf::from("/");
        }
        let mut parts = components(&target);
        parts.reverse();
        todo.extend(parts);
    }
    Ok(done)
}

fn components(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// The store path `/nix/var/nix/profiles/system` points to in `root`.
pub fn system_profile_target(root: &Path) -> Result<PathBuf, BootSpecError> {
    let p = resolve_in_root(root, Path::new(SYSTEM_PROFILE))?;
    store_path_of(&p)
}

/// The top store path (`/nix/store/<hash-name>`) that `p` lies in.
pub fn store_path_of(p: &Path) -> Result<PathBuf, BootSpecError> {
    let mut c = p.components();
    match (c.next(), c.next(), c.next(), c.next()) {
        (Some(Component::RootDir), Some(a), Some(b), Some(Component::Normal(name)))
            if a.as_os_str() == "nix" && b.as_os_str() == "store" =>
        {
            Ok(Path::new("/nix/store").join(name))
        }
        _ => Err(BootSpecError::NotInStore {
            path: p.to_path_buf(),
        }),
    }
}

/// Reads `<toplevel>/boot.json` in `root` and returns its v1 boot spec.
pub fn read_bootspec(root: &Path, toplevel: &Path) -> Result<BootSpecV1, BootSpecError> {
    let file = resolve_in_root(root, &toplevel.join(::bootspec::JSON_FILENAME))?;
    let path = in_root(root, &file);
    let bytes = fs::read(&path).map_err(|source| BootSpecError::Read {
        path: path.clone(),
        source,
    })?;
    parse_bootspec(&bytes).map_err(|e| match e {
        ParseFailure::Json(source) => BootSpecError::Parse { path, source },
        ParseFailure::Version(version) => BootSpecError::Version { path, version },
    })
}

enum ParseFailure {
    Json(serde_json::Error),
    Version(u64),
}

fn parse_bootspec(bytes: &[u8]) -> Result<BootSpecV1, ParseFailure> {
    let json: BootJson = serde_json::from_slice(bytes).map_err(ParseFailure::Json)?;
    #[allow(unreachable_patterns)] // `Generation` is non-exhaustive: newer versions may come.
    match json.generation {
        Generation::V1(GenerationV1 { bootspec, .. }) => Ok(bootspec),
        other => Err(ParseFailure::Version(other.version())),
    }
}

/// The file name NixOS gives a store file on the ESP: `<hash-name>-<file>.efi`
/// for `/nix/store/<hash-name>/…/<file>` (after resolving symlinks).
pub fn esp_name(resolved: &Path) -> Result<String, BootSpecError> {
    let top = store_path_of(resolved)?;
    let dir = top.file_name().map(|n| n.as_bytes()).unwrap_or_default();
    let file = resolved
        .file_name()
        .map(|n| n.as_bytes())
        .unwrap_or_default();
    Ok(format!(
        "{}-{}.efi",
        String::from_utf8_lossy(dir),
        String::from_utf8_lossy(file)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolves_absolute_and_relative_links_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("nix/store/aaa-linux/sub")).unwrap();
        fs::write(r.join("nix/store/aaa-linux/sub/bzImage"), b"k").unwrap();
        fs::create_dir_all(r.join("nix/store/bbb-system")).unwrap();
        symlink(
            "/nix/store/aaa-linux/sub/bzImage",
            r.join("nix/store/bbb-system/kernel"),
        )
        .unwrap();
        fs::create_dir_all(r.join("nix/var/nix/profiles")).unwrap();
        symlink("system-1-link", r.join("nix/var/nix/profiles/system")).unwrap();
        symlink(
            "/nix/store/bbb-system",
            r.join("nix/var/nix/profiles/system-1-link"),
        )
        .unwrap();
        let k = resolve_in_root(r, Path::new("/nix/var/nix/profiles/system/kernel")).unwrap();
        assert_eq!(k, Path::new("/nix/store/aaa-linux/sub/bzImage"));
        assert_eq!(
            system_profile_target(r).unwrap(),
            Path::new("/nix/store/bbb-system")
        );
        assert_eq!(esp_name(&k).unwrap(), "aaa-linux-bzImage.efi");
    }

    #[test]
    fn links_never_escape_the_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("a")).unwrap();
        // "../../../../etc" from /a climbs to / of the root, not of the host.
        symlink("../../../../etc", r.join("a/up")).unwrap();
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::write(r.join("etc/marker"), b"root's").unwrap();
        let p = resolve_in_root(r, Path::new("/a/up/marker")).unwrap();
        assert_eq!(p, Path::new("/etc/marker"));
        symlink("/etc/passwd-not-in-root", r.join("a/abs")).unwrap();
        assert!(resolve_in_root(r, Path::new("/a/abs")).is_err());
        symlink("loop", r.join("a/loop")).unwrap();
        assert!(resolve_in_root(r, Path::new("/a/loop")).is_err());
        assert!(resolve_in_root(r, Path::new("relative")).is_err());
    }

    #[test]
    fn parses_v1_and_rejects_garbage() {
        let v1 = br#"{"org.nixos.bootspec.v1": {"init": "/nix/store/x-s/init",
            "initrd": "/nix/store/i-initrd/initrd", "kernel": "/nix/store/k-linux/bzImage",
            "kernelParams": ["console=ttyS0", "quiet"], "label": "NixOS 24.05",
            "system": "x86_64-linux", "toplevel": "/nix/store/x-s"},
            "org.nixos.specialisation.v1": {}}"#;
        let s = parse_bootspec(v1).ok().unwrap();
        assert_eq!(s.kernel_params, ["console=ttyS0", "quiet"]);
        assert_eq!(s.toplevel.0, Path::new("/nix/store/x-s"));
        assert!(parse_bootspec(b"{}").is_err());
        assert!(parse_bootspec(b"not json").is_err());
    }

    #[test]
    fn store_paths_are_recognised() {
        assert!(store_path_of(Path::new("/etc/passwd")).is_err());
        assert!(store_path_of(Path::new("/nix/store")).is_err());
        assert_eq!(
            store_path_of(Path::new("/nix/store/abc-x/a/b")).unwrap(),
            Path::new("/nix/store/abc-x")
        );
    }
}
