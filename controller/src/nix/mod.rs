//! The controller's use of the user's own Nix: build the system, read its
//! closure with metadata, evaluate the disk layout, and NAR-encode the
//! closure natively for streaming. Works with Nix 2.8 (Debian's) and
//! current Nix; never needs nixpkgs. Errors carry nix's stderr.

pub mod build;
pub mod closure;
pub mod command;
pub mod disko;
pub mod path_info;

#[cfg(test)]
mod tests;

pub use build::FlakeTarget;
pub use closure::ClosureSource;
pub use command::Nix;
