//! PID 1 resilience, in a qemu VM with the agent as PID 1 of the RAM image:
//! - a request handler that panics (`landfall.inject=panic:Inventory` on the
//!   kernel command line): the client gets INTERNAL with the panic message, the
//!   panic is logged on the console and in `Logs`, and the same service process
//!   keeps serving (it is not restarted);
//! - a module that cannot load (`nls_cp437.ko` with a wrong version magic, which
//!   the kernel refuses): the agent comes up anyway, and the failure with the
//!   module's name is on the console and in `Logs`;
//! - a child process killed by the out-of-memory killer (a closure whose
//!   `bin/switch-to-configuration` allocates without end): InstallBootloader fails
//!   saying the installer was killed by signal 9, the kernel logs the OOM kill,
//!   and the agent goes on serving.
//!
//! Also, on loopback without a VM: the same injected panic against the agent
//! started by hand (`LANDFALL_INJECT`).

use crate::hostile_common;

use std::path::Path;
use std::time::Duration;

use hostile_common::{agent_logs, build_image, certs_init, channel, landfall, Agent, Session};
use landfall_proto::nar::{dump_path, NarHash};
use landfall_proto::v1::agent_client::AgentClient;
use landfall_proto::v1::closure_chunk::Kind;
use landfall_proto::v1::{
    BootloaderPolicy, BootloaderRequest, ClosureBegin, ClosureChunk, ClosureEnd, PathEnd,
    StatusRequest, StorePathInfo,
};
use landfall_tests::StartVm;
use landfall_tests::{debian_kernel, sparse_image, Disk, Nic, TestDir, VmBuilder};

const BUSYBOX: &str = "/nix/store/0c0hdamn0mybx3k2fy7gb6ks1wvr0f5r-busybox";
const OOM_SYSTEM: &str = "/nix/store/1c0hdamn0mybx3k2fy7gb6ks1wvr0f5r-oom-system";
const BROKEN_MODULE: &str = "nls_cp437";

/// A copy of the kernel's modules folder (a symlink farm) in which one module's
/// version magic is altered, so the kernel refuses to load it (EINVAL) while
/// the image builder still reads its metadata.
fn modules_with_a_broken_one(dir: &Path, modules: &Path) -> std::path::PathBuf {
    // The folder keeps the kernel release as its name (the image builder checks it).
    let farm = dir.join("modules").join(modules.file_name().unwrap());
    std::fs::create_dir_all(farm.parent().unwrap()).unwrap();
    let st = std::process::Command::new("cp")
        .arg("-rs")
        .arg(modules)
        .arg(&farm)
        .status()
        .unwrap();
    assert!(st.success());
    let rel = format!("kernel/fs/nls/{BROKEN_MODULE}.ko");
    let mut ko = std::fs::read(modules.join(&rel)).expect("the Debian kernel ships nls_cp437.ko");
    let needle = b"mod_unload";
    let at = ko
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("vermagic in the module");
    ko[at..at + needle.len()].copy_from_slice(b"mod_unlxad");
    std::fs::remove_file(farm.join(&rel)).unwrap();
    std::fs::write(farm.join(&rel), ko).unwrap();
    farm
}

/// One store path's messages from a host folder.
fn path_msgs(src: &Path, path: &str, references: &[&str]) -> Vec<ClosureChunk> {
    use sha2::Digest;
    let mut nar = Vec::new();
    dump_path(src, &mut nar).unwrap();
    let digest: [u8; 32] = sha2::Sha256::digest(&nar).into();
    let info = StorePathInfo {
        path: path.into(),
        nar_hash: NarHash(digest).to_nix32(),
        nar_size: nar.len() as u64,
        references: references.iter().map(|r| r.to_string()).collect(),
        ..Default::default()
    };
    let mut v = vec![ClosureChunk {
        kind: Some(Kind::Path(info)),
    }];
    v.extend(nar.chunks(256 << 10).map(|c| ClosureChunk {
        kind: Some(Kind::ZstdBlock(zstd::bulk::compress(c, 3).unwrap())),
    }));
    v.push(ClosureChunk {
        kind: Some(Kind::PathEnd(PathEnd {})),
    });
    v
}

/// A two-path closure: a static busybox, and a "system" whose
/// `bin/switch-to-configuration` doubles a shell string until memory runs out.
fn oom_closure(dir: &Path) -> Vec<ClosureChunk> {
    use std::os::unix::fs::PermissionsExt;
    let bb = dir.join("bb");
    std::fs::create_dir_all(bb.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", bb.join("bin/busybox"))
        .expect("/bin/busybox (apt-get install busybox-static)");
    let top = dir.join("top");
    std::fs::create_dir_all(top.join("bin")).unwrap();
    let stc = top.join("bin/switch-to-configuration");
    std::fs::write(
        &stc,
        format!(
            "#!{BUSYBOX}/bin/busybox sh\n\
             echo \"switch-to-configuration: allocating until the kernel says no\"\n\
             x=0123456789abcdef\n\
             while :; do x=\"$x$x\"; done\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&stc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut msgs = vec![ClosureChunk {
        kind: Some(Kind::Begin(ClosureBegin {
            root: String::new(),
            paths: 2,
            nar_bytes: 0,
            substitute: None,
        })),
    }];
    msgs.extend(path_msgs(&bb, BUSYBOX, &[]));
    msgs.extend(path_msgs(&top, OOM_SYSTEM, &[BUSYBOX]));
    msgs.push(ClosureChunk {
        kind: Some(Kind::End(ClosureEnd {
            toplevel: OOM_SYSTEM.into(),
        })),
    });
    msgs
}

#[test]
fn pid1_survives_a_panicking_handler_an_oom_killed_child_and_a_broken_module() {
    let kernel = debian_kernel().expect("Debian kernel (scripts/fetch-kernel.sh)");
    let tdir = TestDir::new("pid1").unwrap();
    let dir = tdir.path().to_path_buf();
    let session = certs_init(&dir.join("session"));
    let modules = modules_with_a_broken_one(&dir, &kernel.modules);
    let image = build_image(&dir, &session, &modules);
    let disk = sparse_image(&dir.join("nvme.img"), 1 << 30).unwrap();
    let mut vm = VmBuilder::new("pid1")
        .kernel(
            image.join("bzImage"),
            "console=ttyS0 panic=-1 landfall.inject=panic:Inventory",
        )
        .initrd(image.join("initrd"))
        .memory_mib(256)
        .disk(Disk::nvme(disk).serial("landfall-test-0"))
        .nic(Nic::user().forward(7443))
        .start_in(tdir)
        .unwrap();
    let addr = vm.forwarded_addr(7443).unwrap().to_string();
    vm.wait_for("Fault injection is ON", Duration::from_secs(120))
        .unwrap();
    vm.wait_for("Ready:", Duration::from_secs(60)).unwrap();
    // Modules load after the service is up; the broken one is named.
    vm.wait_for(
        format!("Module {BROKEN_MODULE} failed to load").as_str(),
        Duration::from_secs(90),
    )
    .unwrap();
    vm.wait_for("DHCP lease", Duration::from_secs(90)).unwrap();

    // The injected panic: INTERNAL with the message, twice, and Status still answers.
    for _ in 0..2 {
        let out = landfall(&["inventory", "--wait", "60"], &addr, &session);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "Inventory answered despite the panic"
        );
        assert!(
            err.contains("internal: Inventory hit an internal error: injected fault: landfall.inject=panic:Inventory"),
            "{err}"
        );
        assert!(err.contains("Internal"), "{err}");
    }
    vm.wait_for("Inventory hit an internal error", Duration::from_secs(10))
        .unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ch = channel(&addr, &session).await;
        let st = AgentClient::new(ch.clone())
            .status(StatusRequest {})
            .await
            .expect("Status after the panics")
            .into_inner();
        assert!(st.pid1);

        // A child killed by the OOM killer.
        let msgs = oom_closure(&dir);
        let mut c = AgentClient::new(ch.clone());
        let mut s = c
            .put_closure(tokio_stream::iter(msgs))
            .await
            .expect("PutClosure")
            .into_inner();
        while let Some(_e) = s.message().await.expect("the closure installs") {}
        let mut s = c
            .install_bootloader(BootloaderRequest {
                toplevel: OOM_SYSTEM.into(),
                policy: BootloaderPolicy::Closure as i32,
                ..Default::default()
            })
            .await
            .expect("InstallBootloader starts")
            .into_inner();
        let mut output = Vec::new();
        let err = loop {
            match s.message().await {
                Ok(Some(e)) => output.push(format!("{} {}", e.description, e.reason)),
                Ok(None) => panic!("the OOM-killed installer succeeded: {output:?}"),
                Err(e) => break e,
            }
        };
        eprintln!("InstallBootloader: {:?}: {}", err.code(), err.message());
        assert!(
            err.message()
                .contains("killed by signal 9 by the kernel's out-of-memory killer"),
            "{}\n{output:?}",
            err.message()
        );
        assert!(
            output
                .iter()
                .any(|l| l.contains("allocating until the kernel says no")),
            "{output:?}"
        );

        let st2 = AgentClient::new(ch.clone())
            .status(StatusRequest {})
            .await
            .expect("Status after the OOM kill")
            .into_inner();
        assert!(
            st2.uptime_ms > st.uptime_ms,
            "the service was restarted (uptime {} then {})",
            st.uptime_ms,
            st2.uptime_ms
        );
        assert_eq!(st2.job, "");

        let logs = agent_logs(ch.clone()).await;
        let has = |needle: &str| logs.iter().any(|l| l.contains(needle));
        assert!(
            has(&format!("PID 1: Module {BROKEN_MODULE} failed to load")),
            "Logs lacks the module failure:\n{}",
            logs.join("\n")
        );
        assert!(has("Internal error: panicked at"), "{}", logs.join("\n"));
        assert!(
            has("Inventory hit an internal error"),
            "{}",
            logs.join("\n")
        );
        assert!(has("killed by signal 9"), "{}", logs.join("\n"));
    });
    vm.wait_for("Out of memory: Killed process", Duration::from_secs(10))
        .unwrap();
    let console = std::fs::read_to_string(vm.console_log()).unwrap();
    assert!(
        !console.contains("The agent service (pid"),
        "PID 1 had to restart the service"
    );
    assert!(!console.contains("Kernel panic"), "the kernel panicked");
}

#[test]
fn an_injected_handler_panic_on_loopback_answers_internal_and_the_agent_serves_on() {
    let tdir = TestDir::new("pid1-loopback").unwrap();
    let dir = tdir.path();
    let s = Session::new(dir);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let agent = Agent::start(
        dir,
        &s.agent_tls,
        &root,
        &[("LANDFALL_INJECT", "panic:Inventory,panic:QueryMissing")],
    );
    agent.wait_log("Fault injection is ON");
    for _ in 0..3 {
        let out = landfall(&["inventory"], &agent.addr, &s.controller_tls);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success());
        assert!(
            err.contains("internal: Inventory hit an internal error: injected fault"),
            "{err}"
        );
        hostile_common::assert_serving(&agent.addr, &s.controller_tls);
    }
    let log = agent.wait_log("Inventory hit an internal error (the agent keeps serving)");
    assert!(log.contains("Internal error: panicked at"), "{log}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ch = channel(&agent.addr, &s.controller_tls).await;
        let e = AgentClient::new(ch.clone())
            .query_missing(landfall_proto::v1::QueryMissingRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Internal);
        assert!(
            e.message().contains("QueryMissing hit an internal error"),
            "{e:?}"
        );
        let logs = agent_logs(ch).await;
        assert!(
            logs.iter()
                .any(|l| l.starts_with("ERROR") && l.contains("Internal error: panicked at")),
            "{}",
            logs.join("\n")
        );
    });
}
