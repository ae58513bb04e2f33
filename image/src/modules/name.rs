//! Module names and alias patterns: `-`/`_` equivalence and fnmatch-style globs.

/// The canonical form of a module name: `-` replaced by `_` (the kernel treats
/// them as the same), and a trailing `.ko` / `.ko.xz` / … removed.
pub fn normalize_module_name(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    let stem = base.find(".ko").map_or(base, |i| &base[..i]);
    stem.replace('-', "_")
}

/// Matches `text` against a `modules.alias` pattern with fnmatch rules:
/// `*` any run, `?` one character, `[abc]` / `[a-z]` / `[!a]` a class.
/// Iterative with single-star backtracking, so it runs in O(len²) at worst.
pub fn alias_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = match_class(&p, pi, t[ti]) {
                        if matched {
                            pi = next;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == '[' {
                        // An unterminated class is a literal '['.
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
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
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class starting at `p[start] == '['`. Returns whether
/// it matched and the index after `]`, or `None` if the class is unterminated.
fn match_class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while let Some(&pc) = p.get(i) {
        if pc == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&e| e != ']') {
            let end = p[i + 2];
            if pc <= c && c <= end {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashes_and_underscores_are_one_name() {
        assert_eq!(normalize_module_name("nvme-core"), "nvme_core");
        assert_eq!(
            normalize_module_name("kernel/drivers/md/dm-mod.ko.xz"),
            "dm_mod"
        );
        assert_eq!(normalize_module_name("nls_iso8859-1.ko"), "nls_iso8859_1");
        assert_eq!(normalize_module_name("ext4"), "ext4");
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
            "virtio:d00000001v*",
            "virtio:d00000001v00001AF4"
        ));
        assert!(alias_matches("a?c", "abc"));
        assert!(alias_matches("x[0-9]y", "x5y"));
        assert!(!alias_matches("x[!0-9]y", "x5y"));
        assert!(alias_matches("x[!0-9]y", "xay"));
        assert!(alias_matches("*", ""));
        assert!(!alias_matches("a*b", "a"));
        assert!(alias_matches("[", "["));
    }

    #[test]
    fn pathological_patterns_terminate() {
        let text = "a".repeat(300);
        assert!(!alias_matches(&format!("{}b", "*a".repeat(40)), &text));
    }
}
