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
    /// `ip=`: network configuration, one entry per occurrence.
    pub ip: Vec<String>,
    /// `nameserver=`: DNS servers, in order.
    pub nameservers: Vec<String>,
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
            ip,
            nameservers,
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
            .field("ip", ip)
            .field("nameservers", nameservers)
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
        "unknown kernel argument {key:?} (wyrcan knows wyrcan.img, wyrcan.arg, wyrcan.efi, wyrcan.insecure, wyrcan.proxy, wyrcan.mirror, wyrcan.pcr, wyrcan.tpm and wyrcan.debug, each also spelled wyr.*)"
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
    /// `console=` and `loglevel=`, which Wyrcan honours too. Anything after
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
mod tests {
    use super::*;

    fn p(key: &str, value: Option<&str>) -> Param {
        Param {
            key: key.to_string(),
            value: value.map(str::to_string),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// An input and the `(key, value)` pairs it splits into.
    type SplitCase = (
        &'static str,
        &'static [(&'static str, Option<&'static str>)],
    );

    /// Each expectation is what the kernel's `parse_args()` hands its callbacks
    /// (cross-checked against the C code on random inputs).
    #[test]
    fn split_like_the_kernel() {
        let cases: &[SplitCase] = &[
            ("", &[]),
            ("   \t\n ", &[]),
            ("quiet", &[("quiet", None)]),
            (
                "root=/dev/sda1 ro",
                &[("root", Some("/dev/sda1")), ("ro", None)],
            ),
            ("a=b=c", &[("a", Some("b=c"))]),
            ("a=", &[("a", Some(""))]),
            (
                "  a  \t b\n\nc \r\n",
                &[("a", None), ("b", None), ("c", None)],
            ),
            ("\x0bvt\x0cff", &[("vt", None), ("ff", None)]),
            // The value's outer quotes go.
            (
                "wyrcan.arg=\"quiet log_buf_len=1M\"",
                &[("wyrcan.arg", Some("quiet log_buf_len=1M"))],
            ),
            // Quotes that do not start the value stay.
            (
                "wyrcan.arg=foo=\"x y\"",
                &[("wyrcan.arg", Some("foo=\"x y\""))],
            ),
            // A whole-quoted token.
            ("\"wyrcan.img=a b\"", &[("wyrcan.img", Some("a b"))]),
            ("\"quiet\"", &[("quiet", None)]),
            ("\"a b\" c", &[("a b", None), ("c", None)]),
            // Quotes toggle mid-token; only one leading and one trailing quote go.
            ("a=\"b\"c\" d", &[("a", Some("b\"c\" d"))]),
            ("x\"a b\"=c", &[("x\"a b\"", Some("c"))]),
            ("a=\"\"", &[("a", Some(""))]),
            ("a=\"", &[("a", Some(""))]),
            ("\"a=\"", &[("a", Some(""))]),
            ("a=\"b c", &[("a", Some("b c"))]),
            ("\"", &[("", None)]),
            // An `=` at offset 0 does not count (the kernel's `equals == 0`).
            ("=a=b", &[("=a", Some("b"))]),
            ("=x", &[("=x", None)]),
            // `--` ends the kernel's parameters.
            ("a -- b c=d", &[("a", None)]),
            ("\"--\" b", &[]),
            ("--=x b", &[("--", Some("x")), ("b", None)]),
            ("a\0b c", &[("a", None)]),
            ("ü=ö \"ä ë\"", &[("ü", Some("ö")), ("ä ë", None)]),
        ];
        for (input, want) in cases {
            let want: Vec<Param> = want.iter().map(|(k, v)| p(k, *v)).collect();
            assert_eq!(split(input), want, "{input:?}");
        }
    }

    #[test]
    fn split_init_keeps_what_follows_dashes() {
        assert_eq!(
            split_init("quiet -- single \"a b\" x=\"y z\""),
            (vec![p("quiet", None)], strings(&["single", "a b", "x=y z"]))
        );
        assert_eq!(split_init("a --"), (vec![p("a", None)], vec![]));
        assert_eq!(
            split_init("a b"),
            (vec![p("a", None), p("b", None)], vec![])
        );
    }

    #[test]
    fn from_cmdline_table() {
        let ok: &[(&str, WyrcanArgs)] = &[
            ("", WyrcanArgs::default()),
            (
                "BOOT_IMAGE=/vmlinuz quiet wyrcan.img=ghcr.io/o/r:1",
                WyrcanArgs { img: Some("ghcr.io/o/r:1".into()), ..Default::default() },
            ),
            ("wyr.img=x", WyrcanArgs { img: Some("x".into()), ..Default::default() }),
            ("\"wyrcan.img=a b\"", WyrcanArgs { img: Some("a b".into()), ..Default::default() }),
            ("wyrcan.img=a wyr.img=b", WyrcanArgs { img: Some("b".into()), ..Default::default() }),
            (
                "wyrcan.arg=\"quiet log_buf_len=1M\" wyr.arg=foo=\"x y\" wyrcan.arg=ro",
                WyrcanArgs { args: strings(&["quiet log_buf_len=1M", "foo=\"x y\"", "ro"]), ..Default::default() },
            ),
            ("wyrcan.efi=write", WyrcanArgs { efi: Some(EfiAction::Write), ..Default::default() }),
            ("wyr.efi=clear", WyrcanArgs { efi: Some(EfiAction::Clear), ..Default::default() }),
            (
                "wyrcan.insecure=localhost:5000 wyr.insecure=10.0.0.1",
                WyrcanArgs { insecure: strings(&["localhost:5000", "10.0.0.1"]), ..Default::default() },
            ),
            (
                "wyrcan.proxy=http://p.lan:3128 wyr.proxy=http://u:pw@q.lan:8080",
                WyrcanArgs { proxy: Some("http://u:pw@q.lan:8080".into()), ..Default::default() },
            ),
            (
                "ip=dhcp ip=10.0.0.2::10.0.0.1:255.255.255.0:box:eth1:none nameserver=1.1.1.1 nameserver=9.9.9.9",
                WyrcanArgs {
                    ip: strings(&["dhcp", "10.0.0.2::10.0.0.1:255.255.255.0:box:eth1:none"]),
                    nameservers: strings(&["1.1.1.1", "9.9.9.9"]),
                    ..Default::default()
                },
            ),
            (
                "console=tty0 console=ttyS0,115200n8",
                WyrcanArgs { console: strings(&["tty0", "ttyS0,115200n8"]), ..Default::default() },
            ),
            ("wyrcan.debug", WyrcanArgs { debug: true, ..Default::default() }),
            ("wyr.debug=1", WyrcanArgs { debug: true, ..Default::default() }),
            ("wyrcan.debug=0", WyrcanArgs::default()),
            ("loglevel=7", WyrcanArgs { debug: true, ..Default::default() }),
            ("loglevel=8", WyrcanArgs { debug: true, ..Default::default() }),
            ("loglevel=4", WyrcanArgs::default()),
            ("loglevel=x loglevel", WyrcanArgs::default()),
            // Only the kernel's part counts: after `--` it is init's business.
            ("wyrcan.img=a -- wyrcan.img=b wyrcan.bogus", WyrcanArgs { img: Some("a".into()), ..Default::default() }),
            // Keys that merely resemble ours are not ours.
            ("wyrcanimg=x wyr=1 wyrcan=1", WyrcanArgs::default()),
            ("ip", WyrcanArgs::default()),
        ];
        for (input, want) in ok {
            assert_eq!(
                WyrcanArgs::from_cmdline(input).as_ref(),
                Ok(want),
                "{input:?}"
            );
        }

        let s = |x: &str| x.to_string();
        let bad: &[(&str, CmdlineError)] = &[
            (
                "wyrcan.imgg=x",
                CmdlineError::UnknownKey {
                    key: s("wyrcan.imgg"),
                },
            ),
            (
                "wyr.bogus",
                CmdlineError::UnknownKey {
                    key: s("wyr.bogus"),
                },
            ),
            (
                "wyrcan.img",
                CmdlineError::MissingValue {
                    key: s("wyrcan.img"),
                    example: "docker.io/library/busybox:latest",
                },
            ),
            (
                "wyr.arg",
                CmdlineError::MissingValue {
                    key: s("wyr.arg"),
                    example: "\"quiet console=ttyS0\"",
                },
            ),
            (
                "wyrcan.insecure",
                CmdlineError::MissingValue {
                    key: s("wyrcan.insecure"),
                    example: "localhost:5000",
                },
            ),
            (
                "wyr.proxy",
                CmdlineError::MissingValue {
                    key: s("wyr.proxy"),
                    example: "http://proxy.lan:3128",
                },
            ),
            (
                "wyrcan.efi",
                CmdlineError::MissingValue {
                    key: s("wyrcan.efi"),
                    example: "write",
                },
            ),
            (
                "wyrcan.efi=show",
                CmdlineError::InvalidEfi {
                    key: s("wyrcan.efi"),
                    value: s("show"),
                },
            ),
            (
                "wyr.efi=WRITE",
                CmdlineError::InvalidEfi {
                    key: s("wyr.efi"),
                    value: s("WRITE"),
                },
            ),
            (
                "wyrcan.debug=maybe",
                CmdlineError::InvalidBool {
                    key: s("wyrcan.debug"),
                    value: s("maybe"),
                },
            ),
        ];
        for (input, want) in bad {
            assert_eq!(
                WyrcanArgs::from_cmdline(input).as_ref(),
                Err(want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn mirrors_are_collected_in_order() {
        let a = WyrcanArgs::from_cmdline(
            "wyrcan.mirror=docker.io=http://a.lan wyr.mirror=*=resolve+http://b.lan:5000/p",
        )
        .unwrap();
        assert_eq!(
            a.mirrors,
            ["docker.io=http://a.lan", "*=resolve+http://b.lan:5000/p"]
        );
        assert!(matches!(
            WyrcanArgs::from_cmdline("wyrcan.mirror"),
            Err(CmdlineError::MissingValue { .. })
        ));
    }

    #[test]
    fn tpm_settings() {
        let a = WyrcanArgs::from_cmdline("wyrcan.pcr=15 wyr.tpm=required").unwrap();
        assert_eq!((a.pcr, a.tpm_required), (Some(15), true));
        let a = WyrcanArgs::from_cmdline("wyrcan.tpm=required wyrcan.tpm=optional").unwrap();
        assert!(!a.tpm_required);
        for bad in ["wyrcan.pcr=24", "wyrcan.pcr=x", "wyrcan.tpm=yes"] {
            let e = WyrcanArgs::from_cmdline(bad).unwrap_err();
            assert!(matches!(e, CmdlineError::InvalidValue { .. }), "{bad}: {e}");
        }
        assert!(matches!(
            WyrcanArgs::from_cmdline("wyrcan.pcr"),
            Err(CmdlineError::MissingValue { .. })
        ));
    }

    #[test]
    fn debug_masks_the_proxy_password() {
        let args =
            WyrcanArgs::from_cmdline("wyrcan.img=x wyrcan.proxy=http://me:hunter2@p.lan:3128")
                .unwrap();
        assert_eq!(args.proxy.as_deref(), Some("http://me:hunter2@p.lan:3128"));
        let shown = format!("{args:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("http://me:***@p.lan:3128"), "{shown}");
        assert!(shown.contains("img: Some(\"x\")"), "{shown}");
    }

    #[test]
    fn error_messages_name_the_key_and_the_fix() {
        let msg = |c: &str| WyrcanArgs::from_cmdline(c).unwrap_err().to_string();
        assert!(msg("wyrcan.imgg=x").contains("\"wyrcan.imgg\""));
        assert!(msg("wyrcan.imgg=x").contains("wyrcan.img"));
        assert_eq!(
            msg("wyrcan.efi=show"),
            "wyrcan.efi=\"show\" is not understood: use wyrcan.efi=write or wyrcan.efi=clear"
        );
        assert_eq!(
            msg("wyr.img"),
            "kernel argument wyr.img needs a value, e.g. wyr.img=docker.io/library/busybox:latest"
        );
        for c in ["wyrcan.x", "wyrcan.img", "wyrcan.efi=x", "wyrcan.debug=x"] {
            let m = msg(c);
            assert!(!m.ends_with('.'), "{m}");
            assert!(m.starts_with(|ch: char| !ch.is_uppercase()), "{m}");
        }
    }

    #[test]
    fn next_cmdline_table() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("", &[], ""),
            ("  \n", &[], ""),
            ("console=ttyS0 rw\n", &[], "console=ttyS0 rw"),
            ("rw", &["quiet log_buf_len=1M"], "rw quiet log_buf_len=1M"),
            ("", &["quiet", "", "  ", "foo=\"x y\""], "quiet foo=\"x y\""),
            ("  a  ", &["b"], "a b"),
        ];
        for (image, args, want) in cases {
            assert_eq!(
                next_cmdline(image, &strings(args)),
                *want,
                "{image:?} {args:?}"
            );
        }
    }

    /// DESIGN §2: `wyrcan.arg="quiet log_buf_len=1M"` passes two arguments.
    #[test]
    fn quoted_arg_becomes_two_arguments() {
        let w =
            WyrcanArgs::from_cmdline("wyrcan.img=x wyrcan.arg=\"quiet log_buf_len=1M\"").unwrap();
        assert_eq!(w.args, strings(&["quiet log_buf_len=1M"]));
        let next = next_cmdline("", &w.args);
        assert_eq!(
            split(&next),
            vec![p("quiet", None), p("log_buf_len", Some("1M"))]
        );
    }

    /// DESIGN §2: `wyrcan.arg=foo="x y"` passes one argument whose value is `x y`.
    #[test]
    fn inner_quotes_reach_the_next_kernel() {
        let w = WyrcanArgs::from_cmdline("wyrcan.arg=foo=\"x y\"").unwrap();
        assert_eq!(w.args, strings(&["foo=\"x y\""]));
        let next = next_cmdline("root=/dev/ram0", &w.args);
        assert_eq!(next, "root=/dev/ram0 foo=\"x y\"");
        assert_eq!(
            split(&next),
            vec![p("root", Some("/dev/ram0")), p("foo", Some("x y"))]
        );
    }

    /// DESIGN §2/§4: chain boot hands the next Wyrcan its own settings.
    #[test]
    fn chain_boot() {
        let first = WyrcanArgs::from_cmdline(
            "console=ttyS0 wyrcan.img=ghcr.io/x/wyrcan:new wyrcan.arg=\"wyrcan.img=ghcr.io/x/os:1 wyrcan.arg=quiet\"",
        )
        .unwrap();
        assert_eq!(first.img.as_deref(), Some("ghcr.io/x/wyrcan:new"));
        let next = next_cmdline("console=ttyS0", &first.args);
        assert_eq!(
            next,
            "console=ttyS0 wyrcan.img=ghcr.io/x/os:1 wyrcan.arg=quiet"
        );
        let second = WyrcanArgs::from_cmdline(&next).unwrap();
        assert_eq!(second.img.as_deref(), Some("ghcr.io/x/os:1"));
        assert_eq!(second.args, strings(&["quiet"]));
        assert_eq!(second.console, strings(&["ttyS0"]));
        assert_eq!(next_cmdline("", &second.args), "quiet");
    }

    #[test]
    fn param_display_is_what_init_sees() {
        assert_eq!(p("a", Some("b c")).to_string(), "a=b c");
        assert_eq!(p("a", None).to_string(), "a");
        assert_eq!(p("a", Some("")).to_string(), "a=");
    }
}
