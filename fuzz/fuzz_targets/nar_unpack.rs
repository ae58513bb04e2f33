//! The agent's `NarUnpacker` on arbitrary bytes, unpacking into a temporary
//! directory. The expected hash and size are those of the input itself, so
//! every input that is a valid NAR is written out in full.
//!
//! Checks beyond "no panic": nothing is ever created outside
//! `<root>/nix/store`; a rejected NAR leaves the store empty (no temporary
//! tree behind); an accepted one is exactly the store path, and dumping it
//! back gives the input bytes (the decoder only accepts canonical NARs).

#![no_main]

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use landfall_agent::store::NarUnpacker;
use landfall_proto::nar::{dump_path, NarHasher, StorePath};
use libfuzzer_sys::fuzz_target;

const PATH: &str = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-fuzz";

struct Fixture {
    root: tempfile::TempDir,
    unpacker: NarUnpacker,
    path: StorePath,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = tempfile::tempdir().expect("a temporary directory");
        let unpacker = NarUnpacker::open(root.path()).expect("open the store");
        let path = StorePath::parse(PATH).expect("a valid store path");
        Fixture {
            root,
            unpacker,
            path,
        }
    })
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("list a directory")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let mut h = NarHasher::new();
    h.update(data);
    let (hash, size) = h.finish();
    let result = f.unpacker.unpack(&f.path, &hash, size, data);
    assert_eq!(
        names(f.root.path()),
        ["nix"],
        "something written outside the store"
    );
    assert_eq!(
        names(&f.root.path().join("nix")),
        ["store"],
        "something written outside the store"
    );
    let store = f.unpacker.store_dir();
    match result {
        Ok(done) => {
            assert_eq!(names(store), [f.path.base_name()]);
            assert_eq!(done.nar_size, size);
            let mut again = Vec::new();
            dump_path(&store.join(f.path.base_name()), &mut again).expect("dump the unpacked path");
            assert!(
                again == data,
                "unpacked tree does not dump back to the input"
            );
            f.unpacker
                .remove(&f.path)
                .expect("remove the unpacked path");
        }
        Err(_) => assert!(
            names(store).is_empty(),
            "a rejected NAR left {:?}",
            names(store)
        ),
    }
});
