//! The Linux kernel command line: a tokenizer that splits it exactly as the
//! kernel does, Wyrcan's own `wyrcan.*` / `wyr.*` keys (DESIGN.md §2), and
//! the command line handed to the next kernel.
//!
//! Splitting must match the kernel byte for byte: a `wyrcan.arg` value is
//! passed on verbatim and parsed again by the next kernel, so any difference
//! in quote handling would change what the booted image sees.

use std::fmt;

/// One `key` or `key=value` parameter, as the kernel's `next_arg()` yields it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The part before the first `=` (outer quotes removed).
    pub key: String,
    /// The part after the first `=`, with one leading and one trailing `"` removed; `None` without `=`.
    pub value: Option<String>,
}

/// The kernel's `isspace()` on the ASCII range.
///
/// The kernel's ctype table also counts byte 0xA0 as a space, but in UTF-8
/// text that byte only occurs inside multi-byte characters; splitting there
/// would tear characters apart, so it is deliberately not a separator here.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// A port of `next_arg()` from the kernel's `lib/cmdline.c`.
///
/// `args` starts at a non-space byte. Returns the parameter and the rest of
/// the line with leading spaces skipped.
fn next_arg(args: &str) -> (Param, &str) {
    let mut b = args.as_bytes();
    let mut text = args;
    let mut in_quote = false;
    let mut quoted = false;
    if b.first() == Some(&b'"') {
        b = &b[1..];
        text = &text[1..];
        in_quote = true;
        quoted = true;
    }

    let mut i = 0;
    // 0 doubles as "not found", exactly as in C: an `=` at index 0 does not count.
    let mut equals = 0;
    while i < b.len() {
        if is_space(b[i]) && !in_quote {
            break;
        }
        if equals == 0 && b[i] == b'=' {
            equals = i;
        }
        if b[i] == b'"' {
            in_quote = !in_quote;
        }
        i += 1;
    }

    // The C code ends strings by writing NULs; here the same cuts become
    // slice bounds: `end` is where the token (key or value) stops.
    let mut end = i;
    let value = if equals == 0 {
        None
    } else {
        let mut start = equals + 1;
        if b.get(start) == Some(&b'"') {
            start += 1;
            if b[i - 1] == b'"' {
                end = i - 1;
            }
        }
        Some(start)
    };
    if quoted && i > 0 && b[i - 1] == b'"' {
        end = i - 1;
    }

    let param = match value {
        None => Param {
            key: text[..end].to_string(),
            value: None,
        },
        // `foo="` leaves the value start past the cut: the value is empty.
        Some(start) => Param {
            key: text[..equals].to_string(),
            value: Some(text[start.min(end)..end].to_string()),
        },
    };
    // Every byte compared above is ASCII, so these indices are char boundaries.
    let rest = if i < b.len() {
        &text[i + 1..]
    } else {
        &text[i..]
    };
    (param, skip_spaces(rest))
}

fn skip_spaces(s: &str) -> &str {
    s.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8))
}

/// The kernel stops reading at a NUL, as a C string would.
fn until_nul(cmdline: &str) -> &str {
    cmdline.split('\0').next().unwrap_or("")
}

/// Splits a kernel command line into parameters exactly as the kernel does, stopping at `--`.
///
/// A token that starts with `"` is quoted as a whole (`"key=a b"`); a `"`
/// anywhere toggles quoting, so `key="a b"` is one token; one leading and one
/// trailing `"` are then stripped from the value. There is no escape for `"`.
/// Whatever follows a bare `--` belongs to init, not the kernel: see [`split_init`].
pub fn split(cmdline: &str) -> Vec<Param> {
    split_init(cmdline).0
}

/// Like [`split`], and also returns the arguments after `--`, as the kernel passes them to init's argv.
pub fn split_init(cmdline: &str) -> (Vec<Param>, Vec<String>) {
    let mut args = skip_spaces(until_nul(cmdline));
    let mut params = Vec::new();
    while !args.is_empty() {
        let (param, rest) = next_arg(args);
        args = rest;
        // parse_args() stops at `--` only when it has no value.
        if param.value.is_none() && param.key == "--" {
            return (params, init_args(args));
        }
        params.push(param);
    }
    (params, Vec::new())
}

/// The kernel tokenizes init's arguments with the same `next_arg()`, then
/// glues `key=value` back together (`repair_env_string()` in init/main.c).
fn init_args(mut args: &str) -> Vec<String> {
    let mut out = Vec::new();
    while !args.is_empty() {
        let (param, rest) = next_arg(args);
        args = rest;
        out.push(param.to_string());
    }
    out
}

impl fmt::Display for Param {
    /// `key` or `key=value`, as init sees a parameter (quotes already removed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v}", self.key),
            None => f.write_str(&self.key),
        }
    }
}

/// What `wyrcan.efi` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EfiAction {
    /// Store the validated config in EFI NVRAM (after confirmation), then boot.
    Write,
    /// Remove the stored config (after confirmation), then reboot.
    Clear,
}

/// How the next boot holds the image's tree (`wyrcan.root`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootForm {
    /// The tree unpacked into the initramfs (the default): every byte in RAM.
    #[default]
    Cpio,
    /// The tree as one compressed squashfs in the initramfs, loop-mounted
    /// under a tmpfs overlay by a stage-2 init: about a third of the RAM.
    Squashfs,
    /// `Cpio` when it fits in RAM, else `Squashfs`.
    Auto,
}

impl RootForm {
    /// The cmdline spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RootForm::Cpio => "cpio",
            RootForm::Squashfs => "squashfs",
            RootForm::Auto => "auto",
        }
    }

    /// Parse `cpio`, `squashfs` or `auto`.
    pub fn parse(s: &str) -> Option<RootForm> {
        match s {
            "cpio" => Some(RootForm::Cpio),
            "squashfs" => Some(RootForm::Squashfs),
            "auto" => Some(RootForm::Auto),
            _ => None,
        }
    }
}

/// Everything Wyrcan reads from the kernel command line. `Debug` masks
/// the proxy's password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct WyrcanArgs {
    /// `wyrcan.img`: the image reference to boot (the last one wins).
    pub img: Option<String>,
    /// `wyrcan.arg`: arguments for the next kernel, in order, each as the kernel parsed it.
    pub args: Vec<String>,
    /// `wyrcan.efi`: store or clear the config in EFI NVRAM.
    pub efi: Option<EfiAction>,
    /// `wyrcan.insecure`: registries (`host[:port]`) allowed over plain HTTP or unverified TLS.
    pub insecure: Vec<String>,
    /// `wyrcan.proxy`: the HTTP proxy of every pull, `http://[USER:PASS@]HOST:PORT`
    /// (the last one wins; checked by PID 1's configuration, not here).
    pub proxy: Option<String>,
    /// `wyrcan.mirror`: `REGISTRY=URL[,URL…]`, repeatable (checked by PID 1's
    /// configuration, see [`crate::mirror`]).
    pub mirrors: Vec<String>,
    /// `wyrcan.pcr`: the TPM PCR measured into (0–23).
    pub pcr: Option<u32>,
    /// `wyrcan.tpm=required`: refuse to boot without a TPM.
    pub tpm_required: bool,
    /// `wyrcan.root`: how the next boot holds the tree (the last one wins).
    pub root: Option<RootForm>,
    /// `ip=`: network configuration, one entry per occurrence.
    pub ip: Vec<String>,
    /// `nameserver=`: DNS servers, in order.
    pub nameservers: Vec<String>,
    /// `ifname=`: stable interface names by MAC address (dracut), in order;
    /// checked by [`crate::ipconfig::parse_ifname`].
    pub ifname: Vec<String>,
    /// `vlan=`: VLAN links to create (dracut), in order; checked by
    /// [`crate::ipconfig::parse_vlan`].
    pub vlan: Vec<String>,
    /// `bond=`: bonds to create (dracut), in order; a bare `bond` is `""`
    /// (dracut's default bond). Checked by [`crate::ipconfig::parse_bond`].
    pub bond: Vec<String>,
    /// `wyrcan.ntp`: NTP servers (`HOST`: a name, an IPv4 address or an
    /// IPv6 address with or without brackets), in order.
    pub ntp: Vec<String>,
    /// `wyrcan.syslog`: where to send the log, `HOST[:PORT]` or `[IPv6]:PORT`
    /// (the last one wins); see [`host_port`].
    pub syslog: Option<String>,
    /// `wyrcan.debug`, or `loglevel=7` and above: verbose logging.
    pub debug: bool,
    /// `console=`: the consoles the kernel writes to, in order.
    pub console: Vec<String>,
}

impl fmt::Debug for WyrcanArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every field, the proxy URL with its password masked.
        let WyrcanArgs {
            img,
            args,
            efi,
            insecure,
            proxy,
            mirrors,
            pcr,
            tpm_required,
            root,
            ip,
            nameservers,
            ifname,
            vlan,
            bond,
            ntp,
            syslog,
            debug,
            console,
        } = self;
        f.debug_struct("WyrcanArgs")
            .field("img", img)
            .field("args", args)
            .field("efi", efi)
            .field("insecure", insecure)
            .field("proxy", &proxy.as_deref().map(crate::proxy::mask))
            .field("mirrors", mirrors)
            .field("pcr", pcr)
            .field("tpm_required", tpm_required)
            .field("root", root)
            .field("ip", ip)
            .field("nameservers", nameservers)
            .field("ifname", ifname)
            .field("vlan", vlan)
            .field("bond", bond)
            .field("ntp", ntp)
            .field("syslog", syslog)
            .field("debug", debug)
            .field("console", console)
            .finish()
    }
}

/// A kernel command line Wyrcan cannot act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    /// A `wyrcan.*` / `wyr.*` key Wyrcan does not know (probably a typo).
    #[error(
        "unknown kernel argument {key:?} (wyrcan knows wyrcan.img, wyrcan.arg, wyrcan.efi, wyrcan.insecure, wyrcan.proxy, wyrcan.mirror, wyrcan.pcr, wyrcan.tpm, wyrcan.root, wyrcan.ntp, wyrcan.syslog and wyrcan.debug, each also spelled wyr.*)"
    )]
    UnknownKey {
        /// The key as written.
        key: String,
    },
    /// A key that needs `=value` has none.
    #[error("kernel argument {key} needs a value, e.g. {key}={example}")]
    MissingValue {
        /// The key as written.
        key: String,
        /// A sample value to show.
        example: &'static str,
    },
    /// `wyrcan.efi` with something other than `write` or `clear`.
    #[error("{key}={value:?} is not understood: use {key}=write or {key}=clear")]
    InvalidEfi {
        /// The key as written.
        key: String,
        /// The value given.
        value: String,
    },
    /// `wyrcan.pcr` that is not a PCR index, or `wyrcan.tpm` that is not `required`/`optional`.
    #[error("{key}={value:?} is not understood: {expected}")]
    InvalidValue {
        /// The key as written.
        key: String,
        /// The value given.
        value: String,
        /// What would be.
        expected: &'static str,
    },
    /// `wyrcan.debug` with a value that is not a yes/no.
    #[error("{key}={value:?} is not understood: use {key}, {key}=1 or {key}=0")]
    InvalidBool {
        /// The key as written.
        key: String,
        /// The value given.
        value: String,
    },
}

/// Long and short prefixes of Wyrcan's keys.
const PREFIXES: [&str; 2] = ["wyrcan.", "wyr."];

impl WyrcanArgs {
    /// Reads Wyrcan's settings from a kernel command line (e.g. `/proc/cmdline`).
    ///
    /// Other kernel parameters are ignored, except `ip=`, `nameserver=`,
    /// `ifname=`, `vlan=`, `bond=`, `console=` and `loglevel=`, which
    /// Wyrcan honours too (dracut's `rd.neednet` and `rd.peerdns` need
    /// nothing: the network always comes up, and DHCP's DNS servers are
    /// always used). Anything after
    /// `--` is init's, not ours. A misspelled `wyrcan.*` key is an error
    /// rather than silently ignored: booting the wrong thing is worse than
    /// stopping with a message.
    pub fn from_cmdline(cmdline: &str) -> Result<WyrcanArgs, CmdlineError> {
        let mut out = WyrcanArgs::default();
        for Param { key, value } in split(cmdline) {
            let need = |example: &'static str| {
                value.clone().ok_or_else(|| CmdlineError::MissingValue {
                    key: key.clone(),
                    example,
                })
            };
            let Some(name) = PREFIXES.iter().find_map(|p| key.strip_prefix(p)) else {
                match key.as_str() {
                    "ip" => out.ip.extend(value),
                    "nameserver" => out.nameservers.extend(value),
                    "ifname" => out.ifname.extend(value),
                    "vlan" => out.vlan.extend(value),
                    // dracut: a bare `bond` is bond0 over eth0 and eth1.
                    "bond" => out.bond.push(value.unwrap_or_default()),
                    "console" => out.console.extend(value),
                    "loglevel" => {
                        let level = value.as_deref().and_then(|v| v.trim().parse::<u32>().ok());
                        // 7 is KERN_DEBUG: whoever asks the kernel for it wants ours too.
                        out.debug |= level.is_some_and(|l| l >= 7);
                    }
                    _ => {}
                }
                continue;
            };
            match name {
                "img" => out.img = Some(need("docker.io/library/busybox:latest")?),
                "arg" => out.args.push(need("\"quiet console=ttyS0\"")?),
                "insecure" => out.insecure.push(need("localhost:5000")?),
                "proxy" => out.proxy = Some(need("http://proxy.lan:3128")?),
                "mirror" => out.mirrors.push(need("docker.io=http://cache.lan:5000")?),
                "ntp" => {
                    let v = need("pool.ntp.org")?;
                    match host_port(&v) {
                        Some((_, None)) => out.ntp.push(v),
                        _ => {
                            return Err(CmdlineError::InvalidValue {
                                key,
                                value: v,
                                expected: "a host name or IP address without a port, e.g. time.lan, 10.0.0.1 or [2001:db8::123]",
                            })
                        }
                    }
                }
                "syslog" => {
                    let v = need("logs.lan:514")?;
                    if host_port(&v).is_none() {
                        return Err(CmdlineError::InvalidValue {
                            key,
                            value: v,
                            expected:
                                "HOST[:PORT], e.g. logs.lan, 10.0.0.5:514 or [2001:db8::5]:514",
                        });
                    }
                    out.syslog = Some(v);
                }
                "pcr" => {
                    let v = need("12")?;
                    match v.parse::<u32>() {
                        Ok(n) if n <= 23 => out.pcr = Some(n),
                        _ => {
                            return Err(CmdlineError::InvalidValue {
                                key,
                                value: v,
                                expected: "a PCR index from 0 to 23, e.g. 12",
                            })
                        }
                    }
                }
                "tpm" => {
                    let v = need("required")?;
                    out.tpm_required = match v.as_str() {
                        "required" => true,
                        "optional" => false,
                        _ => {
                            return Err(CmdlineError::InvalidValue {
                                key,
                                value: v,
                                expected: "use required (refuse to boot without a TPM) or optional (the default)",
                            })
                        }
                    };
                }
                "root" => {
                    let v = need("squashfs")?;
                    out.root = Some(RootForm::parse(&v).ok_or(CmdlineError::InvalidValue {
                        key,
                        value: v,
                        expected: "use cpio (unpacked, the default), squashfs (compressed, about a third of the RAM) or auto (squashfs when cpio does not fit)",
                    })?);
                }
                "efi" => {
                    let v = need("write")?;
                    out.efi = Some(match v.as_str() {
                        "write" => EfiAction::Write,
                        "clear" => EfiAction::Clear,
                        _ => return Err(CmdlineError::InvalidEfi { key, value: v }),
                    });
                }
                "debug" => {
                    out.debug = match value.as_deref() {
                        None | Some("1" | "y" | "yes" | "true" | "on") => true,
                        Some("0" | "n" | "no" | "false" | "off") => false,
                        Some(v) => {
                            return Err(CmdlineError::InvalidBool {
                                value: v.to_string(),
                                key,
                            })
                        }
                    }
                }
                _ => return Err(CmdlineError::UnknownKey { key }),
            }
        }
        Ok(out)
    }
}

/// Splits `HOST[:PORT]`: a host name, an IPv4 address, or an IPv6 address
/// either bare (then without a port) or in brackets (`[2001:db8::5]:514`).
/// Returns the host without brackets and the port; `None` when either is
/// not valid (a port is 1 to 65535; a name is letters, digits, `-`, `_`
/// and dots, at most 253 bytes).
pub fn host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let port = |p: &str| -> Option<u16> {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse::<u16>().ok().filter(|&n| n != 0)
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        return match after {
            "" => Some((v6, None)),
            _ => Some((v6, Some(port(after.strip_prefix(':')?)?))),
        };
    }
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some((s, None));
    }
    let (host, p) = match s.split_once(':') {
        Some((h, p)) => (h, Some(port(p)?)),
        None => (s, None),
    };
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    // Digits and dots are meant as an IPv4 address (no top-level domain is
    // numeric), so they must be one: `10.0.0.256` is a typo, not a name.
    let numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let v4_ok = !numeric || host.parse::<std::net::Ipv4Addr>().is_ok();
    (name_ok && v4_ok).then_some((host, p))
}

/// The next kernel's command line: the image's `/boot/wyrcan.cmdline`
/// (trimmed), then every `wyrcan.arg` value verbatim, space separated.
///
/// Verbatim means as the kernel parsed it, outer quotes already gone, so
/// `wyrcan.arg="quiet log_buf_len=1M"` becomes two arguments and
/// `wyrcan.arg=foo="x y"` one whose value is `x y`. Empty pieces are dropped
/// so the result never has stray spaces.
pub fn next_cmdline(image_cmdline: &str, args: &[String]) -> String {
    std::iter::once(image_cmdline.trim())
        .chain(args.iter().map(String::as_str))
        .filter(|s| !s.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
