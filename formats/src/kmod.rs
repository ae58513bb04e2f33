//! Kernel modules by name: the canonical module name, the `modules.alias`
//! patterns (fnmatch globs) and `modules.dep` lines, as depmod writes them and
//! modprobe reads them. The image builder writes these files, the agent reads
//! them at boot to load drivers, and the test harness names modules the same
//! way: one definition, so a module found by one is found by all.
//!
//! `modules.dep`, one line per module, every hard dependency after the colon
//! (transitively, the last one to be loaded first):
//! ```text
//! kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko
//! ```
//! `modules.alias`, one line per alias; PATTERN is an fnmatch glob:
//! ```text
//! alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
//! ```
//!
//! The module lists the agent loads at boot or on demand are here too, so that
//! the image builder carries exactly what the agent will ask for.

use std::collections::{HashMap, HashSet};

/// Filesystem modules (and their code pages and checksum helpers) the agent
/// loads at boot, whatever the hardware.
pub const FILESYSTEM_MODULES: &[&str] = &[
    "crc32c_generic",
    "crc32c_intel",
    "ext4",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "nls_iso8859_1",
    "nls_utf8",
    "efivarfs",
    "loop",
];

/// btrfs (and, through its dependencies, xor, raid6_pq, zstd, libcrc32c): the
/// agent loads it only when a layout has btrfs content.
pub const BTRFS_MODULES: &[&str] = &["btrfs"];

/// Modules device-mapper layouts need (LUKS2 with aes-xts-plain64, LVM linear
/// volumes), loaded by the agent only when a layout asks for them. `ecb` is
/// listed because `xts` names it as a soft dependency, which `modules.dep`
/// does not carry; `aes_generic` is built into Debian's kernel, `aesni_intel`
/// is the fast path where the CPU has AES-NI (elsewhere it says ENODEV and the
/// generic cipher serves).
pub const DEVICE_MAPPER_MODULES: &[&str] = &[
    "dm_mod",
    "ecb",
    "xts",
    "aes_generic",
    "aesni_intel",
    "dm_crypt",
];

/// The file name endings of a kernel module, plain or compressed.
pub const MODULE_SUFFIXES: &[&str] = &[".ko", ".ko.xz", ".ko.zst", ".ko.gz"];

/// The canonical form of a module name: `-` replaced by `_` (the kernel treats
/// them as the same), any folder and a trailing `.ko` / `.ko.xz` / … removed.
/// `kernel/drivers/md/dm-mod.ko.xz`, `dm-mod` and `dm_mod` are all `dm_mod`.
pub fn module_name(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    let stem = base.find(".ko").map_or(base, |i| &base[..i]);
    stem.replace('-', "_")
}

/// The canonical module name of a file name that is a module
/// (`nvme-core.ko`, `e1000e.ko.zst`), `None` for anything else (`modules.dep`).
pub fn module_file_name(file_name: &str) -> Option<String> {
    MODULE_SUFFIXES
        .iter()
        .find_map(|ext| file_name.strip_suffix(ext))
        .filter(|stem| !stem.is_empty())
        .map(module_name)
}

/// Matches `text` against a `modules.alias` pattern with fnmatch rules, byte
/// by byte as kmod does: `*` any run, `?` one byte, `[abc]` / `[a-z]` /
/// `[!a]` a class; an unterminated `[` is a literal. Iterative with
/// single-star backtracking, so it runs in O(len²) at worst.
pub fn alias_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                b'[' => match match_class(p, pi, t[ti]) {
                    Some((true, next)) => {
                        pi = next;
                        ti += 1;
                        continue;
                    }
                    Some((false, _)) => {}
                    None if t[ti] == b'[' => {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                    None => {}
                },
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((star_pi, star_ti)) => {
                pi = star_pi + 1;
                ti = star_ti + 1;
                star = Some((star_pi, star_ti + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `p[start] == '['`. Returns whether
/// it matched and the index after `]`, or `None` if the class is unterminated.
/// A `]` right after `[` or `[!` is a member, as is a `-` first or last.
fn match_class(p: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while let Some(&pc) = p.get(i) {
        if pc == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&e| e != b']') {
            if pc <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if pc == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

/// One `alias PATTERN MODULE` line of `modules.alias`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub pattern: String,
    /// The module's canonical name ([`module_name`]).
    pub module: String,
}

/// The aliases of a `modules.alias` text; comments, blank and malformed lines
/// are skipped.
pub fn parse_modules_alias(text: &str) -> Vec<Alias> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("alias"), Some(pattern), Some(module)) => Some(Alias {
                    pattern: pattern.to_owned(),
                    module: module_name(module),
                }),
                _ => None,
            }
        })
        .collect()
}

/// The `modules.alias` line for one alias, or `None` for a pattern that
/// would not survive the line format (empty, or holding whitespace).
pub fn alias_line(pattern: &str, module: &str) -> Option<String> {
    (!pattern.is_empty() && pattern.split_whitespace().count() == 1)
        .then(|| format!("alias {pattern} {module}\n"))
}

/// The canonical names of the modules whose alias matches `text`, in the
/// table's order, each once.
pub fn providers<'a>(aliases: &'a [Alias], text: &str) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    aliases
        .iter()
        .filter(|a| alias_matches(&a.pattern, text))
        .map(|a| a.module.as_str())
        .filter(|m| seen.insert(*m))
        .collect()
}

/// The `modules.dep` line of one module: its path, a colon, then its
/// dependencies' paths.
pub fn dep_line<'a>(path: &str, deps: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = format!("{path}:");
    for dep in deps {
        out.push(' ');
        out.push_str(dep);
    }
    out.push('\n');
    out
}

/// A parsed `modules.dep`: where each module's file is, and what it needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModulesDep {
    /// Canonical module name → path relative to the modules folder.
    paths: HashMap<String, String>,
    /// Canonical module name → the canonical names of its dependencies.
    deps: HashMap<String, Vec<String>>,
}

impl ModulesDep {
    /// Reads a `modules.dep` text; lines without a colon are skipped.
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines() {
            let Some((path, rest)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            let name = module_name(path);
            out.paths.insert(name.clone(), path.to_owned());
            out.deps
                .insert(name, rest.split_whitespace().map(module_name).collect());
        }
        out
    }

    /// The path of module `name` (any spelling), relative to the modules folder.
    pub fn path_of(&self, name: &str) -> Option<&str> {
        self.paths.get(&module_name(name)).map(String::as_str)
    }

    /// How many modules the file lists.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether the file lists no module.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// `name` and its dependencies in load order: dependencies first, each
    /// once. A name the file does not list comes back alone (it may be built
    /// in); a dependency cycle (a broken file) does not loop.
    pub fn load_order(&self, name: &str) -> Vec<String> {
        fn visit(dep: &ModulesDep, n: &str, seen: &mut HashSet<String>, out: &mut Vec<String>) {
            if !seen.insert(n.to_owned()) {
                return;
            }
            for d in dep.deps.get(n).into_iter().flatten() {
                visit(dep, d, seen, out);
            }
            out.push(n.to_owned());
        }
        let mut out = Vec::new();
        visit(self, &module_name(name), &mut HashSet::new(), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashes_and_underscores_are_one_name() {
        assert_eq!(module_name("nvme-core"), "nvme_core");
        assert_eq!(module_name("kernel/drivers/md/dm-mod.ko.xz"), "dm_mod");
        assert_eq!(module_name("nls_iso8859-1.ko"), "nls_iso8859_1");
        assert_eq!(module_name("ext4"), "ext4");
    }

    #[test]
    fn only_module_files_have_a_module_name() {
        assert_eq!(
            module_file_name("nvme-core.ko").as_deref(),
            Some("nvme_core")
        );
        assert_eq!(module_file_name("e1000e.ko.zst").as_deref(), Some("e1000e"));
        assert_eq!(module_file_name("modules.dep"), None);
        assert_eq!(module_file_name(".ko"), None);
        assert_eq!(module_file_name("x.ko.bak"), None);
    }

    #[test]
    fn globs_match_like_fnmatch() {
        assert!(alias_matches("fs-ext4", "fs-ext4"));
        assert!(!alias_matches("fs-ext4", "fs-ext3"));
        assert!(alias_matches(
            "pci:v00008086d000010D3sv*sd*bc*sc*i*",
            "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00"
        ));
        assert!(!alias_matches(
            "pci:v00008086d000010D3sv*sd*bc*sc*i*",
            "pci:v00008086d000010D4sv00008086sd0000A01Fbc02sc00i00"
        ));
        assert!(alias_matches(
            "pci:v*d*sv*sd*bc01sc08i02*",
            "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02"
        ));
        assert!(!alias_matches(
            "pci:v00001AF4d00001000sv*",
            "pci:v00001AF4d00001001sv0"
        ));
        assert!(alias_matches(
            "virtio:d00000001v*",
            "virtio:d00000001v00001AF4"
        ));
        assert!(alias_matches("acpi*:PNP0A0[38]:*", "acpi:PNP0A08:"));
        assert!(!alias_matches("acpi*:PNP0A0[38]:*", "acpi:PNP0A05:"));
        assert!(alias_matches("a?c", "abc"));
        assert!(alias_matches("x[0-9]y", "x5y"));
        assert!(!alias_matches("x[!0-9]y", "x5y"));
        assert!(alias_matches("x[!0-9]y", "xay"));
        assert!(alias_matches("x[]]y", "x]y"));
        assert!(alias_matches("x[a-]y", "x-y"));
        assert!(alias_matches("*", ""));
        assert!(!alias_matches("a*b", "a"));
        assert!(!alias_matches("abc", "abcd"));
        assert!(alias_matches("[", "["));
        assert!(!alias_matches("[", "a"));
    }

    #[test]
    fn pathological_patterns_terminate() {
        let text = "a".repeat(300);
        assert!(!alias_matches(&format!("{}b", "*a".repeat(40)), &text));
    }

    #[test]
    fn alias_lines_round_trip() {
        let mut text = String::from("# Aliases extracted from modules themselves.\n");
        text += &alias_line("pci:v*d*sv*sd*bc01sc08i02*", "nvme").unwrap();
        text += &alias_line("fs-ext4", "ext4").unwrap();
        assert_eq!(alias_line("two words", "x"), None);
        assert_eq!(alias_line("", "x"), None);
        text += "alias virtio:d00000002v* virtio-blk extra words\nalias lonely\n\n";
        let aliases = parse_modules_alias(&text);
        let modules: Vec<_> = aliases.iter().map(|a| a.module.as_str()).collect();
        assert_eq!(modules, ["nvme", "ext4", "virtio_blk"]);
        assert_eq!(
            providers(
                &aliases,
                "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02"
            ),
            ["nvme"]
        );
        assert!(providers(&aliases, "usb:v1234").is_empty());
    }

    #[test]
    fn a_module_provided_twice_is_named_once() {
        let aliases = parse_modules_alias("alias a* m\nalias ab m\nalias a? n\n");
        assert_eq!(providers(&aliases, "ab"), ["m", "n"]);
    }

    #[test]
    fn dependencies_come_first_once() {
        let mut dep = dep_line(
            "kernel/drivers/nvme/host/nvme.ko",
            [
                "kernel/drivers/nvme/host/nvme-core.ko",
                "kernel/lib/crc64.ko",
            ],
        );
        dep += &dep_line(
            "kernel/drivers/nvme/host/nvme-core.ko",
            ["kernel/lib/crc64.ko"],
        );
        dep += &dep_line("kernel/lib/crc64.ko", []);
        assert_eq!(
            dep.lines().last(),
            Some("kernel/lib/crc64.ko:"),
            "a module without dependencies ends in a colon"
        );
        let parsed = ModulesDep::parse(&dep);
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed.load_order("nvme"), ["crc64", "nvme_core", "nvme"]);
        assert_eq!(
            parsed.path_of("nvme-core"),
            Some("kernel/drivers/nvme/host/nvme-core.ko")
        );
        assert_eq!(parsed.load_order("builtin_thing"), ["builtin_thing"]);
        assert_eq!(parsed.path_of("builtin_thing"), None);
    }

    #[test]
    fn a_dependency_cycle_does_not_loop() {
        let parsed = ModulesDep::parse("a.ko: b.ko\nb.ko: a.ko\nno colon here\n");
        assert_eq!(parsed.load_order("a"), ["b", "a"]);
    }

    #[test]
    fn the_lists_use_canonical_names() {
        for m in FILESYSTEM_MODULES
            .iter()
            .chain(BTRFS_MODULES)
            .chain(DEVICE_MAPPER_MODULES)
        {
            assert_eq!(module_name(m), *m, "{m} is not in its canonical spelling");
        }
    }
}
