//! Finding a kernel for the local VM and the agent's RAM image: the one the
//! user names, the Debian kernel package `scripts/fetch-kernel.sh` unpacked
//! (`$LANDFALL_CACHE/kernel/current`, or `.cache/kernel/current` in the
//! working directory or the checkout this binary was built in), or this
//! machine's own `/boot/vmlinuz-$(uname -r)` with `/lib/modules/$(uname -r)`.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// A kernel image and its modules folder.
#[derive(Debug, Clone)]
pub struct KernelPaths {
    pub image: PathBuf,
    /// `lib/modules/<version>`.
    pub modules: PathBuf,
}

/// `root/boot/vmlinuz-V` with `root/lib/modules/V`, for an unpacked kernel package.
pub fn in_unpacked(root: &Path) -> Option<KernelPaths> {
    let boot = std::fs::read_dir(root.join("boot")).ok()?;
    for e in boot.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(v) = name.strip_prefix("vmlinuz-") {
            let modules = root.join("lib/modules").join(v);
            if modules.is_dir() {
                return Some(KernelPaths {
                    image: e.path(),
                    modules,
                });
            }
        }
    }
    None
}

fn candidates() -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(cache) = std::env::var_os("LANDFALL_CACHE") {
        c.push(PathBuf::from(cache).join("kernel/current"));
    }
    c.push(PathBuf::from(".cache/kernel/current"));
    // target/{debug,release}/landfall → the checkout's .cache
    if let Ok(exe) = std::env::current_exe() {
        if let Some(top) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            c.push(top.join(".cache/kernel/current"));
        }
    }
    c
}

/// The kernel to use: `image` + `modules` when given, else the first found.
pub fn find(image: Option<&Path>, modules: Option<&Path>) -> anyhow::Result<KernelPaths> {
    if let (Some(i), Some(m)) = (image, modules) {
        if !i.is_file() {
            bail!("--kernel {}: no such file", i.display());
        }
        if !m.is_dir() {
            bail!("--modules {}: no such folder", m.display());
        }
        return Ok(KernelPaths {
            image: i.to_path_buf(),
            modules: m.to_path_buf(),
        });
    }
    for root in candidates() {
        if let Some(k) = in_unpacked(&root) {
            return Ok(k);
        }
    }
    if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        let release = release.trim();
        let image = PathBuf::from(format!("/boot/vmlinuz-{release}"));
        let modules = PathBuf::from(format!("/lib/modules/{release}"));
        if std::fs::File::open(&image).is_ok() && modules.is_dir() {
            return Ok(KernelPaths { image, modules });
        }
    }
    bail!(
        "No kernel found for the VM and the agent's image. Pass --kernel and --modules \
         (your distribution's /boot/vmlinuz-* and /lib/modules/<version>, or nixpkgs' `linux` \
         package's bzImage and lib/modules/<version>), or run scripts/fetch-kernel.sh, which \
         unpacks Debian's kernel package into .cache/kernel/current"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacked_package_layout() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("boot")).unwrap();
        std::fs::write(d.path().join("boot/vmlinuz-6.1.0-9-amd64"), b"k").unwrap();
        std::fs::write(d.path().join("boot/config-6.1.0-9-amd64"), b"c").unwrap();
        assert!(in_unpacked(d.path()).is_none(), "no modules folder yet");
        std::fs::create_dir_all(d.path().join("lib/modules/6.1.0-9-amd64")).unwrap();
        let k = in_unpacked(d.path()).unwrap();
        assert!(k.image.ends_with("boot/vmlinuz-6.1.0-9-amd64"));
        assert!(k.modules.ends_with("lib/modules/6.1.0-9-amd64"));
        let missing = find(Some(Path::new("/nonexistent/k")), Some(d.path()));
        assert!(missing.unwrap_err().to_string().contains("no such file"));
    }
}
