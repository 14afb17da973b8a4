//! `ifname=`, `vlan=` and `bond=` tests, from dracut.cmdline(7) and the
//! command lines of dracut's own test suite (`test/TEST-*`).

use super::tests::MAC;
use super::*;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn opts(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn ifname() {
    for (input, name, mac) in [
        (
            "net1:52:54:00:12:34:01",
            "net1",
            [0x52, 0x54, 0, 0x12, 0x34, 1],
        ),
        (
            "eth0:4a:3f:4c:04:f8:d7",
            "eth0",
            [0x4a, 0x3f, 0x4c, 4, 0xf8, 0xd7],
        ),
        ("bootnet:52:54:00:12:34:56", "bootnet", MAC),
        // dracut lower-cases for udev; either case means the same NIC.
        (
            "bootnet:4A:3F:4C:04:F8:D7",
            "bootnet",
            [0x4a, 0x3f, 0x4c, 4, 0xf8, 0xd7],
        ),
    ] {
        assert_eq!(
            parse_ifname(input),
            Ok(IfName {
                name: name.into(),
                mac
            }),
            "{input}"
        );
    }
    for bad in [
        "",
        "bootnet",
        "bootnet:",
        ":52:54:00:12:34:56",
        "a/b:52:54:00:12:34:56",
        "averyveryverylongname:52:54:00:12:34:56",
        "boot net:52:54:00:12:34:56",
        "bootnet:52:54:00:12:34",
        "bootnet:52:54:00:12:34:56:78",
        "bootnet:52-54-00-12-34-56",
        "bootnet:525400123456",
        "bootnet:52:54:00:12:34:+5",
        "bootnet:2:54:00:12:34:56",
        "bootnet:01:00:5e:00:00:01",
        "bootnet:ff:ff:ff:ff:ff:ff",
        "bootnet:00:00:00:00:00:00",
        // InfiniBand's 20-byte addresses: not Ethernet.
        "ib0:80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:00:0f:01",
    ] {
        let e = parse_ifname(bad).unwrap_err();
        assert!(matches!(e, LinkError::IfName { .. }), "{bad}: {e}");
        let m = e.to_string();
        assert!(m.starts_with(&format!("ifname={bad:?}: ")), "{m}");
        assert!(m.ends_with("e.g. ifname=bootnet:52:54:00:12:34:56"), "{m}");
    }
    assert_eq!(
        parse_ifname("bootnet:52:54").unwrap_err().to_string(),
        "ifname=\"bootnet:52:54\": \"52:54\" is not a unicast Ethernet MAC address (6 hex bytes \
         separated by colons): expected ifname=<name>:<mac>, e.g. ifname=bootnet:52:54:00:12:34:56"
    );
}

#[test]
fn vlan() {
    // The four name styles of dracut.cmdline(7), as dracut's TEST-70 writes them.
    for (input, name, parent, id) in [
        ("vlan0001:net2", "vlan0001", "net2", 1),
        ("vlan2:net2", "vlan2", "net2", 2),
        ("net2.3:net2", "net2.3", "net2", 3),
        ("net2.0004:net2", "net2.0004", "net2", 4),
        ("eth0.10:eth0", "eth0.10", "eth0", 10),
        // Zero-padded ids are decimal, as the kernel writes vlan%.4i.
        ("vlan0010:bond0", "vlan0010", "bond0", 10),
        ("vlan0009:bond0", "vlan0009", "bond0", 9),
        ("vlan4094:eth0", "vlan4094", "eth0", 4094),
        // <anything>.<id>.
        ("storage.200:bond0", "storage.200", "bond0", 200),
        ("vlan10.20:eth0", "vlan10.20", "eth0", 20),
    ] {
        assert_eq!(
            parse_vlan(input),
            Ok(Vlan {
                name: name.into(),
                parent: parent.into(),
                id
            }),
            "{input}"
        );
    }
    for bad in [
        "",
        "eth0.10",
        "eth0.10:eth0:x",
        ":eth0",
        "eth0.10:",
        "eth0.10:eth0.10",
        "vlan:eth0",
        "storage:eth0",
        "eth0.:eth0",
        "vlan0:eth0",
        "eth0.0:eth0",
        "vlan4095:eth0",
        "eth0.99999:eth0",
        "e.999999999999:eth0",
        "vlan-1:eth0",
        "eth0.+1:eth0",
        "a/b.10:eth0",
        "eth0.10:a/b",
    ] {
        let e = parse_vlan(bad).unwrap_err();
        assert!(matches!(e, LinkError::Vlan { .. }), "{bad}: {e}");
        let m = e.to_string();
        assert!(m.starts_with(&format!("vlan={bad:?}: ")), "{m}");
        assert!(m.contains("e.g. vlan=eth0.10:eth0"), "{m}");
    }
    assert_eq!(
        parse_vlan("vlan4095:eth0").unwrap_err().to_string(),
        "vlan=\"vlan4095:eth0\": VLAN id 4095 is out of range: expected vlan=<name>:<parent> \
         with the VLAN id (1 to 4094) in the name as <parent>.<id> or vlan<id>, e.g. \
         vlan=eth0.10:eth0 or vlan=vlan0010:bond0"
    );
}

#[test]
fn bond() {
    let bond = |name: &str, slaves: &[&str], o: &[(&str, &str)], mtu| Bond {
        name: name.into(),
        slaves: strings(slaves),
        options: opts(o),
        mtu,
    };
    let ok: Vec<(&str, Bond)> = vec![
        // "Bond without parameters assumes bond=bond0:eth0,eth1:mode=balance-rr".
        (
            "",
            bond("bond0", &["eth0", "eth1"], &[("mode", "balance-rr")], None),
        ),
        (
            "bond0:eth0,eth1:mode=balance-rr",
            bond("bond0", &["eth0", "eth1"], &[("mode", "balance-rr")], None),
        ),
        // A name alone: dracut's default slaves, the driver's default mode.
        ("bond1", bond("bond1", &["eth0", "eth1"], &[], None)),
        // dracut's TEST-70 and TEST-50.
        (
            "bond0:enp0s1,enp0s2,enp0s3:mode=balance-rr",
            bond(
                "bond0",
                &["enp0s1", "enp0s2", "enp0s3"],
                &[("mode", "balance-rr")],
                None,
            ),
        ),
        (
            "bond0:net3,net4:miimon=100",
            bond("bond0", &["net3", "net4"], &[("miimon", "100")], None),
        ),
        (
            "bond0:eth0,eth1:mode=active-backup,miimon=100:9000",
            bond(
                "bond0",
                &["eth0", "eth1"],
                &[("mode", "active-backup"), ("miimon", "100")],
                Some(9000),
            ),
        ),
        (
            "bond0:ens1f0,ens1f1:mode=802.3ad,lacp_rate=fast,xmit_hash_policy=layer3+4",
            bond(
                "bond0",
                &["ens1f0", "ens1f1"],
                &[
                    ("mode", "802.3ad"),
                    ("lacp_rate", "fast"),
                    ("xmit_hash_policy", "layer3+4"),
                ],
                None,
            ),
        ),
        // Modes by number; arp_ip_target's `;` becomes the `,` dracut hands on.
        (
            "bond0:eth0:mode=1,arp_interval=200,arp_ip_target=10.0.0.1;10.0.0.2",
            bond(
                "bond0",
                &["eth0"],
                &[
                    ("mode", "1"),
                    ("arp_interval", "200"),
                    ("arp_ip_target", "10.0.0.1,10.0.0.2"),
                ],
                None,
            ),
        ),
        (
            "bond0:eth0::1500",
            bond("bond0", &["eth0"], &[], Some(1500)),
        ),
        ("bond0:eth0:,,", bond("bond0", &["eth0"], &[], None)),
    ];
    for (input, want) in &ok {
        assert_eq!(parse_bond(input).as_ref(), Ok(want), "{input:?}");
    }
    for mode in [
        "balance-rr",
        "active-backup",
        "balance-xor",
        "broadcast",
        "802.3ad",
        "balance-tlb",
        "balance-alb",
        "0",
        "6",
    ] {
        let b = parse_bond(&format!("bond0:eth0:mode={mode}")).unwrap();
        assert_eq!(b.options, opts(&[("mode", mode)]));
    }
    for bad in [
        ":eth0",
        "bond0:",
        "bond0:eth0,",
        "bond0:eth0,eth0",
        "bond0:bond0",
        "bond0:a/b",
        "bond0:eth0:mode=lacp",
        "bond0:eth0:mode=7",
        "bond0:eth0:mode=01",
        "bond0:eth0:mode=",
        "bond0:eth0:miimon",
        "bond0:eth0:=100",
        "bond0:eth0:../../../kernel/x=1",
        "bond0:eth0:Mode=1",
        "bond0:eth0:miimon=1 00",
        "bond0:eth0::67",
        "bond0:eth0::65536",
        "bond0:eth0::jumbo",
        "bond0:eth0:mode=1:1500:x",
        "averyveryverylongname:eth0",
    ] {
        let e = parse_bond(bad).unwrap_err();
        assert!(matches!(e, LinkError::Bond { .. }), "{bad}: {e}");
        let m = e.to_string();
        assert!(m.starts_with(&format!("bond={bad:?}: ")), "{m}");
        assert!(
            m.ends_with("e.g. bond=bond0:eth0,eth1:mode=active-backup,miimon=100"),
            "{m}"
        );
    }
    assert_eq!(
        parse_bond("bond0:eth0:mode=lacp").unwrap_err().to_string(),
        "bond=\"bond0:eth0:mode=lacp\": the bonding mode \"lacp\" is not one of balance-rr, \
         active-backup, balance-xor, broadcast, 802.3ad, balance-tlb, balance-alb (or 0 to 6): \
         expected bond=<name>[:<slaves>[:<options>[:<mtu>]]], e.g. \
         bond=bond0:eth0,eth1:mode=active-backup,miimon=100"
    );
}

#[test]
fn macs() {
    assert_eq!(parse_mac("52:54:00:12:34:56"), Some(MAC));
    assert_eq!(parse_mac("02:00:00:00:00:01"), Some([2, 0, 0, 0, 0, 1]));
    for bad in [
        "",
        "52:54:00:12:34",
        "52:54:00:12:34:56:",
        "03:00:00:00:00:01",
        "52:54:00:12:34:5",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad}");
    }
    assert_eq!(mac_string(MAC), "52:54:00:12:34:56");
}
