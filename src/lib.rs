//! Wyrcan: pull an OCI image and turn it into a kernel + initrd, on a host
//! or as PID 1 of its own boot environment. This crate holds the I/O and the
//! orchestration; the pure format code is in `wyrcan-core`.
//!
//! Dependencies run one way (ARCHITECTURE.md): [`cli`], [`pid1`] and
//! [`stage2`] on top, then [`boot`], then [`convert`] and [`pull`], then
//! [`registry`], with [`sys`] and [`progress`] beside them and
//! `wyrcan_core` at the bottom. Only [`cli`] knows clap.

pub mod boot;
pub mod cli;
pub mod convert;
pub mod pid1;
pub mod progress;
pub mod pull;
pub mod registry;
pub mod stage2;
pub mod sys;
