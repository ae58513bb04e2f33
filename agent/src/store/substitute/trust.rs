//! Trusted public keys (`name:base64`, the format of Nix's
//! `trusted-public-keys`) and the check of a narinfo's `Sig` lines: a path
//! is trusted only when one signature by a trusted key name verifies over
//! its fingerprint ([`super::narinfo::fingerprint`]).

use base64ct::{Base64, Encoding};
use ed25519_dalek::{Signature, VerifyingKey};

/// A key or signature that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Not a Nix ed25519 public key `name:base64` ({reason}): {text:?}")]
pub struct KeyParseError {
    /// The rejected text.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Why a narinfo's signatures do not make it trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Sig` line at all.
    #[error("The narinfo is not signed")]
    Unsigned,
    /// Signatures, none by a trusted key name.
    #[error("Signed only by untrusted keys: {0}")]
    Untrusted(String),
    /// A signature by a trusted key name that does not verify.
    #[error("The signature by trusted key {0} does not verify")]
    Invalid(String),
}

/// One trusted key.
#[derive(Clone)]
struct TrustedKey {
    name: String,
    key: VerifyingKey,
}

/// The keys a narinfo must be signed by (one of them).
#[derive(Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<TrustedKey>,
}

impl std::fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.name))
            .finish()
    }
}

impl TrustedKeys {
    /// Parses `name:base64-of-32-bytes` keys.
    pub fn parse<S: AsRef<str>>(keys: &[S]) -> Result<Self, KeyParseError> {
        let keys = keys
            .iter()
            .map(|k| {
                let text = k.as_ref().trim();
                let err = |reason| KeyParseError {
                    text: text.to_owned(),
                    reason,
                };
                let (name, b64) = text.split_once(':').ok_or_else(|| err("no colon"))?;
                if name.is_empty() {
                    return Err(err("empty name"));
                }
                let bytes = Base64::decode_vec(b64).map_err(|_| err("bad base64"))?;
                let bytes: [u8; 32] = bytes.try_into().map_err(|_| err("not 32 bytes"))?;
                let key = VerifyingKey::from_bytes(&bytes).map_err(|_| err("not a curve point"))?;
                Ok(TrustedKey {
                    name: name.to_owned(),
                    key,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// The key names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.name.as_str())
    }

    /// Accepts when one of `sigs` (`name:base64`) by a trusted key name is a
    /// valid ed25519 signature of `fingerprint`. Signatures by other names
    /// are ignored (as Nix does); the error says what was found.
    pub fn verify(&self, fingerprint: &str, sigs: &[String]) -> Result<String, SignatureError> {
        if sigs.is_empty() {
            return Err(SignatureError::Unsigned);
        }
        let mut invalid = None;
        for sig in sigs {
            let Some((name, b64)) = sig.split_once(':') else {
                continue;
            };
            for k in self.keys.iter().filter(|k| k.name == name) {
                let ok = Base64::decode_vec(b64)
                    .ok()
                    .and_then(|b| <[u8; 64]>::try_from(b).ok())
                    .map(|b| Signature::from_bytes(&b))
                    .is_some_and(|s| k.key.verify_strict(fingerprint.as_bytes(), &s).is_ok());
                if ok {
                    return Ok(name.to_owned());
                }
                invalid.get_or_insert_with(|| name.to_owned());
            }
        }
        Err(match invalid {
            Some(name) => SignatureError::Invalid(name),
            None => SignatureError::Untrusted(
                sigs.iter()
                    .map(|s| s.split(':').next().unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn key(seed: u8, name: &str) -> (SigningKey, String) {
        let sk = SigningKey::from_bytes(&[seed; 32]);
        let pk = format!(
            "{name}:{}",
            Base64::encode_string(sk.verifying_key().as_bytes())
        );
        (sk, pk)
    }

    fn sign(sk: &SigningKey, name: &str, msg: &str) -> String {
        format!(
            "{name}:{}",
            Base64::encode_string(&sk.sign(msg.as_bytes()).to_bytes())
        )
    }

    #[test]
    fn verifies_by_trusted_name_only() {
        let (sk1, pk1) = key(1, "cache-1");
        let (sk2, _) = key(2, "other-1");
        let keys = TrustedKeys::parse(&[pk1]).unwrap();
        let fp = "1;/nix/store/x;sha256:y;1;";
        let good = sign(&sk1, "cache-1", fp);
        assert_eq!(
            keys.verify(fp, std::slice::from_ref(&good)).unwrap(),
            "cache-1"
        );
        // An untrusted signature first does not matter.
        let other = sign(&sk2, "other-1", fp);
        assert!(keys.verify(fp, &[other.clone(), good.clone()]).is_ok());
        assert_eq!(keys.verify(fp, &[]), Err(SignatureError::Unsigned));
        assert_eq!(
            keys.verify(fp, &[other]),
            Err(SignatureError::Untrusted("other-1".into()))
        );
        // Another key under the trusted name; the right key over another text.
        let forged = sign(&sk2, "cache-1", fp);
        assert_eq!(
            keys.verify(fp, &[forged]),
            Err(SignatureError::Invalid("cache-1".into()))
        );
        assert_eq!(
            keys.verify("1;/nix/store/x;sha256:y;2;", &[good]),
            Err(SignatureError::Invalid("cache-1".into()))
        );
        assert_eq!(
            keys.verify(fp, &["cache-1:!!".into()]),
            Err(SignatureError::Invalid("cache-1".into()))
        );
    }

    #[test]
    fn parses_nix_key_format() {
        // cache.nixos.org's key, as NixOS configures it.
        let k =
            TrustedKeys::parse(&["cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="])
                .unwrap();
        assert_eq!(k.names().collect::<Vec<_>>(), ["cache.nixos.org-1"]);
        for bad in ["nocolon", ":AAAA", "n:!!", "n:AAAA"] {
            assert!(TrustedKeys::parse(&[bad]).is_err(), "{bad}");
        }
    }
}
