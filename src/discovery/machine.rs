//! A discovered machine: its key (the normalised boot MAC), its latest report, and when it was
//! seen. This is what the scheduler reads, from the store, from `caas api` or from a file.
//!
//! JSON form (`GET /discovery/machines`, one object per machine, first seen first):
//! `{"mac": "52:54:00:0d:bd:31", "first_seen": "2026-11-26T10:00:00.123Z",
//!   "last_seen": "…", "updates": 0, "admission": {"state": "pending"}, "report": {…}}`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::admission::Admission;
use super::report::Report;

/// One discovered machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// The normalised boot MAC: lower case, colons.
    pub mac: String,
    /// When the first report arrived (`None` for a list of bare reports, where only the order
    /// says it).
    #[serde(default, with = "rfc3339")]
    pub first_seen: Option<SystemTime>,
    /// When the latest report arrived.
    #[serde(default, with = "rfc3339")]
    pub last_seen: Option<SystemTime>,
    /// How many times the machine reported again after the first time.
    #[serde(default)]
    pub updates: u64,
    /// Pending or admitted, by whom and when. `None` in a list saved without it (bare
    /// reports, records from before admission): the operator chose that file, so the
    /// scheduler counts its machines as admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<Admission>,
    /// The latest report.
    pub report: Report,
}

impl Machine {
    /// The IPv4 address of the interface the machine booted from.
    pub fn boot_ipv4(&self) -> Option<std::net::Ipv4Addr> {
        self.report.boot_ipv4()
    }

    /// Whether the scheduler may give it a role (see [`Machine::admission`]).
    pub fn is_admitted(&self) -> bool {
        self.admission.as_ref().is_none_or(Admission::is_admitted)
    }
}

/// Milliseconds since the Unix epoch, as the store keeps times.
pub fn to_millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// RFC 3339 UTC with milliseconds: `2026-11-26T10:00:00.123Z`.
pub fn format_time(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

pub(crate) mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => s.serialize_str(&super::format_time(*time)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => humantime::parse_rfc3339(&text)
                .map(Some)
                .map_err(|err| serde::de::Error::custom(format!("time {text:?}: {err}"))),
            None => Ok(None),
        }
    }
}

/// The JSON of one machine record, built from a stored row without re-parsing its report (the
/// store keeps each report as the JSON [`Report::to_json`] wrote).
pub fn record_json(
    mac: &str,
    first_seen_ms: i64,
    last_seen_ms: i64,
    updates: i64,
    admission: &Admission,
    report_json: &str,
) -> String {
    format!(
        r#"{{"mac":{},"first_seen":"{}","last_seen":"{}","updates":{},"admission":{},"report":{}}}"#,
        Value::from(mac),
        format_time(from_millis(first_seen_ms)),
        format_time(from_millis(last_seen_ms)),
        updates.max(0),
        serde_json::to_string(admission).expect("an admission serialises"),
        report_json
    )
}

/// Reads a list of machines saved from `caas api`: the records of `GET /discovery/machines`, or
/// the bare reports of `GET /discovery` (also what the 2016 API served), in first-seen order.
/// Every machine passes the coherence check, and a record's `mac` must be its report's boot
/// MAC (it is normalised, as the store keys machines); an error names the item.
pub fn machines_from_json(bytes: &[u8]) -> anyhow::Result<Vec<Machine>> {
    // The common case, a saved `/discovery/machines`, decodes straight into records; anything
    // else takes the item-by-item path, which also names the item that is wrong.
    if let Ok(records) = serde_json::from_slice::<Vec<Machine>>(bytes) {
        return checked_records(records);
    }
    let items: Vec<Value> =
        serde_json::from_slice(bytes).context("expected a JSON array of machines or reports")?;
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let machine = if item.get("report").is_some() {
                serde_json::from_value::<Machine>(item)
                    .map_err(anyhow::Error::from)
                    .and_then(checked)
            } else {
                Report::from_value(item)
                    .and_then(|report| {
                        let mac = report.check()?;
                        Ok(Machine {
                            mac,
                            first_seen: None,
                            last_seen: None,
                            updates: 0,
                            admission: None,
                            report,
                        })
                    })
                    .map_err(anyhow::Error::from)
            };
            machine.with_context(|| format!("item {index}"))
        })
        .collect()
}

/// Records decoded from a saved `GET /discovery/machines` list (read by
/// [`machines_from_json`], or as a file is read), each checked as [`machines_from_json`]
/// checks them.
pub fn checked_records(records: Vec<Machine>) -> anyhow::Result<Vec<Machine>> {
    records
        .into_iter()
        .enumerate()
        .map(|(index, record)| checked(record).with_context(|| format!("item {index}")))
        .collect()
}

/// A record from outside the store: its report is coherent and its key is the report's
/// normalised boot MAC.
fn checked(mut machine: Machine) -> anyhow::Result<Machine> {
    let boot = machine.report.check()?;
    if crate::matchbox::mac::normalize(&machine.mac)
        .ok()
        .as_deref()
        != Some(boot.as_str())
    {
        anyhow::bail!(
            "mac {:?} is not the boot MAC of its report ({boot})",
            machine.mac
        );
    }
    machine.mac = boot;
    Ok(machine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(mac: &str) -> Report {
        Report::from_value(json!({
            "boot-info": {"mac": mac, "uuid": "u"},
            "interfaces": [{"name": "eth0", "mac": mac, "ipv4": "10.0.0.2", "netmask": 24}]
        }))
        .unwrap()
    }

    #[test]
    fn records_built_from_rows_read_back_as_machines() {
        let r = report("52:54:00:00:00:01");
        let text = record_json(
            "52:54:00:00:00:01",
            1_700_000_000_123,
            1_700_000_001_000,
            2,
            &Admission::pending(),
            &r.to_json(),
        );
        let machine: Machine = serde_json::from_str(&text).unwrap();
        assert_eq!(machine.mac, "52:54:00:00:00:01");
        assert_eq!(machine.first_seen, Some(from_millis(1_700_000_000_123)));
        assert_eq!(machine.updates, 2);
        assert_eq!(machine.admission, Some(Admission::pending()));
        assert!(!machine.is_admitted());
        assert_eq!(machine.report, r);
        assert_eq!(machine.boot_ipv4(), Some([10, 0, 0, 2].into()));
        assert_eq!(
            format_time(from_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        // Serde's own form is the same document.
        assert_eq!(
            serde_json::to_value(&machine).unwrap(),
            serde_json::from_str::<Value>(&text).unwrap()
        );
    }

    #[test]
    fn lists_of_records_or_reports_are_read() {
        let a = report("52:54:00:00:00:01");
        let b = report("52:54:00:00:00:02");
        let reports = serde_json::to_vec(&[&a, &b]).unwrap();
        let machines = machines_from_json(&reports).unwrap();
        assert_eq!(machines.len(), 2);
        assert_eq!(machines[1].mac, "52:54:00:00:00:02");
        assert_eq!(machines[1].first_seen, None);
        assert!(
            machines[1].is_admitted(),
            "a file of bare reports is the operator's choice"
        );

        let records = format!(
            "[{}]",
            record_json(
                "52:54:00:00:00:01",
                5,
                6,
                0,
                &Admission::pending(),
                &a.to_json()
            )
        );
        assert_eq!(machines_from_json(records.as_bytes()).unwrap()[0].report, a);

        let bad = br#"[{"boot-info": {"mac": "52:54:00:00:00:09"}, "interfaces": []}]"#;
        let err = format!("{:#}", machines_from_json(bad).unwrap_err());
        assert!(
            err.contains("item 0") && err.contains("not the MAC of any interface"),
            "{err}"
        );
        assert!(machines_from_json(b"{}").is_err());
    }
}
