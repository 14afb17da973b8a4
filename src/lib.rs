//! Wyrcan: pull an OCI image and turn it into a kernel + initrd, on a host
//! or as PID 1 of its own boot environment. This crate holds the I/O and the
//! orchestration; the pure format code is in `wyrcan-core`.

pub mod auth;
pub mod boot;
pub mod cli;
pub mod coldplug;
pub mod console;
pub mod dirsink;
pub mod efi;
pub mod image;
pub mod init;
pub mod morph;
pub mod net;
pub mod pipe;
pub mod progress;
pub mod registry;
pub mod sys;
