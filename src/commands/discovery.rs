//! `caas discover` (on a booting machine) and `caas api` (the receiver).

use std::io::{self, Write as _};

use anyhow::Result;

use crate::cli::{ApiArgs, DiscoverArgs, GlobalArgs};
use crate::discovery::admission::Rules;
use crate::discovery::client::{Retry, Sources, collect, discovery_url, post_report};
use crate::discovery::server::{self, Access, ApiOptions, Limits};
use crate::discovery::token::OperatorToken;
use crate::error::invalid;

/// `caas api`.
pub fn api(global: &GlobalArgs, args: &ApiArgs) -> Result<()> {
    let operator_token = args
        .operator_token_file
        .as_deref()
        .map(|path| OperatorToken::read("--operator-token-file", path))
        .transpose()?;
    let options = ApiOptions {
        access: Access {
            operator_token,
            admit: Rules(args.admit.clone()),
        },
        listen: args.listen,
        db: args.db.clone(),
        matchbox_url: args.matchbox_url.clone(),
        limits: Limits {
            request_timeout: args.request_timeout,
            header_timeout: args.header_timeout,
            max_connections: args.max_connections,
        },
    };
    server::api(&options, global.quiet)
}

/// `caas discover`.
pub fn discover(global: &GlobalArgs, args: &DiscoverArgs) -> anyhow::Result<()> {
    let api = args.api.clone().or_else(|| {
        std::env::var("DISCOVERY_ADDRESS")
            .ok()
            .filter(|v| !v.is_empty())
    });
    let url = match (&api, args.dry_run) {
        (Some(api), _) => Some(discovery_url(api)?),
        (None, true) => None,
        (None, false) => {
            return Err(invalid(
                "--api is required (or the environment variable CAAS_API_URL or DISCOVERY_ADDRESS)",
            ));
        }
    };
    let report = collect(&Sources {
        proc_cmdline: args.proc_cmdline.clone(),
        sysfs: args.sysfs.clone(),
        addresses: args.addresses.clone(),
        lldp_file: args.lldp_file.clone(),
    })?;
    let body = report.to_json();
    let coherent = report.check();
    if args.dry_run {
        if let Err(err) = &coherent {
            tracing::warn!("the API would refuse this report: {err}");
        }
        let pretty = serde_json::to_string_pretty(&report).expect("a report serialises");
        writeln!(io::stdout().lock(), "{pretty}")?;
        return Ok(());
    }
    let mac = coherent.map_err(|err| {
        anyhow::anyhow!(
            "{err}; the boot MAC comes from the mac= of ignition.config.url, flatcar.config.url \
             or coreos.config.url on the kernel command line ({})",
            args.proc_cmdline.display()
        )
    })?;
    let url = url.expect("checked above");
    let answer = post_report(
        &url,
        body.as_bytes(),
        Retry {
            retries: args.retries,
            wait: args.retry_wait,
            timeout: args.timeout,
        },
    )?;
    if !global.quiet {
        writeln!(
            io::stdout().lock(),
            "reported {mac} to {url}: {} ({} machine{} known)",
            if answer.update { "updated" } else { "new" },
            answer.total_elt,
            if answer.total_elt == 1 { "" } else { "s" }
        )?;
    }
    Ok(())
}
