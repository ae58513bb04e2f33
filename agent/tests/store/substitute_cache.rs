//! The substituter against real binary caches made by Debian's Nix
//! (`nix copy --to file://…?compression=…&secret-key=…`), served over HTTP on
//! loopback by the shared test server (`landfall_tests::binary_cache`). Fetched paths are checked by
//! real Nix (`nix-store --verify --check-contents`, `nix path-info`); every
//! refusal leaves nothing registered and no file in the store.

use crate::store_common as common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use common::fixture::nix_command;
use common::path_info;
use landfall_agent::store::substitute::{
    Cancel, HttpClient, HttpError, SignatureError, SubstituteError, Substituter, TrustedKeys,
};
use landfall_agent::store::{query_missing, InstallError, StoreInstaller, UnpackError};
use landfall_proto::nar::{PathInfo, StorePath};
use landfall_tests::binary_cache::{
    self, copy_to_cache, key_pair, serve, serve_proxy, serve_redirects, serve_with, test_tls, Serve,
};
use landfall_tests::nixstore::verify_store;

/// Two paths built by real Nix: `b` refers to `a`; `a` has a 3 MB file
/// (random, so a cut or a flipped byte lands in file data), a script and a symlink.
const DRV: &str = r#"
let
  mk = name: script: builtins.derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" script ];
    PATH = "/usr/bin:/bin";
    salt = "landfall-substitute-test";
  };
  a = mk "subst-a" "mkdir $out; echo hello > $out/f; printf '#!/bin/sh\\necho x\\n' > $out/x; chmod +x $out/x; ln -s f $out/l; head -c 3000000 /dev/urandom > $out/big";
  b = mk "subst-b" "mkdir $out; echo ${a} > $out/ref; ln -s ${a}/f $out/af";
in b
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    /// `b`'s store path.
    top: String,
    /// The host's infos of `a` and `b`, sorted by path.
    host: Vec<PathInfo>,
    /// `test-1`'s secret key file and public key.
    secret: PathBuf,
    public: String,
    /// Another key pair's public key (`test-2`).
    other_public: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join("d.nix"), DRV).unwrap();
        let mut c = nix_command("nix");
        c.args(["build", "--no-link", "--json", "-f"])
            .arg(dir.join("d.nix"));
        let json: serde_json::Value = serde_json::from_slice(&binary_cache::run_ok(c)).unwrap();
        let top = json[0]["outputs"]["out"].as_str().unwrap().to_owned();
        let host = path_info(None, &top);
        assert_eq!(host.len(), 2);
        let (secret, public) = key_pair(&dir, "test-1");
        let (_, other_public) = key_pair(&dir, "test-2");
        Fixture {
            _dir: tmp,
            top,
            host,
            secret,
            public,
            other_public,
        }
    })
}

impl Fixture {
    /// A fresh cache in `dest` holding the closure, compressed as given,
    /// signed by test-1 unless `signed` is false.
    fn cache(&self, dest: &Path, compression: &str, signed: bool) {
        let secret = signed.then_some(self.secret.as_path());
        copy_to_cache(dest, &[&self.top], compression, secret);
    }

    /// [`Fixture::cache`] in a new temporary folder: (the folder, its `cache`).
    fn new_cache(&self, compression: &str, signed: bool) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("cache");
        self.cache(&cache, compression, signed);
        (tmp, cache)
    }

    fn info(&self, name: &str) -> &PathInfo {
        self.host
            .iter()
            .find(|i| i.path.as_str().ends_with(name))
            .unwrap()
    }

    fn a(&self) -> &PathInfo {
        self.info("-subst-a")
    }

    fn b(&self) -> &PathInfo {
        self.info("-subst-b")
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn substituter(url: &str, keys: &[&str]) -> Substituter {
    Substituter::new(
        url,
        TrustedKeys::parse(keys).unwrap(),
        HttpClient::new(b"").unwrap(),
    )
    .unwrap()
}

/// Queries and fetches `infos` (in order) from `sub` into `root`, then commits.
fn substitute(
    rt: &tokio::runtime::Runtime,
    sub: &Substituter,
    root: &Path,
    infos: &[PathInfo],
) -> Result<usize, SubstituteError> {
    let mut installer = StoreInstaller::open(root).unwrap();
    let result = (|| {
        rt.block_on(sub.cache_info())?;
        for info in infos {
            let v = rt
                .block_on(sub.query(info))?
                .unwrap_or_else(|| panic!("the cache lacks {}", info.path));
            let done = sub.fetch_into(rt.handle(), &v, &mut installer)?;
            assert_eq!(done.nar_hash, info.nar_hash);
        }
        Ok(())
    })();
    // Whatever failed, commit what verified: a refused path must not be among it.
    let registered = installer.commit().unwrap();
    result.map(|()| registered)
}

/// After a refusal: nothing valid, nothing in the store directory.
fn assert_untouched(root: &Path, infos: &[PathInfo]) {
    let all: Vec<StorePath> = infos.iter().map(|i| i.path.clone()).collect();
    assert_eq!(
        query_missing(root, &all).unwrap(),
        all,
        "nothing registered"
    );
    let store = root.join("nix/store");
    if store.exists() {
        assert_eq!(
            common::entries(&store),
            Vec::<Vec<u8>>::new(),
            "no file left"
        );
    }
}

fn new_root(tmp: &Path) -> PathBuf {
    let root = tmp.join("root");
    std::fs::create_dir(&root).unwrap();
    root
}

fn narinfo_file(cache: &Path, info: &PathInfo) -> PathBuf {
    binary_cache::narinfo_file(cache, info.path.as_str())
}

fn nar_file(cache: &Path, info: &PathInfo) -> PathBuf {
    binary_cache::nar_file(cache, info.path.as_str())
}

/// Fetches the signed closure (compressed as given) and has real Nix check it.
fn fetches_and_nix_verifies(compression: &str) {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    fx.cache(&cache, compression, true);
    let url = serve(cache.clone(), Serve::Whole);
    let root = new_root(tmp.path());
    let rt = runtime();
    // An untrusted key next to the trusted one changes nothing.
    let sub = substituter(&url, &[&fx.other_public, &fx.public]);
    let info = rt.block_on(sub.cache_info()).unwrap();
    assert_eq!(info.store_dir, "/nix/store");
    assert_eq!(info.priority, 50, "a file:// cache states no priority");

    let registered = substitute(&rt, &sub, &root, &fx.host).unwrap();
    assert_eq!(registered, 2);

    let verify = verify_store(&root);
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.stdout.is_empty());
    for line in stderr.lines() {
        assert!(line.ends_with("..."), "nix-store --verify reported: {line}");
    }

    // Real Nix sees the host's metadata, plus the cache's signature.
    let installed = path_info(Some(&root), &fx.top);
    let sig_of = |i: &PathInfo| {
        let text = std::fs::read_to_string(narinfo_file(&cache, i)).unwrap();
        text.lines()
            .filter_map(|l| l.strip_prefix("Sig: "))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for (got, want) in installed.iter().zip(&fx.host) {
        let sigs = sig_of(want);
        assert!(!sigs.is_empty() && sigs.iter().all(|s| got.signatures.contains(s)));
        let mut want = want.clone();
        let mut got = got.clone();
        want.signatures.clear();
        got.signatures.clear();
        assert_eq!(got, want);
    }
    for i in &fx.host {
        common::assert_canonical(&root.join("nix/store").join(i.path.base_name()));
    }

    // A path the cache lacks is `None`, not an error.
    let mut absent = fx.a().clone();
    absent.path = StorePath::parse("/nix/store/00000000000000000000000000000000-absent").unwrap();
    assert!(rt.block_on(sub.query(&absent)).unwrap().is_none());
}

#[test]
fn fetches_an_xz_cache() {
    fetches_and_nix_verifies("xz");
}

#[test]
fn fetches_a_zstd_cache() {
    fetches_and_nix_verifies("zstd");
}

#[test]
fn fetches_an_uncompressed_cache() {
    fetches_and_nix_verifies("none");
}

#[test]
fn fetches_a_bzip2_cache() {
    fetches_and_nix_verifies("bzip2");
}

#[test]
fn a_narinfo_without_compression_is_bzip2() {
    // Nix's default: a narinfo with no Compression line names a bzip2 NAR.
    let fx = fixture();
    let (tmp, cache) = fx.new_cache("bzip2", true);
    for i in &fx.host {
        let f = narinfo_file(&cache, i);
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.contains("Compression: bzip2\n"), "{text}");
        // Compression is not signed: the signature still holds.
        std::fs::write(&f, text.replace("Compression: bzip2\n", "")).unwrap();
    }
    let root = new_root(tmp.path());
    let rt = runtime();
    let sub = substituter(&serve(cache, Serve::Whole), &[&fx.public]);
    assert_eq!(substitute(&rt, &sub, &root, &fx.host).unwrap(), 2);
    let verify = verify_store(&root);
    assert!(
        verify.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn refuses_a_corrupt_or_truncated_bzip2_nar() {
    let fx = fixture();
    let a = fx.a().clone();
    // A flipped byte inside the compressed data: bzip2's block CRC (or the
    // Huffman decoding) fails before the unpacker could register anything.
    let err = refused(
        "bzip2",
        true,
        Serve::Whole,
        &[&fx.public],
        std::slice::from_ref(&a),
        |c| binary_cache::flip_middle(&nar_file(c, &a)),
    );
    match err {
        SubstituteError::Decompress { compression, .. } => assert_eq!(compression, "bzip2"),
        e => panic!("{e:?}"),
    }
    // Cut in half by the file itself (the server sends it whole, with its
    // own length): the stream ends before bzip2's end-of-stream marker.
    let err = refused(
        "bzip2",
        true,
        Serve::Whole,
        &[&fx.public],
        std::slice::from_ref(&a),
        |c| {
            let f = nar_file(c, &a);
            let b = std::fs::read(&f).unwrap();
            std::fs::write(&f, &b[..b.len() / 2]).unwrap();
        },
    );
    match err {
        SubstituteError::Decompress {
            compression,
            source,
            ..
        } => {
            assert_eq!(compression, "bzip2");
            assert_eq!(source.kind(), std::io::ErrorKind::UnexpectedEof, "{source}");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn a_cancelled_fetch_ends_at_once_and_leaves_nothing() {
    // The cache sends 1 MiB of the NAR, then holds the connection open: the
    // fetch can end only by cancellation (the client's idle timeout is the
    // default 30 s, and a timeout is another error). Then a fetch started
    // after the cancel does not even connect.
    let fx = fixture();
    let (tmp, cache) = fx.new_cache("bzip2", true);
    let url = serve(cache, Serve::StallAfter(1 << 20));
    let rt = runtime();
    let sub = substituter(&url, &[&fx.public]);
    let verified = rt.block_on(sub.query(fx.a())).unwrap().unwrap();
    let root = new_root(tmp.path());
    let mut installer = StoreInstaller::open(&root).unwrap();
    let cancel = Cancel::default();
    let err = std::thread::scope(|s| {
        let fetch =
            s.spawn(|| sub.fetch_into_cancellable(rt.handle(), &verified, &mut installer, &cancel));
        // Cancel once the unpacker has started writing the path.
        let dir = root.join("nix/store");
        landfall_tests::retry_until(Duration::from_secs(20), || {
            match common::entries(&dir).is_empty() {
                false => Ok(()),
                true => Err("nothing unpacked yet"),
            }
        })
        .expect("the fetch never started unpacking");
        cancel.cancel();
        fetch.join().unwrap().unwrap_err()
    });
    assert!(matches!(err, SubstituteError::Cancelled), "{err:?}");
    assert_eq!(installer.commit().unwrap(), 0);
    assert_untouched(&root, &[fx.a().clone()]);
    let mut installer = StoreInstaller::open(&root).unwrap();
    assert!(matches!(
        sub.fetch_into_cancellable(rt.handle(), &verified, &mut installer, &cancel)
            .unwrap_err(),
        SubstituteError::Cancelled
    ));
}

/// A cache of `compression`, optionally changed by `edit`, served by `mode`;
/// substituting `infos` from it with `keys` must fail; returns the error.
fn refused(
    compression: &str,
    signed: bool,
    mode: Serve,
    keys: &[&str],
    infos: &[PathInfo],
    edit: impl FnOnce(&Path),
) -> SubstituteError {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    fx.cache(&cache, compression, signed);
    edit(&cache);
    let url = serve(cache, mode);
    let root = new_root(tmp.path());
    let rt = runtime();
    let err = substitute(&rt, &substituter(&url, keys), &root, infos).unwrap_err();
    assert_untouched(&root, infos);
    err
}

#[test]
fn refuses_an_unsigned_narinfo() {
    let fx = fixture();
    let err = refused(
        "xz",
        false,
        Serve::Whole,
        &[&fx.public],
        &[fx.a().clone()],
        |_| {},
    );
    assert!(
        matches!(
            err,
            SubstituteError::Signature {
                source: SignatureError::Unsigned,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn refuses_a_signature_by_an_untrusted_key() {
    let fx = fixture();
    let err = refused(
        "xz",
        true,
        Serve::Whole,
        &[&fx.other_public],
        &[fx.a().clone()],
        |_| {},
    );
    match err {
        SubstituteError::Signature {
            source: SignatureError::Untrusted(names),
            ..
        } => assert_eq!(names, "test-1"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn refuses_a_narinfo_changed_after_signing() {
    // The cache claims another NarSize (and the controller expects it too):
    // the signature no longer covers the fingerprint.
    let fx = fixture();
    let mut a = fx.a().clone();
    a.nar_size += 8;
    let err = refused(
        "none",
        true,
        Serve::Whole,
        &[&fx.public],
        &[a.clone()],
        |c| {
            let f = narinfo_file(c, &a);
            let text = std::fs::read_to_string(&f).unwrap();
            let old = format!("NarSize: {}", a.nar_size - 8);
            assert!(text.contains(&old));
            std::fs::write(&f, text.replace(&old, &format!("NarSize: {}", a.nar_size))).unwrap();
        },
    );
    match err {
        SubstituteError::Signature {
            source: SignatureError::Invalid(name),
            ..
        } => assert_eq!(name, "test-1"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn refuses_a_nar_whose_hash_differs_from_its_narinfo() {
    let fx = fixture();
    let a = fx.a().clone();
    let err = refused(
        "none",
        true,
        Serve::Whole,
        &[&fx.public],
        std::slice::from_ref(&a),
        |c| {
            // One byte in the middle of the big file's contents.
            let f = nar_file(c, &a);
            let mut nar = std::fs::read(&f).unwrap();
            let mid = nar.len() / 2;
            nar[mid] ^= 0x55;
            std::fs::write(&f, nar).unwrap();
        },
    );
    match err {
        SubstituteError::Install(InstallError::Unpack(UnpackError::HashMismatch {
            path,
            expected,
            ..
        })) => {
            assert_eq!(path, a.path);
            assert_eq!(expected, a.nar_hash);
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn refuses_references_other_than_expected() {
    let fx = fixture();
    let mut b = fx.b().clone();
    assert_eq!(b.references, vec![fx.a().path.clone()]);
    b.references.clear();
    let err = refused("xz", true, Serve::Whole, &[&fx.public], &[b], |_| {});
    match err {
        SubstituteError::Mismatch {
            field,
            expected,
            found,
            ..
        } => {
            assert_eq!(field, "References");
            assert_eq!(expected, "");
            assert_eq!(found, fx.a().path.base_name());
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn refuses_a_nar_hash_other_than_expected() {
    let fx = fixture();
    let mut b = fx.b().clone();
    b.nar_hash = fx.a().nar_hash;
    let err = refused("xz", true, Serve::Whole, &[&fx.public], &[b], |_| {});
    assert!(
        matches!(
            err,
            SubstituteError::Mismatch {
                field: "NarHash",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn refuses_a_cache_that_stops_mid_file() {
    let fx = fixture();
    for compression in ["none", "xz"] {
        let err = refused(
            compression,
            true,
            Serve::CutAfter(1 << 20),
            &[&fx.public],
            &[fx.a().clone()],
            |_| {},
        );
        assert!(
            matches!(err, SubstituteError::Http(HttpError::Body { .. })),
            "{compression}: {err:?}"
        );
    }
}

#[test]
fn refuses_an_unreachable_cache() {
    let fx = fixture();
    // A port nobody listens on: bound, then closed.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let rt = runtime();
    let sub = substituter(&dead, &[&fx.public]);
    let connect = |e: SubstituteError| match e {
        SubstituteError::Http(HttpError::Connect { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        e => panic!("{e:?}"),
    };
    connect(rt.block_on(sub.cache_info()).unwrap_err());
    connect(rt.block_on(sub.query(fx.a())).unwrap_err());

    // A narinfo verified from a live cache whose NAR host is gone.
    let (tmp, cache) = fx.new_cache("zstd", true);
    let live = substituter(&serve(cache, Serve::Whole), &[&fx.public]);
    let verified = rt.block_on(live.query(fx.a())).unwrap().unwrap();
    let root = new_root(tmp.path());
    let mut installer = StoreInstaller::open(&root).unwrap();
    connect(
        sub.fetch_into(rt.handle(), &verified, &mut installer)
            .unwrap_err(),
    );
    assert_eq!(installer.commit().unwrap(), 0);
    assert_untouched(&root, &[fx.a().clone()]);
}

#[test]
fn refuses_an_unsupported_compression_by_name() {
    // Compression is not signed: a cache may say anything there.
    let fx = fixture();
    let a = fx.a().clone();
    let err = refused(
        "none",
        true,
        Serve::Whole,
        &[&fx.public],
        std::slice::from_ref(&a),
        |c| {
            let f = narinfo_file(c, &a);
            let text = std::fs::read_to_string(&f).unwrap();
            std::fs::write(&f, text.replace("Compression: none", "Compression: br")).unwrap();
        },
    );
    match err {
        SubstituteError::Compression { compression, .. } => assert_eq!(compression, "br"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn refuses_a_cache_of_another_store_dir() {
    let fx = fixture();
    let err = refused(
        "none",
        true,
        Serve::Whole,
        &[&fx.public],
        &[fx.a().clone()],
        |c| {
            std::fs::write(c.join("nix-cache-info"), "StoreDir: /gnu/store\n").unwrap();
        },
    );
    match err {
        SubstituteError::StoreDir { store_dir, .. } => assert_eq!(store_dir, "/gnu/store"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn fetches_over_https_with_an_extra_ca() {
    let fx = fixture();
    let (tmp, cache) = fx.new_cache("zstd", true);
    let (ca_pem, tls) = test_tls();
    let url = serve_with(cache, Serve::Whole, Some(tls));
    assert!(url.starts_with("https://127.0.0.1:"));
    let sub = Substituter::new(
        &url,
        TrustedKeys::parse(&[&fx.public]).unwrap(),
        HttpClient::new(ca_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let root = new_root(tmp.path());
    let rt = runtime();
    assert_eq!(substitute(&rt, &sub, &root, &fx.host).unwrap(), 2);
    assert_eq!(path_info(Some(&root), &fx.top).len(), 2);
    assert!(verify_store(&root).stdout.is_empty());
}

#[test]
fn refuses_https_from_an_unknown_ca() {
    let fx = fixture();
    let (tmp, cache) = fx.new_cache("zstd", true);
    let (_, tls) = test_tls();
    let url = serve_with(cache, Serve::Whole, Some(tls));
    // Only the built-in webpki roots: the test CA is not among them.
    let root = new_root(tmp.path());
    let rt = runtime();
    let err = substitute(
        &rt,
        &substituter(&url, &[&fx.public]),
        &root,
        &[fx.a().clone()],
    )
    .unwrap_err();
    assert!(
        matches!(err, SubstituteError::Http(HttpError::Tls { .. })),
        "{err:?}"
    );
    assert_untouched(&root, &[fx.a().clone()]);
}

#[test]
fn refuses_a_cache_that_stalls() {
    // Short timeouts so the test is quick; the assertion is on the error, not on time.
    let fx = fixture();
    let short = || {
        HttpClient::new(b"")
            .unwrap()
            .with_timeouts(Duration::from_secs(2), Duration::from_secs(2))
    };
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();

    // Never answers at all.
    let silent = serve(tmp.path().join("nothing"), Serve::Silent);
    let keys = TrustedKeys::parse(&[&fx.public]).unwrap();
    let sub = Substituter::new(&silent, keys.clone(), short()).unwrap();
    match rt.block_on(sub.cache_info()).unwrap_err() {
        SubstituteError::Http(HttpError::Timeout { what, .. }) => assert_eq!(what, "response"),
        e => panic!("{e:?}"),
    }

    // Answers, sends 1 MiB of the NAR, then nothing.
    let cache = tmp.path().join("cache");
    fx.cache(&cache, "none", true);
    let url = serve(cache, Serve::StallAfter(1 << 20));
    let root = new_root(tmp.path());
    let sub = Substituter::new(&url, keys, short()).unwrap();
    match substitute(&rt, &sub, &root, std::slice::from_ref(fx.a())).unwrap_err() {
        SubstituteError::Http(HttpError::Timeout { what, .. }) => assert_eq!(what, "body data"),
        e => panic!("{e:?}"),
    }
    assert_untouched(&root, std::slice::from_ref(fx.a()));
}

#[test]
fn follows_redirects_and_refuses_a_redirect_loop() {
    let fx = fixture();
    let (tmp, cache) = fx.new_cache("xz", true);
    // Every file (nix-cache-info, narinfos, NARs) is behind a 302.
    let url = serve_redirects(Some(serve(cache, Serve::Whole)));
    let root = new_root(tmp.path());
    let rt = runtime();
    let sub = substituter(&url, &[&fx.public]);
    assert_eq!(substitute(&rt, &sub, &root, &fx.host).unwrap(), 2);
    verify_store(&root);

    let looping = substituter(&serve_redirects(None), &[&fx.public]);
    match rt.block_on(looping.cache_info()).unwrap_err() {
        SubstituteError::Http(HttpError::TooManyRedirects { .. }) => {}
        e => panic!("{e:?}"),
    }
}

#[test]
fn goes_through_an_http_proxy_for_http_and_https() {
    let fx = fixture();
    let (tmp, cache) = fx.new_cache("zstd", true);
    let (proxy, used) = serve_proxy();
    let rt = runtime();
    let keys = TrustedKeys::parse(&[fx.public.as_str()]).unwrap();

    // http: requests in absolute form.
    let plain = serve(cache.clone(), Serve::Whole);
    let client = HttpClient::new(b"").unwrap().with_proxy(&proxy).unwrap();
    let sub = Substituter::new(&plain, keys.clone(), client).unwrap();
    let root = tmp.path().join("root-http");
    std::fs::create_dir(&root).unwrap();
    assert_eq!(substitute(&rt, &sub, &root, &fx.host).unwrap(), 2);
    let after_http = used.load(std::sync::atomic::Ordering::Relaxed);
    assert!(after_http >= 5, "the proxy saw {after_http} requests");

    // https: a CONNECT tunnel, TLS (test CA) end to end with the cache.
    let (ca, tls) = test_tls();
    let secure = serve_with(cache, Serve::Whole, Some(tls));
    let client = HttpClient::new(ca.as_bytes())
        .unwrap()
        .with_proxy(&proxy)
        .unwrap();
    let sub = Substituter::new(&secure, keys.clone(), client).unwrap();
    let root = tmp.path().join("root-https");
    std::fs::create_dir(&root).unwrap();
    assert_eq!(substitute(&rt, &sub, &root, &fx.host).unwrap(), 2);
    assert!(used.load(std::sync::atomic::Ordering::Relaxed) >= after_http + 5);

    // A proxy that is not there: the connection to it fails, by its name.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let client = HttpClient::new(b"").unwrap().with_proxy(&dead).unwrap();
    let sub = Substituter::new(&plain, keys, client).unwrap();
    match rt.block_on(sub.cache_info()).unwrap_err() {
        SubstituteError::Http(HttpError::Connect { url, .. }) => assert_eq!(url, dead),
        e => panic!("{e:?}"),
    }
    assert!(HttpClient::new(b"")
        .unwrap()
        .with_proxy("socks5://h:1")
        .is_err());
}
