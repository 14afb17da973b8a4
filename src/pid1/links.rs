//! Links built before any `ip=` setting applies, in dracut's order:
//! `ifname=` renames (by MAC address), `bond=` bonds (sysfs, bonding
//! driver), `vlan=` VLANs (SIOCSIFVLAN, 8021q; a VLAN on a bond works),
//! then each `ip=`'s MTU and MAC address. `ip=` then names these links like
//! any other. Also: the modules those need, and `netconsole=`.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use wyrcan_core::cmdline::WyrcanArgs;
use wyrcan_core::ipconfig::{self, Bond, IfName, IpConfig, Vlan};
use wyrcan_core::modules::{name_from_path, ModuleIndex};

use crate::sys::Sys;

const CLASS_NET: &str = "/sys/class/net";

/// The checked `ifname=`, `bond=` and `vlan=` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// `ifname=`, in order.
    pub ifnames: Vec<IfName>,
    /// `bond=`, in order.
    pub bonds: Vec<Bond>,
    /// `vlan=`, in order.
    pub vlans: Vec<Vlan>,
}

impl Links {
    /// Parse the raw settings; `from` is the "(from …)" suffix of errors.
    pub fn parse(args: &WyrcanArgs, from: &str) -> Result<Links> {
        let ifnames = args
            .ifname
            .iter()
            .map(|s| ipconfig::parse_ifname(s).map_err(|e| anyhow!("{e}{from}")))
            .collect::<Result<Vec<_>>>()?;
        let bonds = args
            .bond
            .iter()
            .map(|s| ipconfig::parse_bond(s).map_err(|e| anyhow!("{e}{from}")))
            .collect::<Result<Vec<_>>>()?;
        let vlans = args
            .vlan
            .iter()
            .map(|s| ipconfig::parse_vlan(s).map_err(|e| anyhow!("{e}{from}")))
            .collect::<Result<Vec<_>>>()?;
        let mut names = BTreeSet::new();
        for n in ifnames
            .iter()
            .map(|i| &i.name)
            .chain(bonds.iter().map(|b| &b.name))
            .chain(vlans.iter().map(|v| &v.name))
        {
            if !names.insert(n.clone()) {
                bail!("the interface name {n} is given twice in ifname=, bond= or vlan={from}");
            }
        }
        for b in &bonds {
            if let Some(v) = vlans.iter().find(|v| b.slaves.contains(&v.name)) {
                bail!(
                    "bond={}: the VLAN {} cannot be a bond slave: put the VLAN on the bond instead (vlan=<name>:{}){from}",
                    b.name, v.name, b.name
                );
            }
        }
        Ok(Links {
            ifnames,
            bonds,
            vlans,
        })
    }

    /// Whether there is nothing to build.
    pub fn is_empty(&self) -> bool {
        self.ifnames.is_empty() && self.bonds.is_empty() && self.vlans.is_empty()
    }

    /// Links that carry another (bond slaves, VLAN parents): in the default
    /// case (no `ip=`) they get no DHCP of their own.
    pub fn carriers(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self
            .bonds
            .iter()
            .flat_map(|b| b.slaves.iter().cloned())
            .collect();
        out.extend(self.vlans.iter().map(|v| v.parent.clone()));
        out
    }

    /// What to check when DHCP on `iface` gets no lease.
    pub fn dhcp_hint(&self, iface: &str, after: std::time::Duration) -> Option<String> {
        let s = after.as_secs();
        if let Some(v) = self.vlans.iter().find(|v| v.name == iface) {
            return Some(format!(
                "no DHCP lease on {iface} after {s} s: is the switch port of {} a trunk for VLAN {} (tagged), and does a DHCP server serve that VLAN?",
                v.parent, v.id
            ));
        }
        self.bonds.iter().find(|b| b.name == iface).map(|b| {
            format!(
                "no DHCP lease on {iface} after {s} s: do its slaves ({}) have carrier, and do the switch ports match the bonding mode (802.3ad needs LACP on the switch)?",
                b.slaves.join(", ")
            )
        })
    }
}

/// The modules PID 1 loads besides the hardware's: `bonding` for `bond=`,
/// `8021q` for `vlan=` (raw cmdline settings; any bad one stopped the boot
/// before this).
pub fn modules(args: &WyrcanArgs) -> Vec<&'static str> {
    let mut out = Vec::new();
    if !args.bond.is_empty() {
        out.push("bonding");
    }
    if !args.vlan.is_empty() {
        out.push("8021q");
    }
    out
}

fn net(name: &str) -> std::path::PathBuf {
    Path::new(CLASS_NET).join(name)
}

fn present(sys: &dyn Sys) -> Vec<String> {
    let mut names: Vec<String> = sys
        .read_dir(Path::new(CLASS_NET))
        .unwrap_or_default()
        .into_iter()
        .filter(|n| sys.exists(&net(n).join("type")))
        .collect();
    names.sort();
    names
}

fn need(sys: &dyn Sys, name: &str, what: &str) -> Result<()> {
    if sys.exists(&net(name).join("type")) {
        return Ok(());
    }
    bail!(
        "{what}: there is no interface {name} (have: {}): check the name, or name the NIC with ifname=<name>:<mac>",
        present(sys).join(", ")
    )
}

fn mac_of(sys: &dyn Sys, name: &str) -> Option<[u8; 6]> {
    let b = sys.read(&net(name).join("address")).ok()?;
    ipconfig::parse_mac(String::from_utf8_lossy(&b).trim())
}

fn show_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Build the links: renames, bonds, VLANs, then the MTU and MAC address of
/// each `ip=` that names an interface.
pub fn setup(sys: &dyn Sys, links: &Links, ip: &[IpConfig]) -> Result<()> {
    for i in &links.ifnames {
        rename(sys, i)?;
    }
    for b in &links.bonds {
        bond(sys, b)?;
    }
    for v in &links.vlans {
        vlan(sys, v)?;
    }
    for c in ip {
        let l = c.link();
        if l.is_empty() {
            continue;
        }
        let Some(iface) = c.iface() else {
            bail!("ip={c}: an MTU or MAC address needs the interface it is for: ip=<interface>:<method>:<mtu>:<mac>");
        };
        need(sys, iface, &format!("ip={c}"))?;
        if let Some(mac) = l.mac {
            sys.link_down(iface)?;
            sys.set_mac(iface, mac).with_context(|| {
                format!(
                    "{iface}: the driver refused the MAC address {} from ip=",
                    show_mac(&mac)
                )
            })?;
        }
        if let Some(mtu) = l.mtu {
            let m = u16::try_from(mtu).map_err(|_| anyhow!("{iface}: MTU {mtu} is too large"))?;
            sys.set_mtu(iface, m).with_context(|| {
                format!("{iface}: the driver refused MTU {mtu} from ip= (a VLAN's MTU cannot exceed its parent's; check the NIC's maximum)")
            })?;
        }
        tracing::info!("{iface}: link settings from ip={c}");
    }
    Ok(())
}

fn rename(sys: &dyn Sys, i: &IfName) -> Result<()> {
    let names = present(sys);
    let Some(cur) = names
        .iter()
        .find(|n| mac_of(sys, n) == Some(i.mac) && !sys.exists(&net(n).join("master")))
    else {
        bail!(
            "ifname={}:{}: no interface has that MAC address (have: {}): check the address",
            i.name,
            show_mac(&i.mac),
            names
                .iter()
                .map(|n| format!(
                    "{n} {}",
                    mac_of(sys, n).map(|m| show_mac(&m)).unwrap_or_default()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    if *cur == i.name {
        return Ok(());
    }
    if names.contains(&i.name) {
        // Another NIC holds the name (the kernel's eth1 when ifname= swaps
        // eth0 and eth1): move it aside first.
        let aside = format!("wyrcan-old{}", names.len());
        sys.link_down(&i.name)?;
        sys.rename_link(&i.name, &aside)?;
    }
    sys.link_down(cur)?;
    sys.rename_link(cur, &i.name)
        .with_context(|| format!("ifname={}: renaming {cur} to {}", i.name, i.name))?;
    tracing::info!("{}: was {cur} (ifname=, MAC {})", i.name, show_mac(&i.mac));
    Ok(())
}

fn bond(sys: &dyn Sys, b: &Bond) -> Result<()> {
    let name = &b.name;
    let masters = Path::new(CLASS_NET).join("bonding_masters");
    if !sys.exists(&masters) {
        bail!("{name}: the bonding driver is not loaded (no {}): is the bonding module in the boot environment? (see the module messages above)", masters.display());
    }
    if !sys.exists(&net(name).join("type")) {
        sys.write(&masters, format!("+{name}").as_bytes())
            .with_context(|| format!("{name}: the bonding driver refused to create the bond"))?;
    }
    let dir = net(name).join("bonding");
    sys.link_down(name)?;
    // The mode first (it can only change while the bond is down and has no
    // slaves), then the other options; active_slave needs the slaves.
    let (later, mut now): (Vec<_>, Vec<_>) =
        b.options.iter().partition(|(k, _)| k == "active_slave");
    now.sort_by_key(|(k, _)| k != "mode");
    let set = |k: &str, v: &str| -> Result<()> {
        sys.write(&dir.join(k), v.as_bytes()).with_context(|| {
            format!("{name}: the bonding driver refused {k}={v}: check the option and its value (the kernel log says more; see the kernel's bonding documentation)")
        })
    };
    for (k, v) in now {
        set(k, v)?;
    }
    for s in &b.slaves {
        need(sys, s, &format!("{name}: slave {s}"))?;
        sys.link_down(s)?;
        sys.write(&dir.join("slaves"), format!("+{s}").as_bytes())
            .with_context(|| format!("{name}: the bonding driver refused the slave {s}: is it a plain Ethernet NIC, not already in another bond?"))?;
    }
    for (k, v) in later {
        set(k, v)?;
    }
    if let Some(mtu) = b.mtu {
        let m = u16::try_from(mtu).map_err(|_| anyhow!("{name}: MTU {mtu} is too large"))?;
        sys.set_mtu(name, m)
            .with_context(|| format!("{name}: MTU {mtu} was refused: do its slaves support it?"))?;
    }
    sys.link_up(name)?;
    let opts: Vec<String> = b.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
    tracing::info!(
        "{name}: bond of {} ({})",
        b.slaves.join(", "),
        opts.join(", ")
    );
    Ok(())
}

fn vlan(sys: &dyn Sys, v: &Vlan) -> Result<()> {
    need(sys, &v.parent, &format!("vlan={}:{}", v.name, v.parent))?;
    sys.link_up(&v.parent)?;
    sys.add_vlan(&v.parent, v.id, &v.name).with_context(|| {
        format!(
            "{}: creating VLAN {} on {}: is the 8021q module in the boot environment? (see the module messages above)",
            v.name, v.id, v.parent
        )
    })?;
    tracing::info!("{}: VLAN {} on {}", v.name, v.id, v.parent);
    Ok(())
}

/// The `netconsole=` value of the kernel command line, if any.
pub fn netconsole_arg(cmdline: &str) -> Option<String> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix("netconsole="))
        .next_back()
        .map(str::to_string)
}

/// `netconsole=` on the cmdline: load the module (built as a module, it
/// reads the setting only as a module parameter) once the links have their
/// addresses. Failures are logged: the boot goes on without it.
pub fn start_netconsole(sys: &dyn Sys, moddir: &Path) {
    let cmdline = sys.read(Path::new("/proc/cmdline")).unwrap_or_default();
    let Some(value) = netconsole_arg(&String::from_utf8_lossy(&cmdline)) else {
        return;
    };
    if let Err(e) = load_netconsole(sys, moddir, &value) {
        tracing::warn!(
            "netconsole={value}: {e:#}: the kernel's messages are not sent over the network"
        );
    }
}

fn load_netconsole(sys: &dyn Sys, moddir: &Path, value: &str) -> Result<()> {
    let read = |name: &str| -> String {
        sys.read(&moddir.join(name))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let index = ModuleIndex::parse(
        &read("modules.alias"),
        &read("modules.dep"),
        &read("modules.builtin"),
    )
    .map_err(|e| anyhow!("reading the module index: {e}"))?;
    let order = index
        .load_order(&["netconsole".to_string()])
        .map_err(|e| anyhow!("{e}: is the netconsole module in the boot environment?"))?;
    if order.is_empty() {
        bail!("the netconsole module is not in the boot environment");
    }
    for path in order {
        let p = moddir.join(&path);
        if name_from_path(&path) == "netconsole" {
            sys.load_module_params(&p, &format!("netconsole={value}"))?;
        } else {
            sys.load_module(&p)?;
        }
    }
    tracing::info!("netconsole={value}: kernel messages go to the network too");
    Ok(())
}

/// Wait until `iface` reports carrier; the error says what to check.
pub fn wait_carrier(sys: &dyn Sys, iface: &str, timeout: std::time::Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let c = sys.read(&net(iface).join("carrier")).unwrap_or_default();
        if String::from_utf8_lossy(&c).trim() == "1" {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            bail!(
                "{iface}: no carrier after {} s: check the cable and the switch port (for a bond: its slaves and the bonding mode; for a VLAN: its parent)",
                timeout.as_secs()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pid1::config::NetConfig;
    use crate::pid1::net;
    use crate::sys::fake::FakeSys;
    use rustix::io::Errno;

    fn args(words: &str) -> WyrcanArgs {
        WyrcanArgs::from_cmdline(words).unwrap()
    }

    fn cfg(words: &str) -> NetConfig {
        let a = args(words);
        NetConfig {
            ip: a.ip.iter().map(|s| ipconfig::parse(s).unwrap()).collect(),
            links: Links::parse(&a, "").unwrap(),
            ..NetConfig::default()
        }
    }

    fn two_nics() -> FakeSys {
        let mut sys = FakeSys::default();
        sys.dhcp_server = true;
        sys.add_link("eth0", "52:54:00:00:00:01");
        sys.add_link("eth1", "52:54:00:00:00:02");
        sys.put("/sys/class/net/bonding_masters", b"");
        sys
    }

    fn pos(calls: &[String], needle: &str) -> usize {
        calls
            .iter()
            .position(|c| c == needle || c.starts_with(&format!("{needle} ")))
            .unwrap_or_else(|| panic!("no {needle} in {calls:#?}"))
    }

    #[test]
    fn bond_mode_first_while_down_then_slaves_mtu_up_then_dhcp_on_the_bond() {
        let sys = two_nics();
        let c = cfg("bond=bond0:eth0,eth1:miimon=100,mode=active-backup:9000 ip=bond0:dhcp");
        net::up(&sys, &c).unwrap();
        let calls = sys.calls();
        let p = |n: &str| pos(&calls, n);
        assert!(p("sysfs bonding_masters +bond0") < p("link_down bond0"));
        assert!(p("link_down bond0") < p("sysfs bond0/bonding/mode active-backup"));
        assert!(p("sysfs bond0/bonding/mode active-backup") < p("sysfs bond0/bonding/miimon 100"));
        assert!(p("sysfs bond0/bonding/miimon 100") < p("link_down eth0"));
        assert!(p("link_down eth0") < p("sysfs bond0/bonding/slaves +eth0"));
        assert!(p("sysfs bond0/bonding/slaves +eth0") < p("sysfs bond0/bonding/slaves +eth1"));
        assert!(p("sysfs bond0/bonding/slaves +eth1") < p("set_mtu bond0 9000"));
        assert!(p("set_mtu bond0 9000") < p("link_up bond0"));
        assert!(p("link_up bond0") < p("dhcp_socket bond0"));
        assert!(!calls
            .iter()
            .any(|c| c == "dhcp_socket eth0" || c == "dhcp_socket eth1"));
    }

    #[test]
    fn default_dhcp_skips_slaves_and_vlan_parents() {
        let sys = two_nics();
        sys.add_link("eth2", "52:54:00:00:00:03");
        sys.add_link("eth3", "52:54:00:00:00:04");
        let c = cfg("bond=bond0:eth0,eth1 vlan=eth2.10:eth2");
        net::up(&sys, &c).unwrap();
        let calls = sys.calls();
        for n in ["bond0", "eth2.10", "eth3"] {
            pos(&calls, &format!("dhcp_socket {n}"));
        }
        for n in ["eth0", "eth1", "eth2"] {
            assert!(
                !calls.contains(&format!("dhcp_socket {n}")),
                "{n}: {calls:#?}"
            );
        }
    }

    #[test]
    fn vlan_on_a_bond_after_the_bond_and_renames_first() {
        let sys = two_nics();
        sys.add_link("eth2", "52:54:00:00:00:03");
        let c = cfg(
            "ifname=lan0:52:54:00:00:00:02 ifname=lan1:52:54:00:00:00:03 \
             bond=bond0:lan0,lan1:mode=1 vlan=vlan10:bond0 ip=vlan10:dhcp",
        );
        net::up(&sys, &c).unwrap();
        let calls = sys.calls();
        let p = |n: &str| pos(&calls, n);
        assert!(p("link_down eth1") < p("rename_link eth1 lan0"));
        assert!(p("rename_link eth2 lan1") < p("sysfs bonding_masters +bond0"));
        assert!(p("sysfs bond0/bonding/slaves +lan1") < p("link_up bond0"));
        assert!(p("link_up bond0") < p("add_vlan bond0 10 vlan10"));
        assert!(p("add_vlan bond0 10 vlan10") < p("dhcp_socket vlan10"));
        assert!(calls.contains(&"set_ipv4 vlan10 10.0.2.15/24".to_string()));
    }

    #[test]
    fn ifname_moves_a_held_name_aside() {
        let sys = two_nics();
        net::up(&sys, &cfg("ifname=eth0:52:54:00:00:00:02 ip=eth0:dhcp")).unwrap();
        let calls = sys.calls();
        let aside = calls
            .iter()
            .find(|c| c.starts_with("rename_link eth0 "))
            .unwrap_or_else(|| panic!("{calls:#?}"));
        assert!(pos(&calls, aside) < pos(&calls, "rename_link eth1 eth0"));
        assert_eq!(
            sys.get("/sys/class/net/eth0/address").unwrap(),
            b"52:54:00:00:00:02\n"
        );
    }

    #[test]
    fn per_ip_mtu_and_mac_mac_while_down() {
        let sys = two_nics();
        net::up(&sys, &cfg("ip=eth1:dhcp:9000:02:00:00:00:00:09")).unwrap();
        let calls = sys.calls();
        let p = |n: &str| pos(&calls, n);
        assert!(p("link_down eth1") < p("set_mac eth1 02:00:00:00:00:09"));
        assert!(p("set_mac eth1") < p("set_mtu eth1 9000"));
        assert!(p("set_mtu eth1 9000") < p("link_up eth1"));
        assert!(p("link_up eth1") < p("dhcp_socket eth1"));
    }

    #[test]
    fn a_refused_bond_option_names_the_bond_and_the_option() {
        let mut sys = two_nics();
        sys.write_errors
            .insert("/sys/class/net/bond0/bonding/mode".into(), Errno::INVAL);
        let e = net::up(&sys, &cfg("bond=bond0:eth0,eth1:mode=balance-rr")).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.starts_with("bond0: the bonding driver refused mode=balance-rr: "),
            "{e}"
        );
        assert!(e.contains("Invalid argument"), "{e}");
    }

    #[test]
    fn missing_drivers_and_links_say_what_to_check() {
        let sys = FakeSys::default();
        sys.add_link("eth0", "52:54:00:00:00:01");
        let e = format!("{:#}", net::up(&sys, &cfg("bond=bond0:eth0")).unwrap_err());
        assert!(e.contains("bond0: the bonding driver is not loaded"), "{e}");
        let e = format!(
            "{:#}",
            net::up(&sys, &cfg("vlan=eth9.10:eth9")).unwrap_err()
        );
        assert!(
            e.starts_with("vlan=eth9.10:eth9: there is no interface eth9 (have: eth0)"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            net::up(&sys, &cfg("ifname=lan0:52:54:00:00:00:09")).unwrap_err()
        );
        assert!(
            e.contains("no interface has that MAC address (have: eth0 52:54:00:00:00:01)"),
            "{e}"
        );
    }

    #[test]
    fn no_carrier_and_no_lease_errors_name_the_link() {
        let sys = FakeSys::default();
        sys.add_link("eth0", "52:54:00:00:00:01");
        sys.put("/sys/class/net/eth0/carrier", b"0\n");
        let e = wait_carrier(&sys, "eth0", std::time::Duration::from_millis(150)).unwrap_err();
        assert!(
            e.to_string().starts_with("eth0: no carrier after 0 s"),
            "{e}"
        );
        let l = Links::parse(&args("vlan=eth0.10:eth0 bond=bond0:eth1,eth2"), "").unwrap();
        let t = std::time::Duration::from_secs(60);
        assert!(l.dhcp_hint("eth0.10", t).unwrap().starts_with(
            "no DHCP lease on eth0.10 after 60 s: is the switch port of eth0 a trunk for VLAN 10"
        ));
        assert!(l.dhcp_hint("bond0", t).unwrap().contains("(eth1, eth2)"));
        assert_eq!(l.dhcp_hint("eth0", t), None);
    }

    #[test]
    fn settings_are_checked_with_where_they_came_from() {
        let from = " (from EFI)";
        let e = Links::parse(&args("bond=bond0:eth0:mode=foo"), from).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("bonding mode \"foo\""), "{e}");
        assert!(e.ends_with(from), "{e}");
        let e = Links::parse(&args("vlan=eth0.10:eth0 bond=bond0:eth0.10"), from).unwrap_err();
        assert!(e.to_string().contains("cannot be a bond slave"), "{e}");
        let e = Links::parse(
            &args("vlan=eth0.10:eth0 ifname=eth0.10:52:54:00:00:00:01"),
            "",
        )
        .unwrap_err();
        assert!(e.to_string().contains("given twice"), "{e}");
        assert_eq!(
            modules(&args("vlan=eth0.10:eth0 bond")),
            ["bonding", "8021q"]
        );
    }

    #[test]
    fn netconsole_loads_with_its_setting_as_a_parameter() {
        let sys = FakeSys::with_cmdline(b"console=ttyS0 netconsole=@/eth0,6666@10.0.0.1/ x");
        let m = Path::new("/lib/modules/6.1.0-test");
        sys.put(m.join("modules.alias"), b"");
        sys.put(m.join("modules.builtin"), b"");
        sys.put(
            m.join("modules.dep"),
            b"kernel/drivers/net/netconsole.ko:\n",
        );
        start_netconsole(&sys, m);
        assert_eq!(
            sys.calls(),
            ["load_module /lib/modules/6.1.0-test/kernel/drivers/net/netconsole.ko netconsole=@/eth0,6666@10.0.0.1/"]
        );
        let sys = FakeSys::with_cmdline(b"console=ttyS0");
        start_netconsole(&sys, m);
        assert!(sys.calls().is_empty());
    }
}
