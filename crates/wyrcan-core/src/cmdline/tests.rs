//! Tokenizer and `WyrcanArgs` tests.

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

/// dracut's network keys are collected raw, like `ip=`; PID 1 checks
/// them with `ipconfig::parse_*`.
#[test]
fn dracut_network_keys() {
    let a = WyrcanArgs::from_cmdline(
        "ifname=bootnet:52:54:00:12:34:56 ifname=net2:52:54:00:12:34:02 \
         vlan=vlan0010:bond0 vlan=eth0.20:eth0 bond=bond0:eth0,eth1:mode=802.3ad bond \
         ip=bond0:dhcp ip=[2001:db8::2]::[2001:db8::1]:64::vlan0010:none \
         nameserver=[2001:db8::53] rd.neednet=1 rd.peerdns=0 ifname vlan",
    )
    .unwrap();
    assert_eq!(
        a.ifname,
        strings(&["bootnet:52:54:00:12:34:56", "net2:52:54:00:12:34:02"])
    );
    assert_eq!(a.vlan, strings(&["vlan0010:bond0", "eth0.20:eth0"]));
    assert_eq!(a.bond, strings(&["bond0:eth0,eth1:mode=802.3ad", ""]));
    assert_eq!(
        a.ip,
        strings(&[
            "bond0:dhcp",
            "[2001:db8::2]::[2001:db8::1]:64::vlan0010:none"
        ])
    );
    assert_eq!(a.nameservers, strings(&["[2001:db8::53]"]));
    for v in &a.ifname {
        crate::ipconfig::parse_ifname(v).unwrap();
    }
    for v in &a.vlan {
        crate::ipconfig::parse_vlan(v).unwrap();
    }
    for v in &a.bond {
        crate::ipconfig::parse_bond(v).unwrap();
    }
    for v in &a.ip {
        crate::ipconfig::parse(v).unwrap();
    }
}

#[test]
fn ntp_and_syslog() {
    let a = WyrcanArgs::from_cmdline(
        "wyrcan.ntp=time.lan wyr.ntp=10.0.0.1 wyrcan.ntp=[2001:db8::123] wyrcan.ntp=2001:db8::7 \
         wyrcan.syslog=logs.lan wyr.syslog=[2001:db8::5]:5514",
    )
    .unwrap();
    assert_eq!(
        a.ntp,
        strings(&["time.lan", "10.0.0.1", "[2001:db8::123]", "2001:db8::7"])
    );
    assert_eq!(a.syslog.as_deref(), Some("[2001:db8::5]:5514"));
    let shown = format!("{a:?}");
    assert!(
        shown.contains("syslog: Some(\"[2001:db8::5]:5514\")"),
        "{shown}"
    );
    assert!(shown.contains("ntp: [\"time.lan\""), "{shown}");

    for bad in [
        "wyrcan.ntp=time.lan:123",
        "wyrcan.ntp=",
        "wyrcan.ntp=a..b",
        "wyrcan.ntp=10.0.0.256",
        "wyrcan.ntp=[10.0.0.1]",
        "wyrcan.syslog=logs.lan:0",
        "wyrcan.syslog=logs.lan:65536",
        "wyrcan.syslog=logs.lan:+514",
        "wyrcan.syslog=logs.lan:",
        "wyrcan.syslog=[2001:db8::5]514",
        "wyrcan.syslog=[2001:db8::5",
        "wyrcan.syslog=udp://logs.lan",
        "wyrcan.syslog=\"logs lan\"",
    ] {
        let e = WyrcanArgs::from_cmdline(bad).unwrap_err();
        assert!(matches!(e, CmdlineError::InvalidValue { .. }), "{bad}: {e}");
    }
    assert_eq!(
        WyrcanArgs::from_cmdline("wyrcan.syslog=x:y").unwrap_err().to_string(),
        "wyrcan.syslog=\"x:y\" is not understood: HOST[:PORT], e.g. logs.lan, 10.0.0.5:514 or [2001:db8::5]:514"
    );
    for key in ["wyrcan.ntp", "wyr.syslog"] {
        assert!(matches!(
            WyrcanArgs::from_cmdline(key),
            Err(CmdlineError::MissingValue { .. })
        ));
    }
    assert!(WyrcanArgs::from_cmdline("wyrcan.syslgo=x")
        .unwrap_err()
        .to_string()
        .contains("wyrcan.ntp, wyrcan.syslog and wyrcan.debug"));
}

#[test]
fn host_ports() {
    for (input, want) in [
        ("logs.lan", Some(("logs.lan", None))),
        ("logs.lan:514", Some(("logs.lan", Some(514)))),
        ("10.0.0.5", Some(("10.0.0.5", None))),
        ("10.0.0.5:65535", Some(("10.0.0.5", Some(65535)))),
        ("[2001:db8::5]", Some(("2001:db8::5", None))),
        ("[2001:db8::5]:1", Some(("2001:db8::5", Some(1)))),
        ("2001:db8::5", Some(("2001:db8::5", None))),
        ("_syslog.example", Some(("_syslog.example", None))),
        ("", None),
        (":514", None),
        ("[]:514", None),
        ("[logs.lan]:514", None),
        ("logs.lan:514:1", None),
        ("a.-", Some(("a.-", None))),
        (".lan", None),
        ("lan.", None),
    ] {
        assert_eq!(host_port(input), want, "{input:?}");
    }
    let long = format!("{}.lan", "a".repeat(64));
    assert_eq!(host_port(&long), None);
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
fn root_forms() {
    let a = WyrcanArgs::from_cmdline("wyrcan.root=cpio wyr.root=squashfs").unwrap();
    assert_eq!(a.root, Some(RootForm::Squashfs));
    assert_eq!(WyrcanArgs::from_cmdline("").unwrap().root, None);
    let a = WyrcanArgs::from_cmdline("wyrcan.root=auto").unwrap();
    assert_eq!(a.root.map(RootForm::as_str), Some("auto"));
    let e = WyrcanArgs::from_cmdline("wyrcan.root=erofs").unwrap_err();
    assert!(e.to_string().contains("squashfs"), "{e}");
    assert!(matches!(
        WyrcanArgs::from_cmdline("wyrcan.root"),
        Err(CmdlineError::MissingValue { .. })
    ));
}

#[test]
fn debug_masks_the_proxy_password() {
    let args =
        WyrcanArgs::from_cmdline("wyrcan.img=x wyrcan.proxy=http://me:hunter2@p.lan:3128").unwrap();
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
    let w = WyrcanArgs::from_cmdline("wyrcan.img=x wyrcan.arg=\"quiet log_buf_len=1M\"").unwrap();
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
