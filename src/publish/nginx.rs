//! The nginx configuration that serves a published tree as matchbox would: pure rendering.
//!
//! It does not depend on the data: every change is published by swapping the tree, never by
//! reloading nginx. Per request it
//! 1. takes the first `mac`, `os` and `uuid` query values (`url.Values.Get`; keys compared
//!    exactly, as matchbox's selectors compare them);
//! 2. normalises the MAC as Go's `net.ParseMAC` does (`:`/`-` pairs or `.` quads, 6, 8 or 20
//!    bytes, lower case with colons; a value that does not parse counts as no label). nginx
//!    cannot lower-case, so each byte goes through a map whose (case-insensitive) keys are the
//!    256 lower-case pairs;
//! 3. turns each label into a path component (`none`, `v-<value>`, or `other` for a value no
//!    tree entry can hold);
//! 4. tries the tree's entries in matchbox's precedence (`try_files`), down to the default
//!    group. An entry that answers 404 holds a `<endpoint>.404/` directory: nginx's redirect
//!    for a directory is turned into matchbox's 404.

use std::fmt::Write as _;
use std::path::Path;

use super::resolve::KEYSETS;

/// What the configuration serves and where.
#[derive(Clone, Debug)]
pub struct NginxOptions<'a> {
    /// `listen` argument, e.g. `0.0.0.0:8080`.
    pub listen: &'a str,
    /// The published tree's stable path (`<out>/current`).
    pub root: &'a Path,
    /// Where `/metadata` is passed to (a matchbox), if anywhere.
    pub metadata_upstream: Option<&'a str>,
}

/// matchbox's body for every 404 (Go's `http.NotFound`).
pub const NOT_FOUND_BODY: &str = "404 page not found\\n";

/// The endpoints a tree answers from its entries, with their content types.
const ENDPOINTS: [(&str, &str); 2] = [
    ("ipxe", "text/plain; charset=utf-8"),
    ("ignition", "application/json"),
];

/// The configuration, to be included in nginx's `http {}` block.
pub fn render(options: &NginxOptions) -> String {
    let mut out = String::new();
    out.push_str(
        "# Written by `caas publish static`: serves the published tree as matchbox v0.8 would.\n\
         # Include it inside nginx's http {} block. It does not change when the data does.\n\n",
    );
    out.push_str(&label_maps());
    out.push_str(&mac_maps());
    out.push_str(&server(options));
    out
}

/// The first value of `key` in the raw query: `(?:^|&)key(=value)?(&|$)`.
fn first_value_map(key: &str) -> String {
    format!(
        "map $args $caas_{key}_arg {{\n    \"~(?:^|&){key}(?:=(?<caas_{key}_v>[^&]*))?(?:&|$)\" $caas_{key}_v;\n    default \"\";\n}}\n"
    )
}

/// `os` and `uuid`: compared as sent (case-sensitive), as plain words only.
fn label_maps() -> String {
    let mut out = String::new();
    for key in ["os", "uuid"] {
        out.push_str(&first_value_map(key));
        let _ = writeln!(
            out,
            "map $caas_{key}_arg $caas_{key} {{\n    \"~^$\" none;\n    \"~^(?<caas_{key}_w>[A-Za-z0-9][A-Za-z0-9._:-]{{0,199}})$\" v-$caas_{key}_w;\n    default other;\n}}"
        );
    }
    out.push_str(&first_value_map("mac"));
    out
}

/// Go's `net.ParseMAC` forms for `bytes` bytes, as regexes capturing each byte.
fn mac_regexes(bytes: usize) -> [String; 2] {
    const HEX: &str = "[0-9A-Fa-f]{2}";
    let mut pairs = format!("(?<caas_h0>{HEX})(?<caas_sep>[-:])");
    for i in 1..bytes {
        if i > 1 {
            pairs.push_str("\\k<caas_sep>");
        }
        let _ = write!(pairs, "(?<caas_h{i}>{HEX})");
    }
    let mut quads = String::new();
    for i in (0..bytes).step_by(2) {
        if i > 0 {
            quads.push_str("\\.");
        }
        let _ = write!(quads, "(?<caas_h{i}>{HEX})(?<caas_h{}>{HEX})", i + 1);
    }
    [format!("^{pairs}$"), format!("^{quads}$")]
}

/// The MAC as hex digits, each byte lower-cased, and the `mac` path component.
fn mac_maps() -> String {
    let mut out = String::from("map $caas_mac_arg $caas_mac_hex {\n");
    for bytes in [6, 8, 20] {
        let value: String = (0..bytes).map(|i| format!("$caas_h{i}")).collect();
        for regex in mac_regexes(bytes) {
            let _ = writeln!(out, "    \"~{regex}\" \"{value}\";");
        }
    }
    out.push_str("    default \"\";\n}\n");
    for i in 0..20 {
        let _ = writeln!(
            out,
            "map $caas_mac_hex $caas_mac_p{i} {{\n    \"~^.{{{}}}(?<caas_p{i}>..)\" $caas_p{i};\n    default \"\";\n}}",
            2 * i
        );
        let _ = writeln!(out, "map $caas_mac_p{i} $caas_mac_b{i} {{");
        for byte in 0..=255u8 {
            let _ = writeln!(out, "    {byte:02x} {byte:02x};");
        }
        out.push_str("    default \"\";\n}\n");
    }
    out.push_str("map $caas_mac_hex $caas_mac {\n");
    for bytes in [6, 8, 20] {
        let joined: Vec<String> = (0..bytes).map(|i| format!("$caas_mac_b{i}")).collect();
        let _ = writeln!(
            out,
            "    \"~^.{{{}}}$\" \"v-{}\";",
            2 * bytes,
            joined.join(":")
        );
    }
    out.push_str("    default none;\n}\n\n");
    out
}

/// The `try_files` candidates of one endpoint, in matchbox's precedence.
fn candidates(endpoint: &str) -> String {
    let mut out = Vec::new();
    for keys in KEYSETS {
        let dir = if keys.is_empty() {
            "/t/default".to_owned()
        } else {
            let values: Vec<String> = keys.iter().map(|k| format!("$caas_{k}")).collect();
            format!("/t/{}/{}", keys.join("+"), values.join("/"))
        };
        out.push(format!("{dir}/{endpoint} {dir}/{endpoint}.404/"));
    }
    out.push("/.caas/404".to_owned());
    out.join("\n        ")
}

fn server(options: &NginxOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "server {{\n    listen {};\n    root {};\n",
        options.listen,
        options.root.display()
    );
    let _ = writeln!(
        out,
        "    location = / {{\n        default_type \"text/plain; charset=utf-8\";\n        return 200 \"matchbox\\n\";\n    }}\n    location / {{\n        return 404;\n    }}\n    error_page 404 /.caas/404;\n    location = /.caas/404 {{\n        internal;\n        default_type \"text/plain; charset=utf-8\";\n        return 404 \"{NOT_FOUND_BODY}\";\n    }}"
    );
    for (endpoint, content_type) in ENDPOINTS {
        let _ = writeln!(
            out,
            "    location = /{endpoint} {{\n        default_type \"{content_type}\";\n        # An entry's `{endpoint}.404/` directory: matchbox answers 404.\n        error_page 301 =404 /.caas/404;\n        try_files {};\n    }}",
            candidates(endpoint)
        );
    }
    let _ = writeln!(
        out,
        "    location ~ ^/boot\\.ipxe(\\.0)?$ {{\n        default_type \"text/plain; charset=utf-8\";\n        try_files /boot.ipxe =404;\n    }}\n    location /assets/ {{\n    }}"
    );
    match options.metadata_upstream {
        Some(upstream) => {
            let _ = writeln!(
                out,
                "    # /metadata echoes each request's query: matchbox answers it.\n    location = /metadata {{\n        proxy_pass {upstream};\n    }}"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "    # /metadata echoes each request's query, so no file can hold it: publish with\n    # --metadata-upstream to pass it to matchbox.\n    location = /metadata {{\n        return 404;\n    }}"
            );
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_keysets_and_end_at_the_default() {
        let text = candidates("ipxe");
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            "/t/mac+os+uuid/$caas_mac/$caas_os/$caas_uuid/ipxe /t/mac+os+uuid/$caas_mac/$caas_os/$caas_uuid/ipxe.404/"
        );
        assert!(text.ends_with("/t/default/ipxe /t/default/ipxe.404/\n        /.caas/404"));
    }

    #[test]
    fn mac_regexes_cover_go_forms() {
        let [pairs, quads] = mac_regexes(6);
        assert!(pairs.starts_with("^(?<caas_h0>[0-9A-Fa-f]{2})(?<caas_sep>[-:])(?<caas_h1>"));
        assert_eq!(pairs.matches("\\k<caas_sep>").count(), 4);
        assert_eq!(quads.matches("\\.").count(), 2);
    }

    #[test]
    fn the_configuration_does_not_depend_on_the_data() {
        let options = NginxOptions {
            listen: "127.0.0.1:8080",
            root: Path::new("/srv/caas/current"),
            metadata_upstream: None,
        };
        let text = render(&options);
        assert!(text.contains("root /srv/caas/current;"));
        assert!(text.contains("location = /metadata {\n        return 404;"));
    }
}
