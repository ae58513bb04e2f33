//! The NAR decoder (`landfall_proto::nar::NarDecoder`) on arbitrary bytes.
//!
//! Checks beyond "no panic": every event comes out of a bounded decoder, the
//! bytes consumed never exceed the input, and an accepted NAR's summary
//! matches the hash and size of exactly the bytes consumed.

#![no_main]

use landfall_proto::nar::{Limits, NarDecoder, NarEvent, NarHasher};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits so the fuzzer reaches the limit checks with short inputs.
    let limits = Limits {
        max_name_len: 255,
        max_target_len: 4095,
        max_depth: 64,
        max_file_size: 1 << 20,
    };
    let mut dec = NarDecoder::with_limits(data, limits);
    let mut file_bytes: u64 = 0;
    loop {
        match dec.next_event() {
            Ok(None) => break,
            Ok(Some(NarEvent::Data(chunk))) => {
                assert!(!chunk.is_empty(), "a Data event is never empty");
                file_bytes += chunk.len() as u64;
            }
            Ok(Some(NarEvent::Entry { name })) => {
                assert!(!name.is_empty() && name != b"." && name != b"..");
                assert!(!name.contains(&b'/') && !name.contains(&0));
            }
            Ok(Some(NarEvent::Symlink { target })) => {
                assert!(!target.is_empty() && !target.contains(&0));
            }
            Ok(Some(_)) => {}
            Err(_) => return,
        }
    }
    assert!(file_bytes <= data.len() as u64);
    let consumed = dec.consumed();
    assert!(consumed <= data.len() as u64, "consumed past the input");
    let summary = dec.summary().expect("a complete NAR has a summary");
    let mut h = NarHasher::new();
    h.update(&data[..consumed as usize]);
    let (hash, size) = h.finish();
    assert_eq!(summary.nar_size, size);
    assert_eq!(summary.nar_hash, hash);
});
