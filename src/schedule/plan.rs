//! The files a schedule stands for.
//!
//! Each etcd member gets its own group (its MAC), profile and Ignition config, since its etcd
//! settings are its own. Each worker gets its own group; the workers share one profile and one
//! config (`worker`, an etcd gateway in front of the members), since nothing in them differs.

use std::net::Ipv4Addr;

use anyhow::{Context as _, Result};
use serde_json::{Map, Value};

use super::assign::{Assignment, Role, Schedule, initial_cluster};
use super::state::{IPV4_KEY, ROLE_KEY};
use crate::ids::Id;
use crate::ignition::{Engine, config_file_name};
use crate::matchbox::{Boot, DataDir, Group, Profile};
use crate::write::FileWrite;

/// The template every member's config renders.
pub const MEMBER_TEMPLATE: &str = "etcd-member";
/// The template of the workers' shared config.
pub const WORKER_TEMPLATE: &str = "etcd-gateway";
/// The id of the workers' shared profile and config.
pub const WORKER_PROFILE: &str = "worker";

/// What every scheduled file shares.
pub struct Inputs<'a> {
    pub data_dir: &'a DataDir,
    /// The OS boot settings of every role's profile (kernel, initrd, arguments).
    pub boot: &'a Boot,
    pub engine: &'a Engine,
    /// Template variables for every config (SSH keys…).
    pub vars: &'a Map<String, Value>,
    /// The discovery API, recorded in every group's metadata when known.
    pub api_url: Option<&'a str>,
}

fn peer_url(ip: Ipv4Addr) -> String {
    format!("http://{ip}:2380")
}

fn client_url(ip: Ipv4Addr) -> String {
    format!("http://{ip}:2379")
}

/// The members' client URLs, the endpoints a gateway forwards to.
pub fn endpoints(members: &[Assignment]) -> String {
    members
        .iter()
        .map(|m| client_url(m.ip))
        .collect::<Vec<_>>()
        .join(",")
}

/// The metadata of a member's group; also the variables of its config (as in 2016, where
/// bootcfg rendered the template from the group's metadata).
fn member_metadata(member: &Assignment, cluster: &str) -> Map<String, Value> {
    let mut metadata = Map::new();
    metadata.insert("etcd_name".into(), member.id().into());
    metadata.insert("etcd_initial_cluster".into(), cluster.into());
    metadata.insert(
        "etcd_initial_advertise_peer_urls".into(),
        peer_url(member.ip).into(),
    );
    metadata.insert(
        "etcd_advertise_client_urls".into(),
        client_url(member.ip).into(),
    );
    metadata
}

fn group(
    assignment: &Assignment,
    profile: &str,
    mut metadata: Map<String, Value>,
    inputs: &Inputs,
) -> Group {
    metadata.insert(ROLE_KEY.into(), assignment.role.name().into());
    metadata.insert(IPV4_KEY.into(), assignment.ip.to_string().into());
    if let Some(api_url) = inputs.api_url {
        metadata.insert("api_url".into(), api_url.into());
    }
    let mut group = Group {
        id: assignment.id(),
        name: assignment.id(),
        profile: profile.to_owned(),
        metadata,
        ..Group::default()
    };
    group.selector.insert("mac".into(), assignment.mac.clone());
    group
}

fn profile(id: &Id, ignition: &Id, inputs: &Inputs) -> Profile {
    Profile {
        id: id.to_string(),
        name: id.to_string(),
        boot: Some(inputs.boot.clone()),
        ignition_id: ignition.to_string(),
        ..Profile::default()
    }
}

fn render(inputs: &Inputs, template: &str, own: &Map<String, Value>) -> Result<Vec<u8>> {
    let mut vars = inputs.vars.clone();
    vars.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    inputs.engine.render(template, &vars)
}

/// Every file of `schedule`, rendered; nothing is written here.
pub fn files(schedule: &Schedule, inputs: &Inputs) -> Result<Vec<FileWrite>> {
    let dir = inputs.data_dir;
    let mut files = Vec::with_capacity(3 * schedule.members.len() + schedule.workers.len() + 2);
    let cluster = initial_cluster(&schedule.members);
    for member in &schedule.members {
        debug_assert_eq!(member.role, Role::EtcdMember);
        let id = Id::new(&member.id())?;
        let ignition = config_file_name(&id)?;
        let metadata = member_metadata(member, &cluster);
        let config = render(inputs, MEMBER_TEMPLATE, &metadata)
            .with_context(|| format!("rendering the config of {id}"))?;
        files.push(FileWrite::new(dir.ignition_path(&ignition), config));
        files.push(FileWrite::new(
            dir.profile_path(&id),
            profile(&id, &ignition, inputs).to_json(),
        ));
        files.push(FileWrite::new(
            dir.group_path(&id),
            group(member, id.as_str(), metadata, inputs).to_json(),
        ));
    }
    if schedule.workers.is_empty() {
        return Ok(files);
    }
    let id = Id::new(WORKER_PROFILE)?;
    let ignition = config_file_name(&id)?;
    let mut metadata = Map::new();
    metadata.insert("etcd_endpoints".into(), endpoints(&schedule.members).into());
    let config =
        render(inputs, WORKER_TEMPLATE, &metadata).context("rendering the workers' config")?;
    files.push(FileWrite::new(dir.ignition_path(&ignition), config));
    files.push(FileWrite::new(
        dir.profile_path(&id),
        profile(&id, &ignition, inputs).to_json(),
    ));
    for worker in &schedule.workers {
        let group = group(worker, WORKER_PROFILE, metadata.clone(), inputs);
        let id = Id::new(&group.id)?;
        files.push(FileWrite::new(dir.group_path(&id), group.to_json()));
    }
    Ok(files)
}
