//! Writing files that hold keys on the laptop: the file gets its final mode
//! at creation (`create_new` with the mode, never write-then-chmod), is
//! synced, then renamed over the old one. There is no moment when a key is
//! readable by others, and an fd someone holds on an older file never sees
//! the new bytes.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `data` to `path` atomically, created with `mode` (e.g. 0o600).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    let written = f.write_all(data).and_then(|_| f.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_new_file_has_its_mode_and_replaces_the_old_inode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("initrd");
        fs::write(&p, b"old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let mut held = fs::File::open(&p).unwrap();
        write_atomic(&p, b"new with key", 0o600).unwrap();
        let m = fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(m & 0o777, 0o600);
        assert_eq!(fs::read(&p).unwrap(), b"new with key");
        let mut seen = Vec::new();
        std::io::Read::read_to_end(&mut held, &mut seen).unwrap();
        assert_eq!(
            seen, b"old",
            "an fd on the old file never sees the new bytes"
        );
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }
}
