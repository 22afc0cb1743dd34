//! Where templates come from: the built-in ones (templates/ignition/*.yaml.tera, embedded in the
//! binary), a directory that adds or overrides (`--templates DIR`, env `CAAS_TEMPLATES`), and a
//! single template file named by path.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::error::invalid;
use crate::ids::Id;

/// The file name suffix of a template.
pub const SUFFIX: &str = ".yaml.tera";

/// The built-in templates: name and source. Names starting with `_` are parts that other
/// templates include.
pub const BUILT_IN: &[(&str, &str)] = &[
    (
        "_etcd_binary",
        include_str!("../../templates/ignition/_etcd_binary.yaml.tera"),
    ),
    (
        "_users",
        include_str!("../../templates/ignition/_users.yaml.tera"),
    ),
    (
        "discovery",
        include_str!("../../templates/ignition/discovery.yaml.tera"),
    ),
    (
        "etcd-gateway",
        include_str!("../../templates/ignition/etcd-gateway.yaml.tera"),
    ),
    (
        "etcd-member",
        include_str!("../../templates/ignition/etcd-member.yaml.tera"),
    ),
    (
        "install",
        include_str!("../../templates/ignition/install.yaml.tera"),
    ),
    (
        "ssh",
        include_str!("../../templates/ignition/ssh.yaml.tera"),
    ),
];

/// Where a template was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    File(PathBuf),
}

#[derive(Clone, Debug)]
pub struct Template {
    pub name: String,
    pub source: Cow<'static, str>,
    pub origin: Origin,
}

/// The templates a render can use, by name.
#[derive(Clone, Debug, Default)]
pub struct TemplateSet {
    templates: BTreeMap<String, Template>,
}

impl TemplateSet {
    pub fn empty() -> TemplateSet {
        TemplateSet::default()
    }

    /// The built-in templates.
    pub fn built_in() -> TemplateSet {
        let mut set = TemplateSet::empty();
        for (name, source) in BUILT_IN {
            set.templates.insert(
                (*name).to_owned(),
                Template {
                    name: (*name).to_owned(),
                    source: Cow::Borrowed(source),
                    origin: Origin::BuiltIn,
                },
            );
        }
        set
    }

    /// The built-in templates, with `<dir>/<name>.yaml.tera` added or overriding.
    pub fn with_dir(dir: Option<&Path>) -> Result<TemplateSet> {
        let mut set = TemplateSet::built_in();
        if let Some(dir) = dir {
            set.load_dir(dir)?;
        }
        Ok(set)
    }

    fn load_dir(&mut self, dir: &Path) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(invalid(format!(
                    "--templates {}: no such directory",
                    dir.display()
                )));
            }
            Err(err) => return Err(err).with_context(|| format!("reading {}", dir.display())),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
                continue;
            };
            let path = entry.path();
            let id = Id::new(name)
                .map_err(|err| invalid(format!("template file {}: {err}", path.display())))?;
            found.push((id, path));
        }
        found.sort();
        for (id, path) in found {
            let source = read_template(&path)?;
            self.templates.insert(
                id.to_string(),
                Template {
                    name: id.to_string(),
                    source: Cow::Owned(source),
                    origin: Origin::File(path),
                },
            );
        }
        Ok(())
    }

    /// Adds a template from a string (tests, and templates named by path).
    pub fn add_source(&mut self, name: &str, source: String) {
        self.templates.insert(
            name.to_owned(),
            Template {
                name: name.to_owned(),
                source: Cow::Owned(source),
                origin: Origin::BuiltIn,
            },
        );
    }

    /// The template `--template` names: a template name, or the path of a file (anything with
    /// a `/` or ending in `.tera`), which is read and added under its path. Returns the name to
    /// render.
    pub fn select(&mut self, name_or_path: &str) -> Result<String> {
        if name_or_path.contains('/') || name_or_path.ends_with(".tera") {
            let path = Path::new(name_or_path);
            let source = read_template(path)?;
            self.templates.insert(
                name_or_path.to_owned(),
                Template {
                    name: name_or_path.to_owned(),
                    source: Cow::Owned(source),
                    origin: Origin::File(path.to_owned()),
                },
            );
            return Ok(name_or_path.to_owned());
        }
        if self.templates.contains_key(name_or_path) {
            return Ok(name_or_path.to_owned());
        }
        Err(invalid(format!(
            "no template {name_or_path:?}: the templates are {} (add more with --templates DIR, \
             or give a file path)",
            self.names().join(", ")
        )))
    }

    pub fn get(&self, name: &str) -> Option<&Template> {
        self.templates.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.templates.contains_key(name)
    }

    /// The names a user picks from (parts starting with `_` left out).
    pub fn names(&self) -> Vec<&str> {
        self.templates
            .keys()
            .map(String::as_str)
            .filter(|name| !name.starts_with('_'))
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Template> {
        self.templates.values()
    }
}

fn read_template(path: &Path) -> Result<String> {
    match fs::read_to_string(path) {
        Ok(source) => Ok(source),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Err(invalid(format!(
            "template file {}: no such file",
            path.display()
        ))),
        Err(err) if err.kind() == io::ErrorKind::InvalidData => Err(invalid(format!(
            "template file {} is not UTF-8 text",
            path.display()
        ))),
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}
