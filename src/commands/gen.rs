//! `caas gen profile|group|ignition|cluster`: flags in, files written through one reporter.

use std::collections::HashSet;
use std::io::{self, Write as _};

use anyhow::{Context as _, Result};
use serde_json::{Map, Value};

use super::{change_report, lock_data_dir};
use crate::cli::{GenClusterArgs, GenGroupArgs, GenIgnitionArgs, GenProfileArgs, GlobalArgs};
use crate::cluster::spec::{LabSpec, Overrides, from_yaml};
use crate::cluster::{self, EXAMPLE, EXAMPLE_ORIGIN};
use crate::error::invalid;
use crate::generate::{self, FileSet, GroupOptions, ProfileOptions, ProfileSource, typed_value};
use crate::ignition::{Engine, TemplateSet};
use crate::input::UserFile;
use crate::matchbox::DataDir;
use crate::matchbox::secrets;
use crate::report;
use crate::write::FileWrite;

/// `caas gen profile`.
pub fn profile(global: &GlobalArgs, args: &GenProfileArgs) -> Result<()> {
    let _lock = lock_data_dir(global, "caas gen profile", args.write.dry_run)?;
    let data_dir = DataDir::new(&global.data_dir);
    let options = ProfileOptions {
        id: args.id.clone(),
        name: args.name.clone(),
        ignition: args.ignition.clone(),
        source: profile_source(args)?,
        args: args.args.clone(),
        matchbox_url: args.matchbox_url.clone(),
        compat: args.compat,
    };
    let profile = generate::build_profile(&data_dir, &options)?;
    let mut files = FileSet::new(&data_dir);
    files.profile(&profile, "gen profile")?;
    report::write_and_report(
        &files.into_files(),
        &[],
        &change_report(&args.write, global),
    )?;
    Ok(())
}

/// `--os` (with `--version`, `--arch`) or `--kernel` (with `--initrd`); clap requires one.
fn profile_source(args: &GenProfileArgs) -> Result<ProfileSource> {
    match (args.os, &args.kernel) {
        (Some(os), _) => Ok(ProfileSource::Os {
            os,
            version: args.version.clone(),
            arch: args.arch,
        }),
        (None, Some(kernel)) => Ok(ProfileSource::Urls {
            kernel: kernel.clone(),
            initrd: args.initrd.clone(),
        }),
        (None, None) => Err(invalid("give --os OS or --kernel URL")),
    }
}

/// `caas gen group`.
pub fn group(global: &GlobalArgs, args: &GenGroupArgs) -> Result<()> {
    let _lock = lock_data_dir(global, "caas gen group", args.write.dry_run)?;
    let data_dir = DataDir::new(&global.data_dir);
    let options = GroupOptions {
        id: args.id.clone(),
        profile: args.profile.clone(),
        name: args.name.clone(),
        selectors: args.selectors.clone(),
        metadata: args.metadata.clone(),
        metadata_file: args
            .metadata_file
            .as_ref()
            .map(|path| UserFile::new("--metadata-file", path)),
        allow_missing_profile: args.allow_missing_profile,
    };
    let group = generate::build_group(&data_dir, &options)?;
    let mut files = FileSet::new(&data_dir);
    files.group(&group, "gen group")?;
    report::write_and_report(
        &files.into_files(),
        &[],
        &change_report(&args.write, global),
    )?;
    Ok(())
}

/// `caas gen ignition`.
pub fn ignition(global: &GlobalArgs, args: &GenIgnitionArgs) -> Result<()> {
    let mut templates = TemplateSet::with_dir(args.templates.dir.as_deref())?;
    let template = templates.select(&args.template)?;
    let vars = template_vars(args)?;
    let engine = Engine::new(templates, args.spec)?;
    let bytes = engine.render(&template, &vars)?;
    let _lock = lock_data_dir(global, "caas gen ignition", args.write.dry_run)?;
    let data_dir = DataDir::new(&global.data_dir);
    let mut files = FileSet::new(&data_dir);
    files.ignition(&args.id, bytes, "gen ignition")?;
    let files = files.into_files();
    report::write_and_report(&files, &[], &change_report(&args.write, global))?;
    // matchbox's web server is plain HTTP unless it runs with -web-ssl.
    warn_secrets(
        &data_dir,
        &files,
        "matchbox serves it over plain HTTP unless run with -web-ssl",
    );
    Ok(())
}

/// A warning (stderr, exit status unchanged) for each secret in the Ignition configs among
/// `files`: matchbox hands a config to any client that names a machine's labels, and over
/// plain HTTP anyone on the network can read it (what `caas lint` reports as
/// `secret-over-http`).
fn warn_secrets(data_dir: &DataDir, files: &[FileWrite], how: &str) {
    let ignition = data_dir.ignition_dir();
    for file in files.iter().filter(|f| f.path.starts_with(&ignition)) {
        let Ok(config) = serde_json::from_slice::<Value>(&file.bytes) else {
            continue;
        };
        for secret in secrets::in_ignition(&config) {
            tracing::warn!(
                "{}: {} in a config anyone on the network can read ({how}): serve matchbox \
                 over https, or deliver the secret another way",
                file.path.display(),
                secret.what
            );
        }
    }
}

/// The variables of `gen ignition`: `--vars-file`, then each `--var` over it.
fn template_vars(args: &GenIgnitionArgs) -> Result<Map<String, Value>> {
    let mut vars = match &args.vars_file {
        Some(path) => UserFile::new("--vars-file", path).read_object("variables")?,
        None => Map::new(),
    };
    let mut seen = HashSet::new();
    for (key, value) in &args.vars {
        if !seen.insert(key) {
            return Err(invalid(format!("--var {key} is given more than once")));
        }
        vars.insert(key.clone(), typed_value(value));
    }
    Ok(vars)
}

/// `caas gen cluster`.
pub fn cluster(global: &GlobalArgs, args: &GenClusterArgs) -> Result<()> {
    if args.print_example {
        io::stdout()
            .write_all(EXAMPLE.as_bytes())
            .context("writing the example")?;
        return Ok(());
    }
    let (text, origin) = match &args.file {
        Some(path) => (
            UserFile::new("-f", path).read_text()?,
            path.display().to_string(),
        ),
        None => (EXAMPLE.to_owned(), EXAMPLE_ORIGIN.to_owned()),
    };
    let overrides = Overrides {
        matchbox_url: args.matchbox_url.clone(),
        api_url: args.api_url.clone(),
        spec: args.spec,
        compat: args.compat,
    };
    let lab = from_yaml::<LabSpec>(&text, &origin)?.validate(&origin, &overrides)?;
    let _lock = lock_data_dir(global, "caas gen cluster", args.write.dry_run)?;
    let data_dir = DataDir::new(&global.data_dir);
    let changes = cluster::changes(&data_dir, &lab, args.templates.dir.as_deref(), args.prune)?;
    report::write_and_report(
        &changes.files,
        &changes.removals,
        &change_report(&args.write, global),
    )?;
    if lab.matchbox_url.as_str().starts_with("http://") {
        let how = format!("machines fetch it from {}", lab.matchbox_url.as_str());
        warn_secrets(&data_dir, &changes.files, &how);
    }
    if !changes.stale.is_empty() {
        tracing::warn!(
            "{} file(s) written for lab {} are no longer in the spec; rerun with --prune to \
             remove them: {}",
            changes.stale.len(),
            lab.name,
            changes.stale.join(", ")
        );
    }
    if !changes.modified.is_empty() {
        tracing::warn!(
            "{} file(s) written for lab {} are no longer in the spec but were changed since, \
             so caas leaves them alone: {}",
            changes.modified.len(),
            lab.name,
            changes.modified.join(", ")
        );
    }
    Ok(())
}
