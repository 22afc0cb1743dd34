//! caas's per-user cache: `$XDG_CACHE_HOME/caas`, or `~/.cache/caas` when that is unset or
//! empty (the XDG base directory rule). Only what caas can rebuild from its inputs is kept
//! there: deleting the directory costs time, never a result.

use std::ffi::OsString;
use std::path::PathBuf;

/// The cache directory for this user, or `None` when neither `XDG_CACHE_HOME` nor `HOME` says
/// where it is.
pub fn dir() -> Option<PathBuf> {
    dir_in(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
}

/// [`dir`] from given values of `XDG_CACHE_HOME` and `HOME`.
pub fn dir_in(xdg_cache_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    xdg_cache_home
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            home.filter(|home| !home.is_empty())
                .map(|home| PathBuf::from(home).join(".cache"))
        })
        .map(|cache| cache.join("caas"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_first_then_home() {
        assert_eq!(
            dir_in(Some("/c".into()), Some("/home/op".into())),
            Some(PathBuf::from("/c/caas"))
        );
        assert_eq!(
            dir_in(Some("".into()), Some("/home/op".into())),
            Some(PathBuf::from("/home/op/.cache/caas"))
        );
        assert_eq!(dir_in(None, Some("".into())), None);
        assert_eq!(dir_in(None, None), None);
    }
}
