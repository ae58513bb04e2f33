//! The initramfs cpio reader (`landfall_image::cpio::read_archive`) on
//! arbitrary bytes.
//!
//! Checks beyond "no panic": the prefix end lies inside the input, and an
//! accepted archive that the writer also accepts reads back to the same
//! entries, paths normalised as the writer does (`a//b/` → `a/b`).

#![no_main]

use landfall_image::cpio::{normalize_path, read_archive, read_archive_prefix, NewcWriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((entries, end)) = read_archive_prefix(data) else {
        return;
    };
    assert!(
        end <= data.len(),
        "prefix end {end} past the input ({})",
        data.len()
    );
    let mut w = NewcWriter::new(Vec::new());
    for e in &entries {
        if w.write_entry(e).is_err() {
            return;
        }
    }
    let Ok(bytes) = w.finish() else { return };
    let again = read_archive(&bytes).expect("the writer's output reads back");
    let expected: Vec<_> = entries
        .into_iter()
        .map(|mut e| {
            e.path = normalize_path(&e.path).expect("the writer accepted this path");
            e
        })
        .collect();
    assert_eq!(again, expected, "read → write → read changed the entries");
});
