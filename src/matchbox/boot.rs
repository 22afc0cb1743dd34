//! What a profile's boot section means: the OS it boots, the names of its initrds, the
//! Ignition URLs on its kernel line and the assets it loads from matchbox. `lint` checks these,
//! `explain` follows them.
//!
//! Under UEFI the kernel finds an initrd only by the name the kernel line gives it
//! (`initrd=main` with `initrd --name main` for Fedora CoreOS,
//! `initrd=flatcar_production_pxe_image.cpio.gz` for Flatcar), and Ignition runs only with the
//! OS's first-boot argument (`flatcar.first_boot`, `ignition.firstboot`, `coreos.first_boot`).
//! iPXE names an initrd after the last path component of its URI unless `--name` says otherwise
//! (<https://ipxe.org/cmd/initrd>); matchbox serves `/assets/…` from its assets directory
//! (<https://matchbox.psdn.io/matchbox/>).

use crate::matchbox::kargs::key_of;
use crate::matchbox::profile::Boot;
use crate::os::{Os, live_installers};

/// Kernel arguments whose value is the URL the OS fetches its Ignition config from.
pub use crate::os::CONFIG_URL_KEYS;

/// The OS a profile boots, from its kernel URL, else from its kernel arguments.
pub fn detect_os(boot: &Boot, args: &[String]) -> Option<Os> {
    let keys: Vec<&str> = args.iter().map(|a| key_of(a)).collect();
    Os::detect(&boot.kernel, &keys)
}

/// Whether the kernel arguments make a live system install to disk (Fedora CoreOS's
/// `coreos.inst.install_dev`).
pub fn live_install(args: &[String]) -> bool {
    live_installers().any(|installer| args.iter().any(|a| key_of(a) == installer.install_dev_key))
}

/// The URL of the Ignition config a live installer hands the installed system
/// (`coreos.inst.ignition_url`).
pub fn install_url(args: &[String]) -> Option<IgnitionUrl> {
    live_installers().find_map(|installer| {
        ignition_urls(args, &[installer.ignition_url_key])
            .into_iter()
            .next()
    })
}

/// One `initrd` entry: the URI iPXE fetches and the image name it registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Initrd {
    pub uri: String,
    /// `--name`/`-n` if given, else the last path component of the URI.
    pub name: String,
}

/// Parses an `initrd` entry: `[--name N | -n N | --name=N | other options…] <uri> [args…]`.
pub fn parse_initrd(entry: &str) -> Option<Initrd> {
    let mut tokens = entry.split_whitespace();
    let mut name = None;
    while let Some(token) = tokens.next() {
        if let Some(value) = token.strip_prefix("--name=") {
            name = Some(value.to_owned());
        } else if token == "--name" || token == "-n" {
            name = tokens.next().map(str::to_owned);
        } else if matches!(token, "--timeout" | "-t") {
            tokens.next();
        } else if token.starts_with('-') {
            continue;
        } else {
            let uri = token.to_owned();
            let name = name.unwrap_or_else(|| basename(&uri).to_owned());
            return Some(Initrd { uri, name });
        }
    }
    None
}

/// The last path component of a URI, without query or fragment.
pub fn basename(uri: &str) -> &str {
    let path = uri.split(['?', '#']).next().unwrap_or(uri);
    path.rsplit('/').next().unwrap_or(path)
}

/// An `/ignition` URL on the kernel line and the labels its query sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnitionUrl {
    /// Index of the argument in the kernel arguments.
    pub arg: usize,
    pub key: String,
    pub url: String,
    /// Query parameters in order, as matchbox reads them ([`go_query`]); values may hold
    /// iPXE variables (`${mac:hexhyp}`).
    pub query: Vec<(String, String)>,
    /// Query pairs matchbox drops, as written (a `;` in them, a bad `%` escape).
    pub dropped: Vec<String>,
}

/// A query string as Go's `url.ParseQuery` (Go 1.17 and later) reads it, which is what
/// matchbox's `req.URL.Query()` gets: pairs split on `&`; a pair containing `;`, or one whose
/// key or value has a bad `%` escape, is dropped (with an error matchbox ignores). Returns
/// the pairs kept, in order, and the pairs dropped, as written.
pub fn go_query(query: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for pair in query.split('&') {
        if pair.contains(';') {
            dropped.push(pair.to_owned());
            continue;
        }
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (go_unescape(key), go_unescape(value)) {
            (Some(key), Some(value)) => kept.push((key, value)),
            _ => dropped.push(pair.to_owned()),
        }
    }
    (kept, dropped)
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; a `%` not followed by two hex
/// digits is an error. Bytes that are not UTF-8 become U+FFFD, as Go strings print.
fn go_unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The kernel arguments that fetch matchbox's `/ignition` endpoint.
pub fn ignition_urls(args: &[String], keys: &[&str]) -> Vec<IgnitionUrl> {
    args.iter()
        .enumerate()
        .filter_map(|(arg, text)| {
            let (key, url) = text.split_once('=')?;
            if !keys.contains(&key) {
                return None;
            }
            let without_fragment = url.split('#').next().unwrap_or(url);
            let (path, query) = without_fragment
                .split_once('?')
                .unwrap_or((without_fragment, ""));
            if !path.trim_end_matches('/').ends_with("/ignition") {
                return None;
            }
            let (query, dropped) = go_query(query);
            Some(IgnitionUrl {
                arg,
                key: key.to_owned(),
                url: url.to_owned(),
                query,
                dropped,
            })
        })
        .collect()
}

/// A URL matchbox itself serves from its assets directory: `/assets/<rest>`, relative to the
/// iPXE script and free of iPXE variables; the returned path is percent-decoded.
pub fn relative_asset(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("/assets/")?;
    if rest.contains("${") {
        return None;
    }
    let path = rest.split(['?', '#']).next().unwrap_or(rest);
    Some(
        percent_encoding::percent_decode_str(path)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_read_as_go_reads_them() {
        assert_eq!(
            go_query("mac=a&os=installed;x&k=%41+b&bad=%zz&&v"),
            (
                vec![
                    ("mac".into(), "a".into()),
                    ("k".into(), "A b".into()),
                    ("v".into(), String::new())
                ],
                vec!["os=installed;x".into(), "bad=%zz".into()]
            )
        );
    }

    #[test]
    fn initrd_names_follow_ipxe() {
        assert_eq!(
            parse_initrd("--name main /assets/fcos/initramfs.img").unwrap(),
            Initrd {
                uri: "/assets/fcos/initramfs.img".into(),
                name: "main".into()
            }
        );
        assert_eq!(
            parse_initrd("/assets/flatcar/1/flatcar_production_pxe_image.cpio.gz?x=1")
                .unwrap()
                .name,
            "flatcar_production_pxe_image.cpio.gz"
        );
        assert_eq!(parse_initrd("-n=x http://h/i").unwrap().name, "i");
        assert_eq!(parse_initrd("--name=x http://h/i").unwrap().name, "x");
        assert_eq!(parse_initrd("   "), None);
    }

    #[test]
    fn ignition_urls_and_their_labels() {
        let args = vec![
            "initrd=main".to_owned(),
            "ignition.config.url=http://m:8080/ignition?uuid=${uuid}&mac=${mac:hexhyp}&os=installed".to_owned(),
            "coreos.live.rootfs_url=http://m:8080/assets/x".to_owned(),
            "flatcar.config.url=http://elsewhere/config.ign".to_owned(),
        ];
        let urls = ignition_urls(&args, &CONFIG_URL_KEYS);
        assert_eq!(urls.len(), 1);
        assert_eq!(urls[0].arg, 1);
        assert_eq!(
            urls[0].query,
            vec![
                ("uuid".to_owned(), "${uuid}".to_owned()),
                ("mac".to_owned(), "${mac:hexhyp}".to_owned()),
                ("os".to_owned(), "installed".to_owned())
            ]
        );
    }

    #[test]
    fn operating_systems() {
        let boot = |kernel: &str| Boot {
            kernel: kernel.into(),
            ..Boot::default()
        };
        assert_eq!(
            detect_os(
                &boot("/assets/flatcar/1/flatcar_production_pxe.vmlinuz"),
                &[]
            ),
            Some(Os::Flatcar)
        );
        assert_eq!(
            detect_os(&boot("/assets/coreos/1/coreos_production_pxe.vmlinuz"), &[]),
            Some(Os::Coreos)
        );
        assert_eq!(
            detect_os(&boot("/k"), &["coreos.live.rootfs_url=x".into()]),
            Some(Os::FedoraCoreos)
        );
        assert_eq!(
            detect_os(&boot("/k"), &["coreos.config.url=x".into()]),
            None
        );
    }

    #[test]
    fn relative_assets() {
        assert_eq!(
            relative_asset("/assets/a%20b/k?x").as_deref(),
            Some("a b/k")
        );
        assert_eq!(relative_asset("http://m/assets/k"), None);
        assert_eq!(relative_asset("/assets/${arch}/k"), None);
    }
}
