//! Nix's base-32 ("nix32"): the alphabet without e, o, u, t, and the peculiar
//! bit order Nix uses (the last character encodes the lowest bits of byte 0).

/// The 32 characters Nix uses, in value order.
pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Length of the nix32 text for `n` bytes.
pub fn encoded_len(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n * 8 - 1) / 5 + 1
    }
}

/// Encodes bytes as nix32 text.
pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        let lo = u16::from(bytes[i]) >> j;
        let hi = bytes
            .get(i + 1)
            .map_or(0, |&next| u16::from(next) << (8 - j));
        let c = usize::from((lo | hi) & 0x1f);
        out.push(char::from(ALPHABET[c]));
    }
    out
}

/// Decodes nix32 text into exactly `n` bytes; `None` on a bad character,
/// a wrong length, or bits set beyond the `n` bytes.
pub fn decode(text: &str, n: usize) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if text.len() != encoded_len(n) {
        return None;
    }
    let mut out = vec![0u8; n];
    for (k, &ch) in text.iter().rev().enumerate() {
        let digit = ALPHABET.iter().position(|&a| a == ch)? as u16;
        let b = k * 5;
        let i = b / 8;
        let j = b % 8;
        out[i] |= (digit << j) as u8;
        let carry = digit >> (8 - j);
        if i + 1 < n {
            out[i + 1] |= carry as u8;
        } else if carry != 0 {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_string_matches_nix() {
        // `nix-hash --type sha256 --flat --base32 /dev/null`
        let digest = [
            0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f,
            0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b,
            0x78, 0x52, 0xb8, 0x55,
        ];
        let text = encode(&digest);
        assert_eq!(text, "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73");
        assert_eq!(decode(&text, 32).as_deref(), Some(&digest[..]));
    }

    #[test]
    fn store_path_hash_length_is_32_chars() {
        assert_eq!(encoded_len(20), 32);
        assert_eq!(encoded_len(32), 52);
    }

    #[test]
    fn decode_rejects_bad_text() {
        assert_eq!(decode("e", 1), None);
        assert_eq!(decode("00", 2), None);
        // 'z' in the top digit sets bits beyond one byte.
        assert_eq!(decode("z0", 1), None);
    }

    #[test]
    fn round_trip_many_lengths() {
        for n in 0..40usize {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode(&encode(&bytes), n), Some(bytes));
        }
    }
}
