//! `caas discover`: collect the report on the machine itself and deliver it to `caas api`, and
//! the HTTP client side of the API for other commands (`fetch_machines`).

use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use super::cmdline;
use super::interfaces;
use super::lldp;
use super::machine::{Machine, machines_from_json};
use super::report::{BootInfo, Report};
use super::tls::certificate_refusal;
use super::token::OperatorToken;
use crate::error::invalid;
use crate::input::read_capped;

/// Longest wait between two attempts.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// The longest kernel command line read: the kernel's own limit is at most a few KiB.
const CMDLINE_LIMIT: u64 = 64 * 1024;
/// The largest `ip -json` or LLDP capture read: a switch with thousands of ports fits.
const CAPTURE_LIMIT: u64 = 64 << 20;

/// Largest answer read from the API for one POST.
const MAX_ANSWER: u64 = 64 * 1024;

/// Where reports go: the API's `/discovery` endpoint. A base URL (`http://host:5000`) gets
/// `/discovery` appended; a URL already ending in `/discovery` (the 2016 `DISCOVERY_ADDRESS`)
/// is used as it is.
pub fn discovery_url(api: &str) -> Result<String, crate::error::InvalidInput> {
    endpoint(api, "/discovery")
}

/// `base` + `path`, where `base` is the API's base URL (or already ends with `path`).
fn endpoint(api: &str, path: &str) -> Result<String, crate::error::InvalidInput> {
    let bad = |why: &str| crate::error::InvalidInput(format!("invalid API URL {api:?}: {why}"));
    let url = url::Url::parse(api).map_err(|err| bad(&err.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it takes no query or fragment"));
    }
    let text = url.as_str().trim_end_matches('/');
    if let Some(base) = text.strip_suffix("/discovery")
        && path.starts_with("/discovery")
    {
        return Ok(format!("{base}{path}"));
    }
    Ok(format!("{text}{path}"))
}

/// Where `collect` reads the machine from: the running one, or a capture of one.
#[derive(Clone, Debug)]
pub struct Sources {
    /// The kernel command line (`/proc/cmdline`).
    pub proc_cmdline: PathBuf,
    /// A sysfs tree instead of `/sys` (links and DMI).
    pub sysfs: Option<PathBuf>,
    /// An `ip -json address` capture instead of the kernel's addresses.
    pub addresses: Option<PathBuf>,
    /// An `lldpctl -f xml` or `-f keyvalue` capture.
    pub lldp_file: Option<PathBuf>,
}

/// Collects the report: boot identity from the kernel command line, interfaces, DMI, host
/// name, and LLDP neighbours when a capture is given. Problems that leave a field empty are
/// warnings; the report is still made.
pub fn collect(args: &Sources) -> anyhow::Result<Report> {
    let cmdline = read_capped(&args.proc_cmdline, CMDLINE_LIMIT).with_context(|| {
        format!(
            "reading the kernel command line {}",
            args.proc_cmdline.display()
        )
    })?;
    let identity = cmdline::boot_identity(&cmdline::parse(&cmdline));
    for problem in &identity.problems {
        tracing::warn!("kernel command line: {problem}");
    }

    let sysfs = args.sysfs.as_deref().unwrap_or(Path::new("/sys"));
    let links = interfaces::read_links(sysfs)?;
    let addresses = match &args.addresses {
        Some(path) => {
            let text = read_capped(path, CAPTURE_LIMIT)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .with_context(|| format!("reading {}", path.display()))?;
            interfaces::parse_ip_json(&text)
                .with_context(|| format!("reading {}", path.display()))
                .map_err(|err| invalid(crate::error::one_line(&err)))?
        }
        None => interfaces::live_addresses(),
    };
    let ifaces = interfaces::interfaces(&links, &addresses);

    let mac = match identity.mac {
        Some(mac) => mac,
        None => fallback_boot_mac(&ifaces).unwrap_or_default(),
    };
    let (product_uuid, serial) = interfaces::dmi(sysfs);
    let lldp = match &args.lldp_file {
        Some(path) => match read_capped(path, CAPTURE_LIMIT)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        {
            Ok(text) => match lldp::parse(&text) {
                Ok(lldp) => Some(lldp),
                Err(err) => {
                    tracing::warn!(
                        "LLDP capture {}: {}; reporting without LLDP",
                        path.display(),
                        crate::error::one_line(&err)
                    );
                    None
                }
            },
            Err(err) => {
                tracing::warn!(
                    "LLDP capture {}: {err}; reporting without LLDP",
                    path.display()
                );
                None
            }
        },
        None => None,
    };
    Ok(Report {
        boot_info: BootInfo {
            uuid: identity.uuid.unwrap_or_default(),
            mac,
            product_uuid,
            serial,
            machine_id: interfaces::machine_id(),
            extra: Default::default(),
        },
        hostname: interfaces::hostname(),
        interfaces: ifaces,
        lldp,
        extra: Default::default(),
    })
}

/// Without a boot MAC on the command line: the only interface that has both a MAC and an IPv4
/// address, if there is exactly one.
fn fallback_boot_mac(ifaces: &[super::report::Interface]) -> Option<String> {
    let mut candidates = ifaces
        .iter()
        .filter(|iface| !iface.mac.is_empty() && iface.ipv4.is_some());
    let only = candidates.next()?;
    if candidates.next().is_some() {
        return None;
    }
    tracing::info!(
        "no boot MAC on the kernel command line; using {} ({}), the only addressed interface",
        only.mac,
        only.name
    );
    Some(only.mac.clone())
}

/// What the API answered to a stored report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct PostAnswer {
    /// Machines the API knows now.
    pub total_elt: u64,
    /// Whether the machine had reported before.
    pub update: bool,
}

/// How `caas discover` retries.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts after the first.
    pub retries: u32,
    /// Wait before the first retry; doubles each time, up to 30 s.
    pub wait: Duration,
    /// Limit for one attempt (connect, send, answer).
    pub timeout: Duration,
}

/// The HTTP client; `roots`, when given, are the only CAs an `https` API may be signed by
/// (otherwise the public web's).
fn agent(timeout: Duration, roots: Option<&ureq::tls::RootCerts>) -> ureq::Agent {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(roots) = roots {
        tls = tls.root_certs(roots.clone());
    }
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .tls_config(tls.build())
        .http_status_as_error(false)
        // A redirect would turn the report's POST into a GET, or carry a request to another
        // host: a 3xx is an answer to report, never followed.
        .max_redirects(0)
        .user_agent(format!("caas/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

/// POSTs `body` to `url` until the API answers 2xx or the retries are spent. Network errors,
/// 408, 429 and 5xx are retried; any other answer is final (the same report would be refused
/// again), and so is a TLS certificate the client refuses (`ca`: the CAs of `--ca-cert`).
pub fn post_report(
    url: &str,
    body: &[u8],
    retry: Retry,
    ca: Option<&ureq::tls::RootCerts>,
) -> anyhow::Result<PostAnswer> {
    let agent = agent(retry.timeout, ca);
    let mut wait = retry.wait;
    let mut last_error = String::new();
    for attempt in 0..=retry.retries {
        if attempt > 0 {
            tracing::warn!(
                "attempt {attempt} of {}: {last_error}; retrying in {}",
                retry.retries + 1,
                humantime::format_duration(wait)
            );
            thread::sleep(wait);
            wait = (wait * 2).min(MAX_RETRY_WAIT);
        }
        match agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body)
        {
            Ok(mut response) => {
                let status = response.status();
                let location = redirect_target(&response);
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_ANSWER)
                    .read_to_string();
                let text = match body {
                    Ok(text) => text,
                    Err(err) => {
                        // The answer broke off: whether or not the report was stored, posting
                        // it again is safe (a repost of a MAC is an update).
                        last_error =
                            format!("{url} answered {status}, then reading it failed: {err}");
                        continue;
                    }
                };
                if status.is_success() {
                    match serde_json::from_str(&text) {
                        Ok(answer) => return Ok(answer),
                        Err(_) => {
                            last_error = format!(
                                "{url} answered {status} with a body that is not caas api's \
                                 answer: {:?}",
                                error_message(&text)
                            );
                            continue;
                        }
                    }
                }
                if let Some(location) = location {
                    bail!(
                        "the API refused the report: {url} answered {status}, a redirect to \
                         {location}; caas does not follow redirects (a POST would become a GET): \
                         give --api the final URL"
                    );
                }
                let message = error_message(&text);
                last_error = format!("{url} answered {status}: {message}");
                let retryable = status.is_server_error() || matches!(status.as_u16(), 408 | 429);
                if !retryable {
                    bail!("the API refused the report: {last_error}");
                }
            }
            Err(err) => {
                if let Some(refusal) = certificate_refusal(&err) {
                    bail!("{url}: {refusal}");
                }
                last_error = format!("{url}: {err}");
            }
        }
    }
    bail!(
        "could not deliver the report in {} attempts: {last_error}",
        retry.retries + 1
    )
}

/// Where a 3xx answer points, if it is one.
fn redirect_target(response: &ureq::http::Response<ureq::Body>) -> Option<String> {
    if !response.status().is_redirection() {
        return None;
    }
    let location = response.headers().get("location");
    Some(
        location
            .and_then(|value| value.to_str().ok())
            .unwrap_or("(no Location)")
            .to_owned(),
    )
}

/// The `error` of a JSON error body, or the body itself, shortened.
fn error_message(text: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| text.trim().to_owned());
    let mut short: String = message.chars().take(300).collect();
    if short.len() < message.len() {
        short.push('…');
    }
    short
}

/// The largest machine list read, from the API or a saved listing: 100,000 machines take
/// about 100 MB, so this is room for a million.
pub const MACHINES_BODY_LIMIT: u64 = 1 << 30;

/// Every machine `caas api` at `api` (its base URL) knows, first seen first; the inventory
/// routes need the operator token.
pub fn fetch_machines(
    api: &str,
    timeout: Duration,
    operator: &Operator,
) -> anyhow::Result<Vec<Machine>> {
    let bytes = operator_call(api, "GET", "/discovery/machines", operator, None, timeout)?;
    let url = endpoint(api, "/discovery/machines")?;
    machines_from_json(&bytes).with_context(|| format!("GET {url}"))
}

/// How an operator's command reaches `caas api`: the bearer token its inventory routes need,
/// and the CAs to trust when it serves HTTPS with a private CA (`--ca-cert`).
#[derive(Clone, Debug, Default)]
pub struct Operator {
    pub token: Option<OperatorToken>,
    pub ca: Option<ureq::tls::RootCerts>,
}

impl Operator {
    /// Reads `--operator-token-file` and `--ca-cert`, when given.
    pub fn from_files(
        token_file: Option<&Path>,
        ca_cert: Option<&Path>,
    ) -> anyhow::Result<Operator> {
        Ok(Operator {
            token: token_file
                .map(|path| OperatorToken::read("--operator-token-file", path))
                .transpose()?,
            ca: ca_cert.map(super::tls::root_certs).transpose()?,
        })
    }
}

/// `method` `path` on `caas api` at `api` with the operator token (and a JSON body); the
/// answer's body when it is a success, else an error with the API's message (a missing or
/// wrong token says which flag gives it).
pub fn operator_call(
    api: &str,
    method: &str,
    path: &str,
    operator: &Operator,
    body: Option<&serde_json::Value>,
    timeout: Duration,
) -> anyhow::Result<Vec<u8>> {
    let url = endpoint(api, path)?;
    let agent = agent(timeout, operator.ca.as_ref());
    let token = operator.token.as_ref();
    let what = || format!("{method} {url}");
    let mut request = ureq::http::Request::builder().method(method).uri(&url);
    if let Some(token) = token {
        request = request.header("Authorization", token.header_value());
    }
    let sent = match body {
        Some(body) => agent.run(
            request
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .with_context(what)?,
        ),
        None => agent.run(request.body(()).with_context(what)?),
    };
    let mut response = sent.with_context(what)?;
    let status = response.status();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MACHINES_BODY_LIMIT)
        .read_to_vec()
        .with_context(what)?;
    if !status.is_success() {
        let hint = match (status.as_u16(), token) {
            (401, None) => " (give the token with --operator-token-file)",
            _ => "",
        };
        let message = format!(
            "{} answered {status}: {}{hint}",
            what(),
            error_message(&String::from_utf8_lossy(&bytes))
        );
        // A refused token, an unknown MAC: what the operator gave is wrong (exit 2).
        if status.is_client_error() {
            return Err(invalid(message));
        }
        bail!(message);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_name_the_discovery_endpoint() {
        for (api, want) in [
            ("http://10.0.0.1:5000", "http://10.0.0.1:5000/discovery"),
            ("http://10.0.0.1:5000/", "http://10.0.0.1:5000/discovery"),
            ("http://h:5000/discovery", "http://h:5000/discovery"),
            ("https://h/caas/", "https://h/caas/discovery"),
        ] {
            assert_eq!(discovery_url(api).unwrap(), want, "{api}");
        }
        assert_eq!(
            endpoint("http://h:5000/discovery", "/discovery/machines").unwrap(),
            "http://h:5000/discovery/machines"
        );
        for bad in ["h:5000", "ftp://h/", "http://h/?x", "http://"] {
            let err = discovery_url(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn error_bodies_are_shortened() {
        assert_eq!(error_message(r#"{"error":"bad mac"}"#), "bad mac");
        assert_eq!(error_message(" plain \n"), "plain");
        assert_eq!(error_message(&"x".repeat(1000)).chars().count(), 301);
    }
}
