//! Wyrcan: pull an OCI image and turn it into a kernel + initrd, on a host
//! or as PID 1 of its own boot environment. This crate holds the I/O and the
//! orchestration; the pure format code is in `wyrcan-core`.

pub mod auth;
pub mod cli;
pub mod dirsink;
pub mod image;
pub mod morph;
pub mod pipe;
pub mod progress;
pub mod registry;
