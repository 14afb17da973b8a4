//! The cmdline parser never panics, and what `next_cmdline` composes splits
//! back into the same parameters. Every network value it collects goes
//! through its own parser, which never panics either; an `ip=` that parses
//! shows as a value that parses back to the same configuration.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wyrcan_core::{cmdline, ipconfig};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let params = cmdline::split(s);
    for p in &params {
        let _ = p.to_string();
    }
    let Ok(args) = cmdline::WyrcanArgs::from_cmdline(s) else {
        return;
    };
    for v in &args.ip {
        if let Ok(c) = ipconfig::parse(v) {
            let shown = c.to_string();
            assert_eq!(
                ipconfig::parse(&shown).as_ref(),
                Ok(&c),
                "{v:?} shown as {shown:?}"
            );
        }
    }
    for v in &args.nameservers {
        let _ = ipconfig::parse_nameserver(v);
    }
    for v in &args.ifname {
        if let Ok(i) = ipconfig::parse_ifname(v) {
            assert!(i.mac[0] & 1 == 0 && !i.name.is_empty() && i.name.len() <= 15);
        }
    }
    for v in &args.vlan {
        if let Ok(vlan) = ipconfig::parse_vlan(v) {
            assert!((1..=4094).contains(&vlan.id) && vlan.name != vlan.parent);
        }
    }
    for v in &args.bond {
        if let Ok(b) = ipconfig::parse_bond(v) {
            assert!(!b.slaves.is_empty());
            for (key, _) in &b.options {
                assert!(!key.contains('/') && !key.contains('.'));
            }
        }
    }
    for v in args.ntp.iter().chain(&args.syslog) {
        assert!(cmdline::host_port(v).is_some(), "{v:?}");
    }
    // Mirrors: a parsed one prints as something that parses back the same.
    for m in &args.mirrors {
        if let Ok(parsed) = wyrcan_core::mirror::parse(m) {
            assert_eq!(wyrcan_core::mirror::parse(&parsed.to_string()).as_ref(), Ok(&parsed));
        }
    }
    // The same bytes as a registries.conf.
    let _ = wyrcan_core::mirror::from_registries_conf(&String::from_utf8_lossy(data));
});
