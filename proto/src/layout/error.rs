//! The one error type of layout parsing, validation and planning: a field path
//! (`disk.main.content.partitions.ESP.size`) and what is wrong with it.

use serde::{Deserialize, Serialize};

/// A layout that cannot be applied, with the field that makes it so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{path}: {message}")]
pub struct LayoutError {
    /// Dotted path of the offending field, as in the disko configuration
    /// (`disk.main.content.partitions.ESP.size`); empty for the whole document.
    pub path: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl LayoutError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}
