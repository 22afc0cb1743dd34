//! Ignition spec 2.x (2.0.0 – 2.3.0), what CoreOS Container Linux read: the types caas writes,
//! and the translation of a config written in spec 3.x's shape down to them.
//!
//! The `ignition-config` crate knows only 3.x, so the 2.x types are here, limited to what
//! caas's templates and hand-written templates use: files, directories, links, users, groups,
//! units, the config references, timeouts and CA certificates. Templates keep writing 3.x's
//! shape (read into `ignition-config`'s 3.3 types first, unknown keys refused there); the
//! translation places every file on the `root` filesystem, turns 3.x's `enabled` into 2.0's
//! `enable`, moves 2.0's user-creation fields under `create`, writes the defaults 3.x implies
//! (a file's 0644, a directory's 0755) where 2.0 and 2.1 would otherwise write mode 0, and
//! refuses with one line whatever the chosen 2.x version cannot say (a sha256 digest, a
//! directory in 2.0, `overwrite: false` before 2.2, disks, LUKS, kernel arguments …).
//!
//! Version facts (Ignition v0.31's `config/v2_0` … `v2_2` types, and for 2.3 its successor
//! `v2_4_experimental`, the package that reads 2.3 configs):
//! 2.0 has files only, `enable` on units, users' creation fields under `create`, node owners
//! by id, and http(s)/oem/data URLs; 2.1 adds directories, links, `enabled`, users' fields on
//! the user, owners by name, timeouts and tftp/s3 URLs; 2.2 adds `overwrite` and the TLS
//! certificate authorities; 2.3 adds nothing caas writes. Every 2.x digest is sha512.

use ignition_config::v3_3 as v3;
use serde::{Deserialize, Serialize};

/// A 2.x minor version: 0 to 3.
pub type Minor = u8;

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub ignition: Ignition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passwd: Option<Passwd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<Systemd>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ignition {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<IgnitionConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgnitionConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub append: Vec<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<Reference>,
}

/// A config or certificate fetched from a URL (2.x `ConfigReference`, `CaReference`).
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Timeouts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_response_headers: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_total: Option<i64>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    pub tls: Tls,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tls {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_authorities: Vec<Reference>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<File>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directories: Vec<Directory>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub filesystem: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Owner>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Owner>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwrite: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<Contents>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<i64>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contents {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    pub filesystem: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Owner>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Owner>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwrite: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<i64>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub filesystem: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Owner>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Owner>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwrite: Option<bool>,
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard: Option<bool>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Passwd {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<User>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
}

/// How a user is created: 2.0 nests this under `create`, 2.1 and later put it on the user.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserCreate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gecos: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_create_home: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_group: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_user_group: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_log_init: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
}

impl UserCreate {
    fn is_empty(&self) -> bool {
        *self == UserCreate::default()
    }
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct User {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_authorized_keys: Vec<String>,
    /// 2.0 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<UserCreate>,
    // 2.1 and later: the creation fields on the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gecos: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_create_home: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_group: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_user_group: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_log_init: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Group {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<bool>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Systemd {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<Unit>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    pub name: String,
    /// 2.0's spelling (2.1 reads it as a deprecated alias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable: Option<bool>,
    /// 2.1 and later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropins: Vec<Dropin>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dropin {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<String>,
}

/// The owners and `overwrite` of a file, directory or link, translated.
struct NodeParts {
    user: Option<Owner>,
    group: Option<Owner>,
    overwrite: Option<bool>,
}

/// The filesystem 2.x names the root file system by.
const ROOT: &str = "root";

/// Translates a spec 3.x config into spec `2.<minor>`; the error names the field (dotted, as
/// the 3.x config has it) and why the version cannot express it.
pub fn from_v3(config: v3::Config, minor: Minor) -> Result<Config, String> {
    let to = To { minor };
    let v3::Config {
        ignition,
        kernel_arguments,
        passwd,
        storage,
        systemd,
    } = config;
    if kernel_arguments.is_some() {
        return Err(to.cannot(
            "kernelArguments",
            "has no kernel arguments (spec 3.3 added them)",
        ));
    }
    Ok(Config {
        ignition: to.ignition(ignition)?,
        passwd: passwd.map(|p| to.passwd(p)).transpose()?,
        storage: storage.map(|s| to.storage(s)).transpose()?,
        systemd: systemd.map(|s| to.systemd(s)).transpose()?,
    })
}

/// The target version, and the translation of each part.
struct To {
    minor: Minor,
}

impl To {
    fn cannot(&self, path: &str, why: &str) -> String {
        format!("{path}: Ignition spec 2.{}.0 {why}", self.minor)
    }

    fn needs(&self, path: &str, what: &str, minor: Minor) -> Result<(), String> {
        if self.minor < minor {
            return Err(self.cannot(path, &format!("has no {what} (added in 2.{minor}.0)")));
        }
        Ok(())
    }

    fn ignition(&self, ignition: v3::Ignition) -> Result<Ignition, String> {
        let v3::Ignition {
            config,
            proxy,
            security,
            timeouts,
            version: _,
        } = ignition;
        if proxy.is_some() {
            return Err(self.cannot("ignition.proxy", "has no proxy settings"));
        }
        let config = match config {
            None => None,
            Some(v3::IgnitionConfig { merge, replace }) => Some(IgnitionConfig {
                append: merge
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| self.reference(&format!("ignition.config.merge.{i}"), r))
                    .collect::<Result<_, _>>()?,
                replace: replace
                    .map(|r| self.reference("ignition.config.replace", r))
                    .transpose()?,
            }),
        };
        let timeouts = match timeouts {
            None => None,
            Some(t) => {
                self.needs("ignition.timeouts", "timeouts", 1)?;
                Some(Timeouts {
                    http_response_headers: t.http_response_headers,
                    http_total: t.http_total,
                })
            }
        };
        let security = match security.and_then(|s| s.tls) {
            None => None,
            Some(tls) => {
                let path = "ignition.security.tls.certificateAuthorities";
                self.needs(path, "TLS certificate authorities", 2)?;
                Some(Security {
                    tls: Tls {
                        certificate_authorities: tls
                            .certificate_authorities
                            .unwrap_or_default()
                            .into_iter()
                            .enumerate()
                            .map(|(i, r)| self.reference(&format!("{path}.{i}"), r))
                            .collect::<Result<_, _>>()?,
                    },
                })
            }
        };
        Ok(Ignition {
            version: format!("2.{}.0", self.minor),
            config,
            timeouts,
            security,
        })
    }

    fn reference(&self, path: &str, resource: v3::Resource) -> Result<Reference, String> {
        let contents = self.contents(path, resource)?;
        if contents.compression.is_some() {
            return Err(self.cannot(&format!("{path}.compression"), "cannot decompress a config"));
        }
        Ok(Reference {
            source: contents.source.unwrap_or_default(),
            verification: contents.verification,
        })
    }

    fn contents(&self, path: &str, resource: v3::Resource) -> Result<Contents, String> {
        let v3::Resource {
            compression,
            http_headers,
            source,
            verification,
        } = resource;
        if http_headers.is_some() {
            return Err(self.cannot(&format!("{path}.httpHeaders"), "sends no HTTP headers"));
        }
        if let Some(source) = &source {
            self.source(&format!("{path}.source"), source)?;
        }
        let hash = verification.and_then(|v| v.hash);
        if let Some(hash) = &hash
            && !hash.starts_with("sha512-")
        {
            return Err(self.cannot(
                &format!("{path}.verification.hash"),
                &format!(
                    "verifies sha512 digests only, not {hash:?} (the `sha512` filter writes one)"
                ),
            ));
        }
        Ok(Contents {
            compression,
            source,
            verification: hash.map(|hash| Verification { hash: Some(hash) }),
        })
    }

    /// The URL schemes 2.x fetches: http(s), oem and data; tftp and s3 from 2.1.
    fn source(&self, path: &str, source: &str) -> Result<(), String> {
        let scheme = source.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme {
            "" | "http" | "https" | "data" | "oem" => Ok(()),
            "tftp" | "s3" => self.needs(path, &format!("{scheme} URLs"), 1),
            other => Err(self.cannot(path, &format!("cannot fetch {other}: URLs"))),
        }
    }

    fn storage(&self, storage: v3::Storage) -> Result<Storage, String> {
        let v3::Storage {
            directories,
            disks,
            files,
            filesystems,
            links,
            luks,
            raid,
        } = storage;
        for (name, present) in [
            ("disks", disks.is_some()),
            ("filesystems", filesystems.is_some()),
            ("luks", luks.is_some()),
            ("raid", raid.is_some()),
        ] {
            if present {
                return Err(format!(
                    "storage.{name}: caas writes files, directories and links for Ignition spec \
                     2.x, not {name}"
                ));
            }
        }
        let files = files
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, f)| self.file(&format!("storage.files.{i}"), f))
            .collect::<Result<_, _>>()?;
        let directories: Vec<Directory> = directories
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, d)| self.directory(&format!("storage.directories.{i}"), d))
            .collect::<Result<_, _>>()?;
        let links: Vec<Link> = links
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, l)| self.link(&format!("storage.links.{i}"), l))
            .collect::<Result<_, _>>()?;
        Ok(Storage {
            files,
            directories,
            links,
        })
    }

    fn node(
        &self,
        at: &str,
        user: Option<v3::NodeUser>,
        group: Option<v3::NodeGroup>,
        overwrite: Option<bool>,
    ) -> Result<NodeParts, String> {
        let overwrite = match overwrite {
            // Before 2.2 Ignition always replaces what is there: `true` is what it does anyway.
            Some(true) if self.minor < 2 => None,
            Some(false) if self.minor < 2 => {
                return Err(self.cannot(
                    &format!("{at}.overwrite"),
                    "always replaces an existing node (overwrite: false needs 2.2.0)",
                ));
            }
            other => other,
        };
        Ok(NodeParts {
            user: user
                .map(|u| self.owner(&format!("{at}.user"), u.id, u.name))
                .transpose()?,
            group: group
                .map(|g| self.owner(&format!("{at}.group"), g.id, g.name))
                .transpose()?,
            overwrite,
        })
    }

    fn owner(&self, at: &str, id: Option<i64>, name: Option<String>) -> Result<Owner, String> {
        if name.is_some() {
            self.needs(&format!("{at}.name"), "owners by name", 1)?;
        }
        Ok(Owner { id, name })
    }

    fn file(&self, at: &str, file: v3::File) -> Result<File, String> {
        let v3::File {
            append,
            contents,
            group,
            mode,
            overwrite,
            path,
            user,
        } = file;
        if append.is_some() {
            return Err(format!(
                "{at}.append: caas does not translate appended contents to Ignition spec 2.x"
            ));
        }
        let node = self.node(at, user, group, overwrite)?;
        Ok(File {
            filesystem: ROOT.to_owned(),
            path,
            user: node.user,
            group: node.group,
            overwrite: node.overwrite,
            contents: contents
                .map(|c| self.contents(&format!("{at}.contents"), c))
                .transpose()?,
            // 3.x's default; 2.0 and 2.1 would write mode 0.
            mode: Some(mode.unwrap_or(0o644)),
        })
    }

    fn directory(&self, at: &str, directory: v3::Directory) -> Result<Directory, String> {
        self.needs(at, "directories", 1)?;
        let v3::Directory {
            group,
            mode,
            overwrite,
            path,
            user,
        } = directory;
        let node = self.node(at, user, group, overwrite)?;
        Ok(Directory {
            filesystem: ROOT.to_owned(),
            path,
            user: node.user,
            group: node.group,
            overwrite: node.overwrite,
            mode: Some(mode.unwrap_or(0o755)),
        })
    }

    fn link(&self, at: &str, link: v3::Link) -> Result<Link, String> {
        self.needs(at, "links", 1)?;
        let v3::Link {
            group,
            hard,
            overwrite,
            path,
            target,
            user,
        } = link;
        let Some(target) = target else {
            return Err(format!("{at}.target: a link needs a target"));
        };
        let node = self.node(at, user, group, overwrite)?;
        Ok(Link {
            filesystem: ROOT.to_owned(),
            path,
            user: node.user,
            group: node.group,
            overwrite: node.overwrite,
            target,
            hard,
        })
    }

    fn passwd(&self, passwd: v3::Passwd) -> Result<Passwd, String> {
        let users = passwd
            .users
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, u)| self.user(&format!("passwd.users.{i}"), u))
            .collect::<Result<_, _>>()?;
        let groups = passwd
            .groups
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, g)| {
                let v3::Group {
                    gid,
                    name,
                    password_hash,
                    should_exist,
                    system,
                } = g;
                if should_exist.is_some() {
                    return Err(self.cannot(
                        &format!("passwd.groups.{i}.shouldExist"),
                        "cannot delete a group",
                    ));
                }
                Ok(Group {
                    name,
                    gid,
                    password_hash,
                    system,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Passwd { users, groups })
    }

    fn user(&self, at: &str, user: v3::User) -> Result<User, String> {
        let v3::User {
            gecos,
            groups,
            home_dir,
            name,
            no_create_home,
            no_log_init,
            no_user_group,
            password_hash,
            primary_group,
            shell,
            should_exist,
            ssh_authorized_keys,
            system,
            uid,
        } = user;
        if should_exist.is_some() {
            return Err(self.cannot(&format!("{at}.shouldExist"), "cannot delete a user"));
        }
        let fields = UserCreate {
            uid,
            gecos,
            home_dir,
            no_create_home,
            primary_group,
            groups: groups.unwrap_or_default(),
            no_user_group,
            system,
            no_log_init,
            shell,
        };
        // 2.0 creates a user (useradd) only when `create` is there, and then refuses one that
        // exists: the creation fields go there, and a user without them is only updated.
        let (create, fields) = if self.minor == 0 && !fields.is_empty() {
            (Some(fields), UserCreate::default())
        } else {
            (None, fields)
        };
        Ok(User {
            name,
            password_hash,
            ssh_authorized_keys: ssh_authorized_keys.unwrap_or_default(),
            create,
            uid: fields.uid,
            gecos: fields.gecos,
            home_dir: fields.home_dir,
            no_create_home: fields.no_create_home,
            primary_group: fields.primary_group,
            groups: fields.groups,
            no_user_group: fields.no_user_group,
            system: fields.system,
            no_log_init: fields.no_log_init,
            shell: fields.shell,
        })
    }

    fn systemd(&self, systemd: v3::Systemd) -> Result<Systemd, String> {
        let units = systemd
            .units
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, u)| self.unit(&format!("systemd.units.{i}"), u))
            .collect::<Result<_, _>>()?;
        Ok(Systemd { units })
    }

    fn unit(&self, at: &str, unit: v3::Unit) -> Result<Unit, String> {
        let v3::Unit {
            contents,
            dropins,
            enabled,
            mask,
            name,
        } = unit;
        let (enable, enabled) = match (self.minor, enabled) {
            (0, Some(false)) => {
                return Err(self.cannot(
                    &format!("{at}.enabled"),
                    "can enable a unit, not disable one (enabled: false needs 2.1.0)",
                ));
            }
            (0, enabled) => (enabled, None),
            (_, enabled) => (None, enabled),
        };
        Ok(Unit {
            name,
            enable,
            enabled,
            mask,
            contents,
            dropins: dropins
                .unwrap_or_default()
                .into_iter()
                .map(|d| Dropin {
                    name: d.name,
                    contents: d.contents,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v3(value: serde_json::Value) -> v3::Config {
        serde_json::from_value(value).unwrap()
    }

    fn translate(value: serde_json::Value, minor: Minor) -> Result<serde_json::Value, String> {
        from_v3(v3(value), minor).map(|c| serde_json::to_value(c).unwrap())
    }

    #[test]
    fn files_land_on_root_with_3x_defaults_made_explicit() {
        let out = translate(
            json!({"ignition": {"version": "3.3.0"}, "storage": {"files": [
                {"path": "/etc/a", "overwrite": true, "contents": {"source": "data:,x"}},
                {"path": "/etc/b", "mode": 0o755}
            ]}}),
            0,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"ignition": {"version": "2.0.0"}, "storage": {"files": [
                {"filesystem": "root", "path": "/etc/a", "mode": 0o644, "contents": {"source": "data:,x"}},
                {"filesystem": "root", "path": "/etc/b", "mode": 0o755}
            ]}})
        );
        let out = translate(
            json!({"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/etc/a", "overwrite": true}]}}),
            2,
        )
        .unwrap();
        assert_eq!(out["storage"]["files"][0]["overwrite"], true);
    }

    #[test]
    fn units_use_enable_in_2_0_and_enabled_later() {
        let config = json!({"ignition": {"version": "3.3.0"}, "systemd": {"units": [
            {"name": "a.service", "enabled": true, "contents": "[Unit]\n"}
        ]}});
        let v20 = translate(config.clone(), 0).unwrap();
        assert_eq!(v20["systemd"]["units"][0]["enable"], true);
        assert!(v20["systemd"]["units"][0].get("enabled").is_none());
        let v21 = translate(config, 1).unwrap();
        assert_eq!(v21["systemd"]["units"][0]["enabled"], true);
        let err = translate(
            json!({"ignition": {"version": "3.3.0"}, "systemd": {"units": [{"name": "a.service", "enabled": false}]}}),
            0,
        )
        .unwrap_err();
        assert!(
            err.starts_with("systemd.units.0.enabled: Ignition spec 2.0.0"),
            "{err}"
        );
    }

    #[test]
    fn users_creation_fields_go_under_create_in_2_0_only() {
        let config = json!({"ignition": {"version": "3.3.0"}, "passwd": {"users": [
            {"name": "core", "sshAuthorizedKeys": ["k"]},
            {"name": "ops", "groups": ["sudo"]}
        ]}});
        assert_eq!(
            translate(config.clone(), 0).unwrap()["passwd"]["users"],
            json!([{"name": "core", "sshAuthorizedKeys": ["k"]}, {"name": "ops", "create": {"groups": ["sudo"]}}])
        );
        assert_eq!(
            translate(config, 1).unwrap()["passwd"]["users"],
            json!([{"name": "core", "sshAuthorizedKeys": ["k"]}, {"name": "ops", "groups": ["sudo"]}])
        );
    }

    #[test]
    fn what_a_version_cannot_say_is_refused_naming_the_field() {
        let cases = [
            (
                json!({"storage": {"files": [{"path": "/x", "contents": {"source": "http://h/x", "verification": {"hash": format!("sha256-{}", "a".repeat(64))}}}]}}),
                3,
                "storage.files.0.contents.verification.hash: Ignition spec 2.3.0 verifies sha512 digests only",
            ),
            (
                json!({"storage": {"directories": [{"path": "/d"}]}}),
                0,
                "storage.directories.0: Ignition spec 2.0.0 has no directories (added in 2.1.0)",
            ),
            (
                json!({"storage": {"files": [{"path": "/x", "overwrite": false}]}}),
                1,
                "storage.files.0.overwrite: Ignition spec 2.1.0 always replaces",
            ),
            (
                json!({"kernelArguments": {"shouldExist": ["a"]}}),
                2,
                "kernelArguments: Ignition spec 2.2.0 has no kernel arguments",
            ),
            (
                json!({"storage": {"disks": [{"device": "/dev/sda"}]}}),
                2,
                "storage.disks: caas writes files",
            ),
            (
                json!({"ignition": {"timeouts": {"httpTotal": 5}}}),
                0,
                "ignition.timeouts: Ignition spec 2.0.0 has no timeouts",
            ),
            (
                json!({"storage": {"files": [{"path": "/x", "contents": {"source": "gs://b/x"}}]}}),
                3,
                "storage.files.0.contents.source: Ignition spec 2.3.0 cannot fetch gs: URLs",
            ),
        ];
        for (mut config, minor, expected) in cases {
            config["ignition"]["version"] = json!("3.3.0");
            let err = translate(config, minor).unwrap_err();
            assert!(err.starts_with(expected), "{err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn the_types_refuse_unknown_keys() {
        let err = serde_json::from_value::<Config>(
            json!({"ignition": {"version": "2.0.0"}, "storage": {"filez": []}}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("filez"), "{err}");
    }
}
