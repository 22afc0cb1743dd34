//! A profile's kernel line and the files it loads: assets, initrd names, first-boot arguments.

use super::{Findings, Rule};
use crate::lint::facts::Facts;
use crate::lint::{Code, Severity};
use crate::matchbox::boot::{self, Initrd};
use crate::matchbox::kargs::key_of;
use crate::matchbox::spans::Part;

pub const MISSING_ASSET: Rule = Rule {
    code: Code::MissingAsset,
    severity: Severity::Error,
    summary: "a relative /assets/… URL with no file under the data directory's assets/",
    check: missing_assets,
};

fn missing_assets(facts: &Facts<'_>, out: &mut Findings) {
    for fact in facts.profiles() {
        for asset in fact.assets.iter().filter(|asset| !asset.exists) {
            out.add(
                fact.path,
                fact.at(&asset.at, Part::Value),
                format!(
                    "{} does not exist: there is no {}",
                    asset.uri,
                    asset.file.display()
                ),
            );
        }
    }
}

pub const INITRD_NAME: Rule = Rule {
    code: Code::InitrdName,
    severity: Severity::Error,
    summary: "an initrd= kernel argument naming no initrd of the profile",
    check: initrd_names,
};

/// `initrd=` must name an image iPXE registered, or the kernel finds no initramfs.
fn initrd_names(facts: &Facts<'_>, out: &mut Findings) {
    for fact in facts.profiles() {
        let Some(boot) = &fact.profile.boot else {
            continue;
        };
        let initrds: Vec<Initrd> = boot
            .initrd
            .iter()
            .filter_map(|e| boot::parse_initrd(e))
            .collect();
        if initrds
            .iter()
            .any(|i| i.uri.contains("${") || i.name.contains("${"))
        {
            continue; // names only the machine knows
        }
        for (i, arg) in fact.args.iter().enumerate() {
            let Some(name) = arg.strip_prefix("initrd=") else {
                continue;
            };
            if name.contains("${") || initrds.iter().any(|initrd| initrd.name == name) {
                continue;
            }
            let known: Vec<&str> = initrds.iter().map(|i| i.name.as_str()).collect();
            out.add(
                fact.path,
                fact.arg_pos(i),
                format!(
                    "initrd={name} names no initrd of this profile (iPXE registers {}): a UEFI kernel finds no initramfs",
                    if known.is_empty() { "none".to_owned() } else { format!("{known:?}") }
                ),
            );
        }
    }
}

pub const MISSING_FIRST_BOOT: Rule = Rule {
    code: Code::MissingFirstBoot,
    severity: Severity::Error,
    summary: "an Ignition URL without the OS's first-boot argument: Ignition does not run",
    check: missing_first_boot,
};

fn missing_first_boot(facts: &Facts<'_>, out: &mut Findings) {
    for fact in facts.profiles() {
        let Some(os) = fact.os else { continue };
        let Some(i) = (fact.args.iter()).position(|a| boot::CONFIG_URL_KEYS.contains(&key_of(a)))
        else {
            continue;
        };
        let keys = os.descriptor().first_boot_keys;
        if !fact.args.iter().any(|a| keys.contains(&key_of(a))) {
            out.add(
                fact.path,
                fact.arg_pos(i),
                format!(
                    "{} runs Ignition on a network boot only with {}: without it this config URL is never fetched",
                    os.display_name(),
                    keys[0]
                ),
            );
        }
    }
}
