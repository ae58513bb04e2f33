//! The volume key: the secret dm-crypt encrypts the data with. Zeroed when
//! dropped; its Debug shows only the length, so it cannot reach a log.

use std::fmt;

use zeroize::Zeroizing;

pub struct VolumeKey(Zeroizing<Vec<u8>>);

impl VolumeKey {
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> VolumeKey {
        VolumeKey(bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lower-case hex, as a dm-crypt table takes it; zeroed when dropped.
    pub fn hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&*self.0))
    }
}

impl fmt::Debug for VolumeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VolumeKey({} bits, redacted)", self.0.len() * 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_show_the_key() {
        let k = VolumeKey::new(Zeroizing::new(vec![0xab; 64]));
        let shown = format!("{k:?}");
        assert_eq!(shown, "VolumeKey(512 bits, redacted)");
        assert!(!shown.to_lowercase().contains("ab"));
        assert_eq!(k.hex().len(), 128);
    }
}
