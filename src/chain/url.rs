//! The boot URL a chain script (or a dnsmasq config) hands to iPXE.
//!
//! The URL is written into an iPXE script and into dnsmasq options, so it must read back as one
//! literal word in both: iPXE splits commands at whitespace, expands `${…}` and treats quotes
//! and backslashes specially; dnsmasq splits option values at commas.

use std::fmt;

use crate::error::InvalidInput;

/// matchbox's default HTTP port, used when `--server HOST` gives none.
pub const DEFAULT_SERVER_PORT: u16 = 8080;

/// Where iPXE is sent, as the operator named it: a whole URL, or matchbox's host and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootTarget {
    /// `--boot-url URL`.
    Url(String),
    /// `--server HOST[:PORT]`.
    Server(String),
}

impl BootTarget {
    /// The validated boot URL; the error names the flag, the value and the problem.
    pub fn boot_url(&self) -> Result<BootUrl, InvalidInput> {
        match self {
            BootTarget::Url(url) => BootUrl::parse("--boot-url", url),
            BootTarget::Server(server) => BootUrl::from_server(server),
        }
    }
}

/// An `http(s)://…` URL that iPXE reads back exactly as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootUrl {
    url: String,
    https: bool,
}

impl BootUrl {
    /// Validates `value` as given to `flag`; the error names the flag, the value and the problem.
    pub fn parse(flag: &str, value: &str) -> Result<BootUrl, InvalidInput> {
        check(value).map_err(|why| InvalidInput(format!("invalid {flag} {value:?}: {why}")))
    }

    /// `--server HOST[:PORT]`: matchbox's iPXE entry point, `http://HOST:PORT/boot.ipxe`, port
    /// 8080 (matchbox's) when none is given.
    pub fn from_server(value: &str) -> Result<BootUrl, InvalidInput> {
        let bad = |why: &str| InvalidInput(format!("invalid --server {value:?}: {why}"));
        if value.is_empty() {
            return Err(bad("it is empty"));
        }
        if let Some(why) = misread_by_ipxe(value) {
            return Err(bad(&why));
        }
        if let Some(c) = value.chars().find(|c| matches!(c, '/' | '@' | '?' | '#')) {
            return Err(bad(&format!(
                "{c:?} is not allowed: give HOST or HOST:PORT (use --boot-url for a full URL)"
            )));
        }
        let url = url::Url::parse(&format!("http://{value}/boot.ipxe"))
            .map_err(|err| bad(&err.to_string()))?;
        let host = url.host_str().unwrap_or_default();
        if host.is_empty() {
            return Err(bad("it has no host"));
        }
        // `url` drops an explicit `:80` (http's default): tell it from no port at all.
        let explicit_port = match value.strip_prefix('[') {
            Some(rest) => rest.contains("]:"),
            None => value.contains(':'),
        };
        let port = url.port().unwrap_or(if explicit_port {
            80
        } else {
            DEFAULT_SERVER_PORT
        });
        check(&format!("http://{host}:{port}/boot.ipxe")).map_err(|why| bad(&why))
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    pub fn is_https(&self) -> bool {
        self.https
    }
}

impl fmt::Display for BootUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// Why `value` cannot be a boot URL, if it cannot.
fn check(value: &str) -> Result<BootUrl, String> {
    if let Some(why) = misread_by_ipxe(value) {
        return Err(why);
    }
    let url = url::Url::parse(value).map_err(|err| err.to_string())?;
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(format!(
                "the scheme is {other:?}; iPXE is chained over http or https"
            ));
        }
    };
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    if url.port() == Some(0) {
        return Err("port 0 cannot be connected to".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "credentials do not belong in a URL shown on every console and written on boot media"
                .into(),
        );
    }
    if url.fragment().is_some() {
        return Err("a fragment ('#') is never sent to the server".into());
    }
    Ok(BootUrl {
        url: url.as_str().to_owned(),
        https,
    })
}

/// Why iPXE (or dnsmasq) would not read `value` back as one literal word, if it would not.
fn misread_by_ipxe(value: &str) -> Option<String> {
    if let Some(c) = value
        .chars()
        .find(|c| !c.is_ascii() || c.is_ascii_whitespace() || c.is_ascii_control())
    {
        let what = if c.is_ascii_whitespace() || c.is_ascii_control() {
            "whitespace and control characters split or end an iPXE command"
        } else {
            "only ASCII is allowed (percent-encode other characters)"
        };
        return Some(format!("{c:?} is not allowed: {what}"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, '"' | '\'' | '\\' | '`' | ','))
    {
        let what = if c == ',' {
            "dnsmasq splits its options at commas"
        } else {
            "iPXE would read it as quoting or escaping"
        };
        return Some(format!("{c:?} is not allowed: {what}"));
    }
    if value.contains("${") {
        return Some("\"${\" is not allowed: iPXE would expand it as a setting".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_https_urls_as_written() {
        for (input, want) in [
            (
                "http://matchbox.example.com:8080/boot.ipxe",
                "http://matchbox.example.com:8080/boot.ipxe",
            ),
            ("https://Boot.Lab/boot.ipxe", "https://boot.lab/boot.ipxe"),
            (
                "http://10.0.0.1:8080/boot.ipxe?profile=x&arch=amd64",
                "http://10.0.0.1:8080/boot.ipxe?profile=x&arch=amd64",
            ),
            (
                "http://[fd00::1]:8080/boot.ipxe",
                "http://[fd00::1]:8080/boot.ipxe",
            ),
            ("http://m/a%20b", "http://m/a%20b"),
            ("http://m/$x", "http://m/$x"),
        ] {
            let url = BootUrl::parse("--boot-url", input).unwrap();
            assert_eq!(url.as_str(), want);
            assert_eq!(url.is_https(), input.starts_with("https"));
        }
    }

    #[test]
    fn rejects_what_ipxe_would_misread_or_cannot_fetch() {
        for (bad, needle) in [
            ("http://m /boot.ipxe", "' '"),
            ("http://m/\tx", "'\\t'"),
            ("http://m/x\ny", "'\\n'"),
            ("http://m/\"x\"", "quoting"),
            ("http://m/'x'", "quoting"),
            ("http://m/a\\b", "quoting"),
            ("http://m/${mac}", "expand"),
            ("http://${next-server}/boot.ipxe", "expand"),
            ("http://m/a,b", "commas"),
            ("http://m/é", "ASCII"),
            ("ftp://m/boot.ipxe", "scheme"),
            ("tftp://m/boot.ipxe", "scheme"),
            ("matchbox:8080/boot.ipxe", "scheme"),
            ("/boot.ipxe", "relative"),
            ("http://user:pw@m/boot.ipxe", "credentials"),
            ("http://m/boot.ipxe#x", "fragment"),
            ("http://", "host"),
            ("http://m:0/boot.ipxe", "port 0"),
            ("", "relative"),
        ] {
            let err = BootUrl::parse("--boot-url", bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid --boot-url {bad:?}: ")),
                "{err}"
            );
            assert!(err.contains(needle), "{err} should contain {needle}");
        }
    }

    #[test]
    fn server_becomes_the_matchbox_boot_script_url() {
        for (input, want) in [
            ("matchbox.lab", "http://matchbox.lab:8080/boot.ipxe"),
            ("10.0.0.1:9000", "http://10.0.0.1:9000/boot.ipxe"),
            ("[fd00::1]", "http://[fd00::1]:8080/boot.ipxe"),
            ("[fd00::1]:80", "http://[fd00::1]/boot.ipxe"),
            ("Matchbox.Lab:8080", "http://matchbox.lab:8080/boot.ipxe"),
        ] {
            assert_eq!(BootUrl::from_server(input).unwrap().as_str(), want);
        }
        for bad in [
            "",
            "m:x",
            "m:99999",
            "m:0",
            "m/boot",
            "u@m",
            "m b",
            "${next-server}",
            "http://m",
        ] {
            let err = BootUrl::from_server(bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid --server {bad:?}")),
                "{err}"
            );
        }
    }
}
