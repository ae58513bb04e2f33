//! Resuming the closure transfer across a lost connection. A transport error
//! during the install phase (the agent unreachable, the connection reset, an
//! HTTP/2 GOAWAY, the event stream ending without its final event) is not the
//! end of the install: the controller waits with a growing delay, asks the
//! agent again which paths it lacks (the agent kept every path it verified) and
//! sends only those, for up to [`RetryPolicy::budget`]. An answer from the
//! agent itself (a rejected path, a full disk, another job running) is final,
//! and so is an agent that came back restarted with its root unmounted (the
//! transfer would land in its RAM; see flow/remount.rs).
//!
//! The tonic channel reconnects by itself on the next request, so the same
//! client is reused.

use std::time::{Duration, Instant};

use landfall_proto::nar::StorePath;
use landfall_proto::v1::agent_client::AgentClient;
use landfall_proto::Reason;
use tonic::transport::Channel;
use tonic::Code;

use crate::agent_error::AgentError;
use crate::closure::{put_closure_with, Progress, StreamEndedEarly, TransferSummary};
use crate::nix::ClosureSource;
use crate::substitute::Substitution;

/// How long and how often to try again after the connection is lost.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Give up once this much time has passed since the first loss.
    pub budget: Duration,
    /// The first wait; each next one doubles, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(120),
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `n` (1 = the first reconnect).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(16);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// What to do about a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The connection was lost: reconnect and resume (the text says why).
    Reconnect(String),
    /// The agent answered: the error is final.
    Final,
}

/// Sorts a failed attempt. `after_loss` is true once a connection has been
/// lost: then "busy" means the agent is still winding down the broken transfer,
/// not that another controller runs a job, and is worth waiting for.
pub fn classify(e: &anyhow::Error, after_loss: bool) -> Verdict {
    for cause in e.chain() {
        if cause.downcast_ref::<StreamEndedEarly>().is_some() {
            return Verdict::Reconnect("the event stream ended early".into());
        }
        if let Some(e) = cause.downcast_ref::<AgentError>() {
            return classify_status(e, after_loss);
        }
    }
    Verdict::Final
}

fn classify_status(e: &AgentError, after_loss: bool) -> Verdict {
    // After a loss, "busy" means the agent is still winding down the broken
    // transfer: worth waiting for.
    let busy_after_loss = e.status().code() == Code::FailedPrecondition
        && after_loss
        && e.reason() == Some(Reason::Busy);
    if e.connection_broke() || busy_after_loss {
        let msg = e.status().message();
        Verdict::Reconnect(if msg.is_empty() {
            format!("{:?}", e.status().code())
        } else {
            msg.to_string()
        })
    } else {
        Verdict::Final
    }
}

/// [`put_closure`], reconnecting after a lost connection and resuming with
/// what the agent still lacks. The summary is the last attempt's, with the
/// time counted from the first. In JSON mode each reconnect is also a line
/// `{"reconnecting":{"attempt":N,"cause":"…","after_s":S}}` on stdout.
pub async fn put_closure_resuming(
    client: &mut AgentClient<Channel>,
    closure: ClosureSource,
    toplevel: Option<&StorePath>,
    root: &str,
    progress: Progress,
    policy: RetryPolicy,
    subst: &Substitution,
) -> anyhow::Result<TransferSummary> {
    let start = Instant::now();
    let mut first_loss: Option<Instant> = None;
    let mut attempt = 0u32;
    loop {
        let e = match put_closure_with(client, closure.clone(), toplevel, root, progress, subst)
            .await
        {
            Ok(mut s) => {
                s.seconds = start.elapsed().as_secs_f64();
                return Ok(s);
            }
            Err(e) => e,
        };
        let Verdict::Reconnect(cause) = classify(&e, first_loss.is_some()) else {
            return Err(e);
        };
        let lost_at = *first_loss.get_or_insert_with(Instant::now);
        attempt += 1;
        let delay = policy.delay(attempt);
        if lost_at.elapsed() + delay > policy.budget {
            return Err(e.context(format!(
                "The connection to the agent stayed lost: gave up after {attempt} attempt(s) in {:.0} s",
                lost_at.elapsed().as_secs_f64()
            )));
        }
        eprintln!(
            "connection to the agent lost ({}); reconnecting (attempt {attempt})…",
            crate::sanitize::line(&cause.to_string())
        );
        if progress == Progress::Json {
            let line = serde_json::json!({"reconnecting": {
                "attempt": attempt,
                "cause": cause,
                "after_s": start.elapsed().as_secs_f64(),
            }});
            println!("{}", crate::sanitize::json(&line, false)?);
        }
        tokio::time::sleep(delay).await;
        if let Some(root) = restarted_without_root(client).await {
            return Err(e.context(format!(
                "The agent came back restarted, with its root {root} no longer mounted: the \
                 transfer cannot resume into the RAM image; run `landfall install … --phases \
                 install` again (it mounts the layout already on the disks)"
            )));
        }
    }
}

/// After a loss: the agent's root when it answers as a restarted PID 1 whose
/// root is no longer mounted (resuming would write into its RAM). None when it
/// does not answer yet (the next attempt tells) or all is well.
async fn restarted_without_root(client: &mut AgentClient<Channel>) -> Option<String> {
    let status = crate::agent_status::ask(client, Duration::from_secs(10))
        .await
        .ok()?;
    (status.pid1 && !crate::agent_status::root_is_mounted(&status)).then_some(status.root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn status(code: Code, msg: &str) -> anyhow::Error {
        Err::<(), _>(AgentError::from(tonic::Status::new(code, msg)))
            .context("The closure transfer failed")
            .unwrap_err()
    }

    #[test]
    fn transport_errors_reconnect_and_answers_of_the_agent_are_final() {
        assert!(matches!(
            classify(&status(Code::Unavailable, "connection reset"), false),
            Verdict::Reconnect(c) if c == "connection reset"
        ));
        assert!(matches!(
            classify(
                &status(Code::Unknown, "error reading a body from connection"),
                false
            ),
            Verdict::Reconnect(_)
        ));
        assert!(matches!(
            classify(&StreamEndedEarly.into(), false),
            Verdict::Reconnect(_)
        ));
        assert_eq!(
            classify(&status(Code::DataLoss, "rejected: /nix/store/…"), true),
            Verdict::Final
        );
        assert_eq!(
            classify(&status(Code::Internal, "store-failed: no space"), true),
            Verdict::Final
        );
        assert_eq!(
            classify(&anyhow::anyhow!("Encoding the closure failed"), true),
            Verdict::Final
        );
    }

    #[test]
    fn an_agent_error_that_mentions_a_connection_is_still_the_agents_answer() {
        // The agent answered with a reason: retrying would repeat the failure.
        assert_eq!(
            classify(
                &status(
                    Code::Internal,
                    "internal: PutClosure hit an internal error: connection to the store database lost"
                ),
                true
            ),
            Verdict::Final
        );
        assert_eq!(
            classify(
                &status(
                    Code::Unavailable,
                    "disk-failed: the connection of /dev/sda is gone"
                ),
                true
            ),
            Verdict::Final
        );
        // tonic's own text for the same code is a lost connection.
        assert!(matches!(
            classify(
                &status(Code::Internal, "h2 protocol error: connection reset"),
                true
            ),
            Verdict::Reconnect(_)
        ));
    }

    #[test]
    fn busy_is_final_first_and_worth_waiting_for_after_a_loss() {
        let busy = || {
            status(
                Code::FailedPrecondition,
                "busy: the agent is already running",
            )
        };
        assert_eq!(classify(&busy(), false), Verdict::Final);
        assert!(matches!(classify(&busy(), true), Verdict::Reconnect(_)));
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1), Duration::from_secs(1));
        assert_eq!(p.delay(2), Duration::from_secs(2));
        assert_eq!(p.delay(4), Duration::from_secs(8));
        assert_eq!(p.delay(5), Duration::from_secs(15));
        assert_eq!(p.delay(60), Duration::from_secs(15));
    }
}
