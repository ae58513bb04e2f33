//! The network engine, both ends of a kexec: what the old system had is read
//! through rtnetlink ([`dump`]) and turned into a [`config::NetworkConfig`]
//! ([`capture`]) that the RAM image carries; there, PID 1 brings links up,
//! applies that configuration and runs DHCPv4 ([`up`], [`dhcp`]). The old
//! system's proxy variables travel with it ([`proxy`]).

pub mod capture;
pub mod config;
pub mod dhcp;
pub mod dump;
pub mod proxy;
pub mod up;
