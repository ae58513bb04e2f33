//! Uploading the agent, kernel and initrd only when the target does not
//! already hold the same bytes (compared by SHA-256 with the target's
//! `sha256sum`; without it, everything is uploaded).

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::SshError;
use super::target::{shell_quote, Target};

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
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("Cannot read {0}")]
    Local(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("Cannot write {path} on the target: {detail}")]
    Remote { path: String, detail: String },
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
    /// Uploads `files` into `dir` (created, mode 0700) unless the target has them already.
    pub fn upload_if_changed(
        &self,
        dir: &str,
        files: &[Upload],
        has_sha256sum: bool,
    ) -> Result<Vec<Uploaded>, UploadError> {
        let qdir = shell_quote(dir);
        let names: Vec<String> = files.iter().map(|f| shell_quote(&f.name)).collect();
        let remote: Vec<(String, String)> = if has_sha256sum {
            let out = self.run(
                &format!(
                    "umask 077; mkdir -p {qdir} && cd {qdir} && sha256sum {} 2>/dev/null; true",
                    names.join(" ")
                ),
                None,
            )?;
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
                let part = shell_quote(&format!("{path}.part"));
                let script = format!(
                    "umask 077; mkdir -p {qdir} && cat > {part} && chmod {:o} {part} && mv -f {part} {}",
                    f.mode,
                    shell_quote(&path)
                );
                let out = self.run(&script, Some(&f.local))?;
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
