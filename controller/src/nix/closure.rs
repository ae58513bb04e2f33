//! `ClosureSource`: the closure to send, in dependency order (every path
//! after all of its references), and a native NAR encoder per path — no
//! `nix-store --dump` process. Encoding checks each path against the hash
//! and size Nix recorded, so a corrupted local store is caught before the
//! target rejects it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::PathBuf;

use landfall_proto::nar::{NarEncoder, PathInfo, StorePath, STORE_DIR};

/// Why a closure cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum ClosureError {
    /// A path refers to a path that is not in the closure.
    #[error("The closure is not closed: {path} refers to {reference}, which is missing")]
    NotClosed {
        /// The referrer.
        path: StorePath,
        /// The missing reference.
        reference: StorePath,
    },
    /// References form a cycle (other than a path referring to itself).
    #[error("The closure has a reference cycle through {0}")]
    Cycle(StorePath),
    /// The same path twice with different metadata.
    #[error("The closure lists {0} twice")]
    Duplicate(StorePath),
    /// Reading or encoding a path failed.
    #[error("Cannot encode {path}")]
    Encode {
        /// The path.
        path: StorePath,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The local store's contents do not match what Nix recorded.
    #[error("Local store corruption: {path} encodes to {actual_size} bytes of NAR, Nix recorded {expected_size}")]
    LocalMismatch {
        /// The path.
        path: StorePath,
        /// Recorded size.
        expected_size: u64,
        /// Encoded size.
        actual_size: u64,
    },
}

/// A closure ready to stream.
#[derive(Debug, Clone)]
pub struct ClosureSource {
    /// The directory the store paths are read from (`/nix/store`).
    store_dir: PathBuf,
    paths: Vec<PathInfo>,
}

impl ClosureSource {
    /// Orders `infos` references-first (ties by path, so the order is
    /// deterministic) after checking the set is closed and acyclic.
    pub fn new(infos: Vec<PathInfo>) -> Result<Self, ClosureError> {
        let mut by_path: BTreeMap<StorePath, PathInfo> = BTreeMap::new();
        for info in infos {
            if let Some(old) = by_path.insert(info.path.clone(), info) {
                if by_path.get(&old.path) != Some(&old) {
                    return Err(ClosureError::Duplicate(old.path));
                }
            }
        }
        // Kahn's algorithm over "depends on" edges, ignoring self-references.
        let mut pending: BTreeMap<&StorePath, usize> = BTreeMap::new();
        let mut referrers: BTreeMap<&StorePath, Vec<&StorePath>> = BTreeMap::new();
        for info in by_path.values() {
            let mut n = 0;
            for r in &info.references {
                if r == &info.path {
                    continue;
                }
                if !by_path.contains_key(r) {
                    return Err(ClosureError::NotClosed {
                        path: info.path.clone(),
                        reference: r.clone(),
                    });
                }
                referrers.entry(r).or_default().push(&info.path);
                n += 1;
            }
            pending.insert(&info.path, n);
        }
        let mut ready: BTreeSet<&StorePath> = pending
            .iter()
            .filter(|(_, &n)| n == 0)
            .map(|(p, _)| *p)
            .collect();
        let mut order: Vec<StorePath> = Vec::with_capacity(by_path.len());
        while let Some(p) = ready.pop_first() {
            order.push(p.clone());
            for q in referrers.get(p).map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(n) = pending.get_mut(q) {
                    *n -= 1;
                    if *n == 0 {
                        ready.insert(q);
                    }
                }
            }
        }
        if order.len() != by_path.len() {
            let stuck = pending
                .iter()
                .find(|(_, &n)| n > 0)
                .map(|(p, _)| (*p).clone())
                .expect("a cycle leaves a path with pending references");
            return Err(ClosureError::Cycle(stuck));
        }
        let paths = order
            .into_iter()
            .filter_map(|p| by_path.remove(&p))
            .collect();
        Ok(Self {
            store_dir: PathBuf::from(STORE_DIR),
            paths,
        })
    }

    /// Every path, references first.
    pub fn paths(&self) -> &[PathInfo] {
        &self.paths
    }

    /// Sum of the NAR sizes (the bytes to send before compression).
    pub fn total_nar_size(&self) -> u64 {
        self.paths.iter().map(|p| p.nar_size).sum()
    }

    /// The paths of `wanted` (e.g. what the agent reported missing), still
    /// references first.
    pub fn subset<'a>(&'a self, wanted: &[StorePath]) -> Vec<&'a PathInfo> {
        let wanted: BTreeSet<&StorePath> = wanted.iter().collect();
        self.paths
            .iter()
            .filter(|p| wanted.contains(&p.path))
            .collect()
    }

    /// A streaming NAR encoder (`impl Read`) of one path.
    pub fn encoder(&self, info: &PathInfo) -> NarEncoder {
        NarEncoder::unhashed(self.store_dir.join(info.path.base_name()))
    }

    /// Encodes one path into `sink` and checks its size against the recorded
    /// narSize; returns the size. The hash is not computed here: the receiver
    /// verifies it (the agent does, before it registers anything), and a
    /// check here could only come after the bytes were sent anyway.
    pub fn encode_to(&self, info: &PathInfo, mut sink: impl Write) -> Result<u64, ClosureError> {
        let err = |source| ClosureError::Encode {
            path: info.path.clone(),
            source,
        };
        let mut enc = self.encoder(info);
        io::copy(&mut enc, &mut sink).map_err(err)?;
        let size = enc
            .nar_size()
            .ok_or_else(|| err(io::Error::other("encoder stopped early")))?;
        if size != info.nar_size {
            return Err(ClosureError::LocalMismatch {
                path: info.path.clone(),
                expected_size: info.nar_size,
                actual_size: size,
            });
        }
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use landfall_proto::nar::NarHash;

    fn sp(c: char) -> StorePath {
        StorePath::parse(&format!(
            "/nix/store/{}-{c}",
            "0".repeat(31) + &c.to_string()
        ))
        .unwrap()
    }

    fn info(c: char, refs: &[char]) -> PathInfo {
        PathInfo {
            path: sp(c),
            nar_hash: NarHash([0; 32]),
            nar_size: 8,
            references: refs.iter().map(|&r| sp(r)).collect(),
            deriver: None,
            signatures: vec![],
            ca: None,
        }
    }

    #[test]
    fn orders_references_first() {
        let c = ClosureSource::new(vec![
            info('a', &['b', 'c', 'a']),
            info('b', &['d']),
            info('c', &['d', 'b']),
            info('d', &[]),
        ])
        .unwrap();
        let order: Vec<_> = c.paths().iter().map(|p| p.path.clone()).collect();
        assert_eq!(order, vec![sp('d'), sp('b'), sp('c'), sp('a')]);
        assert_eq!(c.total_nar_size(), 32);
        let sub: Vec<_> = c
            .subset(&[sp('a'), sp('d')])
            .iter()
            .map(|p| p.path.clone())
            .collect();
        assert_eq!(sub, vec![sp('d'), sp('a')]);
    }

    #[test]
    fn rejects_open_and_cyclic_closures() {
        assert!(matches!(
            ClosureSource::new(vec![info('a', &['b'])]),
            Err(ClosureError::NotClosed { .. })
        ));
        assert!(matches!(
            ClosureSource::new(vec![info('a', &['b']), info('b', &['a'])]),
            Err(ClosureError::Cycle(_))
        ));
    }
}
