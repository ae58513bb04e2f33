//! The boot ID: a random hex string minted by the controller for each agent
//! boot (each kexec, each `image build --tls`), carried to the agent in the
//! session ([`crate::tlsnames::BOOT_ID`]) and reported by its `Status`. Both
//! sides read it through [`parse`], so a stray newline or junk never makes two
//! IDs differ or match by accident.

/// The longest boot ID accepted (the controller mints 32 hex digits).
pub const MAX_LEN: usize = 64;

/// The boot ID in a file's text: trimmed, 1 to [`MAX_LEN`] hex digits, else None.
pub fn parse(text: &str) -> Option<&str> {
    let id = text.trim();
    (!id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hex_of_a_sane_length() {
        assert_eq!(parse("0123abcdef\n"), Some("0123abcdef"));
        assert_eq!(parse(""), None);
        assert_eq!(parse("  \n"), None);
        assert_eq!(parse("xyz"), None);
        assert_eq!(parse("ab cd"), None);
        assert_eq!(parse(&"a".repeat(65)), None);
        assert_eq!(parse(&"a".repeat(64)).map(str::len), Some(64));
    }
}
