//! The scheduler's state is the data dir: the groups it wrote carry their role in metadata.
//!
//! There is no hidden state file. A group is caas's when its metadata says `caas_role`; its id
//! gives the index (`etcd-2`), its `mac` selector the machine, its `ipv4` metadata the address
//! the role was given with. Anything else in groups/ is the operator's and is left alone.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde_json::Value;

use super::assign::{Assignment, Role};
use crate::error::invalid;
use crate::matchbox::{DataDir, Group};

/// The metadata key that marks a group as written by the scheduler, with the role's name.
pub const ROLE_KEY: &str = "caas_role";
/// The metadata key holding the address the role was assigned with.
pub const IPV4_KEY: &str = "ipv4";

/// Reads every assignment recorded in `data_dir`'s groups.
///
/// A caas group that cannot be read back (edited by hand, truncated) is an error naming the
/// file: guessing would risk giving a member's role to another machine.
pub fn read_assignments(data_dir: &DataDir) -> Result<Vec<Assignment>> {
    let dir = data_dir.groups_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("listing {}", dir.display())),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|ext| ext == "json") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut assignments = Vec::new();
    for path in paths {
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        // Groups matchbox cannot read are not ours to interpret; lint reports them.
        let Ok(group) = Group::parse(&bytes) else {
            continue;
        };
        if let Some(assignment) = assignment_of(&group, &path)? {
            assignments.push(assignment);
        }
    }
    Ok(assignments)
}

fn assignment_of(group: &Group, path: &Path) -> Result<Option<Assignment>> {
    let Some(role_value) = group.metadata.get(ROLE_KEY) else {
        return Ok(None);
    };
    let bad = |why: String| {
        invalid(format!(
            "{}: a scheduled group that caas cannot read back: {why}",
            path.display()
        ))
    };
    let role = role_value
        .as_str()
        .and_then(Role::from_name)
        .ok_or_else(|| bad(format!("{ROLE_KEY} is {role_value}")))?;
    let index = group
        .id
        .strip_prefix(role.prefix())
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| group.id == format!("{}-{n}", role.prefix()))
        .ok_or_else(|| {
            bad(format!(
                "id {:?} is not {}-<index>",
                group.id,
                role.prefix()
            ))
        })?;
    let mac = group
        .selector
        .get("mac")
        .cloned()
        .ok_or_else(|| bad("it has no mac selector".into()))?;
    let ip = match group.metadata.get(IPV4_KEY) {
        Some(Value::String(ip)) => ip
            .parse::<Ipv4Addr>()
            .map_err(|_| bad(format!("{IPV4_KEY} {ip:?} is not an IPv4 address")))?,
        _ => return Err(bad(format!("it has no {IPV4_KEY}"))),
    };
    Ok(Some(Assignment {
        role,
        index,
        mac,
        ip,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write_group(dir: &Path, id: &str, body: Value) {
        fs::create_dir_all(dir.join("groups")).unwrap();
        fs::write(
            dir.join(format!("groups/{id}.json")),
            serde_json::to_vec(&body).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn reads_back_scheduled_groups_and_ignores_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_group(
            dir,
            "etcd-1",
            json!({"id": "etcd-1", "profile": "etcd-1", "selector": {"mac": "52-54-00-00-00-02"},
                   "metadata": {"caas_role": "etcd-member", "ipv4": "10.0.0.2"}}),
        );
        write_group(
            dir,
            "worker-0",
            json!({"id": "worker-0", "selector": {"mac": "52:54:00:00:00:09"},
                   "metadata": {"caas_role": "worker", "ipv4": "10.0.0.9"}}),
        );
        write_group(
            dir,
            "default",
            json!({"id": "default", "profile": "discovery"}),
        );
        write_group(dir, "broken", json!([1]));
        let mut got = read_assignments(&DataDir::new(dir)).unwrap();
        got.sort_by_key(|a| a.role);
        assert_eq!(
            got,
            vec![
                Assignment {
                    role: Role::EtcdMember,
                    index: 1,
                    mac: "52:54:00:00:00:02".into(),
                    ip: Ipv4Addr::new(10, 0, 0, 2),
                },
                Assignment {
                    role: Role::Worker,
                    index: 0,
                    mac: "52:54:00:00:00:09".into(),
                    ip: Ipv4Addr::new(10, 0, 0, 9),
                },
            ]
        );
        assert!(
            read_assignments(&DataDir::new(dir.join("nothing")))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_scheduled_group_that_lost_its_fields_is_an_error_naming_the_file() {
        for (id, metadata, selector) in [
            (
                "etcd-0",
                json!({"caas_role": "etcd-member"}),
                json!({"mac": "52:54:00:00:00:01"}),
            ),
            (
                "etcd-0",
                json!({"caas_role": "etcd-member", "ipv4": "x"}),
                json!({"mac": "52:54:00:00:00:01"}),
            ),
            (
                "etcd-0",
                json!({"caas_role": "etcd-member", "ipv4": "10.0.0.1"}),
                json!({}),
            ),
            (
                "etcd-x",
                json!({"caas_role": "etcd-member", "ipv4": "10.0.0.1"}),
                json!({"mac": "52:54:00:00:00:01"}),
            ),
            (
                "etcd-01",
                json!({"caas_role": "etcd-member", "ipv4": "10.0.0.1"}),
                json!({"mac": "52:54:00:00:00:01"}),
            ),
            (
                "etcd-0",
                json!({"caas_role": "king", "ipv4": "10.0.0.1"}),
                json!({"mac": "52:54:00:00:00:01"}),
            ),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            write_group(
                tmp.path(),
                id,
                json!({"id": id, "selector": selector, "metadata": metadata}),
            );
            let err = read_assignments(&DataDir::new(tmp.path())).unwrap_err();
            assert!(
                err.to_string().contains(&format!("groups/{id}.json")),
                "{err}"
            );
        }
    }
}
