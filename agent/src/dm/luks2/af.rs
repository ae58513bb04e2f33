//! The anti-forensic splitter (LUKS1's AF, which LUKS2 keyslots use with
//! sha256): a key of `n` bytes becomes `stripes × n` bytes, of which every one
//! is needed to recover it, so wiping any part of a keyslot destroys the key.
//!
//! split: d₀ = 0; for i < stripes−1: sᵢ random, dᵢ₊₁ = H(dᵢ ⊕ sᵢ);
//! s_last = d_last ⊕ key. merge recomputes d the same way. H ("diffuse")
//! hashes each 32-byte chunk j of a block as sha256(be32(j) ‖ chunk), keeping
//! as many bytes as the chunk has.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::error::Luks2Error;

fn diffuse(block: &mut [u8]) {
    for (j, chunk) in block.chunks_mut(32).enumerate() {
        let mut h = Sha256::new();
        h.update((j as u32).to_be_bytes());
        h.update(&*chunk);
        let out = h.finalize();
        chunk.copy_from_slice(&out[..chunk.len()]);
    }
}

fn xor_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

/// Splits `key` into `stripes` stripes, filling the random ones from `random`.
pub fn split_with(
    key: &[u8],
    stripes: usize,
    random: impl FnOnce(&mut [u8]) -> Result<(), Luks2Error>,
) -> Result<Zeroizing<Vec<u8>>, Luks2Error> {
    let n = key.len();
    let mut out = Zeroizing::new(vec![0u8; n * stripes]);
    random(&mut out[..n * (stripes - 1)])?;
    let mut d = Zeroizing::new(vec![0u8; n]);
    for i in 0..stripes - 1 {
        xor_into(&mut d, &out[i * n..(i + 1) * n]);
        diffuse(&mut d);
    }
    let last = &mut out[(stripes - 1) * n..];
    last.copy_from_slice(&d);
    xor_into(last, key);
    Ok(out)
}

/// Splits `key` with stripes from the system's random number generator.
pub fn split(key: &[u8], stripes: usize) -> Result<Zeroizing<Vec<u8>>, Luks2Error> {
    split_with(key, stripes, |b| {
        getrandom::getrandom(b).map_err(Luks2Error::Random)
    })
}

/// Recovers a key of `key_len` bytes from `stripes` stripes.
pub fn merge(material: &[u8], key_len: usize, stripes: usize) -> Zeroizing<Vec<u8>> {
    let n = key_len;
    let mut d = Zeroizing::new(vec![0u8; n]);
    for i in 0..stripes - 1 {
        xor_into(&mut d, &material[i * n..(i + 1) * n]);
        diffuse(&mut d);
    }
    xor_into(&mut d, &material[(stripes - 1) * n..stripes * n]);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_then_merge_gives_the_key_back() {
        let key: Vec<u8> = (0..64u8).collect();
        let material = split(&key, 4000).unwrap();
        assert_eq!(material.len(), 256_000);
        assert_eq!(&merge(&material, 64, 4000)[..], &key[..]);
        // Any damaged stripe loses the key.
        let mut damaged = material.clone();
        damaged[1234] ^= 1;
        assert_ne!(&merge(&damaged, 64, 4000)[..], &key[..]);
    }

    #[test]
    fn odd_key_lengths_use_a_partial_last_chunk() {
        let key = [0xa5u8; 40];
        let material = split(&key, 7).unwrap();
        assert_eq!(&merge(&material, 40, 7)[..], &key[..]);
    }

    #[test]
    fn one_stripe_is_the_key_itself() {
        let key = [9u8; 32];
        let material = split_with(&key, 1, |_| Ok(())).unwrap();
        assert_eq!(&material[..], &key[..]);
    }

    #[test]
    fn two_stripes_match_a_hand_computation() {
        // stripes = 2, s0 = 0 → d1 = H(0), s1 = H(0) ⊕ key.
        let key = [0x11u8; 32];
        let material = split_with(&key, 2, |b| {
            b.fill(0);
            Ok(())
        })
        .unwrap();
        let mut h = Sha256::new();
        h.update(0u32.to_be_bytes());
        h.update([0u8; 32]);
        let d1 = h.finalize();
        let expect: Vec<u8> = d1.iter().map(|b| b ^ 0x11).collect();
        assert_eq!(&material[32..], &expect[..]);
    }
}
