//! The agent's RAM image for end-to-end tests, built once and shared.
//!
//! `landfall image build` (zstd -19 over ~25 MiB) takes a while under load, and
//! every VM test used to run it. [`cached_image`] builds it once per agent
//! binary and kernel into `$LANDFALL_TEST_DIR/image-cache/<key>` (other test
//! processes find it there; two racing builders each build into a private
//! folder and the first rename wins). [`agent_image`] then gives a test its
//! own copy whose initrd has the test's session appended — exactly what
//! `landfall image build --tls` writes, with the library the controller uses.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use landfall_image::{append_archive, session_cpio, SessionFile};
use landfall_proto::tlsnames::{AGENT_CERT, AGENT_KEY, CA_CERT, IMAGE_TLS_DIR};

use crate::bins::{agent_static_bin, landfall_ok};
use crate::fixtures::DebianKernel;

fn cache_root() -> PathBuf {
    std::env::var_os("LANDFALL_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("landfall-tests"))
        .join("image-cache")
}

/// What the image depends on: the agent binary and the kernel (paths, sizes, mtimes).
fn key(kernel: &DebianKernel) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in [
        agent_static_bin(),
        kernel.image.clone(),
        kernel.modules.clone(),
    ] {
        p.hash(&mut h);
        if let Ok(m) = std::fs::metadata(&p) {
            m.len().hash(&mut h);
            if let Ok(t) = m.modified() {
                t.duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .hash(&mut h);
            }
        }
    }
    format!("{:016x}", h.finish())
}

/// The image (bzImage + initrd, no session) for this agent binary and `kernel`.
pub fn cached_image(kernel: &DebianKernel) -> PathBuf {
    let dir = cache_root().join(key(kernel));
    if dir.join("initrd").is_file() {
        return dir;
    }
    std::fs::create_dir_all(cache_root()).expect("create the image cache");
    let tmp = tempfile::Builder::new()
        .prefix("building-")
        .tempdir_in(cache_root())
        .expect("a private build folder");
    let out = tmp.path().join("image");
    landfall_ok(&[
        "image",
        "build",
        "--kernel",
        kernel.image.to_str().unwrap(),
        "--modules",
        kernel.modules.to_str().unwrap(),
        "--agent",
        agent_static_bin().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    // Another process may have won the race: then its image is as good as ours.
    let _ = std::fs::rename(&out, &dir);
    assert!(
        dir.join("initrd").is_file(),
        "no image in {}",
        dir.display()
    );
    dir
}

/// A session (`landfall certs init`) in `dir/session`; returns its path.
pub fn new_session(dir: &Path) -> PathBuf {
    let session = dir.join("session");
    landfall_ok(&["certs", "init", "--dir", session.to_str().unwrap()]);
    session
}

/// `dir/image/{bzImage,initrd}`: the cached image with `session`'s agent files appended.
pub fn agent_image(kernel: &DebianKernel, dir: &Path, session: &Path) -> PathBuf {
    let cached = cached_image(kernel);
    let image = dir.join("image");
    std::fs::create_dir_all(&image).unwrap();
    std::fs::copy(cached.join("bzImage"), image.join("bzImage")).unwrap();
    let mut initrd = std::fs::read(cached.join("initrd")).unwrap();
    let files: Vec<SessionFile> = [CA_CERT, AGENT_CERT, AGENT_KEY]
        .iter()
        .map(|name| SessionFile {
            path: format!("{IMAGE_TLS_DIR}/{name}"),
            mode: if name.ends_with(".key") { 0o600 } else { 0o644 },
            data: std::fs::read(session.join(name)).expect("a session file"),
        })
        .collect();
    append_archive(&mut initrd, &session_cpio(&files).unwrap());
    std::fs::write(image.join("initrd"), initrd).unwrap();
    image
}

/// Boots an installed disk by itself under OVMF (512 MiB, NVMe with `serial`)
/// and asserts the office example came up: stage 2 prints its toplevel, then
/// the verdict of checking its own store must be OK.
pub fn assert_installed_disk_boots(
    tdir: crate::TestDir,
    disk: &Path,
    serial: &str,
    toplevel: &str,
) -> crate::Vm {
    let mut vm = crate::VmBuilder::new("installed")
        .ovmf()
        .memory_mib(512)
        .disk(crate::Disk::nvme(disk.to_path_buf()).serial(serial))
        .start_in(tdir)
        .unwrap();
    vm.wait_for(
        format!("LANDFALL-STAGE2: {toplevel}").as_str(),
        std::time::Duration::from_secs(400),
    )
    .unwrap();
    let verdict = vm
        .wait_for_any(
            ["LANDFALL-STORE-CHECK: OK", "LANDFALL-STORE-CHECK: FAILED"],
            std::time::Duration::from_secs(120),
        )
        .unwrap();
    assert_eq!(verdict.text, "LANDFALL-STORE-CHECK: OK");
    vm
}
