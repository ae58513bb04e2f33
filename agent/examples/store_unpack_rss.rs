//! Benchmark: peak memory of the store engine while unpacking a large NAR.
//!
//! Generates a synthetic closure on the fly (never held in memory): PATHS
//! store paths (each referring to the one before), 32 000 files and GIB GiB
//! of file data in total. Pass 1 hashes every path's NAR; pass 2 installs
//! them with `StoreInstaller` (unpack, verify, commit every 50 paths) into a
//! root under DIR and sets the system profile. Prints throughput and the process's peak RSS (VmHWM).
//!
//!     cargo run --release -p landfall-agent --example store_unpack_rss -- [GIB] [PATHS] [DIR]
//!
//! (defaults: 1 GiB, 500 paths, a temporary directory under /var/tmp). Not a test: the
//! figures are for the report, nothing is asserted.

use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Instant;

use landfall_agent::store::StoreInstaller;
use landfall_proto::nar::wire::put_str as put;
use landfall_proto::nar::{NarHasher, PathInfo, StorePath};

const TOTAL_FILES: u64 = 32_000;
const CHUNK: u64 = 64 * 1024;

/// A NAR of a synthetic tree, produced piece by piece.
struct SyntheticNar {
    dirs: u64,
    files_per_dir: u64,
    seed: u64,
    file_size: u64,
    dir: u64,
    file: u64,
    /// Bytes of the current file still to emit; `None` between files.
    remaining: Option<u64>,
    started: bool,
    finished: bool,
    buf: Vec<u8>,
    pos: usize,
}

impl SyntheticNar {
    /// Path number `seed` of `paths`, sharing `total` bytes of file data.
    fn new(total: u64, paths: u64, seed: u64) -> Self {
        let files = (TOTAL_FILES / paths).max(1);
        let dirs = files.div_ceil(32);
        let files_per_dir = files.div_ceil(dirs);
        Self {
            dirs,
            files_per_dir,
            seed,
            file_size: total / (paths * dirs * files_per_dir),
            dir: 0,
            file: 0,
            remaining: None,
            started: false,
            finished: false,
            buf: Vec::with_capacity(CHUNK as usize + 512),
            pos: 0,
        }
    }

    fn refill(&mut self) {
        self.buf.clear();
        self.pos = 0;
        let b = &mut self.buf;
        if !self.started {
            self.started = true;
            for t in [&b"nix-archive-1"[..], b"(", b"type", b"directory"] {
                put(b, t);
            }
            return;
        }
        if let Some(rem) = self.remaining {
            if rem > 0 {
                let n = rem.min(CHUNK);
                let byte = (self.seed * 7 + self.dir * 31 + self.file) as u8;
                b.resize(n as usize, byte);
                self.remaining = Some(rem - n);
                return;
            }
            // End of file: padding, close the file node and its entry.
            b.resize((8 - self.file_size % 8) as usize % 8, 0);
            put(b, b")");
            put(b, b")");
            self.remaining = None;
            self.file += 1;
            if self.file == self.files_per_dir {
                put(b, b")"); // directory node
                put(b, b")"); // its entry
                self.file = 0;
                self.dir += 1;
            }
            return;
        }
        if self.dir == self.dirs {
            if !self.finished {
                put(b, b")");
                self.finished = true;
            }
            return;
        }
        if self.file == 0 {
            let name = format!("d{:04}", self.dir);
            for t in [
                &b"entry"[..],
                b"(",
                b"name",
                name.as_bytes(),
                b"node",
                b"(",
                b"type",
                b"directory",
            ] {
                put(b, t);
            }
        }
        let name = format!("f{:05}", self.file);
        for t in [
            &b"entry"[..],
            b"(",
            b"name",
            name.as_bytes(),
            b"node",
            b"(",
            b"type",
            b"regular",
            b"contents",
        ] {
            put(b, t);
        }
        b.extend_from_slice(&self.file_size.to_le_bytes());
        self.remaining = Some(self.file_size);
    }
}

impl Read for SyntheticNar {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.finished {
                return Ok(0);
            }
            self.refill();
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Peak resident set of this process image: `VmHWM` from /proc/self/status
/// (getrusage's ru_maxrss would include the parent's before execve).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn store_path(i: u64) -> StorePath {
    StorePath::parse(&format!("/nix/store/{:0>32}-synthetic-{i}", i % 10))
        .expect("valid store path")
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let gib: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1.0);
    let paths: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(500);
    let base: PathBuf = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/tmp".into());
    let total = (gib * (1u64 << 30) as f64) as u64;
    let tmp = tempfile::tempdir_in(&base)?;
    let root = tmp.path().join("root");
    std::fs::create_dir(&root)?;
    println!("rss at start: {} KiB", peak_rss_kib());

    let t = Instant::now();
    let mut infos = Vec::with_capacity(paths as usize);
    let mut buf = vec![0u8; 256 * 1024];
    for i in 0..paths {
        let mut hasher = NarHasher::new();
        let mut src = SyntheticNar::new(total, paths, i);
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let (nar_hash, nar_size) = hasher.finish();
        let mut references = vec![store_path(i)];
        if i > 0 {
            references.push(store_path(i - 1));
        }
        references.sort();
        infos.push(PathInfo {
            path: store_path(i),
            nar_hash,
            nar_size,
            references,
            deriver: None,
            signatures: vec![],
            ca: None,
        });
    }
    let nar_bytes: u64 = infos.iter().map(|i| i.nar_size).sum();
    println!(
        "pass 1 (generate + hash): {paths} paths, {nar_bytes} NAR bytes, {:.1}s, peak rss {} KiB",
        t.elapsed().as_secs_f64(),
        peak_rss_kib()
    );

    let t = Instant::now();
    let mut installer = StoreInstaller::open(&root)?;
    let (mut files, mut file_bytes) = (0, 0);
    for (i, info) in infos.iter().enumerate() {
        let done = installer.add(info, SyntheticNar::new(total, paths, i as u64))?;
        files += done.files;
        file_bytes += done.file_bytes;
        if i % 50 == 49 {
            installer.commit()?;
        }
    }
    let top = infos
        .last()
        .map(|i| i.path.clone())
        .ok_or_else(|| anyhow::anyhow!("no paths"))?;
    installer.finish(&top)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "pass 2 (unpack + verify + syncfs + register + profile): {paths} paths, {files} files, {file_bytes} bytes, {secs:.1}s ({:.0} MiB/s), peak rss {} KiB",
        nar_bytes as f64 / secs / (1 << 20) as f64,
        peak_rss_kib()
    );
    Ok(())
}
