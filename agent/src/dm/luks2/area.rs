//! Keyslot-area encryption: aes-xts-plain64 over 512-byte sectors numbered
//! from 0 at the start of the keyslot's area, as cryptsetup encrypts keyslot
//! material. Only the 64-byte (AES-256-XTS) key size is supported.

use aes::cipher::KeyInit;
use aes::Aes256;
use xts_mode::{get_tweak_default, Xts128};

use super::error::Luks2Error;

/// The keyslot cipher landfall writes and reads.
pub const KEYSLOT_CIPHER: &str = "aes-xts-plain64";
pub const AREA_SECTOR: usize = 512;

fn xts(key: &[u8]) -> Result<Xts128<Aes256>, Luks2Error> {
    if key.len() != 64 {
        return Err(Luks2Error::Unsupported(format!(
            "aes-xts-plain64 with a {}-bit key",
            key.len() * 8
        )));
    }
    let c1 = Aes256::new_from_slice(&key[..32])
        .map_err(|_| Luks2Error::Unsupported("AES key".into()))?;
    let c2 = Aes256::new_from_slice(&key[32..])
        .map_err(|_| Luks2Error::Unsupported("AES key".into()))?;
    Ok(Xts128::new(c1, c2))
}

fn check_len(len: usize) -> Result<(), Luks2Error> {
    if !len.is_multiple_of(AREA_SECTOR) {
        return Err(Luks2Error::Metadata(format!(
            "keyslot material of {len} bytes is not a whole number of sectors"
        )));
    }
    Ok(())
}

/// Encrypts keyslot material in place.
pub fn encrypt(key: &[u8], data: &mut [u8]) -> Result<(), Luks2Error> {
    check_len(data.len())?;
    xts(key)?.encrypt_area(data, AREA_SECTOR, 0, get_tweak_default);
    Ok(())
}

/// Decrypts keyslot material in place.
pub fn decrypt(key: &[u8], data: &mut [u8]) -> Result<(), Luks2Error> {
    check_len(data.len())?;
    xts(key)?.decrypt_area(data, AREA_SECTOR, 0, get_tweak_default);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_sector_tweak() {
        let key: Vec<u8> = (0..64u8).collect();
        let plain = vec![0u8; 1024];
        let mut data = plain.clone();
        encrypt(&key, &mut data).unwrap();
        // Same plaintext in two sectors encrypts differently: the tweak is the
        // sector number.
        assert_ne!(data[..512], data[512..]);
        decrypt(&key, &mut data).unwrap();
        assert_eq!(data, plain);
        assert!(encrypt(&key[..32], &mut data).is_err());
        assert!(encrypt(&key, &mut [0u8; 100]).is_err());
    }
}
