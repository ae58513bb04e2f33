//! What the target is, asked in one SSH round trip by a small POSIX sh script,
//! and parsed here (pure, unit-tested): OS and architecture (`uname -sm`),
//! whether we are root or may use `sudo -n`, RAM (/proc/meminfo), free space
//! of /run and /tmp (`df -Pk`), and which helper tools exist.

/// The probe run on the target; every line it prints is `key=value`.
pub const PROBE_SCRIPT: &str = r#"echo "uname=$(uname -sm 2>/dev/null)"
echo "uid=$(id -u 2>/dev/null)"
if [ "$(id -u 2>/dev/null)" != 0 ]; then
  if sudo -n true >/dev/null 2>&1; then echo sudo=yes; else echo sudo=no; fi
fi
echo "meminfo=$(grep '^MemTotal:' /proc/meminfo 2>/dev/null)"
echo "memavail=$(grep '^MemAvailable:' /proc/meminfo 2>/dev/null)"
for d in /run /tmp; do echo "df=$d $(df -Pk "$d" 2>/dev/null | tail -n 1)"; done
command -v sha256sum >/dev/null 2>&1 && echo sha256sum=yes
command -v kexec >/dev/null 2>&1 && echo kexec_tools=yes
true
"#;

/// What [`PROBE_SCRIPT`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetFacts {
    /// `uname -s`, e.g. `Linux`.
    pub os: String,
    /// `uname -m`, e.g. `x86_64`.
    pub arch: String,
    pub root: bool,
    /// Not root, but `sudo -n true` works.
    pub sudo: bool,
    pub mem_total_bytes: u64,
    pub mem_available_bytes: u64,
    /// (folder, free bytes) for /run and /tmp, when df answered.
    pub free_space: Vec<(String, u64)>,
    pub has_sha256sum: bool,
    pub has_kexec_tools: bool,
}

/// Why the target cannot take landfall.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FactsError {
    #[error("The target runs {os}, not Linux: landfall kexecs from a running Linux (boot the machine into a Linux rescue system first)")]
    NotLinux { os: String },
    #[error("The target is {arch}; landfall's agent and image are for x86_64")]
    WrongArch { arch: String },
    #[error("Logged in as a user that is not root and cannot use sudo without a password (`sudo -n true` failed): log in as root, or allow this user passwordless sudo")]
    NotRoot,
    #[error("The target has {have_mib} MiB of RAM; the image needs about {need_mib} MiB")]
    NotEnoughRam { have_mib: u64, need_mib: u64 },
    #[error("Neither /run nor /tmp on the target has {need_mib} MiB free for the upload ({free})")]
    NoSpace { need_mib: u64, free: String },
    #[error("The target's answer to the probe is not understood: {0:?}")]
    Unparsable(String),
}

fn kib_field(line: &str) -> Option<u64> {
    // "MemTotal:         251648 kB"
    line.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|k| k.saturating_mul(1024))
}

/// Parses the probe's output.
pub fn parse(output: &str) -> Result<TargetFacts, FactsError> {
    let mut f = TargetFacts::default();
    let mut seen_uname = false;
    for line in output.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k {
            "uname" => {
                seen_uname = true;
                let mut w = v.split_whitespace();
                f.os = w.next().unwrap_or_default().to_string();
                f.arch = w.next().unwrap_or_default().to_string();
            }
            "uid" => f.root = v == "0",
            "sudo" => f.sudo = v == "yes",
            "meminfo" => f.mem_total_bytes = kib_field(v).unwrap_or(0),
            "memavail" => f.mem_available_bytes = kib_field(v).unwrap_or(0),
            "df" => {
                // "/run tmpfs 126000 500 125500 1% /run"
                let w: Vec<&str> = v.split_whitespace().collect();
                if let (Some(dir), Some(avail)) = (w.first(), w.get(4)) {
                    if let Ok(kib) = avail.parse::<u64>() {
                        f.free_space
                            .push((dir.to_string(), kib.saturating_mul(1024)));
                    }
                }
            }
            "sha256sum" => f.has_sha256sum = v == "yes",
            "kexec_tools" => f.has_kexec_tools = v == "yes",
            _ => {}
        }
    }
    if !seen_uname {
        return Err(FactsError::Unparsable(output.chars().take(200).collect()));
    }
    Ok(f)
}

impl TargetFacts {
    /// Checks OS, architecture and privileges.
    pub fn check_platform(&self) -> Result<(), FactsError> {
        if self.os != "Linux" {
            return Err(FactsError::NotLinux {
                os: if self.os.is_empty() {
                    "an unknown system".into()
                } else {
                    self.os.clone()
                },
            });
        }
        if self.arch != "x86_64" {
            return Err(FactsError::WrongArch {
                arch: self.arch.clone(),
            });
        }
        if !self.root && !self.sudo {
            return Err(FactsError::NotRoot);
        }
        Ok(())
    }

    /// Checks RAM for an image of `image_bytes` (kernel + initrd): the upload,
    /// the in-memory copy and the kernel's copy, plus room for the agent to run.
    pub fn check_ram(&self, image_bytes: u64) -> Result<(), FactsError> {
        let need = 3 * image_bytes + (64 << 20);
        if self.mem_total_bytes != 0 && self.mem_total_bytes < need {
            return Err(FactsError::NotEnoughRam {
                have_mib: self.mem_total_bytes >> 20,
                need_mib: need.div_ceil(1 << 20),
            });
        }
        Ok(())
    }

    /// Where to make the upload folder: `/run` when it has room (a tmpfs on
    /// most systems, so nothing reaches the disk), else `/tmp`.
    pub fn upload_base(&self, upload_bytes: u64) -> Result<&'static str, FactsError> {
        let need = upload_bytes + (8 << 20);
        for dir in ["/run", "/tmp"] {
            if let Some((_, free)) = self.free_space.iter().find(|(d, _)| d == dir) {
                if *free >= need {
                    return Ok(dir);
                }
            }
        }
        if self.free_space.is_empty() {
            // df missing: try /tmp and let the upload report a full disk.
            return Ok("/tmp");
        }
        Err(FactsError::NoSpace {
            need_mib: need.div_ceil(1 << 20),
            free: self
                .free_space
                .iter()
                .map(|(d, b)| format!("{d}: {} MiB", b >> 20))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUSYBOX_ROOT: &str = "uname=Linux x86_64
uid=0
meminfo=MemTotal:         231284 kB
memavail=MemAvailable:     180000 kB
df=/run tmpfs 115640 12 115628 0% /run
df=/tmp rootfs 100000 0 100000 0% /
sha256sum=yes
";

    #[test]
    fn busybox_rescue_as_root() {
        let f = parse(BUSYBOX_ROOT).unwrap();
        assert_eq!(f.os, "Linux");
        assert_eq!(f.arch, "x86_64");
        assert!(f.root && !f.sudo && f.has_sha256sum && !f.has_kexec_tools);
        assert_eq!(f.mem_total_bytes, 231284 * 1024);
        assert_eq!(f.free_space[0], ("/run".to_string(), 115628 * 1024));
        f.check_platform().unwrap();
        f.check_ram(40 << 20).unwrap();
        assert_eq!(f.upload_base(50 << 20).unwrap(), "/run");
        let small_run = parse(&BUSYBOX_ROOT.replace("115640 12 115628", "4000 0 4000")).unwrap();
        assert_eq!(small_run.upload_base(50 << 20).unwrap(), "/tmp");
    }

    #[test]
    fn absurd_sizes_from_the_target_saturate() {
        let huge = u64::MAX.to_string();
        let f = parse(&format!(
            "uname=Linux x86_64\nuid=0\nmeminfo=MemTotal: {huge} kB\ndf=/run tmpfs 1 0 {huge} 0% /run\n"
        ))
        .unwrap();
        assert_eq!(f.mem_total_bytes, u64::MAX);
        assert_eq!(f.free_space[0].1, u64::MAX);
    }

    #[test]
    fn refusals() {
        let f = parse("uname=FreeBSD amd64\nuid=0\n").unwrap();
        assert!(matches!(
            f.check_platform(),
            Err(FactsError::NotLinux { .. })
        ));
        let f = parse("uname=Linux aarch64\nuid=0\n").unwrap();
        assert!(matches!(
            f.check_platform(),
            Err(FactsError::WrongArch { .. })
        ));
        let f = parse("uname=Linux x86_64\nuid=1000\nsudo=no\n").unwrap();
        assert_eq!(f.check_platform(), Err(FactsError::NotRoot));
        let f = parse("uname=Linux x86_64\nuid=1000\nsudo=yes\n").unwrap();
        assert!(f.check_platform().is_ok() && f.sudo);
        let f = parse(BUSYBOX_ROOT).unwrap();
        assert!(matches!(
            f.check_ram(100 << 20),
            Err(FactsError::NotEnoughRam { .. })
        ));
        let e = f.upload_base(200 << 20).unwrap_err();
        assert!(e.to_string().contains("/run: 112 MiB"), "{e}");
        assert!(matches!(
            parse("Welcome!\n"),
            Err(FactsError::Unparsable(_))
        ));
    }
}
