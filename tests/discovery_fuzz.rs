//! Property tests at scale for the parsers `caas api` and `caas discover` expose to the
//! provisioning network: the discovery report (as the server reads a POST body, and as every
//! reader reads what it stored) and the kernel command line.
//!
//! Each property runs thousands of generated inputs (`CAAS_FUZZ_CASES` scales them: the
//! default keeps this file to seconds in CI; `CAAS_FUZZ_CASES=200000` for a long run). The
//! inputs are biased toward what breaks parsers: raw bytes, JSON whose keys are the ones the
//! report model knows with values of every type, deep nesting around the depth limit, and
//! command lines full of quotes, `=`, NULs and the kernel's odd white space.

mod common;

use caas::discovery::cmdline::{boot_identity, parse};
use caas::discovery::machine::{machines_from_json, record_json};
use caas::discovery::report::{MAX_DEPTH, Report, nesting_depth};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Keys the report model gives a meaning to, and a few it does not.
const KEYS: &[&str] = &[
    "boot-info",
    "mac",
    "MAC",
    "uuid",
    "product-uuid",
    "serial",
    "machine-id",
    "hostname",
    "interfaces",
    "name",
    "state",
    "ipv4",
    "IPv4",
    "cidrv4",
    "CIDRv4",
    "netmask",
    "addresses",
    "lldp",
    "neighbors",
    "data",
    "is_file",
    "interface",
    "chassis",
    "port",
    "id",
    "id-type",
    "descr",
    "mgmt-ip",
    "vlans",
    "pvid",
    "x",
    "",
];

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        prop_oneof![
            Just("52:54:00:00:00:01".to_owned()),
            Just("52-54-00-00-00-01".to_owned()),
            Just("10.0.0.2".to_owned()),
            Just("10.0.0.2/24".to_owned()),
            Just("255.255.255.0".to_owned()),
            Just("fe80::1/64".to_owned()),
            Just("24".to_owned()),
            "\\PC{0,12}",
        ]
        .prop_map(Value::from),
    ]
}

/// Any JSON value, with the model's keys, up to about 40 levels deep.
fn arb_value() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(40, 256, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|pairs| {
                Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// A report that passes the coherence check, with generated values grafted at generated keys
/// of its top level, its boot-info and its boot interface.
fn arb_grafted_report() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec((prop::sample::select(KEYS), arb_value()), 0..3),
        prop::collection::vec((prop::sample::select(KEYS), arb_value()), 0..3),
        prop::collection::vec((prop::sample::select(KEYS), arb_value()), 0..3),
        0usize..45,
    )
        .prop_map(|(top, boot, iface, depth)| {
            let mut report = json!({
                "boot-info": {"mac": "52:54:00:00:00:01", "uuid": "u"},
                "hostname": "h",
                "interfaces": [
                    {"name": "lo", "mac": "", "ipv4": "127.0.0.1", "netmask": 8},
                    {"name": "eth0", "mac": "52:54:00:00:00:01", "ipv4": "10.0.0.2",
                     "netmask": 24}
                ]
            });
            // The nested objects first: a top-level graft may replace them.
            for (key, value) in boot {
                report["boot-info"][key] = value;
            }
            for (key, value) in iface {
                report["interfaces"][1][key] = value;
            }
            for (key, value) in top {
                report[key] = value;
            }
            // Nesting around the limit, in an unknown key.
            let mut deep = Value::Null;
            for _ in 0..depth {
                deep = Value::Array(vec![deep]);
            }
            report["deep"] = deep;
            report
        })
}

/// What `POST /discovery` does with a body (depth, JSON, model, coherence), then what every
/// reader does with what it stored: `None` when the body is refused.
fn accept_and_read_back(body: &[u8]) -> Option<String> {
    if nesting_depth(body) > MAX_DEPTH {
        return None;
    }
    let value: Value = serde_json::from_slice(body).ok()?;
    let report = Report::from_value(value).ok()?;
    let mac = report.check().ok()?;
    let stored = report.to_json();
    // The stored form reads back as the same report (what `--db` readers do)...
    let again = Report::from_slice(stored.as_bytes()).expect("a stored report reads back");
    assert_eq!(again, report, "{stored}");
    assert_eq!(again.to_json(), stored, "to_json is deterministic");
    // ... and every listing that wraps it stays readable (`--api`, `--discovery`).
    assert!(nesting_depth(stored.as_bytes()) <= MAX_DEPTH, "{stored}");
    let records = format!(
        "[{}]",
        record_json(
            &mac,
            1,
            2,
            0,
            &caas::discovery::admission::Admission::pending(),
            &stored,
        )
    );
    let machines = machines_from_json(records.as_bytes()).expect("the record listing reads");
    assert_eq!(machines[0].mac, mac);
    assert_eq!(machines[0].report, report);
    let reports = format!("[{stored}]");
    let machines = machines_from_json(reports.as_bytes()).expect("the report listing reads");
    assert_eq!(machines[0].report, report);
    let interfaces: Value = serde_json::from_str(&format!(
        r#"{{"interfaces":[{}]}}"#,
        serde_json::from_str::<Value>(&stored).unwrap()["interfaces"]
    ))
    .expect("the interface listing reads");
    assert!(interfaces["interfaces"].is_array());
    Some(mac)
}

proptest! {
    #![proptest_config(common::fuzz_cases(10_000))]

    #[test]
    fn report_bodies_of_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = accept_and_read_back(&bytes);
        let _ = Report::from_slice(&bytes);
    }

    #[test]
    fn command_lines_of_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let params = parse(&bytes);
        let identity = boot_identity(&params);
        if let Some(mac) = identity.mac {
            prop_assert_eq!(mac.len(), 17);
            prop_assert!(mac.bytes().all(|b| b == b':' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
    }

}

proptest! {
    #![proptest_config(common::fuzz_cases(3_000))]

    #[test]
    fn command_lines_of_quotes_equals_and_odd_spaces(
        parts in prop::collection::vec(
            prop_oneof![
                Just("\"".to_owned()), Just("=".to_owned()), Just(" ".to_owned()),
                Just("\t".to_owned()), Just("\u{a0}".to_owned()), Just("\0".to_owned()),
                Just("--".to_owned()), Just("flatcar.config.url=".to_owned()),
                Just("coreos.config.url=".to_owned()), Just("ignition.config.url=".to_owned()),
                Just("http://m/i?uuid=u&mac=52-54-00-00-00-01".to_owned()),
                Just("&mac=".to_owned()), Just("${mac}".to_owned()), Just("%".to_owned()),
                "[a-z0-9:.-]{0,8}",
            ],
            0..40,
        )
    ) {
        let line = parts.concat();
        let params = parse(line.as_bytes());
        let _ = boot_identity(&params);
        // A NUL ends the line, as for the kernel.
        if let Some(cut) = line.find('\0') {
            prop_assert_eq!(parse(&line.as_bytes()[..cut]), params);
        }
    }
}

proptest! {
    #![proptest_config(common::fuzz_cases(1_000))]

    #[test]
    fn any_json_value_as_a_report(value in arb_value()) {
        let _ = accept_and_read_back(value.to_string().as_bytes());
    }

    #[test]
    fn coherent_reports_with_anything_grafted_on(report in arb_grafted_report()) {
        let body = report.to_string();
        let depth = nesting_depth(body.as_bytes());
        let accepted = accept_and_read_back(body.as_bytes());
        if depth > MAX_DEPTH {
            prop_assert!(accepted.is_none());
        }
    }
}
