//! The volume-key digest: pbkdf2-sha256 of the volume key (32 bytes out) with
//! a random salt, which tells a right key from a wrong one. Compared in
//! constant time.

use super::error::Luks2Error;
use super::kdf::{self, DIGEST_ITER_MS, DIGEST_MIN_ITERATIONS};
use super::metadata::{b64, unb64, DigestEntry};

/// A digest entry for `volume_key` bound to keyslot 0 and segment 0, with
/// iterations for ~125 ms on this machine (cryptsetup's choice).
pub fn create(volume_key: &[u8]) -> Result<DigestEntry, Luks2Error> {
    let iterations = kdf::pbkdf2_iterations_for(DIGEST_ITER_MS, DIGEST_MIN_ITERATIONS);
    create_with(volume_key, iterations)
}

pub fn create_with(volume_key: &[u8], iterations: u32) -> Result<DigestEntry, Luks2Error> {
    let mut salt = [0u8; 32];
    getrandom::getrandom(&mut salt).map_err(Luks2Error::Random)?;
    let mut digest = [0u8; 32];
    kdf::pbkdf2_sha256(volume_key, &salt, iterations, &mut digest);
    Ok(DigestEntry {
        kind: "pbkdf2".into(),
        keyslots: vec!["0".into()],
        segments: vec!["0".into()],
        hash: "sha256".into(),
        iterations,
        salt: b64(&salt),
        digest: b64(&digest),
    })
}

/// Whether `candidate` is the volume key this digest describes.
pub fn matches(entry: &DigestEntry, candidate: &[u8]) -> Result<bool, Luks2Error> {
    if entry.kind != "pbkdf2" || entry.hash != "sha256" {
        return Err(Luks2Error::Unsupported(format!(
            "digest {} with {}",
            entry.kind, entry.hash
        )));
    }
    let salt = unb64(&entry.salt)?;
    let want = unb64(&entry.digest)?;
    let mut got = vec![0u8; want.len()];
    kdf::pbkdf2_sha256(candidate, &salt, entry.iterations, &mut got);
    Ok(got.iter().zip(&want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0 && !want.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_key_matches_wrong_key_does_not() {
        let key = [7u8; 64];
        let d = create_with(&key, 1000).unwrap();
        assert!(matches(&d, &key).unwrap());
        assert!(!matches(&d, &[8u8; 64]).unwrap());
        assert_eq!(d.iterations, 1000);
        assert_eq!(unb64(&d.digest).unwrap().len(), 32);
    }
}
