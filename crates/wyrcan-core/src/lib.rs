//! Wyrcan's pure format code: nothing here opens a file, a socket or reads a
//! clock. Everything takes `&str`, `&[u8]`, `Read` or `Write`, so it is unit
//! tested and fuzzed without a machine to boot.
#![forbid(unsafe_code)]

pub mod booted;
pub mod cmdline;
pub mod cpio;
pub mod dhcp;
pub mod dhcp6;
pub mod digest;
pub mod dns;
pub mod efivar;
pub mod elf;
pub mod ipconfig;
pub mod kernel;
pub mod manifest;
pub mod mirror;
pub mod modules;
pub mod proxy;
pub mod ra;
pub mod reference;
pub mod signatures;
pub mod site;
pub mod site_area;
pub mod sntp;
pub mod squashfs;
pub mod stage2;
pub mod syslog;
pub mod tar;
pub mod tree;
pub mod trust;
