//! Admission: a machine that reports itself is `pending` until it is admitted, by a rule of
//! `caas api --admit` or by an operator (`caas machines approve`). Only admitted machines get a
//! role from `caas schedule once`: any host on the provisioning network can report itself, and
//! a role (an etcd seat early on) must not be one unauthenticated POST away.
//!
//! Rules (`--admit`, repeatable, comma-separated): a MAC (`52:54:00:00:00:01`), an IPv4
//! network in CIDR that the machine's boot address must be in (`10.0.0.0/24`), or `all` (every
//! machine, as in 2016). A machine forgotten by an operator that reports again comes back
//! pending whatever the rules say: only an operator admits it again.
//!
//! JSON form (in every machine record): `{"state": "admitted", "by": "rule 10.0.0.0/24",
//! "at": "2026-11-26T10:00:00.123Z"}`; `by` and `at` are absent while pending.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::SystemTime;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::report::Report;
use crate::matchbox::mac;

/// Where a machine stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Reported itself; gets no role until admitted.
    Pending,
    /// May be given a role.
    Admitted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Admitted => "admitted",
        }
    }

    pub fn from_name(name: &str) -> Option<State> {
        match name {
            "pending" => Some(State::Pending),
            "admitted" => Some(State::Admitted),
            _ => None,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A machine's admission: its state, and who or what admitted it and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    pub state: State,
    /// `rule all`, `rule 10.0.0.0/24`, `rule 52:54:00:00:00:01`, `operator alice (cli)`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::machine::rfc3339"
    )]
    pub at: Option<SystemTime>,
}

impl Admission {
    pub fn pending() -> Admission {
        Admission {
            state: State::Pending,
            by: None,
            at: None,
        }
    }

    pub fn admitted(by: impl Into<String>, at: SystemTime) -> Admission {
        Admission {
            state: State::Admitted,
            by: Some(by.into()),
            at: Some(at),
        }
    }

    pub fn is_admitted(&self) -> bool {
        self.state == State::Admitted
    }
}

/// One `--admit` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Every machine (the 2016 behaviour).
    All,
    /// The machine whose boot MAC this is (normalised).
    Mac(String),
    /// Machines whose boot IPv4 is in this network.
    Network(Ipv4Net),
}

impl Rule {
    /// Parses `all`, a MAC or an IPv4 network in CIDR (`10.0.0.0/24`; host bits must be zero,
    /// so that a typo such as `10.0.0.7/8` is not silently a much larger network).
    pub fn parse(value: &str) -> Result<Rule, String> {
        let value = value.trim();
        if value == "all" {
            return Ok(Rule::All);
        }
        if value.contains('/') {
            let net: Ipv4Net = value
                .parse()
                .map_err(|_| format!("{value:?} is not an IPv4 network in CIDR (10.0.0.0/24)"))?;
            if net.trunc() != net {
                return Err(format!(
                    "{value:?} has host bits set: the network is {}",
                    net.trunc()
                ));
            }
            return Ok(Rule::Network(net));
        }
        mac::normalize(value).map(Rule::Mac).map_err(|_| {
            format!("{value:?} is neither `all`, a MAC nor an IPv4 network in CIDR (10.0.0.0/24)")
        })
    }

    fn matches(&self, boot_mac: &str, boot_ipv4: Option<Ipv4Addr>) -> bool {
        match self {
            Rule::All => true,
            Rule::Mac(mac) => mac == boot_mac,
            Rule::Network(net) => boot_ipv4.is_some_and(|ip| net.contains(&ip)),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::All => f.write_str("all"),
            Rule::Mac(mac) => f.write_str(mac),
            Rule::Network(net) => write!(f, "{net}"),
        }
    }
}

/// The rules of one `caas api`; none admits nothing (every machine waits for an operator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules(pub Vec<Rule>);

impl Rules {
    /// The first rule that admits the machine of `report` (keyed by `boot_mac`), as the `by` a
    /// store records (`rule 10.0.0.0/24`).
    pub fn admits(&self, boot_mac: &str, report: &Report) -> Option<String> {
        let ip = report.boot_ipv4();
        self.0
            .iter()
            .find(|rule| rule.matches(boot_mac, ip))
            .map(|rule| format!("rule {rule}"))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none (operators approve every machine)");
        }
        let rules: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&rules.join(","))
    }
}

/// Which machines an operator's approval names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every pending machine.
    All,
    /// These normalised boot MACs.
    Macs(Vec<String>),
}

/// An operator's change to the inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Admit the machines (`by` is recorded with the time). A forgotten machine that came back
    /// is admitted again only this way.
    Approve { which: Selection, by: String },
    /// Remove the machines from the inventory; each comes back pending if it reports again,
    /// whatever the `--admit` rules say.
    Forget { macs: Vec<String>, by: String },
}

/// What a [`Change`] did. When `unknown` is not empty nothing was changed at all: a typo in
/// one MAC must not half-apply a list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    /// Admitted, or forgotten, now.
    pub changed: Vec<String>,
    /// Already admitted (approve only).
    pub unchanged: Vec<String>,
    /// Not in the inventory.
    pub unknown: Vec<String>,
}

/// What an operator's admission records as `by`: who, and through what.
pub fn by_operator(who: &str, via: &str) -> String {
    format!("operator {who} ({via})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(mac: &str, ipv4: &str) -> Report {
        Report::from_value(json!({
            "boot-info": {"mac": mac},
            "interfaces": [{"name": "eth0", "mac": mac, "ipv4": ipv4, "netmask": 24}]
        }))
        .unwrap()
    }

    #[test]
    fn rules_parse_all_macs_and_networks() {
        assert_eq!(Rule::parse("all").unwrap(), Rule::All);
        assert_eq!(
            Rule::parse("52-54-00-AA-00-01").unwrap(),
            Rule::Mac("52:54:00:aa:00:01".into())
        );
        assert_eq!(
            Rule::parse("10.1.0.0/16").unwrap(),
            Rule::Network("10.1.0.0/16".parse().unwrap())
        );
        for bad in [
            "",
            "any",
            "10.0.0.0/33",
            "10.0.0.7/8",
            "::1/128",
            "52:54:00",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad}");
        }
        assert!(
            Rule::parse("10.0.0.7/8")
                .unwrap_err()
                .contains("10.0.0.0/8")
        );
    }

    #[test]
    fn each_rule_admits_what_it_names_and_nothing_else() {
        let a = report("52:54:00:00:00:01", "10.0.0.5");
        let b = report("52:54:00:00:00:02", "10.9.9.9");
        let none = report("52:54:00:00:00:03", "");
        let (mac_a, mac_b, mac_none) = (
            "52:54:00:00:00:01",
            "52:54:00:00:00:02",
            "52:54:00:00:00:03",
        );

        let nothing = Rules::default();
        assert_eq!(nothing.admits(mac_a, &a), None);

        let by_mac = Rules(vec![Rule::parse("52:54:00:00:00:02").unwrap()]);
        assert_eq!(by_mac.admits(mac_a, &a), None);
        assert_eq!(
            by_mac.admits(mac_b, &b).as_deref(),
            Some("rule 52:54:00:00:00:02")
        );

        let by_net = Rules(vec![Rule::parse("10.0.0.0/24").unwrap()]);
        assert_eq!(
            by_net.admits(mac_a, &a).as_deref(),
            Some("rule 10.0.0.0/24")
        );
        assert_eq!(by_net.admits(mac_b, &b), None);
        assert_eq!(by_net.admits(mac_none, &none), None, "no address, no match");

        let all = Rules(vec![Rule::All]);
        for (mac, r) in [(mac_a, &a), (mac_b, &b), (mac_none, &none)] {
            assert_eq!(all.admits(mac, r).as_deref(), Some("rule all"));
        }
    }

    #[test]
    fn admissions_read_back_from_json() {
        let at = crate::discovery::machine::from_millis(1_700_000_000_123);
        let admitted = Admission::admitted("rule all", at);
        let text = serde_json::to_value(&admitted).unwrap();
        assert_eq!(
            text,
            json!({"state": "admitted", "by": "rule all", "at": "2023-11-14T22:13:20.123Z"})
        );
        assert_eq!(serde_json::from_value::<Admission>(text).unwrap(), admitted);
        assert_eq!(
            serde_json::to_value(Admission::pending()).unwrap(),
            json!({"state": "pending"})
        );
    }
}
