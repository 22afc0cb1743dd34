//! The kernel command line, split the way the kernel splits it, and the boot identity iPXE left
//! on it.
//!
//! Splitting follows `next_arg()` in the kernel's `lib/cmdline.c` byte for byte: parameters are
//! separated by the kernel's white space (which includes byte 0xA0), double quotes group
//! (`key="a b"`), the quotes around a value are dropped, an `=` at the very start of a token does
//! not count, and a bare `--` ends the kernel's parameters (the rest belongs to init).
//!
//! The boot identity comes from the query of the Ignition config URL that matchbox profiles put
//! there (`ignition.config.url`, `flatcar.config.url` or `coreos.config.url`, e.g.
//! `…/ignition?uuid=${uuid}&mac=${mac:hexhyp}` filled in by iPXE): `uuid`, and `mac` with its
//! hyphens turned into colons and normalised as matchbox does. pxelinux's `BOOTIF=01-<hexhyp>`
//! is the fallback for the MAC.

use crate::matchbox::mac;

/// One kernel parameter: `key=value` or a bare flag (`value` is `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub key: String,
    pub value: Option<String>,
}

/// The kernel's `isspace()`: ASCII white space plus 0xA0 (Latin-1 no-break space).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0)
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_space(b)).unwrap_or(s.len());
    &s[start..]
}

/// Splits a command line into parameters, as the kernel does.
pub fn parse(cmdline: &[u8]) -> Vec<Param> {
    // The kernel sees a C string: nothing after a NUL exists.
    let cmdline = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    let mut params = Vec::new();
    let mut rest = skip_spaces(cmdline);
    while !rest.is_empty() {
        let (key, value, next) = next_arg(rest);
        if value.is_none() && key == b"--" {
            break;
        }
        params.push(Param {
            key: String::from_utf8_lossy(key).into_owned(),
            value: value.map(|v| String::from_utf8_lossy(v).into_owned()),
        });
        rest = next;
    }
    params
}

/// One parameter off the front of `args` (which starts with a non-space byte).
fn next_arg(args: &[u8]) -> (&[u8], Option<&[u8]>, &[u8]) {
    let (args, quoted) = match args.first() {
        Some(b'"') => (&args[1..], true),
        _ => (args, false),
    };
    let mut in_quote = quoted;
    let mut equals = 0;
    let mut i = 0;
    while i < args.len() {
        let b = args[i];
        if is_space(b) && !in_quote {
            break;
        }
        if equals == 0 && b == b'=' {
            equals = i;
        }
        if b == b'"' {
            in_quote = !in_quote;
        }
        i += 1;
    }
    // The kernel ends strings by writing NULs: at `equals`, at `i`, and possibly at `i - 1`
    // (a closing quote). `cut` is that last one.
    let mut cut = i;
    let mut key_end = i;
    let mut value = None;
    if equals != 0 {
        key_end = equals;
        let mut start = equals + 1;
        if args.get(start) == Some(&b'"') && start < i {
            start += 1;
            if args[i - 1] == b'"' {
                cut = i - 1;
            }
        }
        value = Some(start);
    }
    if quoted && i > 0 && cut == i && args[i - 1] == b'"' {
        cut = i - 1;
    }
    let key = &args[..key_end.min(cut)];
    let value = value.map(|start| {
        let end = cut.max(start);
        &args[start.min(end)..end]
    });
    let next = if i < args.len() {
        &args[i + 1..]
    } else {
        &[][..]
    };
    (key, value, skip_spaces(next))
}

/// The config-URL parameters that carry the boot identity, most specific first: every OS's.
pub use crate::os::CONFIG_URL_KEYS;

/// Who the machine is, according to its kernel command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootIdentity {
    /// iPXE's `${uuid}` from the config URL.
    pub uuid: Option<String>,
    /// The normalised boot MAC.
    pub mac: Option<String>,
    /// The parameter the MAC came from.
    pub mac_source: Option<String>,
    /// What was there but could not be used (an unsubstituted `${mac}`, a truncated MAC…).
    pub problems: Vec<String>,
}

/// The value of the last occurrence of `key` (later parameters override earlier ones).
pub fn last_value<'a>(params: &'a [Param], key: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|p| p.key == key)
        .and_then(|p| p.value.as_deref())
}

/// Reads the boot identity from parsed parameters.
pub fn boot_identity(params: &[Param]) -> BootIdentity {
    let mut identity = BootIdentity::default();
    if let Some((key, url)) = CONFIG_URL_KEYS
        .iter()
        .find_map(|key| last_value(params, key).map(|url| (*key, url)))
    {
        let query = url.split_once('?').map_or("", |(_, q)| q);
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "uuid" if identity.uuid.is_none() && !value.is_empty() => {
                    identity.uuid = Some(value.into_owned());
                }
                "mac" if identity.mac.is_none() && identity.problems.is_empty() => {
                    match mac::normalize(&value.replace('-', ":")) {
                        Ok(mac) => {
                            identity.mac = Some(mac);
                            identity.mac_source = Some(key.to_owned());
                        }
                        Err(err) => identity.problems.push(format!("{key}: {err}")),
                    }
                }
                _ => {}
            }
        }
    }
    if identity.mac.is_none()
        && let Some(bootif) = last_value(params, "BOOTIF")
    {
        // pxelinux: the ARP hardware type, then the address, all hyphenated (01-52-54-…).
        let address = bootif
            .split_once('-')
            .filter(|(hw, rest)| hw.len() == 2 && rest.len() >= 17)
            .map_or(bootif, |(_, rest)| rest);
        match mac::normalize(address) {
            Ok(mac) => {
                identity.mac = Some(mac);
                identity.mac_source = Some("BOOTIF".into());
            }
            Err(err) => identity.problems.push(format!("BOOTIF: {err}")),
        }
    }
    identity
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fs;
    use std::path::Path;

    fn kv(cmdline: &str) -> Vec<(String, Option<String>)> {
        parse(cmdline.as_bytes())
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect()
    }

    fn p(key: &str, value: Option<&str>) -> (String, Option<String>) {
        (key.to_owned(), value.map(str::to_owned))
    }

    #[test]
    fn splits_like_the_kernel() {
        assert_eq!(
            kv("  console=ttyS0  quiet\troot=/dev/sda1\n"),
            vec![
                p("console", Some("ttyS0")),
                p("quiet", None),
                p("root", Some("/dev/sda1"))
            ]
        );
        // Quotes group, and the quotes around a value are dropped.
        assert_eq!(
            kv(r#"a="b c" d="e" f"#),
            vec![p("a", Some("b c")), p("d", Some("e")), p("f", None)]
        );
        // A quoted parameter loses its quotes; quotes inside a key stay.
        assert_eq!(
            kv(r#""x y" "k=v w" a"b c"=d"#),
            vec![
                p("x y", None),
                p("k", Some("v w")),
                p(r#"a"b c""#, Some("d"))
            ]
        );
        // Only the first '=' splits; '=' at the very start does not count.
        assert_eq!(
            kv("u=http://h/?a=b&c=d =x"),
            vec![p("u", Some("http://h/?a=b&c=d")), p("=x", None)]
        );
        // An unterminated quote runs to the end; an empty quoted value is empty.
        assert_eq!(kv(r#"a="b c d=e"#), vec![p("a", Some("b c d=e"))]);
        assert_eq!(
            kv(r#"a="" b=" c"#),
            vec![p("a", Some("")), p("b", Some(" c"))]
        );
        assert_eq!(kv(r#"a=" x"#), vec![p("a", Some(" x"))]);
        assert_eq!(kv("x k=\""), vec![p("x", None), p("k", Some(""))]);
        // `--` hands the rest to init.
        assert_eq!(kv("quiet -- single a=b"), vec![p("quiet", None)]);
        assert_eq!(kv("--=1 x"), vec![p("--", Some("1")), p("x", None)]);
        // 0xA0 is white space to the kernel; a NUL ends the string.
        assert_eq!(
            parse(b"a=1\xa0b=2\0c=3"),
            vec![
                Param {
                    key: "a".into(),
                    value: Some("1".into())
                },
                Param {
                    key: "b".into(),
                    value: Some("2".into())
                }
            ]
        );
        assert!(parse(b"").is_empty());
        assert!(parse(b"   \n").is_empty());
        assert_eq!(kv("\""), vec![p("", None)]);
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/reference/seed-fixtures/discoveryC/tests/proc")
            .join(name);
        fs::read(&path).unwrap()
    }

    #[test]
    fn reads_the_2016_fixture_command_lines() {
        let cases = [
            (
                "cmdline0",
                "2023e709-39b4-47d7-8905-e8be3e6bc2c6",
                "52:54:00:0d:bd:31",
            ),
            (
                "cmdline1",
                "ee378e7b-1575-425d-a6d6-e0dadb9f31a0",
                "52:54:00:90:c3:9f",
            ),
            (
                "cmdline2",
                "62b58ffd-7960-419a-8359-91def082191a",
                "52:54:00:71:83:ea",
            ),
        ];
        for (name, uuid, mac) in cases {
            let identity = boot_identity(&parse(&fixture(name)));
            assert_eq!(identity.uuid.as_deref(), Some(uuid), "{name}");
            assert_eq!(identity.mac.as_deref(), Some(mac), "{name}");
            assert_eq!(identity.mac_source.as_deref(), Some("coreos.config.url"));
            assert!(identity.problems.is_empty());
        }
    }

    #[test]
    fn identity_sources_and_problems() {
        let id = boot_identity(&parse(
            b"coreos.config.url=http://a/ignition?mac=52-54-00-00-00-01 \
              ignition.config.url=\"http://b/ignition?uuid=U%201&mac=52-54-00-00-00-02#frag\"",
        ));
        assert_eq!(id.mac.as_deref(), Some("52:54:00:00:00:02"));
        assert_eq!(id.uuid.as_deref(), Some("U 1"));
        assert_eq!(id.mac_source.as_deref(), Some("ignition.config.url"));

        let id = boot_identity(&parse(
            b"flatcar.config.url=http://m/ignition?uuid=${uuid}&mac=${mac:hexhyp}",
        ));
        assert_eq!(id.mac, None);
        assert_eq!(id.uuid.as_deref(), Some("${uuid}"));
        assert!(id.problems[0].contains("flatcar.config.url"), "{id:?}");

        let id = boot_identity(&parse(b"BOOTIF=01-52-54-00-AA-BB-CC quiet"));
        assert_eq!(id.mac.as_deref(), Some("52:54:00:aa:bb:cc"));
        assert_eq!(id.mac_source.as_deref(), Some("BOOTIF"));

        // The 2016 truncation bug produced five-byte MACs: refused, not guessed at.
        let id = boot_identity(&parse(
            b"coreos.config.url=http://a/ignition?mac=52-54-00-90-c3-9",
        ));
        assert_eq!(id.mac, None);
        assert_eq!(id.problems.len(), 1);

        assert_eq!(boot_identity(&parse(b"quiet")), BootIdentity::default());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let params = parse(&bytes);
            let _ = boot_identity(&params);
        }

        #[test]
        fn never_panics_on_quote_heavy_lines(s in "[ a=\"\\-]{0,40}") {
            let _ = parse(s.as_bytes());
        }

        #[test]
        fn plain_and_quoted_params_round_trip(
            params in prop::collection::vec(
                ("[a-z][a-z0-9._-]{0,10}", prop::option::of("[ -!#-~]{0,12}"), any::<bool>()),
                0..8)
        ) {
            // Values are quoted when they hold a space or need it; '"' never appears in them.
            let mut line = String::new();
            let mut want = Vec::new();
            for (key, value, quote) in &params {
                if key == "--" { continue; }
                let rendered = match value {
                    Some(v) if *quote || v.contains(' ') || v.is_empty() => format!("{key}=\"{v}\""),
                    Some(v) => format!("{key}={v}"),
                    None => key.clone(),
                };
                line.push_str(&rendered);
                line.push(' ');
                want.push(Param { key: key.clone(), value: value.clone() });
            }
            prop_assert_eq!(parse(line.as_bytes()), want);
        }

        #[test]
        fn any_mac_in_a_config_url_is_found(bytes in prop::array::uniform6(any::<u8>()), upper in any::<bool>()) {
            let hexhyp: Vec<String> = bytes.iter().map(|b| if upper { format!("{b:02X}") } else { format!("{b:02x}") }).collect();
            let line = format!("console=ttyS0 flatcar.config.url=http://m:8080/ignition?uuid=u&mac={} flatcar.first_boot=yes", hexhyp.join("-"));
            let id = boot_identity(&parse(line.as_bytes()));
            let want: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(id.mac, Some(want.join(":")));
        }
    }
}
