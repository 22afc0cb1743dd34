//! Where the discovery store is: a SQLite file (a path, as always) or a PostgreSQL database
//! (a `postgres://` or `postgresql://` URL). What `--db` and `CAAS_DB` take.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A `--db` value.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    /// The URL as given (it may carry a password: never printed, see [`Location::redacted`]).
    Postgres(String),
}

impl Location {
    /// The location as messages show it: a PostgreSQL URL without its password.
    pub fn redacted(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(url) => redact(url),
        }
    }
}

/// A PostgreSQL URL with its password replaced by `***`.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(an unreadable PostgreSQL URL)".into(),
    }
}

impl FromStr for Location {
    type Err = String;

    fn from_str(value: &str) -> Result<Location, String> {
        if value.is_empty() {
            return Err("expected a file path or a postgres:// URL".into());
        }
        let scheme = value.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some("postgres" | "postgresql") => {
                url::Url::parse(value)
                    .map_err(|err| format!("not a valid PostgreSQL URL: {err}"))?;
                Ok(Location::Postgres(value.to_owned()))
            }
            Some(other) if !other.contains('/') && !other.is_empty() => Err(format!(
                "{other}:// is not a store caas knows: give a file path (SQLite) or a \
                 postgres:// URL"
            )),
            _ => Ok(Location::Sqlite(PathBuf::from(value))),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({})", self.redacted())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_urls() {
        assert_eq!(
            "caas.db".parse::<Location>().unwrap(),
            Location::Sqlite("caas.db".into())
        );
        assert_eq!(
            "/var/lib/caas/caas.db".parse::<Location>().unwrap(),
            Location::Sqlite("/var/lib/caas/caas.db".into())
        );
        for url in [
            "postgres://caas@db/caas",
            "postgresql://u:p@127.0.0.1:5432/x",
        ] {
            assert_eq!(
                url.parse::<Location>().unwrap(),
                Location::Postgres(url.into())
            );
        }
        assert!("mysql://db/x".parse::<Location>().is_err());
        assert!("".parse::<Location>().is_err());
    }

    #[test]
    fn passwords_are_never_shown() {
        let location: Location = "postgresql://caas:s3cret@db:5432/caas?sslmode=require"
            .parse()
            .unwrap();
        let shown = format!("{location} {location:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("caas:***@db:5432/caas"), "{shown}");
    }
}
