//! The files a schedule stands for.
//!
//! Each etcd member gets its own group (its MAC), profile and Ignition config, since its etcd
//! settings are its own. Each worker gets its own group; the workers share one profile and one
//! config (`worker`, an etcd gateway in front of the members), since nothing in them differs.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde_json::{Map, Value};

use super::assign::{Assignment, Role, Schedule};
use super::state::{IPV4_KEY, ROLE_KEY};
use crate::etcd;
use crate::generate::{FileSet, Purpose};
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

/// Where a role's own files live: a member's config, profile and group; a worker's group.
pub fn own_paths(dir: &DataDir, assignment: &Assignment) -> Result<Vec<PathBuf>> {
    let id = Id::new(&assignment.id())?;
    let purposes = match assignment.role {
        Role::EtcdMember => vec![
            Purpose::Ignition(id.clone()),
            Purpose::Profile(id.clone()),
            Purpose::Group(id),
        ],
        Role::Worker => vec![Purpose::Group(id)],
    };
    purposes.iter().map(|purpose| purpose.path(dir)).collect()
}

/// The workers' shared config and profile.
pub fn shared_worker_paths(dir: &DataDir) -> Result<Vec<PathBuf>> {
    let id = Id::new(WORKER_PROFILE)?;
    [Purpose::Ignition(id.clone()), Purpose::Profile(id)]
        .iter()
        .map(|purpose| purpose.path(dir))
        .collect()
}

/// Every file of `schedule`, rendered; nothing is written here.
pub fn files(schedule: &Schedule, inputs: &Inputs) -> Result<Vec<FileWrite>> {
    let mut files = FileSet::new(inputs.data_dir);
    // Members are named by their ids; their group metadata is also their config's variables,
    // as in 2016, when bootcfg rendered the template from the group's metadata.
    let ids: Vec<String> = schedule.members.iter().map(Assignment::id).collect();
    let members: Vec<etcd::Member> = schedule
        .members
        .iter()
        .zip(&ids)
        .map(|(member, id)| etcd::Member {
            name: id,
            ip: member.ip.into(),
        })
        .collect();
    let cluster = etcd::initial_cluster(&members);
    for (member, etcd_member) in schedule.members.iter().zip(&members) {
        let id = Id::new(etcd_member.name)?;
        let owner = format!("etcd member {id}");
        let ignition = config_file_name(&id)?;
        let metadata = etcd::member_vars(etcd_member, &cluster);
        let config = render(inputs, MEMBER_TEMPLATE, &metadata)
            .with_context(|| format!("rendering the config of {id}"))?;
        files.ignition(&id, config, &owner)?;
        files.profile(&profile(&id, &ignition, inputs), &owner)?;
        files.group(&group(member, id.as_str(), metadata, inputs), &owner)?;
    }
    if schedule.workers.is_empty() {
        return Ok(files.into_files());
    }
    let id = Id::new(WORKER_PROFILE)?;
    let owner = "the workers";
    let ignition = config_file_name(&id)?;
    let mut metadata = Map::new();
    metadata.insert("etcd_endpoints".into(), etcd::endpoints(&members).into());
    let config =
        render(inputs, WORKER_TEMPLATE, &metadata).context("rendering the workers' config")?;
    files.ignition(&id, config, owner)?;
    files.profile(&profile(&id, &ignition, inputs), owner)?;
    for worker in &schedule.workers {
        let group = group(worker, WORKER_PROFILE, metadata.clone(), inputs);
        files.group(&group, &format!("worker {}", group.id))?;
    }
    Ok(files.into_files())
}
