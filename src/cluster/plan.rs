//! The plan of a lab: every profile, group and Ignition file, computed without touching the
//! disk. [`plan`] is pure given the resolved OS boot settings and a template engine.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::thread;

use anyhow::{Context as _, Result};
use serde_json::{Map, Value};

use super::spec::{INSTALL_DEVICE_VAR, Lab, Machine, etcd_vars};
use crate::assets::etcd;
use crate::error::invalid;
use crate::generate::{FileSet, boot_with_args};
use crate::ids::Id;
use crate::ignition::{Engine, config_file_name};
use crate::matchbox::{Boot, DataDir, Group, Profile, Selector};
use crate::os::OsBoot;
use crate::write::FileWrite;

/// The group and profile id of the installer, and its Ignition template.
pub const INSTALL: &str = "install";
/// The selector label the installed system adds when it fetches its configuration.
pub const INSTALLED_LABEL: (&str, &str) = ("os", "installed");

/// What a plan needs besides the lab: the OS boot settings of the release (resolved from the
/// published assets) and the engine the roles render with.
pub struct PlanInput<'a> {
    pub lab: &'a Lab,
    pub data_dir: &'a DataDir,
    /// The release directory under assets/<os>/ (`current` resolved when published).
    pub os_version: &'a Id,
    pub boot: &'a OsBoot,
    pub engine: &'a Engine,
    /// The published etcd release, when a role runs etcd.
    pub etcd_binary: Option<&'a etcd::Binary>,
}

/// Whose Ignition config a render is: the key its config is looked up by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ConfigOf {
    DefaultGroup,
    Installer,
    /// The installer of a machine with a disk of its own.
    OwnInstaller(Id),
    Machine(Id),
}

/// One Ignition config to render: whose it is, who needs it (for errors), the template and its
/// variables.
struct Render {
    of: ConfigOf,
    owner: String,
    template: String,
    vars: Map<String, Value>,
}

/// Every file of the lab, in a stable order: the default group's, the shared installer's, the
/// installers of machines with a disk of their own, then each machine's (profile, groups,
/// Ignition config).
pub fn plan(input: &PlanInput<'_>) -> Result<Vec<FileWrite>> {
    let lab = input.lab;
    let data_dir = input.data_dir;
    let common = common_vars(input);
    let etcd = etcd_vars(&lab.machines);
    let base_boot = boot(input, &[])?;

    // The shared installer serves every installing machine without a disk of its own; a
    // machine with one gets its own installer (`install-<name>`), never the shared disk.
    let installs = lab
        .machines
        .iter()
        .any(|m| m.install && m.install_device.is_none());
    let renders = renders(input, &common, &etcd, installs)?;
    let mut configs = render_all(input.engine, renders)?;
    let mut config_of = |of: &ConfigOf| {
        let config = configs.remove(of).expect("every config was rendered");
        Arc::try_unwrap(config).unwrap_or_else(|shared| (*shared).clone())
    };

    let mut files = FileSet::new(data_dir);
    if let Some(role) = &lab.default_role {
        let id = Id::new(role)?;
        let owner = "the default group";
        files.profile(&profile(&id, role, base_boot.clone())?, owner)?;
        files.group(
            &group(
                &id,
                &format!("{role} (default)"),
                &id,
                Selector::new(),
                Map::from_iter([("role".to_owned(), Value::from(role.as_str()))]),
            ),
            owner,
        )?;
        files.ignition(&id, config_of(&ConfigOf::DefaultGroup), owner)?;
    }
    let install_id = Id::new(INSTALL)?;
    if installs {
        let owner = "the installer";
        let installer = profile(&install_id, "install to disk", base_boot.clone())?;
        files.profile(&installer, owner)?;
        files.ignition(&install_id, config_of(&ConfigOf::Installer), owner)?;
    }
    let mut own_installers = HashMap::new();
    for machine in &lab.machines {
        if let Some(device) = &machine.install_device {
            let owner = format!("machine {}", machine.name);
            let id = own_installer_id(&machine.name)?;
            let installer = profile(
                &id,
                &format!("install {} to {device}", machine.name),
                base_boot.clone(),
            )?;
            files.profile(&installer, &owner)?;
            let config = config_of(&ConfigOf::OwnInstaller(machine.name.clone()));
            files.ignition(&id, config, &owner)?;
            own_installers.insert(machine.name.clone(), id);
        }
    }
    for machine in &lab.machines {
        let owner = format!("machine {}", machine.name);
        let config = config_of(&ConfigOf::Machine(machine.name.clone()));
        let boot = if machine.args.is_empty() {
            base_boot.clone()
        } else {
            boot(input, &machine.args).with_context(|| owner.clone())?
        };
        let name = format!("{} ({})", machine.name, machine.role);
        files.profile(&profile(&machine.name, &name, boot)?, &owner)?;
        files.ignition(&machine.name, config, &owner)?;
        let metadata = metadata(machine, etcd.get(&machine.name));
        let mut selector = Selector::new();
        selector.insert("mac".into(), machine.mac.clone());
        if machine.install {
            let installer_id = own_installers.get(&machine.name).unwrap_or(&install_id);
            let installer = group(
                &machine.name,
                &format!("{} (install)", machine.name),
                installer_id,
                selector.clone(),
                metadata.clone(),
            );
            files.group(&installer, &owner)?;
            selector.insert(INSTALLED_LABEL.0.into(), INSTALLED_LABEL.1.into());
            let installed = group(
                &machine.name.with_suffix("-installed")?,
                &format!("{} (installed)", machine.name),
                &machine.name,
                selector,
                metadata,
            );
            files.group(&installed, &owner)?;
        } else {
            let own = group(&machine.name, &name, &machine.name, selector, metadata);
            files.group(&own, &owner)?;
        }
    }
    Ok(files.into_files())
}

/// The profile and config id of the installer of a machine with a disk of its own.
pub fn own_installer_id(machine: &Id) -> Result<Id> {
    Ok(Id::new(&format!("{INSTALL}-{machine}"))?)
}

/// The Ignition config every part of the lab needs: whose it is, its template and the
/// variables that template refers to.
fn renders(
    input: &PlanInput<'_>,
    common: &Map<String, Value>,
    etcd: &BTreeMap<Id, Map<String, Value>>,
    installs: bool,
) -> Result<Vec<Render>> {
    let lab = input.lab;
    let engine = input.engine;
    let mut renders = Vec::with_capacity(lab.machines.len() + 2);
    if let Some(role) = &lab.default_role {
        let owner = format!("the default group (role {role})");
        let vars = pick(engine, role, &owner, &[common])?;
        renders.push(Render {
            of: ConfigOf::DefaultGroup,
            owner,
            template: role.clone(),
            vars,
        });
    }
    if installs {
        let owner = "the installer".to_owned();
        let vars = pick(engine, INSTALL, &owner, &[common])?;
        renders.push(Render {
            of: ConfigOf::Installer,
            owner,
            template: INSTALL.to_owned(),
            vars,
        });
    }
    for machine in &lab.machines {
        if let Some(device) = &machine.install_device {
            let owner = format!("the installer of machine {} ({device})", machine.name);
            let disk = Map::from_iter([(INSTALL_DEVICE_VAR.to_owned(), device.clone().into())]);
            let vars = pick(engine, INSTALL, &owner, &[&disk, &machine.vars, common])?;
            renders.push(Render {
                of: ConfigOf::OwnInstaller(machine.name.clone()),
                owner,
                template: INSTALL.to_owned(),
                vars,
            });
        }
    }
    let no_vars = Map::new();
    for machine in &lab.machines {
        let mut own = Map::new();
        own.insert("name".into(), machine.name.as_str().into());
        own.insert("mac".into(), machine.mac.clone().into());
        own.insert("role".into(), machine.role.clone().into());
        if let Some(ip) = machine.ip {
            own.insert("ip".into(), ip.to_string().into());
        }
        let computed = etcd.get(&machine.name).unwrap_or(&no_vars);
        let owner = format!("machine {} (role {})", machine.name, machine.role);
        // Highest precedence first: the machine's vars, what caas computed, its identity,
        // then the lab's.
        let vars = pick(
            engine,
            &machine.role,
            &owner,
            &[&machine.vars, computed, &own, common],
        )?;
        renders.push(Render {
            of: ConfigOf::Machine(machine.name.clone()),
            owner,
            template: machine.role.clone(),
            vars,
        });
    }
    Ok(renders)
}

/// The variables every template gets (a template only sees those it refers to).
fn common_vars(input: &PlanInput<'_>) -> Map<String, Value> {
    let lab = input.lab;
    let mut vars = Map::new();
    vars.insert("matchbox_url".into(), lab.matchbox_url.as_str().into());
    if let Some(api) = &lab.api_url {
        vars.insert("api_url".into(), api.as_str().into());
    }
    vars.insert("os".into(), lab.os.dir_name().into());
    if let Some(channel) = &lab.channel {
        vars.insert("os_channel".into(), channel.clone().into());
    }
    vars.insert("os_version".into(), input.os_version.as_str().into());
    if !lab.ssh_authorized_keys.is_empty() {
        vars.insert(
            "ssh_authorized_keys".into(),
            lab.ssh_authorized_keys.clone().into(),
        );
    }
    if let Some(install) = &lab.install {
        vars.insert("install_device".into(), install.device.clone().into());
        if let Some(base) = &install.base_url {
            vars.insert("install_base_url".into(), base.clone().into());
        }
    }
    vars.insert("cluster".into(), lab.name.as_str().into());
    if let Some(binary) = input.etcd_binary {
        vars.extend(binary.vars());
    }
    vars.extend(lab.vars.clone());
    vars
}

/// A group's metadata: the role, what caas computed for it (the etcd settings), and the
/// machine's own variables, as matchbox's `/metadata` would serve them.
fn metadata(machine: &Machine, computed: Option<&Map<String, Value>>) -> Map<String, Value> {
    let mut metadata = Map::new();
    metadata.insert("role".into(), machine.role.clone().into());
    if let Some(ip) = machine.ip {
        metadata.insert("ip".into(), ip.to_string().into());
    }
    if let Some(computed) = computed {
        metadata.extend(computed.clone());
    }
    metadata.extend(machine.vars.clone());
    metadata
}

fn boot(input: &PlanInput<'_>, machine_args: &[String]) -> Result<Boot> {
    let mut args = input.lab.args.clone();
    args.extend_from_slice(machine_args);
    boot_with_args(
        input.boot.kernel.clone(),
        input.boot.initrd.clone(),
        input.boot.args.clone(),
        &args,
        Some(&input.lab.matchbox_url),
        input.lab.compat,
    )
}

/// The variables `template` refers to, each from the first of `layers` that has it: a
/// template only sees those, so machines whose relevant variables are equal share a render.
fn pick(
    engine: &Engine,
    template: &str,
    owner: &str,
    layers: &[&Map<String, Value>],
) -> Result<Map<String, Value>> {
    let Some(variables) = engine.variables(template) else {
        return Err(invalid(format!(
            "{owner}: no template {template:?} (the templates are {}; add more with --templates DIR)",
            engine.templates().names().join(", ")
        )));
    };
    let mut vars = Map::new();
    for name in &variables.referenced {
        if let Some(value) = layers.iter().find_map(|layer| layer.get(name)) {
            vars.insert(name.clone(), value.clone());
        }
    }
    Ok(vars)
}

/// Renders every distinct (template, variables) once, spread over the CPUs: each render's
/// config, by whose it is.
fn render_all(engine: &Engine, renders: Vec<Render>) -> Result<HashMap<ConfigOf, Arc<Vec<u8>>>> {
    let mut unique: Vec<usize> = Vec::new();
    let mut index_of: HashMap<(&str, String), usize> = HashMap::new();
    let mut slots = Vec::with_capacity(renders.len());
    for (i, render) in renders.iter().enumerate() {
        let key = (
            render.template.as_str(),
            serde_json::to_string(&render.vars).expect("JSON values serialise"),
        );
        let slot = *index_of.entry(key).or_insert_with(|| {
            unique.push(i);
            unique.len() - 1
        });
        slots.push(slot);
    }

    let render_one = |&i: &usize| -> Result<Arc<Vec<u8>>> {
        let render = &renders[i];
        engine
            .render(&render.template, &render.vars)
            .map(Arc::new)
            .with_context(|| render.owner.clone())
    };
    let threads = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(unique.len().div_ceil(64))
        .max(1);
    let rendered: Vec<Result<Arc<Vec<u8>>>> = if threads == 1 {
        unique.iter().map(render_one).collect()
    } else {
        let chunk = unique.len().div_ceil(threads);
        thread::scope(|scope| {
            let handles: Vec<_> = unique
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(render_one).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|handle| handle.join().expect("a render thread panicked"))
                .collect()
        })
    };
    let rendered: Vec<Arc<Vec<u8>>> = rendered.into_iter().collect::<Result<_>>()?;
    Ok(renders
        .into_iter()
        .zip(slots)
        .map(|(render, slot)| (render.of, rendered[slot].clone()))
        .collect())
}

/// A profile that boots `boot` and serves the Ignition config of the same id.
fn profile(id: &Id, name: &str, boot: Boot) -> Result<Profile> {
    Ok(Profile {
        id: id.to_string(),
        name: name.to_owned(),
        boot: Some(boot),
        ignition_id: config_file_name(id)?.to_string(),
        ..Profile::default()
    })
}

fn group(
    id: &Id,
    name: &str,
    profile: &Id,
    selector: Selector,
    metadata: Map<String, Value>,
) -> Group {
    Group {
        id: id.to_string(),
        name: name.to_owned(),
        profile: profile.to_string(),
        selector,
        metadata,
    }
}
