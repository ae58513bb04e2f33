//! What the engines share about steps: the progress of a run of steps
//! ([`StepEvent`], one per step, for the CLI to print and the service to
//! stream) and an error with its causes on one line ([`error_chain`]) for
//! event reasons and status messages. Used by disk, boot, store and service.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What happened to one step (`index` counts from 0 up to `total - 1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepEvent {
    /// The step's check found its work still to do; it runs now.
    Started {
        index: usize,
        total: usize,
        description: String,
    },
    /// The step ran to completion.
    Finished {
        index: usize,
        total: usize,
        description: String,
        duration: Duration,
    },
    /// The step's check found its work already done.
    Skipped {
        index: usize,
        total: usize,
        description: String,
        reason: String,
    },
    /// The step failed; apply stops and returns the error.
    Failed {
        index: usize,
        total: usize,
        description: String,
        reason: String,
    },
}

impl std::fmt::Display for StepEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepEvent::Started {
                index,
                total,
                description,
            } => write!(f, "[{}/{total}] {description} …", index + 1),
            StepEvent::Finished {
                index,
                total,
                description,
                duration,
            } => {
                write!(
                    f,
                    "[{}/{total}] {description}: done in {:.3} s",
                    index + 1,
                    duration.as_secs_f64()
                )
            }
            StepEvent::Skipped {
                index,
                total,
                description,
                reason,
            } => {
                write!(
                    f,
                    "[{}/{total}] {description}: skipped, {reason}",
                    index + 1
                )
            }
            StepEvent::Failed {
                index,
                total,
                description,
                reason,
            } => {
                write!(f, "[{}/{total}] {description}: FAILED: {reason}", index + 1)
            }
        }
    }
}

/// The error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
