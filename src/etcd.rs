//! The settings of a static etcd cluster, as the 2016 scheduler gave them to its members
//! (`EtcdMemberScheduler` in `app/scheduler.py` of <https://github.com/JulienBalestra/enjoliver>):
//! the four variables every etcd-member config takes (`etcd_name`, `etcd_initial_cluster`,
//! `etcd_initial_advertise_peer_urls`, `etcd_advertise_client_urls`, named so that matchbox's
//! `/metadata` turns them into etcd's own environment variables), and the client URLs a
//! gateway forwards to. `gen cluster` and `schedule once` both build them here.

use std::net::IpAddr;

use serde_json::{Map, Value};

/// etcd's peer port.
pub const PEER_PORT: u16 = 2380;
/// etcd's client port.
pub const CLIENT_PORT: u16 = 2379;

/// One member: its etcd name and the address the others reach it at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member<'a> {
    pub name: &'a str,
    pub ip: IpAddr,
}

/// `http://<ip>:<port>`, with IPv6 addresses in brackets.
pub fn url(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(ip) => format!("http://{ip}:{port}"),
        IpAddr::V6(ip) => format!("http://[{ip}]:{port}"),
    }
}

/// etcd's `--initial-cluster`: `name=peer URL` of every member, in order.
pub fn initial_cluster(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| format!("{}={}", m.name, url(m.ip, PEER_PORT)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The members' client URLs: what a gateway (or any client) is pointed at.
pub fn endpoints(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| url(m.ip, CLIENT_PORT))
        .collect::<Vec<_>>()
        .join(",")
}

/// The variables of one member's config (`etcd_name`, `etcd_initial_cluster`,
/// `etcd_initial_advertise_peer_urls`, `etcd_advertise_client_urls`).
pub fn member_vars(member: &Member, initial_cluster: &str) -> Map<String, Value> {
    let mut vars = Map::new();
    vars.insert("etcd_name".into(), member.name.into());
    vars.insert("etcd_initial_cluster".into(), initial_cluster.into());
    vars.insert(
        "etcd_initial_advertise_peer_urls".into(),
        url(member.ip, PEER_PORT).into(),
    );
    vars.insert(
        "etcd_advertise_client_urls".into(),
        url(member.ip, CLIENT_PORT).into(),
    );
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_2016_metadata_for_a_three_member_cluster() {
        let members = [
            Member {
                name: "etcd-0",
                ip: "172.20.0.70".parse().unwrap(),
            },
            Member {
                name: "etcd-1",
                ip: "fd00::1".parse().unwrap(),
            },
        ];
        let cluster = initial_cluster(&members);
        assert_eq!(
            cluster,
            "etcd-0=http://172.20.0.70:2380,etcd-1=http://[fd00::1]:2380"
        );
        assert_eq!(
            endpoints(&members),
            "http://172.20.0.70:2379,http://[fd00::1]:2379"
        );
        let vars = member_vars(&members[0], &cluster);
        assert_eq!(vars["etcd_name"], "etcd-0");
        assert_eq!(
            vars["etcd_initial_advertise_peer_urls"],
            "http://172.20.0.70:2380"
        );
        assert_eq!(
            vars["etcd_advertise_client_urls"],
            "http://172.20.0.70:2379"
        );
        assert_eq!(vars["etcd_initial_cluster"], cluster.as_str());
    }
}
