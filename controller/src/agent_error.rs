//! A failed call to the agent, read one way.
//!
//! Every RPC the controller makes fails as a `tonic::Status`. This module is
//! the one place that turns it into what the rest of the controller asks of
//! it: the agent's [`Reason`] (from the message's prefix, written by the
//! agent from the same list), whether the connection broke rather than the
//! agent answering (the retry loop reconnects then), and a message for a
//! person — with a hint when the break may be a refused certificate. Callers
//! write `.map_err(AgentError::from)` and add their own context
//! (`"The agent refused the closure"`); nothing else matches on status text.

use landfall_proto::Reason;
use tonic::Code;

/// A gRPC status from the agent, or from the transport under it.
#[derive(Debug, thiserror::Error)]
#[error("{}", explain(.0))]
pub struct AgentError(tonic::Status);

impl From<tonic::Status> for AgentError {
    fn from(s: tonic::Status) -> Self {
        Self(s)
    }
}

impl AgentError {
    /// The status as it came.
    pub fn status(&self) -> &tonic::Status {
        &self.0
    }

    /// The agent's reason; None when the agent's handlers did not write the
    /// status (tonic, hyper or TLS did: a lost connection, a refused handshake).
    pub fn reason(&self) -> Option<Reason> {
        Reason::of(self.0.message())
    }

    /// Whether the connection broke (reconnecting may help) rather than the
    /// agent answering. A status with a reason came from the agent's handlers,
    /// whatever its human text says.
    pub fn connection_broke(&self) -> bool {
        connection_broke(&self.0)
    }
}

fn connection_broke(s: &tonic::Status) -> bool {
    let msg = s.message();
    let answered = Reason::of(msg).is_some();
    match s.code() {
        // Unavailable: connect refused, reset, GOAWAY; Unknown/Cancelled: hyper's
        // body and stream errors (the agent itself always sets a specific code).
        Code::Unavailable | Code::Unknown | Code::Cancelled => !answered,
        Code::Internal => {
            !answered && (msg.contains("h2 protocol error") || msg.contains("connection"))
        }
        _ => false,
    }
}

/// The message with its code, and a hint when the connection itself broke: in
/// TLS 1.3 the agent checks the controller's certificate after the client has
/// finished its handshake, so a refused certificate shows up as a vague
/// transport error on the first call.
fn explain(s: &tonic::Status) -> String {
    if connection_broke(s) {
        format!(
            "{} ({:?}). The connection broke: either the network, or the agent refused this \
             session's certificate (is --tls the session the agent was started with? The agent's \
             console says `Refused a connection` with the reason)",
            s.message(),
            s.code()
        )
    } else {
        format!("{} ({:?})", s.message(), s.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: Code, msg: &str) -> AgentError {
        tonic::Status::new(code, msg).into()
    }

    #[test]
    fn transport_errors_get_a_hint_and_answers_do_not() {
        let hint = err(Code::Unknown, "transport error").to_string();
        assert!(
            hint.contains("refused this session's certificate"),
            "{hint}"
        );
        let answer = err(Code::FailedPrecondition, "busy: a job runs").to_string();
        assert_eq!(answer, "busy: a job runs (FailedPrecondition)");
    }

    #[test]
    fn the_reason_comes_from_the_prefix_only() {
        assert_eq!(
            err(Code::FailedPrecondition, "busy: a job runs").reason(),
            Some(Reason::Busy)
        );
        assert_eq!(
            err(Code::Internal, "no-space: 3 GiB short").reason(),
            Some(Reason::NoSpace)
        );
        assert_eq!(err(Code::Unknown, "busy signal on the line").reason(), None);
    }

    #[test]
    fn a_broken_connection_is_told_from_an_answer() {
        assert!(err(Code::Unavailable, "connection reset").connection_broke());
        assert!(err(Code::Unknown, "error reading a body from connection").connection_broke());
        assert!(err(Code::Internal, "h2 protocol error: stream reset").connection_broke());
        // The agent answered (a reason), though its text mentions a connection.
        assert!(!err(
            Code::Unavailable,
            "aborted: the connection to the controller broke"
        )
        .connection_broke());
        assert!(!err(Code::Internal, "internal: a panic").connection_broke());
        assert!(!err(Code::InvalidArgument, "invalid-request: bad path").connection_broke());
    }
}
