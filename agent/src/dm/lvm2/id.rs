//! lvm2's identifiers: 32 characters from `[0-9a-zA-Z]` (lvm also accepts `!`
//! and `#` when reading, never generates them), shown as
//! `xxxxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxxxx` in metadata text and stored without
//! dashes in the PV header and device-mapper uuids.

use std::fmt;

use super::error::LvmError;

const ALPHABET: &[u8; 64] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#";
/// Group lengths of the dashed form.
const GROUPS: [usize; 7] = [6, 4, 4, 4, 4, 4, 6];

/// A PV, VG or LV id: exactly 32 characters of lvm's alphabet.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LvmId([u8; 32]);

impl LvmId {
    /// A fresh id as lvm's `id_create` makes one: each random byte picks one
    /// of the first 62 characters.
    pub fn random() -> Result<Self, LvmError> {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes).map_err(LvmError::Random)?;
        Ok(Self::from_random_bytes(bytes))
    }

    /// The id `random` makes from these bytes (exposed for tests).
    pub fn from_random_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes.map(|b| ALPHABET[(b % 62) as usize]))
    }

    /// The 32 characters as stored in a PV header (no dashes).
    pub fn from_compact(raw: &[u8]) -> Option<Self> {
        let raw: [u8; 32] = raw.try_into().ok()?;
        raw.iter()
            .all(|c| ALPHABET.contains(c))
            .then_some(Self(raw))
    }

    /// Parse the dashed form (dashes anywhere are ignored, as lvm does).
    pub fn parse(text: &str) -> Option<Self> {
        let compact: Vec<u8> = text.bytes().filter(|&b| b != b'-').collect();
        Self::from_compact(&compact)
    }

    pub fn compact(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn compact_str(&self) -> &str {
        // The alphabet is ASCII, so this never fails.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for LvmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut at = 0;
        for (i, len) in GROUPS.iter().enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            f.write_str(&self.compact_str()[at..at + len])?;
            at += len;
        }
        Ok(())
    }
}

impl fmt::Debug for LvmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LvmId({self})")
    }
}

fn fill_random(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a live, writable buffer of `rest.len()` bytes; the
        // kernel writes at most that many bytes into it.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        filled += n as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashed_form_groups_six_four_four_four_four_four_six() {
        let id = LvmId::from_compact(b"negY9cYafliw1NgcqJ6R6vbs26h3jinf").unwrap();
        assert_eq!(id.to_string(), "negY9c-Yafl-iw1N-gcqJ-6R6v-bs26-h3jinf");
        assert_eq!(
            LvmId::parse("negY9c-Yafl-iw1N-gcqJ-6R6v-bs26-h3jinf"),
            Some(id)
        );
    }

    #[test]
    fn rejects_wrong_length_and_characters() {
        assert_eq!(LvmId::from_compact(b"short"), None);
        assert_eq!(LvmId::parse("negY9c-Yafl-iw1N-gcqJ-6R6v-bs26-h3jin_"), None);
    }

    #[test]
    fn random_ids_use_the_62_generated_characters() {
        let id = LvmId::from_random_bytes([255; 32]);
        // 255 % 62 = 7
        assert_eq!(id.compact_str(), "77777777777777777777777777777777");
        let a = LvmId::random().unwrap();
        let b = LvmId::random().unwrap();
        assert_ne!(a, b);
        assert!(a.compact().iter().all(|c| c.is_ascii_alphanumeric()));
    }
}
