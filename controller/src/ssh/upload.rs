//! Uploading the agent, kernel and initrd into a checked upload folder (see
//! [`super::upload_dir`]), only when that folder does not already hold the
//! same bytes (compared by SHA-256 with the target's `sha256sum`; without it,
//! everything is uploaded). Every remote command runs as the user who runs
//! the kexec: root, or root through `sudo -n`.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::SshError;
use super::target::{shell_quote, Target};
use super::upload_dir::{self, UnsafeDir};

/// A file to place on the target.
#[derive(Debug, Clone)]
pub struct Upload {
    pub local: PathBuf,
    /// File name inside the upload folder.
    pub name: String,
    /// e.g. 0o755 for the agent.
    pub mode: u32,
}

/// What happened to each file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub name: String,
    pub bytes: u64,
    /// False when the target already had the same bytes.
    pub sent: bool,
    /// The file's SHA-256 (hex), for `landfall-agent kexec` to check.
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("Cannot read {0}")]
    Local(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("Cannot write {path} on the target: {detail}")]
    Remote { path: String, detail: String },
    #[error("Cannot make an upload folder in {base} on the target: {detail}")]
    MakeDir { base: String, detail: String },
    #[error("The upload folder is not safe to use: {0}")]
    UnsafeDir(#[source] UnsafeDir),
}

/// Upload folders left by earlier runs.
#[derive(Debug, Default)]
pub struct EarlierDirs {
    /// Those that passed the checks.
    pub usable: Vec<String>,
    /// The others, with why they are not used.
    pub refused: Vec<(String, UnsafeDir)>,
}

/// `script` as the user who runs the kexec: itself for root, else through `sudo -n`.
pub fn as_root(script: &str, sudo: bool) -> String {
    if sudo {
        format!("sudo -n sh -c {}", shell_quote(script))
    } else {
        script.to_string()
    }
}

/// SHA-256 of a local file, hex.
pub fn sha256_file(path: &Path) -> Result<String, UploadError> {
    let mut f = std::fs::File::open(path).map_err(|e| UploadError::Local(path.into(), e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| UploadError::Local(path.into(), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Parses `sha256sum` output (`HASH  NAME` lines) into (name, hash).
pub fn parse_sha256sum(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            let (hash, name) = l.split_once(char::is_whitespace)?;
            let name = name.trim_start().trim_start_matches('*');
            (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| (name.to_string(), hash.to_ascii_lowercase()))
        })
        .collect()
}

impl Target {
    /// Makes a fresh upload folder in `base` (/run or /tmp) and checks it.
    pub fn make_upload_dir(&self, base: &str, sudo: bool) -> Result<String, UploadError> {
        let out = self.run(&as_root(&upload_dir::mktemp_script(base), sudo), None)?;
        let dir = out.stdout.trim();
        if out.status != 0 || !upload_dir::is_fresh_dir(base, dir) {
            return Err(UploadError::MakeDir {
                base: base.into(),
                detail: super::error::tail(&format!("{}{}", out.stdout, out.stderr)),
            });
        }
        self.check_upload_dir(dir, sudo)?;
        Ok(dir.to_string())
    }

    /// Checks `dir` before a use (see [`upload_dir::check`]).
    pub fn check_upload_dir(&self, dir: &str, sudo: bool) -> Result<(), UploadError> {
        let out = self.run(&as_root(&upload_dir::stat_script(dir), sudo), None)?;
        match upload_dir::check_pairs(&out.stdout).into_iter().next() {
            Some((_, verdict)) => verdict.map_err(UploadError::UnsafeDir),
            None => Err(UploadError::UnsafeDir(UnsafeDir::Unparsable(
                super::error::tail(&format!("{}{}", out.stdout, out.stderr)),
            ))),
        }
    }

    /// Folders left by earlier runs (`/run/landfall.*`, `/tmp/landfall.*`):
    /// those that pass the checks, and the others with why they are not used.
    pub fn earlier_upload_dirs(&self, sudo: bool) -> Result<EarlierDirs, UploadError> {
        let out = self.run(&as_root(&upload_dir::candidates_script(), sudo), None)?;
        let mut found = EarlierDirs::default();
        for (dir, verdict) in upload_dir::check_pairs(&out.stdout) {
            match verdict {
                Ok(()) => found.usable.push(dir),
                Err(e) => found.refused.push((dir, e)),
            }
        }
        Ok(found)
    }

    /// Uploads `files` into `dir` (a checked upload folder) unless it holds them already.
    pub fn upload_if_changed(
        &self,
        dir: &str,
        files: &[Upload],
        has_sha256sum: bool,
        sudo: bool,
    ) -> Result<Vec<Uploaded>, UploadError> {
        let qdir = shell_quote(dir);
        let names: Vec<String> = files.iter().map(|f| shell_quote(&f.name)).collect();
        let remote: Vec<(String, String)> = if has_sha256sum {
            let script = format!(
                "cd {qdir} && sha256sum {} 2>/dev/null; true",
                names.join(" ")
            );
            let out = self.run(&as_root(&script, sudo), None)?;
            parse_sha256sum(&out.stdout)
        } else {
            Vec::new()
        };
        let mut report = Vec::new();
        for f in files {
            let bytes = std::fs::metadata(&f.local)
                .map_err(|e| UploadError::Local(f.local.clone(), e))?
                .len();
            let local = sha256_file(&f.local)?;
            let same = remote.iter().any(|(n, h)| *n == f.name && *h == local);
            if !same {
                let path = format!("{dir}/{}", f.name);
                let script = format!(
                    "umask 077; p={}; cat > \"$p.part\" && chmod {:o} \"$p.part\" && mv -f \"$p.part\" \"$p\"",
                    shell_quote(&path),
                    f.mode,
                );
                let out = self.run(&as_root(&script, sudo), Some(&f.local))?;
                if out.status != 0 {
                    return Err(UploadError::Remote {
                        path,
                        detail: super::error::tail(&out.stderr),
                    });
                }
            }
            report.push(Uploaded {
                name: f.name.clone(),
                bytes,
                sent: !same,
                sha256: local,
            });
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256sum_output() {
        let h = "a".repeat(64);
        let out = format!(
            "{h}  landfall-agent\n{h} *initrd\nsha256sum: bzImage: No such file or directory\n"
        );
        assert_eq!(
            parse_sha256sum(&out),
            [
                ("landfall-agent".to_string(), h.clone()),
                ("initrd".to_string(), h)
            ]
        );
    }

    #[test]
    fn sudo_wraps_the_whole_script() {
        assert_eq!(as_root("cd /x && ls", false), "cd /x && ls");
        assert_eq!(
            as_root("cd '/x' && ls", true),
            "sudo -n sh -c 'cd '\\''/x'\\'' && ls'"
        );
    }

    #[test]
    fn local_hash() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
