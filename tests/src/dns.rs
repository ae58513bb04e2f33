//! Real name resolution for tests: a [`Dnsmasq`] (Debian's `dnsmasq-base`)
//! answering a few names on a loopback address of its own, and
//! [`PrivateResolvConf`], a thread whose mount namespace has an
//! `/etc/resolv.conf` naming that server, so that the processes it starts
//! (the agent, qemu) resolve through it while the rest of the machine is
//! untouched.
//!
//! [`Spawned`](crate::Spawned) processes die with the thread that spawned
//! them, so that thread lives as long as the [`PrivateResolvConf`]: drop it
//! after the processes it started.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::process::Spawned;
use crate::wait::retry_until;

/// A dnsmasq answering `names` with their addresses and every other name
/// under `local_domain` with NXDOMAIN; nothing is forwarded anywhere.
pub struct Dnsmasq {
    _proc: Spawned,
    listen: Ipv4Addr,
}

impl Dnsmasq {
    /// Starts it on `listen`:53 (UDP and TCP) and waits until it answers the
    /// first name.
    pub fn start(listen: Ipv4Addr, local_domain: &str, names: &[(&str, Ipv4Addr)]) -> Self {
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--no-resolv",
            "--no-hosts",
            "--keep-in-foreground",
            "--bind-interfaces",
            "--port=53",
            "--user=root",
            "--pid-file=",
        ])
        .arg(format!("--listen-address={listen}"))
        .arg(format!("--local=/{local_domain}/"));
        // A host record, not `--address`: dnsmasq answers AAAA queries for an
        // `--address` name with NXDOMAIN, and musl's resolver (the agent's)
        // then reports the name as nonexistent, A record or not.
        for (name, addr) in names {
            cmd.arg(format!("--host-record={name},{addr}"));
        }
        let proc = Spawned::spawn(
            "dnsmasq",
            &mut cmd,
            Some("install the Debian package dnsmasq-base"),
        )
        .unwrap();
        let server = Self {
            _proc: proc,
            listen,
        };
        if let Some((name, addr)) = names.first() {
            let got = retry_until(Duration::from_secs(20), || server.query(name))
                .unwrap_or_else(|e| panic!("dnsmasq on {listen} does not answer: {e}"));
            assert_eq!(got, Some(*addr), "dnsmasq answered {name} with {got:?}");
        }
        server
    }

    /// The A record it gives for `name`: `Ok(None)` for NXDOMAIN or no
    /// address, `Err` when it does not answer.
    pub fn query(&self, name: &str) -> Result<Option<Ipv4Addr>, String> {
        query_a(SocketAddr::from((self.listen, 53)), name)
    }
}

/// One DNS query for the A record of `name` over UDP.
pub fn query_a(server: SocketAddr, name: &str) -> Result<Option<Ipv4Addr>, String> {
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let id = 0x4c66u16;
    // Header: id, flags (recursion desired), 1 question, no records.
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]); // root, type A, class IN
    sock.send_to(&q, server).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf).map_err(|e| e.to_string())?;
    let a = &buf[..n];
    if a.len() < 12 || a[..2] != id.to_be_bytes() {
        return Err(format!("not an answer to the query: {a:?}"));
    }
    let rcode = a[3] & 0x0f;
    let answers = u16::from_be_bytes([a[6], a[7]]);
    if rcode == 3 || answers == 0 {
        return Ok(None);
    }
    if rcode != 0 {
        return Err(format!("rcode {rcode}"));
    }
    // Skip the question (echoed), then read answers: a compressed name
    // pointer (2 bytes) or labels, type, class, ttl, length, data.
    let mut i = q.len();
    for _ in 0..answers {
        i += if a.get(i).is_some_and(|b| b & 0xc0 == 0xc0) {
            2
        } else {
            let mut j = i;
            while a.get(j).is_some_and(|b| *b != 0) {
                j += usize::from(a[j]) + 1;
            }
            j + 1 - i
        };
        let Some(rr) = a.get(i..i + 10) else { break };
        let (kind, len) = (
            u16::from_be_bytes([rr[0], rr[1]]),
            usize::from(u16::from_be_bytes([rr[8], rr[9]])),
        );
        i += 10;
        if kind == 1 && len == 4 {
            if let Some(d) = a.get(i..i + 4) {
                return Ok(Some(Ipv4Addr::new(d[0], d[1], d[2], d[3])));
            }
        }
        i += len;
    }
    Ok(None)
}

type Job = Box<dyn FnOnce() + Send>;

/// A thread in a mount namespace of its own where `/etc/resolv.conf` is a
/// bind mount of a file naming one nameserver. [`PrivateResolvConf::run`]
/// runs a closure there; processes it starts inherit that namespace (and
/// so resolve through the nameserver) and die when this value is dropped.
pub struct PrivateResolvConf {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl PrivateResolvConf {
    /// Writes `dir/resolv.conf` (`nameserver ADDR`) and starts the thread.
    pub fn new(dir: &Path, nameserver: Ipv4Addr) -> Self {
        let file = dir.join("resolv.conf");
        std::fs::write(&file, format!("nameserver {nameserver}\n")).unwrap();
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready, entered) = mpsc::channel::<Result<(), String>>();
        let thread = std::thread::spawn(move || {
            let _ = ready.send(enter_namespace(&file));
            for job in inbox {
                job();
            }
        });
        entered
            .recv()
            .expect("the namespace thread ended")
            .unwrap_or_else(|e| panic!("cannot make a private /etc/resolv.conf: {e}"));
        Self {
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    /// Runs `f` on the namespace's thread and returns what it returns (a
    /// panic in `f` is raised here).
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        });
        self.jobs
            .as_ref()
            .expect("the namespace thread is running")
            .send(job)
            .expect("the namespace thread ended");
        match rx.recv().expect("the namespace thread ended") {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for PrivateResolvConf {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// On the calling thread: a new mount namespace, nothing propagated back,
/// `file` bind-mounted on /etc/resolv.conf.
fn enter_namespace(file: &Path) -> Result<(), String> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let last = || std::io::Error::last_os_error().to_string();
    // SAFETY: unshare takes flags only; CLONE_NEWNS affects this thread's
    // filesystem context (copied first, as the kernel does for CLONE_FS).
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(format!("unshare(CLONE_NEWNS): {}", last()));
    }
    let root = CString::new("/").unwrap();
    let none = CString::new("none").unwrap();
    // SAFETY: valid NUL-terminated strings, a null data pointer.
    let r = unsafe {
        libc::mount(
            none.as_ptr(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(format!("making / private: {}", last()));
    }
    let src = CString::new(file.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    let dst = CString::new("/etc/resolv.conf").unwrap();
    // SAFETY: valid NUL-terminated strings, a null fstype and data.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(format!("bind-mounting {}: {}", file.display(), last()));
    }
    Ok(())
}
