//! `landfall install --extra-files/--chown` with bad input: each a clear
//! error naming the problem, before the target is touched — the test's
//! stand-in target (a TCP listener where the SSH server would be) sees no
//! connection at all.

use std::net::TcpListener;

use landfall_tests::bins::landfall;
use landfall_tests::TestDir;

/// Runs `landfall install` against a listener standing in for the target;
/// returns (exit success, output, whether anything connected).
fn install_with(dir: &std::path::Path, extra: &[&str]) -> (bool, String, bool) {
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let port = target.local_addr().unwrap().port().to_string();
    let state = dir.join("state");
    let mut args = vec![
        "install",
        "--target",
        "root@127.0.0.1",
        "-p",
        &port,
        "--system",
        "/nix/store/00000000000000000000000000000000-none",
        "--layout",
        "/dev/null",
        "--yes",
        "--tls",
        state.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = landfall(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let touched = target.accept().is_ok();
    (out.status.success(), text, touched)
}

#[test]
fn bad_extra_files_and_chown_stop_before_the_target_is_touched() {
    let t = TestDir::new("extra-files-cli").unwrap();
    let d = t.path();
    std::fs::write(d.join("a-file"), b"x").unwrap();
    let fifo_tree = d.join("fifo-tree");
    std::fs::create_dir_all(fifo_tree.join("run")).unwrap();
    let st = std::process::Command::new("mkfifo")
        .arg(fifo_tree.join("run/pipe"))
        .status()
        .expect("mkfifo (coreutils)");
    assert!(st.success());
    let escape_tree = d.join("escape-tree");
    std::fs::create_dir_all(&escape_tree).unwrap();
    std::os::unix::fs::symlink("../../etc/shadow", escape_tree.join("evil")).unwrap();
    let good_tree = d.join("good-tree");
    std::fs::create_dir_all(&good_tree).unwrap();

    let missing = d.join("missing").display().to_string();
    let file = d.join("a-file").display().to_string();
    let fifo = fifo_tree.display().to_string();
    let escape = escape_tree.display().to_string();
    let good = good_tree.display().to_string();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--extra-files", &missing],
            format!("--extra-files {missing}: no such folder"),
        ),
        (
            vec!["--extra-files", &file],
            format!("--extra-files {file}: not a folder"),
        ),
        (
            vec!["--extra-files", &fifo],
            format!("{fifo}/run/pipe is a fifo; only folders, regular files and symbolic links can be sent"),
        ),
        (
            vec!["--extra-files", &escape],
            "evil: the symbolic link's target \"../../etc/shadow\" points outside the root".into(),
        ),
        (
            vec!["--chown", "/home/../etc", "0:0"],
            "is not a path inside the installed system".into(),
        ),
        (
            vec!["--chown", "/home/alice", "al ice"],
            "give OWNER or OWNER:GROUP".into(),
        ),
        (
            vec!["--extra-files", &good, "--phases", "kexec,disko,install,bootloader"],
            "need the files phase".into(),
        ),
    ];
    for (args, words) in cases {
        let (ok, text, touched) = install_with(d, &args);
        assert!(!ok, "{args:?} succeeded");
        assert!(text.contains(&words), "{args:?}: {words:?} not in {text}");
        assert!(!touched, "{args:?}: the target was contacted");
    }
}
