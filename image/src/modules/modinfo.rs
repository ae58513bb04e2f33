//! Parses a `.modinfo` section: NUL-separated `key=value` strings.

/// What a module says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// `name=`: the module's name as the kernel knows it.
    pub name: Option<String>,
    /// `depends=`: modules whose symbols it uses (comma separated in the section).
    pub depends: Vec<String>,
    /// `alias=`: device/filesystem/crypto patterns it serves.
    pub aliases: Vec<String>,
    /// `softdep=` `pre:` entries: modules (or aliases) to load before it.
    pub softdep_pre: Vec<String>,
    /// `softdep=` `post:` entries: modules (or aliases) to load after it.
    pub softdep_post: Vec<String>,
    /// Each `softdep=` value as written (`pre: blake2b-256`): depmod writes one
    /// `modules.softdep` line per entry, and so do we.
    pub softdeps: Vec<String>,
    /// `vermagic=`: the kernel version string it was built for.
    pub vermagic: Option<String>,
    /// `firmware=`: firmware files it may request (not shipped in the image).
    pub firmware: Vec<String>,
}

impl ModInfo {
    /// Parses the raw section; unknown keys and malformed strings are skipped.
    pub fn parse(section: &[u8]) -> ModInfo {
        let mut info = ModInfo::default();
        for raw in section.split(|&b| b == 0) {
            let Ok(text) = std::str::from_utf8(raw) else {
                continue;
            };
            let Some((key, value)) = text.split_once('=') else {
                continue;
            };
            match key {
                "name" => info.name = Some(value.to_owned()),
                "depends" => info.depends.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|d| !d.is_empty())
                        .map(str::to_owned),
                ),
                "alias" => info.aliases.push(value.to_owned()),
                "softdep" => {
                    info.softdeps.push(value.trim().to_owned());
                    info.parse_softdep(value)
                }
                "vermagic" => info.vermagic = Some(value.to_owned()),
                "firmware" => info.firmware.push(value.to_owned()),
                _ => {}
            }
        }
        info
    }

    /// `pre: a b post: c` (the same syntax as modprobe.d's `softdep`).
    fn parse_softdep(&mut self, value: &str) {
        #[derive(PartialEq)]
        enum Part {
            None,
            Pre,
            Post,
        }
        let mut part = Part::None;
        for token in value.split_whitespace() {
            let (label, rest) = match token.split_once(':') {
                Some((label, rest)) => (Some(label), rest),
                None => (None, token),
            };
            match label {
                Some("pre") => part = Part::Pre,
                Some("post") => part = Part::Post,
                Some(_) => part = Part::None,
                None => {}
            }
            if rest.is_empty() {
                continue;
            }
            match part {
                Part::Pre => self.softdep_pre.push(rest.to_owned()),
                Part::Post => self.softdep_post.push(rest.to_owned()),
                Part::None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_keys_depmod_uses() {
        let section = b"softdep=pre: crypto-crc32c\0license=GPL\0alias=fs-ext4\0alias=ext3\0\
depends=jbd2,mbcache,crc16\0retpoline=Y\0name=ext4\0vermagic=6.1.0-56-amd64 SMP \0\0\0";
        let info = ModInfo::parse(section);
        assert_eq!(info.name.as_deref(), Some("ext4"));
        assert_eq!(info.depends, ["jbd2", "mbcache", "crc16"]);
        assert_eq!(info.aliases, ["fs-ext4", "ext3"]);
        assert_eq!(info.softdep_pre, ["crypto-crc32c"]);
        assert!(info.softdep_post.is_empty());
        assert_eq!(info.vermagic.as_deref(), Some("6.1.0-56-amd64 SMP "));
    }

    #[test]
    fn empty_depends_and_mixed_softdeps() {
        let info = ModInfo::parse(b"depends=\0softdep=pre: a b post: c platform: d pre:e\0");
        assert!(info.depends.is_empty());
        assert_eq!(info.softdep_pre, ["a", "b", "e"]);
        assert_eq!(info.softdep_post, ["c"]);
    }

    #[test]
    fn garbage_is_skipped() {
        let info = ModInfo::parse(b"\xff\xfe=1\0noequals\0=\0name=x");
        assert_eq!(info.name.as_deref(), Some("x"));
    }
}
