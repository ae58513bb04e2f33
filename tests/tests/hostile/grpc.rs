//! Hostile gRPC input against the real agent binary on loopback (mutual TLS with
//! a good session, so only the payload is hostile): garbage protobuf, messages
//! over the agent's size limit, PutClosure streams that lie (data outside a
//! path, NAR longer or shorter than declared, wrong hash, invalid store paths),
//! NARs that try every escape, and a zstd bomb. Each is refused with a status
//! naming the problem, nothing is registered or written outside its place, and
//! the agent serves a good client afterwards.

use crate::hostile_common;

use std::path::Path;

use bytes::{Buf, BufMut};
use hostile_common::{assert_serving, channel, Agent, Session};
use landfall_proto::nar::block::MAX_BLOCK_DECOMPRESSED;
use landfall_proto::nar::wire::{put_len, RawNar as Nar};
use landfall_proto::nar::NarHash;
use landfall_proto::v1::agent_client::AgentClient;
use landfall_proto::v1::closure_chunk::Kind;
use landfall_proto::v1::{
    ClosureBegin, ClosureChunk, ClosureEnd, PathEnd, QueryMissingRequest, StorePathInfo,
};
use landfall_tests::TestDir;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

/// The agent's request size limit (agent/src/server.rs `MAX_MESSAGE_BYTES`).
const AGENT_LIMIT: usize = 2 << 20;

// ------------------------------------------------------------ raw gRPC frames

/// Sends whatever bytes it is given as the message, and takes any reply as bytes.
#[derive(Clone, Copy, Default)]
struct RawCodec;
struct RawEnc;
struct RawDec;

impl Encoder for RawEnc {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let v = src.chunk().to_vec();
        src.advance(v.len());
        Ok(Some(v))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEnc;
    type Decoder = RawDec;
    fn encoder(&mut self) -> RawEnc {
        RawEnc
    }
    fn decoder(&mut self) -> RawDec {
        RawDec
    }
}

async fn raw_unary(ch: tonic::transport::Channel, method: &'static str, body: Vec<u8>) -> Status {
    let mut g = tonic::client::Grpc::new(ch).max_encoding_message_size(usize::MAX);
    g.ready().await.unwrap();
    g.unary(
        tonic::Request::new(body),
        http::uri::PathAndQuery::from_static(method),
        RawCodec,
    )
    .await
    .expect_err("the agent answered a hostile message")
}

/// The first error of a streaming call whose request stream is `frames`.
async fn raw_streaming(
    ch: tonic::transport::Channel,
    method: &'static str,
    frames: Vec<Vec<u8>>,
) -> Status {
    let mut g = tonic::client::Grpc::new(ch).max_encoding_message_size(usize::MAX);
    let mut tries = 0;
    let mut s = loop {
        g.ready().await.unwrap();
        let resp = g
            .streaming(
                tonic::Request::new(tokio_stream::iter(frames.clone())),
                http::uri::PathAndQuery::from_static(method),
                RawCodec,
            )
            .await;
        match resp {
            Ok(r) => break r.into_inner(),
            Err(e) if is_busy(&e) && tries < 100 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => return e,
        }
    };
    drain_to_error(
        &mut s,
        "the agent finished a hostile stream without an error",
    )
    .await
}

fn encode(m: &impl prost::Message) -> Vec<u8> {
    m.encode_to_vec()
}

// ------------------------------------------------------------ NARs

fn good_nar() -> Vec<u8> {
    Nar::new()
        .dir()
        .entry(b"bin")
        .dir()
        .entry(b"hello")
        .file(b"#!/bin/sh\necho hi\n")
        .close() // entry hello
        .close() // directory bin
        .close() // entry bin
        .close() // the root directory
        .0
}

fn info(path: &str, nar: &[u8]) -> StorePathInfo {
    use sha2::Digest;
    let digest: [u8; 32] = sha2::Sha256::digest(nar).into();
    StorePathInfo {
        path: path.into(),
        nar_hash: NarHash(digest).to_nix32(),
        nar_size: nar.len() as u64,
        ..Default::default()
    }
}

fn chunk(k: Kind) -> ClosureChunk {
    ClosureChunk { kind: Some(k) }
}

fn begin(n: u32) -> ClosureChunk {
    chunk(Kind::Begin(ClosureBegin {
        root: String::new(),
        paths: n,
        nar_bytes: 0,
        substitute: None,
    }))
}

/// One path's messages: its info, its NAR as zstd blocks of 64 KiB, its end.
fn path_msgs(info: StorePathInfo, nar: &[u8]) -> Vec<ClosureChunk> {
    let mut v = vec![chunk(Kind::Path(info))];
    v.extend(
        nar.chunks(64 << 10)
            .map(|c| chunk(Kind::ZstdBlock(zstd::bulk::compress(c, 3).unwrap()))),
    );
    v.push(chunk(Kind::PathEnd(PathEnd {})));
    v
}

fn end() -> ClosureChunk {
    chunk(Kind::End(ClosureEnd {
        toplevel: String::new(),
    }))
}

/// Runs PutClosure with `msgs`; the error the job ends with.
/// The previous job frees the agent's job slot a moment after its error reached
/// us: a "busy" answer within a few seconds is retried.
fn is_busy(e: &Status) -> bool {
    e.code() == Code::FailedPrecondition && e.message().starts_with("busy: ")
}

async fn put_closure_err(ch: tonic::transport::Channel, msgs: Vec<ClosureChunk>) -> Status {
    let mut c = AgentClient::new(ch);
    let mut tries = 0;
    let mut s = loop {
        match c.put_closure(tokio_stream::iter(msgs.clone())).await {
            Ok(r) => break r.into_inner(),
            Err(e) if is_busy(&e) && tries < 100 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => return e,
        }
    };
    drain_to_error(&mut s, "PutClosure accepted a hostile stream").await
}

/// QueryMissing, retrying while the agent is still winding the last job down.
async fn query_missing(
    ch: tonic::transport::Channel,
    paths: &[&str],
) -> Result<Vec<String>, Status> {
    let mut c = AgentClient::new(ch);
    let mut tries = 0;
    loop {
        let r = c
            .query_missing(QueryMissingRequest {
                paths: paths.iter().map(|p| p.to_string()).collect(),
                root: String::new(),
                // As an older controller: judged by the database's narHash.
                nar_hashes: Vec::new(),
            })
            .await;
        match r {
            Err(e) if is_busy(&e) && tries < 100 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            r => return r.map(|r| r.into_inner().missing),
        }
    }
}

async fn missing(ch: tonic::transport::Channel, paths: &[&str]) -> Vec<String> {
    query_missing(ch, paths).await.expect("QueryMissing")
}

/// Every file under `root`, relative, sorted (the store's database excepted).
fn files_under(root: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if rel.starts_with("nix/var/nix/db") {
                continue;
            }
            out.push(rel);
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

struct Setup {
    _tdir: TestDir,
    dir: std::path::PathBuf,
    root: std::path::PathBuf,
    session: Session,
    agent: Agent,
}

fn setup(label: &str) -> Setup {
    let tdir = TestDir::new(label).unwrap();
    let dir = tdir.path().to_path_buf();
    let session = Session::new(&dir);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let agent = Agent::start(&dir, &session.agent_tls, &root, &[]);
    Setup {
        _tdir: tdir,
        dir,
        root,
        session,
        agent,
    }
}

const P1: &str = "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-good";
const P2: &str = "/nix/store/1mdqa9w1p6cmli6976v4wi0sw9r4p5pr-hostile";

// ------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_messages_are_refused_and_the_agent_keeps_serving() {
    let s = setup("hostile-grpc-garbage");
    let (addr, tls) = (s.agent.addr.clone(), s.session.controller_tls.clone());
    let ch = channel(&addr, &tls).await;

    // Not protobuf at all: an invalid wire type.
    let e = raw_unary(
        ch.clone(),
        "/landfall.v1.Agent/QueryMissing",
        vec![0xff; 64],
    )
    .await;
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().starts_with(
            "invalid-request: the request is not a valid landfall.v1 message (failed to decode Protobuf message"
        ),
        "{e:?}"
    );
    s.agent.wait_log("Request refused (gRPC status 3): invalid-request: the request is not a valid landfall.v1 message");

    // A field claiming more bytes than the message has.
    let mut lying = vec![0x0a]; // field 1 (paths), length-delimited
    lying.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // length 4 GiB
    lying.extend_from_slice(b"short");
    let e = raw_unary(ch.clone(), "/landfall.v1.Agent/QueryMissing", lying).await;
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("buffer underflow"), "{e:?}");

    // Valid protobuf, but a string field that is not UTF-8.
    let e = raw_unary(
        ch.clone(),
        "/landfall.v1.Agent/QueryMissing",
        vec![0x0a, 0x02, 0xc3, 0x28],
    )
    .await;
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("UTF-8"), "{e:?}");

    // Over the agent's size limit: refused from the frame header, before decoding.
    let e = raw_unary(
        ch.clone(),
        "/landfall.v1.Agent/QueryMissing",
        vec![0u8; AGENT_LIMIT + 1],
    )
    .await;
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert!(
        e.message().contains(&format!(
            "decoded message length too large: found {} bytes, the limit is: {AGENT_LIMIT} bytes",
            AGENT_LIMIT + 1
        )),
        "{e:?}"
    );
    s.agent.wait_log("Request refused (gRPC status 11)");

    // Garbage inside the closure stream, and an oversized chunk: the job fails,
    // saying why, and the slot is free again.
    let e = raw_streaming(
        ch.clone(),
        "/landfall.v1.Agent/PutClosure",
        vec![encode(&begin(1)), vec![0xff; 32]],
    )
    .await;
    assert!(
        e.message().contains("failed to decode Protobuf message"),
        "{e:?}"
    );
    let e = raw_streaming(
        ch.clone(),
        "/landfall.v1.Agent/PutClosure",
        vec![encode(&begin(1)), vec![0u8; AGENT_LIMIT + 8]],
    )
    .await;
    assert!(
        e.message().contains("decoded message length too large"),
        "{e:?}"
    );
    // An empty message (no `kind`).
    let e = put_closure_err(ch.clone(), vec![ClosureChunk { kind: None }]).await;
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("an empty closure message"), "{e:?}");

    assert_serving(&addr, &tls);
    assert!(
        files_under(&s.root).iter().all(|f| !f.contains("store/")),
        "something was written to the store: {:?}",
        files_under(&s.root)
    );
    let _ = &s.dir;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closure_streams_that_lie_are_refused_and_nothing_is_registered() {
    let s = setup("hostile-grpc-lies");
    let (addr, tls) = (s.agent.addr.clone(), s.session.controller_tls.clone());
    let ch = channel(&addr, &tls).await;
    let nar = good_nar();

    // Data before any path is declared.
    let e = put_closure_err(
        ch.clone(),
        vec![begin(1), chunk(Kind::Raw(nar.clone())), end()],
    )
    .await;
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("closure data outside a path"), "{e:?}");

    // A stream that does not start with `begin`.
    let e = put_closure_err(ch.clone(), path_msgs(info(P2, &nar), &nar)).await;
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("must start with `begin`"), "{e:?}");

    // NAR longer than declared, shorter than declared, wrong hash.
    let mut longer = info(P2, &nar);
    longer.nar_size -= 8;
    let mut shorter = info(P2, &nar);
    shorter.nar_size += 8;
    let mut wrong_hash = info(P2, &nar);
    wrong_hash.nar_hash = info(P2, b"something else").nar_hash;
    for (label, i, says) in [
        ("longer", longer, "size"),
        ("shorter", shorter, "size"),
        ("wrong-hash", wrong_hash, "hash"),
    ] {
        let mut msgs = vec![begin(2)];
        msgs.extend(path_msgs(info(P1, &nar), &nar));
        msgs.extend(path_msgs(i, &nar));
        msgs.push(end());
        let e = put_closure_err(ch.clone(), msgs).await;
        assert_eq!(e.code(), Code::DataLoss, "{label}: {e:?}");
        assert!(
            e.message().starts_with(&format!("rejected: {P2}: ")),
            "{label}: {e:?}"
        );
        assert!(
            e.message().to_lowercase().contains(says),
            "{label}: the reason is not named: {e:?}"
        );
        eprintln!("{label}: {}", e.message());
        // The good path before it is kept (verified); the liar is not registered
        // and leaves nothing.
        assert_eq!(missing(ch.clone(), &[P1, P2]).await, vec![P2.to_string()]);
        assert!(
            !s.root.join(&P2[1..]).exists(),
            "{label}: files left behind"
        );
    }

    // A second path's data announced in the middle of the first.
    let mut msgs = vec![begin(2), chunk(Kind::Path(info(P2, &nar)))];
    msgs.push(chunk(Kind::Raw(nar[..nar.len() / 2].to_vec())));
    msgs.push(chunk(Kind::Path(info(P1, &nar))));
    let e = put_closure_err(ch.clone(), msgs).await;
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("before the path's end"), "{e:?}");

    // Extra data after the NAR's end inside the same path.
    let mut msgs = vec![begin(1)];
    let mut p = path_msgs(info(P2, &nar), &nar);
    let end_of_path = p.pop().unwrap();
    p.push(chunk(Kind::Raw(b"trailing".to_vec())));
    p.push(end_of_path);
    msgs.extend(p);
    let e = put_closure_err(ch.clone(), msgs).await;
    assert!(
        matches!(e.code(), Code::InvalidArgument | Code::DataLoss),
        "{e:?}"
    );
    assert!(e.message().contains(P2), "{e:?}");
    assert_eq!(missing(ch.clone(), &[P2]).await, vec![P2.to_string()]);

    // Invalid store paths: in a closure and in QueryMissing.
    let long_name = format!(
        "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-{}",
        "a".repeat(212)
    );
    let bad_paths = [
        "/nix/store/emdqa9w1p6cmli6976v4wi0sw9r4p5pr-bad-hash-char",
        "/nix/store/0MDQA9W1P6CMLI6976V4WI0SW9R4P5PR-upper-case-hash",
        "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5p-short-hash",
        long_name.as_str(),
        "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-.",
        "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-..",
        "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-a/../../../etc",
        "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-nul\0x",
        "/gnu/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-wrong-store-dir",
        "/nix/store/../etc/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-x",
        "/",
        "",
    ];
    for bad in bad_paths {
        let e = put_closure_err(
            ch.clone(),
            vec![begin(1), chunk(Kind::Path(info(bad, &nar)))],
        )
        .await;
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}: {e:?}");
        assert!(
            e.message().starts_with("invalid-request: "),
            "{bad:?}: {e:?}"
        );
        let e = query_missing(ch.clone(), &[bad]).await.expect_err(bad);
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}: {e:?}");
        assert!(e.message().contains("invalid store path"), "{bad:?}: {e:?}");
    }
    // A reference that is not a store path.
    let mut i = info(P2, &nar);
    i.references = vec!["/etc/passwd".into()];
    let e = put_closure_err(ch.clone(), vec![begin(1), chunk(Kind::Path(i))]).await;
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    assert_serving(&addr, &tls);
    let store: Vec<String> = files_under(&s.root)
        .into_iter()
        .filter(|f| f.starts_with("nix/store/"))
        .map(|f| {
            f["nix/store/".len()..]
                .split('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        store.iter().all(|f| P1.ends_with(f.as_str())),
        "only the good path may be in the store: {store:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nars_that_try_to_escape_are_rejected_end_to_end() {
    let s = setup("hostile-grpc-nar");
    let (addr, tls) = (s.agent.addr.clone(), s.session.controller_tls.clone());
    let ch = channel(&addr, &tls).await;
    let outside = s.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let outside_target = outside.display().to_string();

    let mut huge_name = Nar::new().dir().s(&[b"entry", b"(", b"name"]).0;
    put_len(&mut huge_name, 1 << 40);
    huge_name.extend_from_slice(&[b'a'; 4096]);
    let mut beyond = Nar::new().s(&[b"(", b"type", b"regular", b"contents"]).0;
    put_len(&mut beyond, 1 << 20);
    beyond.extend_from_slice(&[7u8; 1000]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dot-dot",
            Nar::new().dir().entry(b"..").file(b"x").close().close().0,
            "name",
        ),
        (
            "dot",
            Nar::new().dir().entry(b".").file(b"x").close().close().0,
            "name",
        ),
        (
            "slash",
            Nar::new()
                .dir()
                .entry(b"a/../../../escape")
                .file(b"x")
                .close()
                .close()
                .0,
            "name",
        ),
        (
            "absolute",
            Nar::new()
                .dir()
                .entry(b"/tmp/escape")
                .file(b"x")
                .close()
                .close()
                .0,
            "name",
        ),
        (
            "nul",
            Nar::new().dir().entry(b"a\0b").file(b"x").close().close().0,
            "name",
        ),
        (
            "empty-name",
            Nar::new().dir().entry(b"").file(b"x").close().close().0,
            "name",
        ),
        (
            "symlink-then-through-it",
            Nar::new()
                .dir()
                .entry(b"a")
                .link(outside_target.as_bytes())
                .close()
                .entry(b"a")
                .dir()
                .entry(b"escape")
                .file(b"pwned")
                .close()
                .close()
                .close()
                .0,
            "",
        ),
        (
            "children-inside-a-symlink",
            Nar::new()
                .dir()
                .entry(b"a")
                .s(&[
                    b"(",
                    b"type",
                    b"symlink",
                    b"target",
                    outside_target.as_bytes(),
                ])
                .s(&[b"entry", b"(", b"name", b"escape", b"node"])
                .file(b"pwned")
                .0,
            "",
        ),
        (
            "duplicate",
            Nar::new()
                .dir()
                .entry(b"a")
                .file(b"1")
                .close()
                .entry(b"a")
                .file(b"2")
                .close()
                .close()
                .0,
            "",
        ),
        (
            "unsorted",
            Nar::new()
                .dir()
                .entry(b"b")
                .file(b"1")
                .close()
                .entry(b"a")
                .file(b"2")
                .close()
                .close()
                .0,
            "",
        ),
        ("huge-name-length", huge_name, "length"),
        ("file-beyond-the-stream", beyond, ""),
        ("not-a-nar", b"GIF89a this is not a NAR at all".to_vec(), ""),
    ];
    for (label, nar, says) in cases {
        let mut msgs = vec![begin(1)];
        msgs.extend(path_msgs(info(P2, &nar), &nar));
        msgs.push(end());
        let e = put_closure_err(ch.clone(), msgs).await;
        assert_eq!(e.code(), Code::DataLoss, "{label}: {e:?}");
        assert!(
            e.message().starts_with(&format!("rejected: {P2}: ")),
            "{label}: {e:?}"
        );
        assert!(e.message().to_lowercase().contains(says), "{label}: {e:?}");
        eprintln!("{label}: {}", e.message());
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            0,
            "{label}: wrote outside the store path"
        );
        assert!(!s.dir.join("escape").exists() && !Path::new("/tmp/escape").exists());
        assert!(
            !s.root.join(&P2[1..]).exists(),
            "{label}: files left behind"
        );
        assert_eq!(missing(ch.clone(), &[P2]).await, vec![P2.to_string()]);
    }
    // A good NAR after all that is accepted and lands where it should.
    let nar = good_nar();
    let mut msgs = vec![begin(1)];
    msgs.extend(path_msgs(info(P1, &nar), &nar));
    msgs.push(end());
    let mut c = AgentClient::new(ch.clone());
    let mut st = c
        .put_closure(tokio_stream::iter(msgs))
        .await
        .unwrap()
        .into_inner();
    while st.message().await.unwrap().is_some() {}
    assert!(missing(ch.clone(), &[P1]).await.is_empty());
    assert_eq!(
        std::fs::read(s.root.join(&P1[1..]).join("bin/hello")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    assert_serving(&addr, &tls);
}

/// A zstd stream expanding to 4 GiB, for a path that declares a 1 KiB NAR, in
/// chunks from the same encoder.
fn bomb() -> (Vec<Vec<u8>>, u64) {
    let mut first = Nar::new().s(&[b"(", b"type", b"regular", b"contents"]).0;
    put_len(&mut first, 4 << 30);
    first.resize(MAX_BLOCK_DECOMPRESSED, 0);
    let zeros = zstd::bulk::compress(&vec![0u8; MAX_BLOCK_DECOMPRESSED], 19).unwrap();
    let mut frames = vec![zstd::bulk::compress(&first, 19).unwrap()];
    frames.extend(std::iter::repeat_n(zeros, 4095));
    let expanded = (frames.len() * MAX_BLOCK_DECOMPRESSED) as u64;
    (frames, expanded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zstd_bomb_is_cut_at_the_declared_size_with_little_memory() {
    let s = setup("hostile-grpc-bomb");
    let (addr, tls) = (s.agent.addr.clone(), s.session.controller_tls.clone());
    let ch = channel(&addr, &tls).await;
    let (frames, expanded) = tokio::task::spawn_blocking(bomb).await.unwrap();
    let wire: usize = frames.iter().map(Vec::len).sum();
    let ratio = expanded / wire as u64;
    eprintln!(
        "bomb: {} zstd blocks, {wire} bytes expanding to {expanded} bytes (ratio {ratio}:1)",
        frames.len()
    );
    assert!(ratio > 1000);
    let declared = StorePathInfo {
        path: P2.into(),
        nar_hash: info(P2, b"").nar_hash,
        nar_size: 1024,
        ..Default::default()
    };
    let before = s.agent.peak_rss_kib();
    let t = std::time::Instant::now();
    let mut msgs = vec![begin(1)];
    msgs.push(chunk(Kind::Path(declared)));
    msgs.extend(frames.into_iter().map(|f| chunk(Kind::ZstdBlock(f))));
    msgs.push(chunk(Kind::PathEnd(PathEnd {})));
    msgs.push(end());
    let e = put_closure_err(ch.clone(), msgs).await;
    let took = t.elapsed();
    assert_eq!(e.code(), Code::DataLoss, "{e:?}");
    assert!(
        e.message().starts_with(&format!("rejected: {P2}: ")),
        "{e:?}"
    );
    let peak = s.agent.peak_rss_kib();
    eprintln!(
        "bomb refused in {:.2} s: {}; agent peak RSS {} KiB before, {} KiB after",
        took.as_secs_f64(),
        e.message(),
        before,
        peak
    );
    // Bounded by the declared size: far from the 4 GiB it would expand to.
    assert!(peak < 96 * 1024, "the agent's RSS peaked at {peak} KiB");
    assert!(!s.root.join(&P2[1..]).exists());
    let du: u64 = files_under(&s.root)
        .iter()
        .filter_map(|f| std::fs::symlink_metadata(s.root.join(f)).ok())
        .map(|m| m.len())
        .sum();
    assert!(du < 1 << 20, "{du} bytes written by a refused bomb");
    assert_eq!(missing(ch.clone(), &[P2]).await, vec![P2.to_string()]);
    assert_serving(&addr, &tls);
}

/// Reads a job's events until the agent's error, which it returns; a stream
/// that ends without one fails the test with `accepted`.
async fn drain_to_error<T>(s: &mut tonic::Streaming<T>, accepted: &str) -> tonic::Status {
    loop {
        match s.message().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("{accepted}"),
            Err(e) => return e,
        }
    }
}
