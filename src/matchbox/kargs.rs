//! Kernel arguments of a profile: what the OS needs, merged with what the user asks for.
//!
//! matchbox joins `boot.args` with spaces into iPXE's `kernel` line, so one argument must never
//! contain white space (it would become two) or a control character (a newline would start a
//! new iPXE command). iPXE also reads some whole words of a line as its own: `;`, `||` and `&&`
//! end one command and start the next, and a word starting with `#` ends the line, so such a
//! word among the arguments would run iPXE commands instead of passing text to the kernel.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::server::MatchboxUrl;
use crate::error::InvalidInput;

/// One kernel argument as the OS defaults describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelArg {
    /// Used as written: `flatcar.first_boot=yes`, `ignition.firstboot`.
    Literal(String),
    /// `key=<matchbox URL><path>`: the kernel or initramfs fetches it itself, long after iPXE,
    /// so it must be absolute.
    ServerUrl { key: &'static str, path: String },
}

impl KernelArg {
    pub fn key(&self) -> &str {
        match self {
            KernelArg::Literal(arg) => key_of(arg),
            KernelArg::ServerUrl { key, .. } => key,
        }
    }
}

/// The key of `key=value`, or the whole argument when it is a bare flag.
pub fn key_of(arg: &str) -> &str {
    arg.split_once('=').map_or(arg, |(key, _)| key)
}

/// Checks one user-supplied argument.
pub fn validate(arg: &str) -> Result<(), InvalidInput> {
    let bad = |why: &str| InvalidInput(format!("invalid kernel argument {arg:?}: {why}"));
    if arg.is_empty() {
        return Err(bad("it is empty"));
    }
    if let Some(c) = arg.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(&format!(
            "{c:?} would split it (pass each argument separately)"
        )));
    }
    if arg.starts_with('=') {
        return Err(bad("it has no key"));
    }
    if let Some(why) = ipxe_control(arg) {
        return Err(bad(&why));
    }
    Ok(())
}

/// Why `arg`, on iPXE's `kernel` line, would be read by iPXE rather than passed to the kernel:
/// a control character, or a word (`arg` split at white space, as iPXE splits the line) that is
/// `;`, `||` or `&&` (they end the command and run what follows) or starts with `#` (the rest of
/// the line is a comment).
pub fn ipxe_control(arg: &str) -> Option<String> {
    if let Some(c) = arg.chars().find(|c| c.is_control()) {
        return Some(format!("{c:?} would end iPXE's kernel command"));
    }
    arg.split_whitespace().find_map(|word| match word {
        ";" | "||" | "&&" => Some(format!(
            "iPXE reads {word:?} as the end of the kernel command and runs what follows"
        )),
        _ if word.starts_with('#') => Some(format!(
            "iPXE reads {word:?} as the start of a comment and drops the rest of the kernel line"
        )),
        _ => None,
    })
}

/// Merges the user's arguments into the OS defaults: a user `key=value` (or bare `key`)
/// replaces the default with the same key in place; anything else is appended in order.
pub fn merge(defaults: Vec<KernelArg>, user: &[String]) -> Vec<KernelArg> {
    let mut merged = defaults;
    let default_count = merged.len();
    let mut replaced = vec![false; default_count];
    for arg in user {
        let key = key_of(arg);
        let slot = (0..default_count).find(|&i| !replaced[i] && merged[i].key() == key);
        match slot {
            Some(i) => {
                merged[i] = KernelArg::Literal(arg.clone());
                replaced[i] = true;
            }
            None => merged.push(KernelArg::Literal(arg.clone())),
        }
    }
    merged
}

/// Turns the merged arguments into strings; a server URL without a base is the error `missing`
/// builds from the argument's key.
pub fn resolve(
    args: Vec<KernelArg>,
    base: Option<&MatchboxUrl>,
    missing: impl Fn(&str) -> InvalidInput,
) -> Result<Vec<String>, InvalidInput> {
    args.into_iter()
        .map(|arg| match arg {
            KernelArg::Literal(arg) => Ok(arg),
            KernelArg::ServerUrl { key, path } => match base {
                Some(base) => Ok(format!("{key}={}", base.join(&path))),
                None => Err(missing(key)),
            },
        })
        .collect()
}

/// The bootcfg v0.4 `cmdline` map: `key=value` → `"key": "value"`, a bare flag → `"key": ""`.
/// A map cannot hold one key twice, so repeated keys (`console=tty0 console=ttyS0`) are an error.
pub fn to_cmdline(args: &[String]) -> Result<Map<String, Value>, InvalidInput> {
    let mut map = BTreeMap::new();
    for arg in args {
        let (key, value) = arg.split_once('=').unwrap_or((arg, ""));
        if map.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(InvalidInput(format!(
                "kernel argument {key:?} is given more than once, which the bootcfg-0.4 cmdline map cannot hold"
            )));
        }
    }
    Ok(map
        .into_iter()
        .map(|(key, value)| (key, Value::String(value)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> KernelArg {
        KernelArg::Literal(s.into())
    }

    #[test]
    fn user_arguments_replace_defaults_by_key_and_append_the_rest() {
        let defaults = vec![
            lit("initrd=main"),
            KernelArg::ServerUrl {
                key: "ignition.config.url",
                path: "/ignition".into(),
            },
            lit("ignition.firstboot"),
            lit("ignition.platform.id=metal"),
        ];
        let user = [
            "ignition.platform.id=qemu".to_owned(),
            "console=tty0".to_owned(),
            "console=ttyS0".to_owned(),
            "ignition.firstboot".to_owned(),
        ];
        let merged = merge(defaults, &user);
        let base = MatchboxUrl::parse("http://m:8080").unwrap();
        let args = resolve(merged, Some(&base), |_| unreachable!()).unwrap();
        assert_eq!(
            args,
            vec![
                "initrd=main",
                "ignition.config.url=http://m:8080/ignition",
                "ignition.firstboot",
                "ignition.platform.id=qemu",
                "console=tty0",
                "console=ttyS0",
            ]
        );
    }

    #[test]
    fn a_user_value_stands_in_for_a_server_url_without_base() {
        let defaults = vec![KernelArg::ServerUrl {
            key: "ignition.config.url",
            path: "/ignition".into(),
        }];
        let merged = merge(defaults.clone(), &["ignition.config.url=tftp://x/c".into()]);
        assert_eq!(
            resolve(merged, None, |_| unreachable!()).unwrap(),
            vec!["ignition.config.url=tftp://x/c"]
        );
        let err = resolve(defaults, None, |key| InvalidInput(format!("need {key}"))).unwrap_err();
        assert_eq!(err.to_string(), "need ignition.config.url");
    }

    #[test]
    fn validation_names_the_argument() {
        assert!(validate("console=ttyS0,115200n8").is_ok());
        assert!(validate("flatcar.autologin").is_ok());
        for bad in ["", "a b", "a\nchain http://evil", "=x", "tab\there"] {
            let err = validate(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn ipxe_command_words_are_refused_and_others_pass() {
        for ok in ["a;b", "x||y", "k=&&", "a#b", "console=ttyS0", "|", "&"] {
            assert!(validate(ok).is_ok(), "{ok}");
            assert_eq!(ipxe_control(ok), None, "{ok}");
        }
        for bad in [";", "||", "&&", "#", "#echo"] {
            let err = validate(bad).unwrap_err().to_string();
            assert!(
                err.contains("iPXE") && err.contains(&format!("{bad:?}")),
                "{err}"
            );
        }
        // In a hand-written profile one JSON string may hold several words.
        assert!(ipxe_control("quiet ; echo X").is_some());
        assert!(ipxe_control("quiet #x").is_some());
        assert!(ipxe_control("a\nb").is_some());
    }

    #[test]
    fn cmdline_map_for_bootcfg() {
        let map = to_cmdline(&["coreos.first_boot=yes".into(), "coreos.autologin".into()]).unwrap();
        assert_eq!(map["coreos.first_boot"], "yes");
        assert_eq!(map["coreos.autologin"], "");
        assert!(to_cmdline(&["console=tty0".into(), "console=ttyS0".into()]).is_err());
    }
}
