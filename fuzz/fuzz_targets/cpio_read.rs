//! The initramfs cpio reader (`landfall_image::cpio::read_archive`) on
//! arbitrary bytes.
//!
//! Checks beyond "no panic": the prefix end lies inside the input, and an
//! accepted archive that the writer also accepts reads back to the same
//! entries (read → write → read is stable).

#![no_main]

use landfall_image::cpio::{read_archive, read_archive_prefix, NewcWriter};
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
    assert_eq!(again, entries, "read → write → read changed the entries");
});
