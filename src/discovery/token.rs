//! The operator bearer token: what `caas api --operator-token-file` requires of the routes that
//! list or change the inventory, and what its clients (`caas machines --api`, `caas schedule
//! once --api`) send as `Authorization: Bearer <token>`.
//!
//! A booting machine holds no secret, so `POST /discovery`, `/boot.ipxe` and `/ipxe` stay open;
//! the inventory (who is on the network, their addresses, serials) and its admission are an
//! operator's business. The token file holds one line: the token, at least
//! [`MIN_TOKEN_LEN`] visible ASCII characters (`openssl rand -hex 32` makes one).

use std::path::Path;

use subtle::ConstantTimeEq as _;

use crate::error::invalid;
use crate::input::UserFile;

/// Shortest accepted token: guessing one must not be practical.
pub const MIN_TOKEN_LEN: usize = 16;

/// An operator token, read from its file.
#[derive(Clone)]
pub struct OperatorToken(String);

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never in a log line or a panic message.
        f.write_str("OperatorToken(…)")
    }
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer …` header: 401.
    Missing,
    /// A token, but not the operator's (or none is configured): 403.
    Wrong,
    /// The server was started without `--operator-token-file`: 403.
    NotConfigured,
}

impl OperatorToken {
    /// Reads the token from `path` (given with `flag`): one line, surrounding whitespace
    /// ignored. A file that is empty, short or holds anything but visible ASCII is an input
    /// error naming the file; a file others may read is a warning (the token is a password).
    pub fn read(flag: &'static str, path: &Path) -> anyhow::Result<OperatorToken> {
        let text = UserFile::new(flag, path).read_text()?;
        let token = OperatorToken::parse(&text)
            .map_err(|why| invalid(format!("{flag} {}: {why}", path.display())))?;
        warn_if_readable_by_others(flag, path);
        Ok(token)
    }

    /// A token from the text of its file (surrounding whitespace ignored); the error says what
    /// is wrong with it.
    pub fn parse(text: &str) -> Result<OperatorToken, String> {
        let token = text.trim();
        if token.is_empty() {
            return Err("the file is empty".into());
        }
        if token.lines().count() > 1 {
            return Err("the token must be one line".into());
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token must be visible ASCII characters, no spaces".into());
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "the token has {} characters, at least {MIN_TOKEN_LEN} are needed \
                 (openssl rand -hex 32 makes one)",
                token.len()
            ));
        }
        Ok(OperatorToken(token.to_owned()))
    }

    /// The `Authorization` header value a client sends.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Checks an `Authorization` header value against this token, in time that does not depend
    /// on how much of it matches.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), Refusal> {
        let Some(value) = authorization else {
            return Err(Refusal::Missing);
        };
        let Some(given) = bearer(value) else {
            return Err(Refusal::Missing);
        };
        if bool::from(given.ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            Err(Refusal::Wrong)
        }
    }
}

/// Checks a request against the server's token, if it has one.
pub fn authorize(
    token: Option<&OperatorToken>,
    authorization: Option<&[u8]>,
) -> Result<(), Refusal> {
    match token {
        Some(token) => token.check(authorization),
        None => Err(Refusal::NotConfigured),
    }
}

/// The credentials of `Bearer <credentials>` (the scheme is case-insensitive, RFC 9110).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let credentials = rest.strip_prefix(b" ")?.trim_ascii();
    (!credentials.is_empty()).then_some(credentials)
}

fn warn_if_readable_by_others(flag: &str, path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "{flag} {}: other users may read the token (mode {:o}): chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> anyhow::Result<OperatorToken> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, text).unwrap();
        OperatorToken::read("--operator-token-file", &path)
    }

    #[test]
    fn tokens_are_one_line_of_enough_visible_characters() {
        let good = token("  0123456789abcdef0123\n").unwrap();
        assert_eq!(good.header_value(), "Bearer 0123456789abcdef0123");
        for bad in [
            "",
            "\n",
            "short",
            "0123456789abcdef\nsecond",
            "0123456789 abcdef0123",
        ] {
            let err = token(bad).unwrap_err().to_string();
            assert!(err.starts_with("--operator-token-file "), "{bad:?}: {err}");
        }
        assert!(format!("{good:?}").contains('…'), "never printed");
    }

    #[test]
    fn missing_is_401_wrong_is_403_right_passes() {
        let good = token("0123456789abcdef0123").unwrap();
        let server = Some(&good);
        assert_eq!(authorize(server, None), Err(Refusal::Missing));
        assert_eq!(
            authorize(server, Some(b"Basic eDp5")),
            Err(Refusal::Missing)
        );
        assert_eq!(authorize(server, Some(b"Bearer ")), Err(Refusal::Missing));
        assert_eq!(
            authorize(server, Some(b"Bearer 0123456789abcdef0124")),
            Err(Refusal::Wrong)
        );
        assert_eq!(
            authorize(server, Some(b"Bearer 0123456789abcdef012")),
            Err(Refusal::Wrong),
            "a prefix is not the token"
        );
        assert_eq!(
            authorize(server, Some(b"Bearer 0123456789abcdef0123")),
            Ok(())
        );
        assert_eq!(
            authorize(server, Some(b"bearer 0123456789abcdef0123")),
            Ok(())
        );
        assert_eq!(
            authorize(None, Some(b"Bearer 0123456789abcdef0123")),
            Err(Refusal::NotConfigured)
        );
    }
}
