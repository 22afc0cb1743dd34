//! Ignition configs from Tera templates: `caas gen ignition`, and the engine `gen cluster` and
//! `schedule` render with.
//!
//! A template renders Ignition in YAML form with Ignition's own key names. Every value it
//! inserts is one quoted scalar ([`quote`]) in a place where it cannot change the document
//! ([`placement`]); the YAML is read into the typed structs of the Ignition spec
//! ([`config`], unknown keys and wrong types are errors with their line), checked for what
//! Ignition would refuse at boot ([`semantics`]), and written as canonical JSON. For spec 2.x
//! (CoreOS Container Linux) the same 3.x-shaped YAML is translated down ([`v2`]).

pub mod config;
pub mod placement;
pub mod quote;
pub mod render;
pub mod semantics;
pub mod templates;
pub mod v2;

use anyhow::Result;
use serde_json::{Map, Value};

pub use config::Spec;
pub use templates::TemplateSet;

use crate::error::invalid;
use crate::ids::Id;
use render::Renderer;

/// Templates compiled once, rendered to validated Ignition JSON as often as needed.
pub struct Engine {
    templates: TemplateSet,
    renderer: Renderer,
    spec: Spec,
}

impl Engine {
    /// Compiles and checks every template of `templates`.
    pub fn new(templates: TemplateSet, spec: Spec) -> Result<Engine> {
        let renderer = Renderer::new(&templates)?;
        Ok(Engine {
            templates,
            renderer,
            spec,
        })
    }

    /// The built-in templates only.
    pub fn built_in(spec: Spec) -> Result<Engine> {
        Engine::new(TemplateSet::built_in(), spec)
    }

    pub fn templates(&self) -> &TemplateSet {
        &self.templates
    }

    pub fn spec(&self) -> Spec {
        self.spec
    }

    /// The variables `template` refers to and those it requires; `None` for an unknown one.
    pub fn variables(&self, template: &str) -> Option<&render::Variables> {
        self.renderer.variables(template)
    }

    /// The Ignition config `template` renders with `vars`: canonical JSON bytes, ready for
    /// `ignition/<id>.ign`. Every error is an [`InvalidInput`](crate::error::InvalidInput)
    /// naming the template.
    pub fn render(&self, template: &str, vars: &Map<String, Value>) -> Result<Vec<u8>> {
        if !self.templates.contains(template) {
            return Err(invalid(format!(
                "no template {template:?}: the templates are {}",
                self.templates.names().join(", ")
            )));
        }
        let yaml = self.renderer.render(template, vars)?;
        config::yaml_to_ignition(&yaml, self.spec, template)
    }
}

/// Renders the built-in `template` (`discovery`, `etcd-member`, `etcd-gateway`, `install`,
/// `ssh`) with `vars` as Ignition `spec` JSON. For many machines, build one [`Engine`] instead.
pub fn render_built_in(template: &str, vars: &Map<String, Value>, spec: Spec) -> Result<Vec<u8>> {
    Engine::built_in(spec)?.render(template, vars)
}

/// `ignition/<id>.ign`; an id that already ends in `.ign` is the file name.
pub fn config_file_name(id: &Id) -> Result<Id> {
    if id.as_str().ends_with(".ign") {
        Ok(id.clone())
    } else {
        Ok(id.with_suffix(".ign")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn every_built_in_template_compiles_and_passes_the_placement_check() {
        let engine = Engine::built_in(Spec::V3_3).unwrap();
        assert_eq!(
            engine.templates().names(),
            vec!["discovery", "etcd-gateway", "etcd-member", "install", "ssh"]
        );
    }

    #[test]
    fn discovery_downloads_checks_and_reports() {
        let bytes = render_built_in(
            "discovery",
            &vars(json!({
                "matchbox_url": "http://matchbox.lab:8080",
                "api_url": "http://caas.lab:5000",
                "ssh_authorized_keys": "ssh-ed25519 AAAA key@lab",
            })),
            Spec::V3_3,
        )
        .unwrap();
        let config: Value = serde_json::from_slice(&bytes).unwrap();
        let unit = &config["systemd"]["units"][0];
        assert_eq!(unit["name"], "caas-discover.service");
        let contents = unit["contents"].as_str().unwrap();
        assert!(contents.contains("Environment=\"CAAS_API_URL=http://caas.lab:5000\"\n"));
        assert!(contents.contains("Environment=\"CAAS_MATCHBOX_URL=http://matchbox.lab:8080\"\n"));
        let file = &config["storage"]["files"][0];
        assert_eq!(file["path"], "/opt/caas/bin/caas-discover");
        assert_eq!(file["mode"], 0o755);
        let source = file["contents"]["source"].as_str().unwrap();
        assert!(
            source.starts_with("data:,%23%21%2Fbin%2Fbash%0A"),
            "{source}"
        );
        assert_eq!(
            config["passwd"]["users"],
            json!([{"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 AAAA key@lab"]}])
        );
    }

    const ETCD_URL: &str = "http://matchbox.lab:8080/assets/etcd/v3.5.21/etcd";

    fn etcd_hash() -> String {
        format!("sha256-{}", "ab".repeat(32))
    }

    #[test]
    fn etcd_member_sets_etcds_environment() {
        let bytes = render_built_in(
            "etcd-member",
            &vars(json!({
                "etcd_name": "node1",
                "etcd_initial_cluster": "node1=http://10.0.0.11:2380,node2=http://10.0.0.12:2380",
                "etcd_initial_advertise_peer_urls": "http://10.0.0.11:2380",
                "etcd_advertise_client_urls": "http://10.0.0.11:2379",
                "etcd_binary_url": ETCD_URL,
                "etcd_binary_hash": etcd_hash(),
            })),
            Spec::V3_3,
        )
        .unwrap();
        let config: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(config.get("passwd").is_none());
        let unit = &config["systemd"]["units"][0];
        assert_eq!(unit["name"], "caas-etcd-member.service");
        assert_eq!(unit["enabled"], true);
        let dropin = unit["contents"].as_str().unwrap();
        assert!(
            dropin.contains("\nExecStart=/opt/caas/bin/etcd\n"),
            "{dropin}"
        );
        assert!(
            dropin.contains("\nWantedBy=multi-user.target\n"),
            "{dropin}"
        );
        let file = &config["storage"]["files"][0];
        assert_eq!(file["path"], "/opt/caas/bin/etcd");
        assert_eq!(file["mode"], 0o755);
        assert_eq!(file["contents"]["source"], ETCD_URL);
        assert_eq!(file["contents"]["verification"]["hash"], etcd_hash());
        for line in [
            "Environment=\"ETCD_NAME=node1\"",
            "Environment=\"ETCD_INITIAL_CLUSTER=node1=http://10.0.0.11:2380,node2=http://10.0.0.12:2380\"",
            "Environment=\"ETCD_INITIAL_ADVERTISE_PEER_URLS=http://10.0.0.11:2380\"",
            "Environment=\"ETCD_ADVERTISE_CLIENT_URLS=http://10.0.0.11:2379\"",
            "Environment=\"ETCD_INITIAL_CLUSTER_TOKEN=caas\"",
        ] {
            assert!(dropin.contains(line), "{line} in {dropin}");
        }
        assert!(!dropin.contains("docker"));
    }

    #[test]
    fn unit_values_escape_systemd_specifiers() {
        let bytes = render_built_in(
            "etcd-gateway",
            &vars(json!({
                "etcd_endpoints": "http://a%20b:2379",
                "etcd_binary_url": ETCD_URL,
                "etcd_binary_hash": etcd_hash(),
            })),
            Spec::V3_3,
        )
        .unwrap();
        let config: Value = serde_json::from_slice(&bytes).unwrap();
        let unit = config["systemd"]["units"][0]["contents"].as_str().unwrap();
        // The gateway takes host:port endpoints: the scheme is dropped.
        assert!(
            unit.contains("Environment=\"CAAS_ETCD_ENDPOINTS=a%%20b:2379\""),
            "{unit}"
        );
    }

    #[test]
    fn the_ssh_template_needs_keys_or_users() {
        let err = render_built_in("ssh", &Map::new(), Spec::V3_3).unwrap_err();
        assert!(
            err.to_string().contains("ssh_authorized_keys or users"),
            "{err}"
        );
        let bytes = render_built_in(
            "ssh",
            &vars(json!({"users": [{"name": "ops", "ssh_authorized_keys": ["k1", "k2"], "groups": ["sudo"]}]})),
            Spec::V3_4,
        )
        .unwrap();
        let config: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(config["ignition"]["version"], "3.4.0");
        assert_eq!(
            config["passwd"]["users"],
            json!([{"name": "ops", "sshAuthorizedKeys": ["k1", "k2"], "groups": ["sudo"]}])
        );
    }
}
