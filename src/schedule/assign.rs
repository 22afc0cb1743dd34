//! Role assignment: which discovered machines become etcd members and which become workers.
//!
//! A pure function of the discovered machines and of the roles already written to the data dir.
//! Existing roles are never moved: a rerun with more machines, fewer machines, or machines in
//! another order changes nothing for the machines that already have a role.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

/// A discovered machine as the scheduler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// The boot MAC, normalised (lower case, colons).
    pub mac: String,
    /// The IPv4 of the interface whose MAC is the boot MAC, if it has one.
    pub ip: Option<Ipv4Addr>,
    /// When the machine was first discovered (any monotonic order key: Unix time, position).
    pub first_seen: i64,
    /// Admitted by a rule or an operator: only these get a role.
    pub admitted: bool,
}

/// The roles caas schedules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A member of the static etcd cluster: `etcd-<index>`.
    EtcdMember,
    /// Any other machine: an etcd gateway in front of the members, `worker-<index>`.
    Worker,
}

impl Role {
    /// The prefix of the group, profile and Ignition ids of this role.
    pub fn prefix(self) -> &'static str {
        match self {
            Role::EtcdMember => "etcd",
            Role::Worker => "worker",
        }
    }

    /// The value caas records in a group's metadata to recognise the role on a rerun.
    pub fn name(self) -> &'static str {
        match self {
            Role::EtcdMember => "etcd-member",
            Role::Worker => "worker",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        match name {
            "etcd-member" => Some(Role::EtcdMember),
            "worker" => Some(Role::Worker),
            _ => None,
        }
    }
}

/// A machine with a role: read back from the data dir, or newly assigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub role: Role,
    /// Stable for the life of the assignment; names the files (`etcd-0`, `worker-3`).
    pub index: usize,
    pub mac: String,
    /// The address recorded at assignment; etcd's static cluster is built on it.
    pub ip: Ipv4Addr,
}

impl Assignment {
    /// `etcd-0`, `worker-3`: the id of its group, profile and (with `.ign`) Ignition file.
    pub fn id(&self) -> String {
        format!("{}-{}", self.role.prefix(), self.index)
    }
}

/// How many of the remaining machines become workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerLimit {
    All,
    AtMost(usize),
}

/// What the operator asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub etcd_members: usize,
    pub workers: WorkerLimit,
}

/// Something the operator should know; none of these stops the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A machine without an IPv4 on its boot interface cannot be given a role yet.
    NoBootAddress { mac: String },
    /// A machine with a role is no longer discovered (an operator forgot it, or the store
    /// read is another one); its role is kept, never given away.
    Vanished { assignment: Assignment },
    /// A machine with a role is pending admission again (forgotten, then reported again); its
    /// role is kept, never given away.
    NotAdmitted { assignment: Assignment },
    /// A machine with a role now reports another address; the recorded one is kept.
    AddressChanged {
        assignment: Assignment,
        now: Ipv4Addr,
    },
    /// The data dir holds a cluster of another size than asked; caas never changes the
    /// membership of a formed cluster.
    MemberCountDiffers { existing: usize, requested: usize },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::NoBootAddress { mac } => write!(
                f,
                "{mac} has no IPv4 address on its boot interface: skipped until it reports one"
            ),
            Notice::Vanished { assignment } => write!(
                f,
                "{} ({}, {}) is no longer in the inventory (forgotten?): its role is kept, not \
                 given to another machine{}",
                assignment.id(),
                assignment.mac,
                assignment.ip,
                how_to_free(assignment)
            ),
            Notice::NotAdmitted { assignment } => write!(
                f,
                "{} ({}, {}) is pending admission (forgotten, then reported again): its role is \
                 kept, not given to another machine; caas machines approve {} admits it again{}",
                assignment.id(),
                assignment.mac,
                assignment.ip,
                assignment.mac,
                how_to_free(assignment)
            ),
            Notice::AddressChanged { assignment, now } => write!(
                f,
                "{} ({}) now reports {now}: its files keep {}, the address it was given its role with",
                assignment.id(),
                assignment.mac,
                assignment.ip
            ),
            Notice::MemberCountDiffers {
                existing,
                requested,
            } => write!(
                f,
                "the etcd cluster has {existing} members and {requested} were asked for: caas \
                 never changes the membership of a formed cluster (use etcdctl member add/remove)"
            ),
        }
    }
}

/// How an operator frees a role caas keeps.
fn how_to_free(assignment: &Assignment) -> String {
    match assignment.role {
        Role::Worker => format!("; caas schedule once --release {} frees it", assignment.mac),
        Role::EtcdMember => "; a member leaves the cluster only by etcdctl member remove: caas \
                             never changes the membership of a formed cluster"
            .into(),
    }
}

/// The result of one scheduling pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Every etcd member, by index; empty while waiting.
    pub members: Vec<Assignment>,
    /// Every worker, by index.
    pub workers: Vec<Assignment>,
    /// `Some((admitted, needed))` when there are not enough admitted machines to form the
    /// cluster.
    pub waiting: Option<(usize, usize)>,
    /// Discovered machines without a role that wait for admission.
    pub pending: usize,
    pub notices: Vec<Notice>,
}

/// Why the existing assignments cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("{mac} has two roles: {first} and {second}")]
    TwoRoles {
        mac: String,
        first: String,
        second: String,
    },
    #[error("two machines are {id}: {first} and {second}")]
    SameIndex {
        id: String,
        first: String,
        second: String,
    },
}

/// Assigns roles. Members are the first `etcd_members` machines with a boot address, by first
/// seen then MAC, named `etcd-0…`; then workers, in the same order, up to the limit. Whatever
/// `existing` holds is kept as it is.
pub fn assign(
    machines: &[Machine],
    existing: &[Assignment],
    params: &Params,
) -> Result<Schedule, StateError> {
    check_state(existing)?;
    let mut notices = Vec::new();

    let discovered: HashMap<&str, &Machine> =
        machines.iter().map(|m| (m.mac.as_str(), m)).collect();
    let taken: HashSet<&str> = existing.iter().map(|a| a.mac.as_str()).collect();
    let pending = discovered
        .values()
        .filter(|m| !m.admitted && !taken.contains(m.mac.as_str()))
        .count();
    let (mut candidates, mut no_address): (Vec<&Machine>, Vec<&Machine>) = discovered
        .values()
        .filter(|m| m.admitted)
        .partition(|m| m.ip.is_some());
    // Reports of the same MAC collapse to one above, so (first seen, MAC) orders totally.
    candidates.sort_unstable_by(|a, b| (a.first_seen, &a.mac).cmp(&(b.first_seen, &b.mac)));
    no_address.sort_unstable_by(|a, b| a.mac.cmp(&b.mac));
    notices.extend(
        no_address
            .into_iter()
            .map(|m| Notice::NoBootAddress { mac: m.mac.clone() }),
    );

    for assignment in existing {
        match discovered.get(assignment.mac.as_str()) {
            None => notices.push(Notice::Vanished {
                assignment: assignment.clone(),
            }),
            Some(machine) if !machine.admitted => notices.push(Notice::NotAdmitted {
                assignment: assignment.clone(),
            }),
            Some(machine) => {
                if let Some(now) = machine.ip.filter(|ip| *ip != assignment.ip) {
                    notices.push(Notice::AddressChanged {
                        assignment: assignment.clone(),
                        now,
                    });
                }
            }
        }
    }

    let of_role = |role| -> Vec<Assignment> {
        let mut list: Vec<_> = existing
            .iter()
            .filter(|a| a.role == role)
            .cloned()
            .collect();
        list.sort_by_key(|a| a.index);
        list
    };
    let mut members = of_role(Role::EtcdMember);
    let mut workers = of_role(Role::Worker);
    let mut free = candidates
        .iter()
        .filter(|m| !taken.contains(m.mac.as_str()))
        .peekable();

    if members.is_empty() {
        let first: Vec<&&Machine> = free.by_ref().take(params.etcd_members).collect();
        if first.len() < params.etcd_members {
            return Ok(Schedule {
                members,
                workers,
                waiting: Some((first.len(), params.etcd_members)),
                pending,
                notices,
            });
        }
        for (index, machine) in first.into_iter().enumerate() {
            members.push(Assignment {
                role: Role::EtcdMember,
                index,
                mac: machine.mac.clone(),
                ip: machine.ip.expect("candidates have an address"),
            });
        }
    } else if members.len() != params.etcd_members {
        notices.push(Notice::MemberCountDiffers {
            existing: members.len(),
            requested: params.etcd_members,
        });
    }

    let room = match params.workers {
        WorkerLimit::All => usize::MAX,
        WorkerLimit::AtMost(n) => n.saturating_sub(workers.len()),
    };
    // Indices of vanished workers stay taken: their files are still in the data dir.
    let first_free = workers.iter().map(|w| w.index + 1).max().unwrap_or(0);
    let newcomers = free.take(room);
    for (index, machine) in (first_free..).zip(newcomers) {
        workers.push(Assignment {
            role: Role::Worker,
            index,
            mac: machine.mac.clone(),
            ip: machine.ip.expect("candidates have an address"),
        });
    }

    Ok(Schedule {
        members,
        workers,
        waiting: None,
        pending,
        notices,
    })
}

fn check_state(existing: &[Assignment]) -> Result<(), StateError> {
    let mut by_mac: BTreeMap<&str, &Assignment> = BTreeMap::new();
    let mut by_id: BTreeMap<String, &Assignment> = BTreeMap::new();
    for assignment in existing {
        if let Some(first) = by_mac.insert(&assignment.mac, assignment) {
            return Err(StateError::TwoRoles {
                mac: assignment.mac.clone(),
                first: first.id(),
                second: assignment.id(),
            });
        }
        if let Some(first) = by_id.insert(assignment.id(), assignment) {
            return Err(StateError::SameIndex {
                id: assignment.id(),
                first: first.mac.clone(),
                second: assignment.mac.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(n: u8, first_seen: i64) -> Machine {
        Machine {
            mac: format!("52:54:00:00:00:{n:02x}"),
            ip: Some(Ipv4Addr::new(10, 0, 0, n)),
            first_seen,
            admitted: true,
        }
    }

    fn machines(count: u8) -> Vec<Machine> {
        (1..=count).map(|n| machine(n, i64::from(n) * 10)).collect()
    }

    const THREE: Params = Params {
        etcd_members: 3,
        workers: WorkerLimit::All,
    };

    fn macs(list: &[Assignment]) -> Vec<&str> {
        list.iter().map(|a| a.mac.as_str()).collect()
    }

    fn existing(schedule: &Schedule) -> Vec<Assignment> {
        schedule
            .members
            .iter()
            .chain(&schedule.workers)
            .cloned()
            .collect()
    }

    #[test]
    fn fewer_machines_than_members_waits_and_assigns_nothing() {
        for count in 0..3 {
            let schedule = assign(&machines(count), &[], &THREE).unwrap();
            assert_eq!(schedule.waiting, Some((usize::from(count), 3)));
            assert!(schedule.members.is_empty() && schedule.workers.is_empty());
        }
    }

    #[test]
    fn three_machines_become_the_three_members_in_discovery_order() {
        let schedule = assign(&machines(3), &[], &THREE).unwrap();
        assert_eq!(schedule.waiting, None);
        assert_eq!(
            macs(&schedule.members),
            [
                "52:54:00:00:00:01",
                "52:54:00:00:00:02",
                "52:54:00:00:00:03"
            ]
        );
        assert_eq!(
            schedule
                .members
                .iter()
                .map(Assignment::id)
                .collect::<Vec<_>>(),
            ["etcd-0", "etcd-1", "etcd-2"]
        );
        assert!(schedule.workers.is_empty());
        assert_eq!(
            schedule.members.iter().map(|m| m.ip).collect::<Vec<_>>(),
            [1, 2, 3].map(|n| Ipv4Addr::new(10, 0, 0, n))
        );
    }

    #[test]
    fn four_and_ten_machines_give_three_members_and_the_rest_workers() {
        let four = assign(&machines(4), &[], &THREE).unwrap();
        assert_eq!(four.members.len(), 3);
        assert_eq!(macs(&four.workers), ["52:54:00:00:00:04"]);
        assert_eq!(four.workers[0].id(), "worker-0");

        let ten = assign(&machines(10), &[], &THREE).unwrap();
        assert_eq!(ten.members.len(), 3);
        assert_eq!(ten.workers.len(), 7);
        assert_eq!(ten.workers[6].id(), "worker-6");
        let limited = Params {
            etcd_members: 3,
            workers: WorkerLimit::AtMost(2),
        };
        assert_eq!(
            assign(&machines(10), &[], &limited).unwrap().workers.len(),
            2
        );
    }

    #[test]
    fn one_member_clusters_are_possible() {
        let one = Params {
            etcd_members: 1,
            workers: WorkerLimit::AtMost(0),
        };
        let schedule = assign(&machines(1), &[], &one).unwrap();
        assert_eq!(macs(&schedule.members), ["52:54:00:00:00:01"]);
    }

    #[test]
    fn ties_in_first_seen_are_broken_by_mac() {
        let mut list = vec![machine(9, 5), machine(3, 5), machine(7, 5), machine(1, 6)];
        list.reverse();
        let schedule = assign(&list, &[], &THREE).unwrap();
        assert_eq!(
            macs(&schedule.members),
            [
                "52:54:00:00:00:03",
                "52:54:00:00:00:07",
                "52:54:00:00:00:09"
            ]
        );
    }

    #[test]
    fn the_input_order_does_not_matter() {
        let mut list = machines(6);
        let first = assign(&list, &[], &THREE).unwrap();
        list.reverse();
        list.rotate_left(2);
        assert_eq!(assign(&list, &[], &THREE).unwrap(), first);
    }

    #[test]
    fn reruns_never_reshuffle() {
        let first = assign(&machines(3), &[], &THREE).unwrap();
        // More machines, some discovered "earlier" than the members (clock skew, a restored
        // database): the members stay, the newcomers become workers.
        let mut more = machines(3);
        more.push(machine(0, 0));
        more.push(machine(20, 1));
        let rerun = assign(&more, &existing(&first), &THREE).unwrap();
        assert_eq!(rerun.members, first.members);
        assert_eq!(
            macs(&rerun.workers),
            ["52:54:00:00:00:00", "52:54:00:00:00:14"]
        );
        // And a third pass with the same input changes nothing.
        let third = assign(&more, &existing(&rerun), &THREE).unwrap();
        assert_eq!(third, rerun);
    }

    #[test]
    fn a_member_that_vanished_is_reported_and_never_replaced() {
        let first = assign(&machines(4), &[], &THREE).unwrap();
        let mut fewer = machines(4);
        fewer.remove(1); // etcd-1
        let rerun = assign(&fewer, &existing(&first), &THREE).unwrap();
        assert_eq!(rerun.members, first.members);
        assert_eq!(rerun.workers, first.workers);
        assert!(rerun.notices.contains(&Notice::Vanished {
            assignment: first.members[1].clone()
        }));
    }

    #[test]
    fn pending_machines_are_never_scheduled_and_are_counted() {
        let mut list = machines(5);
        list[0].admitted = false;
        list[3].admitted = false;
        let schedule = assign(&list, &[], &THREE).unwrap();
        assert_eq!(
            macs(&schedule.members),
            [
                "52:54:00:00:00:02",
                "52:54:00:00:00:03",
                "52:54:00:00:00:05"
            ]
        );
        assert!(schedule.workers.is_empty());
        assert_eq!(schedule.pending, 2);
        // Not enough admitted machines: waiting, however many are pending.
        let mut list = machines(3);
        list[2].admitted = false;
        let waiting = assign(&list, &[], &THREE).unwrap();
        assert_eq!((waiting.waiting, waiting.pending), (Some((2, 3)), 1));
        assert!(waiting.members.is_empty());
    }

    #[test]
    fn a_member_pending_again_keeps_its_role_with_a_notice() {
        let first = assign(&machines(4), &[], &THREE).unwrap();
        let mut list = machines(4);
        list[1].admitted = false; // etcd-1, forgotten and back
        list.push(machine(7, 70));
        let rerun = assign(&list, &existing(&first), &THREE).unwrap();
        assert_eq!(rerun.members, first.members);
        assert_eq!(
            rerun.pending, 0,
            "a machine with a role is not waiting for one"
        );
        assert!(rerun.notices.contains(&Notice::NotAdmitted {
            assignment: first.members[1].clone()
        }));
        assert!(
            rerun.notices[0]
                .to_string()
                .contains("etcdctl member remove")
        );
        assert_eq!(
            macs(&rerun.workers),
            ["52:54:00:00:00:04", "52:54:00:00:00:07"]
        );
    }

    #[test]
    fn machines_without_boot_address_are_skipped_with_a_notice() {
        let mut list = machines(3);
        list[0].ip = None;
        let schedule = assign(&list, &[], &THREE).unwrap();
        assert_eq!(schedule.waiting, Some((2, 3)));
        assert_eq!(
            schedule.notices,
            vec![Notice::NoBootAddress {
                mac: "52:54:00:00:00:01".into()
            }]
        );
    }

    #[test]
    fn recorded_addresses_win_over_new_ones() {
        let first = assign(&machines(3), &[], &THREE).unwrap();
        let mut moved = machines(3);
        moved[2].ip = Some(Ipv4Addr::new(10, 9, 9, 9));
        let rerun = assign(&moved, &existing(&first), &THREE).unwrap();
        assert_eq!(rerun.members, first.members);
        assert!(matches!(rerun.notices[0], Notice::AddressChanged { .. }));
    }

    #[test]
    fn a_formed_cluster_keeps_its_size() {
        let first = assign(&machines(3), &[], &THREE).unwrap();
        let five = Params {
            etcd_members: 5,
            workers: WorkerLimit::All,
        };
        let rerun = assign(&machines(6), &existing(&first), &five).unwrap();
        assert_eq!(rerun.members, first.members);
        assert_eq!(rerun.workers.len(), 3);
        assert!(rerun.notices.contains(&Notice::MemberCountDiffers {
            existing: 3,
            requested: 5
        }));
    }

    #[test]
    fn worker_indices_are_never_reused() {
        let first = assign(&machines(5), &[], &THREE).unwrap();
        assert_eq!(first.workers.len(), 2);
        let mut list = machines(5);
        list.remove(3); // worker-0 vanishes
        list.push(machine(9, 90));
        let rerun = assign(&list, &existing(&first), &THREE).unwrap();
        let ids: Vec<_> = rerun.workers.iter().map(Assignment::id).collect();
        assert_eq!(ids, ["worker-0", "worker-1", "worker-2"]);
        assert_eq!(rerun.workers[2].mac, "52:54:00:00:00:09");
    }

    #[test]
    fn inconsistent_state_is_an_error() {
        let first = assign(&machines(3), &[], &THREE).unwrap();
        let mut state = existing(&first);
        let mut twice = state[0].clone();
        twice.role = Role::Worker;
        state.push(twice);
        assert!(matches!(
            assign(&machines(3), &state, &THREE),
            Err(StateError::TwoRoles { .. })
        ));
        let mut state = existing(&first);
        state[1].index = 0;
        assert!(matches!(
            assign(&machines(3), &state, &THREE),
            Err(StateError::SameIndex { .. })
        ));
    }
}
