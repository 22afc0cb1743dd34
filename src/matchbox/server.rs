//! The matchbox server as booting machines reach it: the base of every absolute URL caas writes.

use std::fmt;

use crate::error::InvalidInput;

/// An `http(s)://host[:port][/prefix]` base URL, without a trailing slash, query or fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchboxUrl(String);

impl MatchboxUrl {
    /// Parses and normalises a base URL; the error names the value and what is wrong.
    pub fn parse(value: &str) -> Result<MatchboxUrl, InvalidInput> {
        let bad = |why: &str| InvalidInput(format!("invalid matchbox URL {value:?}: {why}"));
        if let Some(c) = value
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '$' | '\\'))
        {
            // Whitespace would split a kernel argument; `$` would be expanded by iPXE.
            return Err(bad(&format!("{c:?} is not allowed")));
        }
        let url = url::Url::parse(value).map_err(|err| bad(&err.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("it has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a base URL takes no query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials do not belong in a URL that machines see"));
        }
        Ok(MatchboxUrl(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// The absolute URL of a server path such as `/ignition?…` or `/assets/…`.
    pub fn join(&self, path: &str) -> String {
        debug_assert!(path.starts_with('/'));
        format!("{}{path}", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MatchboxUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for MatchboxUrl {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MatchboxUrl::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_base_urls() {
        for (input, want) in [
            (
                "http://matchbox.example.com:8080",
                "http://matchbox.example.com:8080",
            ),
            ("http://10.0.0.1:8080/", "http://10.0.0.1:8080"),
            ("https://Boot.Lab/matchbox/", "https://boot.lab/matchbox"),
        ] {
            assert_eq!(MatchboxUrl::parse(input).unwrap().as_str(), want);
        }
        let base = MatchboxUrl::parse("http://m:8080").unwrap();
        assert_eq!(base.join("/assets/x"), "http://m:8080/assets/x");
    }

    #[test]
    fn rejects_what_cannot_be_a_base() {
        for bad in [
            "matchbox:8080",
            "ftp://m/",
            "http://m:8080/?x=1",
            "http://m/#f",
            "http://m /",
            "http://m/$x",
            "http://user:pw@m/",
            "http://",
            "",
        ] {
            let err = MatchboxUrl::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
