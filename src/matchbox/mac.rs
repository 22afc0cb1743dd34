//! Hardware addresses as matchbox reads them.
//!
//! matchbox runs every `mac` selector and every `mac` query label through Go's `net.ParseMAC`
//! and compares the lower-case, colon-separated result. caas must accept exactly what that
//! function accepts, or `lint` and `explain` would disagree with the server: the `:`, `-` and
//! `.` forms, and 6-, 8- and 20-byte addresses (EUI-48, EUI-64, IPoIB).

use std::fmt;

/// A parsed hardware address; displays as lower-case hex pairs joined by colons.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(Vec<u8>);

/// Why a string is not a hardware address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid MAC address {0:?}: expected 6, 8 or 20 bytes as hex pairs separated by ':' or '-', or groups of four hex digits separated by '.'"
)]
pub struct MacError(pub String);

impl Mac {
    /// Parses `s` with the rules of Go's `net.ParseMAC`.
    pub fn parse(s: &str) -> Result<Mac, MacError> {
        parse_go_mac(s.as_bytes()).ok_or_else(|| MacError(s.to_owned()))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The `hexhyp` form iPXE sends (`52-54-00-…`).
    pub fn to_hexhyp(&self) -> String {
        self.join('-')
    }

    fn join(&self, sep: char) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(self.0.len() * 3);
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(sep);
            }
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        out
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.join(':'))
    }
}

/// Normalises a MAC the way matchbox does: parse, then lower-case with colons.
pub fn normalize(s: &str) -> Result<String, MacError> {
    Mac::parse(s).map(|mac| mac.to_string())
}

fn valid_len(bytes: usize) -> bool {
    matches!(bytes, 6 | 8 | 20)
}

fn hex_value(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn parse_go_mac(s: &[u8]) -> Option<Mac> {
    if s.len() < 14 {
        return None;
    }
    let mut out = Vec::new();
    if s[2] == b':' || s[2] == b'-' {
        // Pairs: "xx:xx:…" (3 characters per byte, minus the missing trailing separator).
        if !(s.len() + 1).is_multiple_of(3) {
            return None;
        }
        let n = (s.len() + 1) / 3;
        if !valid_len(n) {
            return None;
        }
        let sep = s[2];
        for i in 0..n {
            let x = i * 3;
            if i + 1 < n && s[x + 2] != sep {
                return None;
            }
            out.push((hex_value(s[x])? << 4) | hex_value(s[x + 1])?);
        }
    } else if s[4] == b'.' {
        // Dotted quads of hex digits: "xxxx.xxxx.xxxx" (5 characters per 2 bytes).
        if !(s.len() + 1).is_multiple_of(5) {
            return None;
        }
        let n = 2 * (s.len() + 1) / 5;
        if !valid_len(n) {
            return None;
        }
        for i in (0..n).step_by(2) {
            let x = i / 2 * 5;
            if i + 2 < n && s[x + 4] != b'.' {
                return None;
            }
            out.push((hex_value(s[x])? << 4) | hex_value(s[x + 1])?);
            out.push((hex_value(s[x + 2])? << 4) | hex_value(s[x + 3])?);
        }
    } else {
        return None;
    }
    Some(Mac(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_forms_go_accepts() {
        let cases = [
            ("52:54:00:a1:9c:ae", "52:54:00:a1:9c:ae"),
            ("52-DA-00-89-D8-10", "52:da:00:89:d8:10"),
            ("5254.00a1.9cae", "52:54:00:a1:9c:ae"),
            ("02:00:5e:10:00:00:00:01", "02:00:5e:10:00:00:00:01"),
            ("0200.5e10.0000.0001", "02:00:5e:10:00:00:00:01"),
            (
                "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01",
                "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "",
            "52:54:00:a1:9c",       // 5 bytes: the 2016 truncation bug
            "52:54:00:a1:9c:a",     // odd digit count
            "52:54:00-a1:9c:ae",    // mixed separators
            "52:54:00:a1:9c:ag",    // not hex
            "5254.00a1.9cae.",      // trailing dot
            "52540:0a1:9cae",       // separator in the wrong place
            "525400a19cae",         // no separators
            "52:54:00:a1:9c:ae:00", // 7 bytes
            "01.02.03.04.05.06",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn hexhyp_is_the_ipxe_form() {
        let mac = Mac::parse("52:54:00:A1:9C:AE").unwrap();
        assert_eq!(mac.to_hexhyp(), "52-54-00-a1-9c-ae");
        assert_eq!(normalize(&mac.to_hexhyp()).unwrap(), mac.to_string());
    }

    proptest! {
        #[test]
        fn every_normalised_mac_parses_back_to_itself(bytes in prop::sample::select(vec![6usize, 8, 20])
            .prop_flat_map(|n| prop::collection::vec(any::<u8>(), n))) {
            let mac = Mac(bytes);
            let text = mac.to_string();
            prop_assert_eq!(normalize(&text).unwrap(), text.clone());
            prop_assert_eq!(normalize(&mac.to_hexhyp()).unwrap(), text.clone());
            prop_assert_eq!(normalize(&text.to_uppercase()).unwrap(), text);
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,70}") {
            let _ = normalize(&s);
        }
    }
}
