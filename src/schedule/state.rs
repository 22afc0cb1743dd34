//! The scheduler's state is the data dir: the groups it wrote carry their role in metadata.
//!
//! There is no hidden state file. The scheduler owns the group file names `etcd-<n>.json` and
//! `worker-<n>.json`; each carries its role in metadata (`caas_role`), its id gives the index,
//! its `mac` selector the machine, its `ipv4` metadata the address the role was given with.
//! Every other group is the operator's and is left alone.

use std::ffi::OsStr;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde_json::Value;

use super::assign::{Assignment, Role};
use crate::discovery::store::StoredRole;
use crate::error::invalid;
use crate::matchbox::store::{list_dir, par_map, read_small};
use crate::matchbox::{DataDir, Group};

/// The metadata key that marks a group as written by the scheduler, with the role's name.
pub const ROLE_KEY: &str = "caas_role";
/// The metadata key holding the address the role was assigned with.
pub const IPV4_KEY: &str = "ipv4";

/// Reads every assignment recorded in `data_dir`'s groups.
///
/// The scheduler's file names (`etcd-<n>.json`, `worker-<n>.json`) are its own: every such file
/// is read, on every core (a lab of 100,000 workers is 100,000 files to read back), and must be
/// a group the scheduler wrote. One that is not, or that cannot be read back (edited by hand,
/// truncated), is an error naming the file: guessing would risk giving a member's role to
/// another machine, or overwriting a group someone else wrote.
pub fn read_assignments(data_dir: &DataDir) -> Result<Vec<Assignment>> {
    let dir = data_dir.groups_dir();
    let listed = match list_dir(&dir) {
        Ok(listed) => listed,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("listing {}", dir.display())),
    };
    let paths: Vec<PathBuf> = listed
        .into_iter()
        .filter(|(name, is_dir)| !is_dir && is_scheduled_name(name))
        .map(|(name, _)| dir.join(name))
        .collect();
    par_map(paths, |path| {
        let bytes = read_small(&path).with_context(|| format!("reading {}", path.display()))?;
        let group = Group::parse(&bytes).map_err(|err| {
            invalid(format!(
                "{}: a group named as caas schedule names its groups does not parse: {err}",
                path.display()
            ))
        })?;
        assignment_of(&group, &path)
    })
    .into_iter()
    .collect()
}

/// `etcd-<n>.json` or `worker-<n>.json`.
fn is_scheduled_name(name: &OsStr) -> bool {
    let Some(stem) = name.to_str().and_then(|name| name.strip_suffix(".json")) else {
        return false;
    };
    [Role::EtcdMember, Role::Worker].iter().any(|role| {
        stem.strip_prefix(role.prefix())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

fn assignment_of(group: &Group, path: &Path) -> Result<Assignment> {
    let Some(role_value) = group.metadata.get(ROLE_KEY) else {
        return Err(invalid(format!(
            "{}: named as caas schedule names its groups, but not written by it (no {ROLE_KEY} \
             in its metadata): rename it, or remove it",
            path.display()
        )));
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
        .filter(|_| path.file_stem().is_some_and(|stem| *stem == *group.id))
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
    Ok(Assignment {
        role,
        index,
        mac,
        ip,
    })
}

/// A role the store recorded, as an assignment.
pub fn from_stored(stored: &StoredRole) -> Result<Assignment> {
    let bad = |why: &str| {
        invalid(format!(
            "the store records {} {} for {}: {why}",
            stored.role, stored.index, stored.mac
        ))
    };
    Ok(Assignment {
        role: Role::from_name(&stored.role).ok_or_else(|| bad("not a role caas knows"))?,
        index: usize::try_from(stored.index).map_err(|_| bad("not an index"))?,
        mac: stored.mac.clone(),
        ip: stored
            .ipv4
            .parse()
            .map_err(|_| bad("not an IPv4 address"))?,
    })
}

/// An assignment as the store records it.
pub fn to_stored(assignment: &Assignment) -> StoredRole {
    StoredRole {
        role: assignment.role.name().to_owned(),
        index: assignment.index as i64,
        mac: assignment.mac.clone(),
        ipv4: assignment.ip.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fs;

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
        // Named unlike the scheduler's groups: the operator's, whatever its metadata says.
        write_group(
            dir,
            "etcd-x",
            json!({"id": "etcd-x", "selector": {"mac": "52:54:00:00:00:05"},
                   "metadata": {"caas_role": "etcd-member", "ipv4": "10.0.0.5"}}),
        );
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
                "worker-0",
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
            // Someone else's group under one of the scheduler's names.
            (
                "worker-3",
                json!({"hostname": "w3"}),
                json!({"mac": "52:54:00:00:00:01"}),
            ),
            // Truncated or not a group at all.
            ("etcd-2", json!(null), json!(null)),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let body = if metadata.is_null() {
                json!([1])
            } else {
                json!({"id": id, "selector": selector, "metadata": metadata})
            };
            write_group(tmp.path(), id, body);
            let err = read_assignments(&DataDir::new(tmp.path())).unwrap_err();
            assert!(
                err.to_string().contains(&format!("groups/{id}.json")),
                "{err}"
            );
        }
    }
}
