//! Conversions between the store's [`PathInfo`] and its wire form
//! [`StorePathInfo`], shared by the controller (sending) and the agent
//! (receiving, where every field is untrusted until parsed).

use crate::nar::{NarHash, PathInfo, StorePath};
use crate::v1::StorePathInfo;

/// A wire path-info that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum PathInfoError {
    #[error("Invalid store path {0:?}")]
    Path(String),
    #[error("Invalid narHash {0:?} for {1}")]
    Hash(String, String),
}

impl From<&PathInfo> for StorePathInfo {
    fn from(p: &PathInfo) -> Self {
        StorePathInfo {
            path: p.path.to_string(),
            nar_hash: p.nar_hash.to_nix32(),
            nar_size: p.nar_size,
            references: p.references.iter().map(|r| r.to_string()).collect(),
            deriver: p
                .deriver
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_default(),
            signatures: p.signatures.clone(),
            ca: p.ca.clone().unwrap_or_default(),
        }
    }
}

fn store_path(s: &str) -> Result<StorePath, PathInfoError> {
    StorePath::parse(s).map_err(|_| PathInfoError::Path(s.to_string()))
}

impl TryFrom<&StorePathInfo> for PathInfo {
    type Error = PathInfoError;

    fn try_from(w: &StorePathInfo) -> Result<Self, Self::Error> {
        let path = store_path(&w.path)?;
        let nar_hash = NarHash::parse(&w.nar_hash)
            .map_err(|_| PathInfoError::Hash(w.nar_hash.clone(), w.path.clone()))?;
        let mut references = w
            .references
            .iter()
            .map(|r| store_path(r))
            .collect::<Result<Vec<_>, _>>()?;
        references.sort();
        references.dedup();
        Ok(PathInfo {
            path,
            nar_hash,
            nar_size: w.nar_size,
            references,
            deriver: if w.deriver.is_empty() {
                None
            } else {
                Some(store_path(&w.deriver)?)
            },
            signatures: w.signatures.clone(),
            ca: if w.ca.is_empty() {
                None
            } else {
                Some(w.ca.clone())
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hostile_fields() {
        let p = PathInfo {
            path: StorePath::parse("/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-hello-2.12")
                .unwrap(),
            nar_hash: NarHash([7; 32]),
            nar_size: 1234,
            references: vec![StorePath::parse(
                "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-hello-2.12",
            )
            .unwrap()],
            deriver: None,
            signatures: vec!["cache:abc".into()],
            ca: None,
        };
        let w = StorePathInfo::from(&p);
        assert_eq!(PathInfo::try_from(&w).unwrap(), p);
        let mut bad = w.clone();
        bad.path = "/nix/store/../etc/passwd".into();
        assert!(PathInfo::try_from(&bad).is_err());
        let mut bad = w.clone();
        bad.nar_hash = "md5:zzz".into();
        assert!(PathInfo::try_from(&bad).is_err());
        let mut bad = w;
        bad.references = vec!["/etc".into()];
        assert!(PathInfo::try_from(&bad).is_err());
    }
}
