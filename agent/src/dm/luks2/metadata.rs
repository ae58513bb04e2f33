//! The LUKS2 JSON metadata, with cryptsetup's key names and its habit of
//! writing 64-bit quantities (offsets, sizes, `iv_tweak`, `json_size`,
//! `keyslots_size`) as decimal strings while small counts stay JSON numbers.
//!
//! Field order in the structs is the order cryptsetup writes; objects keyed
//! by id ("0", "1", …) are BTreeMaps. Tokens are kept as opaque JSON so a
//! rewrite (adding a keyslot) never drops them.

use std::collections::BTreeMap;

use base64ct::{Base64, Encoding};
use serde::{Deserialize, Serialize};

use super::error::Luks2Error;

/// `u64` as a JSON decimal string.
mod str_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub keyslots: BTreeMap<String, Keyslot>,
    pub tokens: serde_json::Map<String, serde_json::Value>,
    pub segments: BTreeMap<String, Segment>,
    pub digests: BTreeMap<String, DigestEntry>,
    pub config: Config,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyslot {
    #[serde(rename = "type")]
    pub kind: String,
    pub key_size: u32,
    pub af: Af,
    pub area: Area,
    pub kdf: Kdf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Af {
    #[serde(rename = "type")]
    pub kind: String,
    pub stripes: u32,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Area {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(with = "str_u64")]
    pub offset: u64,
    #[serde(with = "str_u64")]
    pub size: u64,
    pub encryption: String,
    pub key_size: u32,
}

/// A keyslot's KDF: argon2i/argon2id use time/memory/cpus, pbkdf2 uses
/// hash/iterations; both have a base64 salt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kdf {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    pub salt: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(with = "str_u64")]
    pub offset: u64,
    /// "dynamic" or a byte count.
    pub size: String,
    #[serde(with = "str_u64")]
    pub iv_tweak: u64,
    pub encryption: String,
    pub sector_size: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub keyslots: Vec<String>,
    pub segments: Vec<String>,
    pub hash: String,
    pub iterations: u32,
    pub salt: String,
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    #[serde(with = "str_u64")]
    pub json_size: u64,
    #[serde(with = "str_u64")]
    pub keyslots_size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<serde_json::Value>,
}

impl Metadata {
    pub fn parse(text: &[u8]) -> Result<Metadata, Luks2Error> {
        serde_json::from_slice(text).map_err(|e| Luks2Error::Metadata(e.to_string()))
    }

    /// Compact JSON, as cryptsetup writes it.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain structs, maps and strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The first segment (landfall writes and opens exactly one).
    pub fn segment(&self) -> Result<&Segment, Luks2Error> {
        self.segments
            .get("0")
            .ok_or_else(|| Luks2Error::Metadata("no segment 0".into()))
    }
}

pub fn b64(bytes: &[u8]) -> String {
    Base64::encode_string(bytes)
}

pub fn unb64(text: &str) -> Result<Vec<u8>, Luks2Error> {
    Base64::decode_vec(text).map_err(|_| Luks2Error::Metadata(format!("bad base64 `{text}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metadata `cryptsetup luksFormat --type luks2` 2.6.1 wrote on a
    /// 64 MiB image (luksDump --dump-json-metadata).
    const CRYPTSETUP_JSON: &str = r#"{"keyslots":{"0":{"type":"luks2","key_size":64,"af":{"type":"luks1","stripes":4000,"hash":"sha256"},"area":{"type":"raw","offset":"32768","size":"258048","encryption":"aes-xts-plain64","key_size":64},"kdf":{"type":"argon2id","time":4,"memory":148271,"cpus":2,"salt":"hGL0EQoLfR0Q5oyDz56Xh8Ppljz1c+eNpeVPb9A0CoY="}}},"tokens":{},"segments":{"0":{"type":"crypt","offset":"16777216","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":4096}},"digests":{"0":{"type":"pbkdf2","keyslots":["0"],"segments":["0"],"hash":"sha256","iterations":109226,"salt":"cEpuzWMsuinqqkVlTllnmRWEqN4scmIj82BoYjp4B8o=","digest":"ETlnOjnmOUByTWmN/uzwUPGgsnO/2HV2aBBmdW+78Tk="}},"config":{"json_size":"12288","keyslots_size":"16744448"}}"#;

    #[test]
    fn cryptsetup_json_round_trips_byte_for_byte() {
        let m = Metadata::parse(CRYPTSETUP_JSON.as_bytes()).unwrap();
        assert_eq!(m.keyslots["0"].area.offset, 32768);
        assert_eq!(m.keyslots["0"].kdf.memory, Some(148271));
        assert_eq!(m.segment().unwrap().offset, 16 << 20);
        assert_eq!(m.config.keyslots_size, 16744448);
        assert_eq!(String::from_utf8(m.to_json()).unwrap(), CRYPTSETUP_JSON);
    }

    #[test]
    fn numbers_where_strings_belong_are_refused() {
        let bad = CRYPTSETUP_JSON.replace("\"offset\":\"32768\"", "\"offset\":32768");
        assert!(Metadata::parse(bad.as_bytes()).is_err());
    }

    #[test]
    fn base64_round_trip() {
        assert_eq!(unb64(&b64(b"landfall")).unwrap(), b"landfall");
        assert!(unb64("***").is_err());
    }
}
