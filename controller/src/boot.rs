//! `landfall bootloader` and `landfall reboot`: the last two phases from the
//! laptop's side. The bootloader job's events (and the closure installer's
//! output lines) are printed as they come; a failed install stops with that
//! output, and the agent then refuses to reboot unless forced. After a reboot
//! the controller waits for the machine to come back: its SSH server sending
//! a banner (a bare TCP accept is not enough — NAT and port forwarders accept
//! for machines that are down).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use landfall_proto::v1::agent_client::AgentClient;
use landfall_proto::v1::{BootloaderPolicy, BootloaderRequest, RebootReply, RebootRequest};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tonic::transport::Channel;

/// Parses `auto|systemd-boot|closure|none`.
pub fn parse_policy(s: &str) -> anyhow::Result<BootloaderPolicy> {
    Ok(match s {
        "auto" => BootloaderPolicy::Auto,
        "systemd-boot" => BootloaderPolicy::SystemdBoot,
        "closure" => BootloaderPolicy::Closure,
        "none" => BootloaderPolicy::None,
        _ => bail!("--policy {s}: expected auto, systemd-boot, closure or none"),
    })
}

/// Runs InstallBootloader, printing each event to stderr; returns the summary.
pub async fn install_bootloader(
    client: &mut AgentClient<Channel>,
    req: BootloaderRequest,
) -> anyhow::Result<String> {
    let stream = client
        .install_bootloader(req)
        .await
        .map_err(crate::agent_error::AgentError::from)
        .context("The agent refused to install the bootloader")?
        .into_inner();
    crate::disk::follow_job(
        stream,
        "Installing the bootloader failed; the machine is NOT rebooted",
    )
    .await
}

/// Asks the agent to unmount and reboot.
pub async fn reboot(
    client: &mut AgentClient<Channel>,
    req: RebootRequest,
) -> anyhow::Result<RebootReply> {
    Ok(client
        .reboot(req)
        .await
        .map_err(crate::agent_error::AgentError::from)
        .context("The agent did not reboot")?
        .into_inner())
}

/// The reboot reply for a person (its paths escaped: they come from the target).
pub fn describe_reboot(r: &RebootReply) -> String {
    use crate::sanitize::line;
    let mut s = String::new();
    for p in &r.swaps_off {
        s += &format!("swap off   {}\n", line(p));
    }
    for p in &r.unmounted {
        s += &format!("unmounted  {}\n", line(p));
    }
    for p in &r.refused {
        s += &format!("REFUSED    {}\n", line(p));
    }
    if r.rebooting {
        s += &format!("rebooting in {} ms\n", r.delay_ms);
    }
    s
}

/// Where to look for SSH: `PORT` (on the agent's host) or `HOST:PORT`.
pub fn ssh_address(agent: &str, ssh: &str) -> anyhow::Result<String> {
    if ssh.parse::<u16>().is_ok() {
        let host = agent
            .rsplit_once(':')
            .map(|(h, _)| h)
            .with_context(|| format!("'{agent}' is not HOST:PORT"))?;
        return Ok(format!("{host}:{ssh}"));
    }
    match ssh.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => Ok(ssh.to_string()),
        _ => bail!("--ssh-port {ssh}: expected PORT or HOST:PORT"),
    }
}

/// Whether an SSH server answers at `addr` (sends its "SSH-" banner).
pub async fn ssh_answers(addr: &str) -> bool {
    let probe = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.ok()?;
        Some(&buf == b"SSH-")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), probe).await,
        Ok(Some(true))
    )
}

/// Polls until SSH answers at `addr`; returns how long that took.
pub async fn wait_for_ssh(addr: &str, timeout: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        if ssh_answers(addr).await {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            bail!(
                "The machine did not come back: no SSH server answered at {addr} within {} s",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn ssh_address_forms() {
        assert_eq!(ssh_address("10.0.0.1:7443", "22").unwrap(), "10.0.0.1:22");
        assert_eq!(ssh_address("[::1]:7443", "2222").unwrap(), "[::1]:2222");
        assert_eq!(
            ssh_address("10.0.0.1:7443", "127.0.0.1:10022").unwrap(),
            "127.0.0.1:10022"
        );
        assert!(ssh_address("10.0.0.1:7443", "nope").is_err());
        assert!(parse_policy("grub").is_err());
        assert_eq!(
            parse_policy("systemd-boot").unwrap(),
            BootloaderPolicy::SystemdBoot
        );
    }

    #[tokio::test]
    async fn only_an_ssh_banner_counts_as_back() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = silent.accept().await {
                let _ = s.write_all(b"HTTP/1.0 400\r\n").await;
            }
        });
        assert!(!ssh_answers(&silent_addr).await);
        let ssh = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ssh_addr = ssh.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = ssh.accept().await {
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
            }
        });
        let took = wait_for_ssh(&ssh_addr, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(took < Duration::from_secs(10));
    }
}
