//! Key derivation: the keyslot's argon2id (or, when reading other tools'
//! headers, argon2i / pbkdf2) and the pbkdf2-sha256 digest of the volume key,
//! with the cost choice cryptsetup makes by benchmarking.
//!
//! ## The argon2 cost
//! cryptsetup 2.6 defaults: argon2id, time ≥ 4, memory up to 1 GiB (1048576
//! KiB) but at most half the RAM, lanes = min(4, CPUs), tuned so one unlock
//! takes `--iter-time` (2000 ms). It raises memory first (time at 4), then
//! time once memory is at its cap.
//!
//! landfall's cap is stricter: **min(1 GiB, RAM / 4)** (never below 32 MiB
//! unless RAM / 2 is). The installed machine unlocks the disk in its stage 1,
//! where the kernel, the unpacked initramfs (a NixOS initrd with cryptsetup
//! and its libraries is tens of MiB on a tmpfs, plus the compressed image
//! while it unpacks) and udev are resident beside the Argon2 buffer. On a
//! 256 MiB machine cryptsetup's half (128 MiB) leaves too little for those;
//! a quarter (64 MiB) leaves the other three quarters. On 1 GiB it is 256 MiB,
//! and from 4 GiB on it is cryptsetup's own 1 GiB default. An explicit
//! `--pbkdf-memory` is honoured up to cryptsetup's own limit, half the RAM.
//!
//! A slow machine (a small VPS, or qemu without KVM) buys little memory in
//! the target time; landfall then keeps at least **64 MiB** (or the cap, if
//! lower) and accepts a longer unlock, rather than an Argon2 buffer of a few
//! MiB that a guesser's GPU handles cheaply. On ordinary hardware 64 MiB × 4
//! passes takes a fraction of the target time, so the floor never applies.
//! An explicit `--pbkdf-memory` or `--pbkdf-force-iterations` is honoured.
//!
//! landfall's argon2 runs the lanes one after another (RustCrypto's argon2 is
//! single-threaded), so the benchmark measures that; cryptsetup on the target
//! unlocks with threads, so an unlock there takes at most the target time.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use super::error::Luks2Error;

/// cryptsetup's DEFAULT_LUKS2_ITER_TIME.
pub const DEFAULT_ITER_TIME_MS: u32 = 2000;
/// cryptsetup's DEFAULT_LUKS2_MEMORY_KB.
pub const MAX_MEMORY_KIB: u32 = 1_048_576;
/// cryptsetup's DEFAULT_LUKS2_PARALLEL_THREADS.
pub const MAX_LANES: u32 = 4;
/// Argon2's minimum passes in cryptsetup (its PBKDF limits).
pub const MIN_TIME: u32 = 4;
/// cryptsetup's smallest argon2 memory.
pub const MIN_MEMORY_KIB: u32 = 32;
/// The least memory landfall's own cost choice uses when the user names none
/// (64 MiB, lowered only by the memory cap); see the module doc.
pub const DEFAULT_MEMORY_FLOOR_KIB: u32 = 64 * 1024;
/// cryptsetup's LUKS_MKD_ITERATIONS_MS and LUKS_MKD_ITERATIONS_MIN: the
/// digest's pbkdf2 runs ~125 ms, at least 1000 iterations.
pub const DIGEST_ITER_MS: u32 = 125;
pub const DIGEST_MIN_ITERATIONS: u32 = 1000;

/// An argon2 cost as stored in a keyslot's `kdf` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Cost {
    pub time: u32,
    pub memory_kib: u32,
    pub lanes: u32,
}

/// What the user asked for (`--iter-time`, `--pbkdf-memory`,
/// `--pbkdf-force-iterations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PbkdfRequest {
    pub iter_time_ms: u32,
    pub memory_kib: Option<u32>,
    pub force_time: Option<u32>,
}

impl Default for PbkdfRequest {
    fn default() -> Self {
        PbkdfRequest {
            iter_time_ms: DEFAULT_ITER_TIME_MS,
            memory_kib: None,
            force_time: None,
        }
    }
}

/// The largest argon2 memory landfall uses on a machine with `ram_kib` of RAM
/// when the user names none (see the module doc).
pub fn default_memory_cap_kib(ram_kib: u64) -> u32 {
    let quarter = ram_kib / 4;
    let half = ram_kib / 2;
    let cap = quarter.max(32 * 1024).min(half).min(MAX_MEMORY_KIB as u64);
    (cap as u32).max(MIN_MEMORY_KIB)
}

/// The memory limit for a request: the user's `--pbkdf-memory` capped at half
/// the RAM (cryptsetup's rule), or landfall's default cap.
pub fn memory_limit_kib(req: &PbkdfRequest, ram_kib: u64) -> u32 {
    match req.memory_kib {
        Some(m) => {
            let half = (ram_kib / 2).min(u32::MAX as u64) as u32;
            m.min(half).max(MIN_MEMORY_KIB)
        }
        None => default_memory_cap_kib(ram_kib),
    }
}

/// Lanes cryptsetup uses: min(4, CPUs), at least 1.
pub fn lanes_for(cpus: u32) -> u32 {
    cpus.clamp(1, MAX_LANES)
}

/// Chooses the cost from a measured throughput (`kib_passes_per_ms`: memory
/// KiB × passes hashed per millisecond): the work the target time buys, spent
/// on memory first (time 4) up to `memory_limit`, then on more passes.
pub fn choose_cost(
    kib_passes_per_ms: f64,
    req: &PbkdfRequest,
    memory_limit: u32,
    lanes: u32,
) -> Argon2Cost {
    let mut floor = MIN_MEMORY_KIB.max(8 * lanes);
    if req.memory_kib.is_none() {
        floor = floor.max(DEFAULT_MEMORY_FLOOR_KIB.min(memory_limit));
    }
    if let Some(time) = req.force_time {
        return Argon2Cost {
            time,
            memory_kib: memory_limit.max(floor),
            lanes,
        };
    }
    let work = kib_passes_per_ms * req.iter_time_ms as f64;
    let memory = (work / MIN_TIME as f64).floor();
    if memory <= memory_limit as f64 {
        return Argon2Cost {
            time: MIN_TIME,
            memory_kib: (memory as u32).max(floor),
            lanes,
        };
    }
    let time = (work / memory_limit as f64).floor();
    Argon2Cost {
        time: (time.min(u32::MAX as f64) as u32).max(MIN_TIME),
        memory_kib: memory_limit.max(floor),
        lanes,
    }
}

/// Runs argon2 (`id` true: argon2id, else argon2i) into a key of `out.len()`.
pub fn argon2(
    id: bool,
    cost: &Argon2Cost,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), Luks2Error> {
    let params = Params::new(cost.memory_kib, cost.time, cost.lanes, Some(out.len()))
        .map_err(|e| Luks2Error::Argon2(e.to_string()))?;
    let alg = if id {
        Algorithm::Argon2id
    } else {
        Algorithm::Argon2i
    };
    Argon2::new(alg, Version::V0x13, params)
        .hash_password_into(password, salt, out)
        .map_err(|e| Luks2Error::Argon2(e.to_string()))
}

/// Measures this machine's argon2id throughput (KiB × passes per ms) with
/// growing costs until one run takes at least 100 ms, as cryptsetup's
/// benchmark does before it extrapolates.
pub fn measure_argon2(memory_limit: u32, lanes: u32) -> Result<f64, Luks2Error> {
    let floor = MIN_MEMORY_KIB.max(8 * lanes);
    let mut cost = Argon2Cost {
        time: 1,
        memory_kib: (8 * 1024).min(memory_limit).max(floor),
        lanes,
    };
    let mut out = Zeroizing::new([0u8; 32]);
    loop {
        let start = Instant::now();
        argon2(true, &cost, b"landfall benchmark", &[0u8; 32], &mut out[..])?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let work = cost.time as f64 * cost.memory_kib as f64;
        if ms >= 100.0 || cost.time >= 1 << 20 {
            return Ok(work / ms.max(0.001));
        }
        let grow = (150.0 / ms.max(1.0)).clamp(2.0, 16.0);
        if cost.memory_kib < memory_limit {
            cost.memory_kib = ((cost.memory_kib as f64 * grow) as u32).min(memory_limit);
        } else {
            cost.time = (cost.time as f64 * grow) as u32;
        }
    }
}

/// pbkdf2-hmac-sha256.
pub fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    super::pbkdf2_sha256::derive(password, salt, iterations, out);
}

/// pbkdf2-sha256 iterations for ~`ms` on this machine, at least `min`.
pub fn pbkdf2_iterations_for(ms: u32, min: u32) -> u32 {
    let mut out = [0u8; 32];
    let mut n: u32 = 1000;
    loop {
        let start = Instant::now();
        pbkdf2_sha256(b"landfall benchmark", &[0u8; 32], n, &mut out);
        let took = start.elapsed();
        if took >= Duration::from_millis(20) || n >= 1 << 28 {
            let per_ms = n as f64 / (took.as_secs_f64() * 1000.0).max(0.001);
            return ((per_ms * ms as f64) as u32).max(min);
        }
        n *= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024;
    const GIB: u64 = 1024 * 1024;

    #[test]
    fn default_memory_cap_by_ram() {
        assert_eq!(default_memory_cap_kib(256 * MIB), 64 * 1024);
        assert_eq!(default_memory_cap_kib(GIB), 256 * 1024);
        assert_eq!(default_memory_cap_kib(16 * GIB), 1_048_576);
        // 64 MiB of RAM: a quarter would be 16 MiB; 32 MiB is still ≤ half.
        assert_eq!(default_memory_cap_kib(64 * MIB), 32 * 1024);
        // Tiny: never above half.
        assert_eq!(default_memory_cap_kib(32 * MIB), 16 * 1024);
    }

    #[test]
    fn fast_machine_fills_memory_then_adds_passes() {
        let req = PbkdfRequest::default();
        // 2 GiB·pass/s throughput: 2 s buy 4 GiB·passes.
        let rate = 2.0 * GIB as f64 / 1000.0;
        for (ram, mem) in [
            (256 * MIB, 64 * 1024),
            (GIB, 256 * 1024),
            (16 * GIB, 1_048_576),
        ] {
            let limit = memory_limit_kib(&req, ram);
            let c = choose_cost(rate, &req, limit, 4);
            assert_eq!(c.memory_kib, mem, "RAM {ram} KiB");
            assert!(c.memory_kib as u64 <= ram / 2);
            assert!(c.time >= MIN_TIME);
            assert_eq!(c.time as u64, 4 * GIB / mem as u64, "RAM {ram} KiB");
        }
    }

    #[test]
    fn slow_machine_keeps_four_passes_and_less_memory() {
        let req = PbkdfRequest::default();
        // 200 MiB·pass/s: 2 s buy 400 MiB·passes → 100 MiB at 4 passes.
        let c = choose_cost(200.0 * 1024.0 / 1000.0, &req, 1_048_576, 2);
        assert_eq!(
            c,
            Argon2Cost {
                time: 4,
                memory_kib: 102400,
                lanes: 2
            }
        );
    }

    #[test]
    fn a_very_slow_machine_keeps_64_mib_unless_the_cap_or_the_user_says_less() {
        let req = PbkdfRequest::default();
        // 4 MiB·pass/s (qemu without KVM): 2 s buy 2 MiB at 4 passes; the
        // floor keeps 64 MiB and the unlock takes longer.
        let slow = 4.0 * 1024.0 / 1000.0;
        let c = choose_cost(slow, &req, 1_048_576, 1);
        assert_eq!((c.time, c.memory_kib), (4, 65536));
        // A cap below 64 MiB (a machine with less than 256 MiB) wins.
        let c = choose_cost(slow, &req, 32 * 1024, 1);
        assert_eq!(c.memory_kib, 32 * 1024);
        // The user's --pbkdf-memory is theirs: no floor.
        let mine = PbkdfRequest {
            memory_kib: Some(8192),
            ..PbkdfRequest::default()
        };
        let c = choose_cost(slow, &mine, 8192, 1);
        assert_eq!(c.memory_kib, 2048);
    }

    #[test]
    fn user_memory_is_capped_at_half_the_ram_and_forced_time_kept() {
        let req = PbkdfRequest {
            memory_kib: Some(512 * 1024),
            force_time: Some(6),
            ..Default::default()
        };
        let limit = memory_limit_kib(&req, 256 * MIB);
        assert_eq!(limit, 128 * 1024);
        let c = choose_cost(1.0, &req, limit, 1);
        assert_eq!((c.time, c.memory_kib), (6, 128 * 1024));
        let req = PbkdfRequest {
            memory_kib: Some(65536),
            ..Default::default()
        };
        assert_eq!(memory_limit_kib(&req, 16 * GIB), 65536);
    }

    #[test]
    fn lanes_follow_cpus() {
        assert_eq!(lanes_for(0), 1);
        assert_eq!(lanes_for(2), 2);
        assert_eq!(lanes_for(64), 4);
    }

    #[test]
    fn pbkdf2_matches_rfc7914_vector() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256("passwd", "salt", 1, 64).
        let mut out = [0u8; 64];
        pbkdf2_sha256(b"passwd", b"salt", 1, &mut out);
        assert_eq!(hex::encode(&out[..16]), "55ac046e56e3089fec1691c22544b605");
    }
}
