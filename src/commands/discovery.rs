//! `caas discover` (on a booting machine) and `caas api` (the receiver).

use std::io::{self, Write as _};

use anyhow::Result;

use crate::cli::{ApiArgs, DiscoverArgs, GlobalArgs};
use crate::discovery::client::{Retry, Sources, collect, discovery_url, post_report};
use crate::discovery::server::{self, ApiOptions, Limits, TlsFiles};
use crate::discovery::tls;
use crate::error::invalid;

/// `caas api`.
pub fn api(global: &GlobalArgs, args: &ApiArgs) -> Result<()> {
    let options = ApiOptions {
        listen: args.listen,
        db: args.db.clone(),
        matchbox_url: args.matchbox_url.clone(),
        limits: Limits {
            request_timeout: args.request_timeout,
            header_timeout: args.header_timeout,
            max_connections: args.max_connections,
            max_connections_per_client: args.max_connections_per_client,
        },
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
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
    // Read before anything else: a bad CA file is an input error, not a failed delivery.
    let ca = args.ca_cert.as_deref().map(tls::root_certs).transpose()?;
    if let (Some(_), Some(url)) = (&ca, &url)
        && url.starts_with("http://")
    {
        tracing::warn!("--ca-cert has nothing to check: {url} is plain http, not https");
    }
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
        ca.as_ref(),
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
