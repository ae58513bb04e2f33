//! Reading sysfs (and other one-value kernel files): a missing or unreadable
//! file is an empty value, as the inventory wants — one absent attribute
//! never fails a listing.

use std::fs;
use std::path::Path;

/// The file's text without surrounding whitespace; empty when unreadable.
pub fn read_trimmed(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The file's decimal number; 0 when unreadable or not a number.
pub fn read_u64(path: impl AsRef<Path>) -> u64 {
    read_trimmed(path).parse().unwrap_or(0)
}

/// The names in a folder, sorted; empty when it cannot be read.
pub fn entry_names(dir: impl AsRef<Path>) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_trimmed_and_missing_files_are_empty() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("size"), "4096\n").unwrap();
        fs::write(d.path().join("model"), "  QEMU NVMe Ctrl \n").unwrap();
        assert_eq!(read_u64(d.path().join("size")), 4096);
        assert_eq!(read_trimmed(d.path().join("model")), "QEMU NVMe Ctrl");
        assert_eq!(read_trimmed(d.path().join("nope")), "");
        assert_eq!(read_u64(d.path().join("model")), 0);
        assert_eq!(entry_names(d.path()), vec!["model", "size"]);
        assert!(entry_names(d.path().join("nope")).is_empty());
    }
}
