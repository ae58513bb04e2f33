//! A minimal QMP (qemu machine protocol) client over a unix socket.
//!
//! Enough to control a test VM: `quit` (qemu flushes disks and exits),
//! `system_reset`, `system_powerdown`, and any other command through
//! [`Qmp::execute`]. Asynchronous events arriving between replies are skipped.

use std::io::{self, BufRead, BufReader, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A QMP exchange that failed.
#[derive(thiserror::Error)]
pub enum QmpError {
    /// The socket did not accept a connection in time.
    #[error("Cannot connect to the QMP socket {path}")]
    Connect {
        path: String,
        #[source]
        source: io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("QMP i/o failed during {step}")]
    Io {
        step: String,
        #[source]
        source: io::Error,
    },
    /// qemu closed the connection before replying.
    #[error("qemu closed the QMP connection during {step}")]
    Closed { step: String },
    /// qemu sent something that is not JSON.
    #[error("qemu sent malformed QMP during {step}")]
    Malformed {
        step: String,
        #[source]
        source: serde_json::Error,
    },
    /// qemu refused the command.
    #[error("qemu refused {command}: {reply}")]
    Refused { command: String, reply: String },
}
crate::debug_as_display!(QmpError);

/// A connected QMP session (capabilities already negotiated).
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to the socket file `path`, retrying until `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let name = path.display().to_string();
        Qmp::connect_with(&name, timeout, || UnixStream::connect(path))
    }

    /// Connects to `name` in the abstract socket namespace (`-qmp
    /// unix:NAME,abstract=on,...`), retrying until `timeout`.
    pub fn connect_abstract(name: &str, timeout: Duration) -> Result<Qmp, QmpError> {
        Qmp::connect_with(&format!("@{name}"), timeout, || {
            UnixStream::connect_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)
        })
    }

    fn connect_with(
        path: &str,
        timeout: Duration,
        connect: impl Fn() -> io::Result<UnixStream>,
    ) -> Result<Qmp, QmpError> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match connect() {
                Ok(s) => break s,
                Err(source) if Instant::now() >= deadline => {
                    return Err(QmpError::Connect {
                        path: path.to_owned(),
                        source,
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let io_err = |source| QmpError::Io {
            step: "connect".into(),
            source,
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(io_err)?;
        let writer = stream.try_clone().map_err(io_err)?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message("greeting")?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Refused {
                command: "greeting".into(),
                reply: greeting.to_string(),
            });
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Runs `command` with optional `arguments` and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let mut request = json!({ "execute": command });
        if let Some(args) = arguments {
            request["arguments"] = args;
        }
        let mut line = request.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|source| QmpError::Io {
                step: command.into(),
                source,
            })?;
        loop {
            let reply = self.read_message(command)?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            return Err(QmpError::Refused {
                command: command.into(),
                reply: reply.to_string(),
            });
        }
    }

    /// Asks qemu to exit now; an exit racing the reply counts as success.
    pub fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute("quit", None) {
            Ok(_) | Err(QmpError::Closed { .. }) => Ok(()),
            Err(QmpError::Io { source, .. })
                if source.kind() == io::ErrorKind::ConnectionReset
                    || source.kind() == io::ErrorKind::BrokenPipe =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Resets the machine, like pressing its reset button.
    pub fn system_reset(&mut self) -> Result<(), QmpError> {
        self.execute("system_reset", None).map(drop)
    }

    /// Presses the ACPI power button (the guest decides what to do).
    pub fn system_powerdown(&mut self) -> Result<(), QmpError> {
        self.execute("system_powerdown", None).map(drop)
    }

    /// The machine's run state, e.g. "running", "paused", "shutdown".
    pub fn status(&mut self) -> Result<String, QmpError> {
        let ret = self.execute("query-status", None)?;
        Ok(ret
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned())
    }

    fn read_message(&mut self, step: &str) -> Result<Value, QmpError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|source| QmpError::Io {
                step: step.into(),
                source,
            })?;
        if n == 0 {
            return Err(QmpError::Closed { step: step.into() });
        }
        serde_json::from_str(&line).map_err(|source| QmpError::Malformed {
            step: step.into(),
            source,
        })
    }
}
