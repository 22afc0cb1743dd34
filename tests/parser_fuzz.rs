//! Property tests at scale for the parsers of what operators and switches hand caas: LLDP
//! captures (`caas discover --lldp-file`, both lldpctl formats) and cluster specs
//! (`caas gen cluster -f`). The discovery report and kernel command line have their own file
//! (`discovery_fuzz.rs`).
//!
//! `CAAS_FUZZ_CASES` scales every property (the defaults keep this file to seconds in CI;
//! `CAAS_FUZZ_CASES=200000` for a long run). The properties: no input panics; an accepted
//! capture keeps every neighbour on an interface the capture named; a spec is either a lab
//! whose machines have distinct names, MACs and addresses, or one error line naming the file.

mod common;

use caas::cluster::spec::{LabSpec, Overrides, from_yaml};
use caas::discovery::lldp;
use proptest::prelude::*;

/// `lldpctl -f keyvalue` lines, mostly well formed, with the keys the parser knows.
fn arb_keyvalue() -> impl Strategy<Value = String> {
    let interface = prop::sample::select(vec!["eth0", "eth1", "eth0.100", "bond0", "x"]);
    let key = prop::sample::select(vec![
        "via",
        "rid",
        "age",
        "chassis.mac",
        "chassis.local",
        "chassis.name",
        "chassis.descr",
        "chassis.mgmt-ip",
        "port.ifname",
        "port.descr",
        "vlan",
        "vlan.vlan-id",
        "vlan.pvid",
        "unknown",
    ]);
    let line = prop_oneof![
        8 => (interface, key, "[ -~]{0,12}").prop_map(|(i, k, v)| format!("lldp.{i}.{k}={v}")),
        1 => "[ -~]{0,20}",
        1 => "lldp\\.[a-z0-9.=]{0,16}",
    ];
    prop::collection::vec(line, 0..24).prop_map(|lines| lines.join("\n"))
}

/// lldpctl XML with the elements the parser reads, nested in every order.
fn arb_xml() -> impl Strategy<Value = String> {
    let element = prop_oneof![
        "<chassis><id type=\"mac\">[0-9a-f:]{0,17}</id><name>[a-z0-9]{0,6}</name></chassis>",
        "<port><id type=\"ifname\">[a-z0-9]{0,6}</id><descr>[ -~&&[^<>&]]{0,8}</descr></port>",
        "<vlan vlan-id=\"[0-9]{0,5}\" pvid=\"(yes|no)\">[a-z]{0,4}</vlan>",
        "<[a-z]{1,4}/>",
        "[ -~&&[^<>&]]{0,6}",
    ];
    let interface =
        ("[a-z0-9.]{0,6}", prop::collection::vec(element, 0..5)).prop_map(|(name, inner)| {
            format!(
                "<interface name=\"{name}\" via=\"LLDP\">{}</interface>",
                inner.concat()
            )
        });
    prop::collection::vec(interface, 0..5).prop_map(|interfaces| {
        format!(
            "<?xml version=\"1.0\"?><lldp>{}</lldp>",
            interfaces.concat()
        )
    })
}

fn check_capture(text: &str) -> Result<(), TestCaseError> {
    if let Ok(capture) = lldp::parse(text) {
        for neighbor in &capture.neighbors {
            if let Some(interface) = &neighbor.interface {
                prop_assert!(
                    text.contains(interface.as_str()),
                    "{interface:?} is not in the capture"
                );
            }
        }
    }
    Ok(())
}

/// A machine entry of a spec: fields drawn from good and bad values.
fn arb_machine() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["node1", "node2", "node3", "a", "../x", ".hidden", ""]),
        prop::sample::select(vec![
            "52:54:00:00:00:01",
            "52-54-00-00-00-02",
            "52:54:00:00:00:01",
            "zz:zz",
            "",
        ]),
        prop::sample::select(vec![
            "etcd-member",
            "etcd-gateway",
            "install",
            "_part",
            "web",
        ]),
        prop::sample::select(vec![
            "",
            "    ip: 10.0.0.1\n",
            "    ip: 10.0.0.1\n",
            "    ip: 10.0.0.300\n",
            "    ip: 0.0.0.0\n",
            "    ip: fd00::1\n",
            "    ip: [1]\n",
        ]),
        prop::sample::select(vec![
            "",
            "    install: true\n",
            "    install: {device: /dev/sdb}\n",
            "    install: {device: sdb}\n",
            "    vars: {install_device: /dev/vda}\n",
            "    args: [console=ttyS0]\n",
            "    args: [';', reboot]\n",
            "    unknown: 1\n",
        ]),
    )
        .prop_map(|(name, mac, role, ip, extra)| {
            format!("  - name: \"{name}\"\n    mac: \"{mac}\"\n    role: {role}\n{ip}{extra}")
        })
}

fn arb_spec() -> impl Strategy<Value = String> {
    let header = prop::sample::select(vec![
        "name: lab\nos: flatcar\nmatchbox_url: http://10.0.0.2:8080\n",
        "name: lab\nos: fedora-coreos\nmatchbox_url: http://10.0.0.2:8080\napi_url: http://10.0.0.2:5000\n",
        "name: lab\nos: coreos\nmatchbox_url: http://10.0.0.2:8080\n",
        "os: flatcar\n",
        "name: lab\nos: flatcar\nmatchbox_url: ftp://x\n",
        "name: lab\nos: flatcar\nmatchbox_url: http://m\ninstall: {device: /dev/sda}\nignition_spec: \"3.4\"\n",
    ]);
    (header, prop::collection::vec(arb_machine(), 0..6))
        .prop_map(|(header, machines)| format!("{header}machines:\n{}", machines.concat()))
}

fn check_spec(text: &str) -> Result<(), TestCaseError> {
    let parsed = from_yaml::<LabSpec>(text, "lab.yaml")
        .and_then(|spec| spec.validate("lab.yaml", &Overrides::default()));
    match parsed {
        Ok(lab) => {
            let mut names = std::collections::HashSet::new();
            let mut macs = std::collections::HashSet::new();
            let mut ips = std::collections::HashSet::new();
            for machine in &lab.machines {
                prop_assert!(names.insert(machine.name.clone()));
                prop_assert!(macs.insert(machine.mac.clone()));
                if let Some(ip) = machine.ip {
                    prop_assert!(!ip.is_unspecified());
                    prop_assert!(ips.insert(ip), "{ip} given twice");
                }
            }
        }
        Err(err) => {
            let message = caas::error::one_line(&err);
            prop_assert!(message.starts_with("lab.yaml"), "{message}");
            prop_assert!(!message.contains('\n'), "{message}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(common::fuzz_cases(3_000))]

    #[test]
    fn lldp_captures_of_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check_capture(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn lldp_keyvalue_captures(text in arb_keyvalue()) {
        check_capture(&text)?;
    }

    #[test]
    fn lldp_xml_captures(text in arb_xml()) {
        check_capture(&text)?;
    }

    #[test]
    fn specs_of_any_text(text in "[ -~\n]{0,300}") {
        check_spec(&text)?;
    }

    #[test]
    fn specs_built_from_good_and_bad_parts(text in arb_spec()) {
        check_spec(&text)?;
    }
}
