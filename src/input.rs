//! Files the user hands caas (`--metadata-file`, `--vars-file`, `--discovery`, `-f lab.yaml`):
//! one reader and one error format for all of them.
//!
//! Every error is one line that names what the user typed, so it can be found and fixed:
//! `--vars-file missing.yaml: no such file` when the file is not there, and
//! `bad.yaml line 2: <message>` when its content does not parse (no source snippet, no
//! nested `error:` prefix). All of them are [`InvalidInput`](crate::error::InvalidInput)s.

use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::invalid;
use crate::matchbox::decode::type_name;

/// The largest file a user hands caas, unless its reader says otherwise: a 100,000-machine
/// cluster spec is about 10 MB. A file past it (`--metadata-file /dev/zero`) is an error, not
/// gigabytes of memory.
pub const INPUT_LIMIT: u64 = 64 << 20;

/// A file the user named, and the flag it was given with (`--vars-file`, `-f`): errors about
/// a missing file name both, as the user typed them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserFile {
    pub path: PathBuf,
    pub flag: &'static str,
    /// The most bytes read; a larger file is an input error.
    pub limit: u64,
}

impl UserFile {
    pub fn new(flag: &'static str, path: impl Into<PathBuf>) -> UserFile {
        UserFile {
            path: path.into(),
            flag,
            limit: INPUT_LIMIT,
        }
    }

    /// The same file, read up to `limit` bytes instead of [`INPUT_LIMIT`].
    pub fn with_limit(self, limit: u64) -> UserFile {
        UserFile { limit, ..self }
    }

    /// The file's bytes.
    pub fn read(&self) -> Result<Vec<u8>> {
        read_capped(&self.path, self.limit).map_err(|err| self.read_error(err))
    }

    /// The file's text; a file that is not UTF-8 is an input error.
    pub fn read_text(&self) -> Result<String> {
        String::from_utf8(self.read()?)
            .map_err(|_| invalid(format!("{} is not UTF-8 text", self.path.display())))
    }

    /// A JSON or YAML object (JSON for `.json` files, YAML, a superset of JSON, otherwise);
    /// `what` says what it holds (`metadata`, `variables`) when it is not an object.
    pub fn read_object(&self, what: &str) -> Result<Map<String, Value>> {
        let text = self.read_text()?;
        let origin = self.path.display().to_string();
        let value: Value = if is_json(&self.path) {
            from_json(&text, &origin)?
        } else {
            from_yaml(&text, &origin)?
        };
        match value {
            Value::Object(map) => Ok(map),
            other => Err(invalid(format!(
                "{origin}: {what} must be an object, not {}",
                type_name(&other)
            ))),
        }
    }

    /// The file parsed as JSON into `T` while it is read, so that its text is never held
    /// whole beside what it becomes (an 80 MB machine list); `Ok(None)` when it is not JSON of
    /// that shape, for the caller to read it whole and say precisely what is wrong. Reading
    /// fails as [`UserFile::read`] does, past the limit too.
    pub fn stream_json<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        let file = fs::File::open(&self.path).map_err(|err| self.read_error(err))?;
        let capped = Capped {
            inner: file,
            left: self.limit,
        };
        match serde_json::from_reader(io::BufReader::with_capacity(1 << 16, capped)) {
            Ok(value) => Ok(Some(value)),
            Err(err) if err.is_io() => Err(self.read_error(io::Error::from(err))),
            Err(_) => Ok(None),
        }
    }

    fn read_error(&self, err: io::Error) -> anyhow::Error {
        match err.kind() {
            io::ErrorKind::NotFound => invalid(format!(
                "{} {}: no such file",
                self.flag,
                self.path.display()
            )),
            io::ErrorKind::FileTooLarge => invalid(format!(
                "{} {}: larger than {} bytes, the most caas reads from it",
                self.flag,
                self.path.display(),
                self.limit
            )),
            _ => anyhow::Error::new(err).context(format!("reading {}", self.path.display())),
        }
    }
}

/// Reads at most `limit` bytes of `path`; a longer file (or an endless one, like `/dev/zero`)
/// is an [`io::ErrorKind::FileTooLarge`] error after reading `limit + 1` bytes, never more.
pub fn read_capped(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("{} is larger than {limit} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

/// A reader that gives at most `left` bytes of `inner`, and an
/// [`io::ErrorKind::FileTooLarge`] error when there are more (as [`read_capped`] does).
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: io::Read> io::Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    "larger than the most caas reads",
                )),
            };
        }
        let most = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..most])?;
        self.left -= read as u64;
        Ok(read)
    }
}

fn is_json(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "json")
}

/// The YAML parser's limits for the files users give caas (lab specs, in YAML or JSON).
///
/// serde-saphyr's default stops at 250,000 nodes, about 35,000 machines of a lab spec (a
/// machine is 7 to 9 nodes). These limits follow the data instead: 16 million nodes and 32
/// million events are more than [`INPUT_LIMIT`] of spec can hold, so the input cap alone
/// bounds memory. The defence against alias expansion ("billion laughs") keeps its default caps: it
/// is aliases, not plain nodes, that make a small file expand.
pub fn yaml_budget() -> serde_saphyr::Budget {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = Some(INPUT_LIMIT as usize);
    budget.max_nodes = 16_000_000;
    budget.max_events = 32_000_000;
    budget.max_total_scalar_bytes = INPUT_LIMIT as usize;
    budget
}

/// Reads a YAML document into `T`; errors are `<origin> line <n>: <message>`.
pub fn from_yaml<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T> {
    from_yaml_within(text, origin, yaml_budget())
}

fn from_yaml_within<T: DeserializeOwned>(
    text: &str,
    origin: &str,
    budget: serde_saphyr::Budget,
) -> Result<T> {
    let limits = (budget.max_nodes, budget.max_events);
    let options = serde_saphyr::options! { with_snippet: false, budget: Some(budget) };
    serde_saphyr::from_str_with_options(text, options).map_err(|err| {
        let mut message = err.without_snippet().to_string();
        // The parser names a breached limit by its Rust type (`budget breached: Nodes {…}`);
        // say in the user's terms which limit it is.
        if message.contains("budget breached") {
            let (nodes, events) = limits;
            message = format!(
                "the file holds more YAML than caas reads from one file ({nodes} nodes, \
                 {events} events at most): {message}"
            );
        }
        let line = err.location().map(|l| l.line()).unwrap_or(0);
        located(origin, line, &message)
    })
}

/// Reads a JSON document into `T`; errors are `<origin> line <n>: <message>`.
pub fn from_json<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|err| located(origin, err.line() as u64, &err.to_string()))
}

/// The one error format for content: the parser's message without the position it appends
/// itself (` at line 3 column 5`), folded onto one line, after the origin and the line.
fn located(origin: &str, line: u64, message: &str) -> anyhow::Error {
    let message = match message.rfind(" at line ") {
        Some(at) if message[at..].contains("column") => &message[..at],
        _ => message,
    };
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if line > 0 {
        invalid(format!("{origin} line {line}: {message}"))
    } else {
        invalid(format!("{origin}: {message}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_larger_than_the_parsers_default_budget_reads() {
        // 28,000 machines of 4 keys, in JSON (which the YAML parser reads too): 252,003 nodes,
        // over serde-saphyr's default budget of 250,000.
        let machines: Vec<serde_json::Value> = (0..28_000)
            .map(|i| serde_json::json!({"name": format!("n{i}"), "mac": "52:54:00:00:00:01", "role": "worker", "ip": "10.0.0.1"}))
            .collect();
        let text = serde_json::json!({ "machines": machines }).to_string();
        #[derive(serde::Deserialize)]
        struct Spec {
            machines: Vec<std::collections::BTreeMap<String, String>>,
        }
        let spec: Spec = from_yaml(&text, "big.json").unwrap();
        assert_eq!(spec.machines.len(), 28_000);
    }

    #[test]
    fn a_breached_node_budget_says_which_limit_in_one_line() {
        let mut budget = yaml_budget();
        budget.max_nodes = 10;
        let text = format!("[{}]", vec!["1"; 20].join(", "));
        let err = message(from_yaml_within::<Vec<u32>>(&text, "spec.yaml", budget));
        assert!(
            err.starts_with("spec.yaml line 1: the file holds more YAML than caas reads from one file (10 nodes,"),
            "{err}"
        );
        assert!(err.contains("budget breached"), "{err}");
    }

    fn message<T: std::fmt::Debug>(result: Result<T>) -> String {
        crate::error::one_line(&result.unwrap_err())
    }

    #[test]
    fn a_missing_file_names_the_flag_and_the_path() {
        let file = UserFile::new("--vars-file", "/nonexistent/missing.yaml");
        assert_eq!(
            message(file.read_object("variables")),
            "--vars-file /nonexistent/missing.yaml: no such file"
        );
    }

    #[test]
    fn an_endless_file_is_cut_after_its_limit() {
        let file = UserFile::new("--discovery", "/dev/zero").with_limit(1000);
        assert_eq!(
            message(file.read()),
            "--discovery /dev/zero: larger than 1000 bytes, the most caas reads from it"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exact");
        fs::write(&path, [b'x'; 1000]).unwrap();
        assert_eq!(read_capped(&path, 1000).unwrap().len(), 1000);
        let error = read_capped(&path, 999).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::FileTooLarge);
    }

    #[test]
    fn streamed_json_reads_as_read_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.json");
        fs::write(&path, b"[1, 2, 3]\n").unwrap();
        let file = UserFile::new("--discovery", &path);
        assert_eq!(file.stream_json::<Vec<u32>>().unwrap(), Some(vec![1, 2, 3]));
        // Not of that shape, or not JSON: the caller reads it whole to say why.
        assert_eq!(file.stream_json::<Vec<String>>().unwrap(), None);
        fs::write(&path, b"[1, 2,").unwrap();
        assert_eq!(file.stream_json::<Vec<u32>>().unwrap(), None);
        // Past the limit, even in trailing whitespace, it fails as `read` does.
        fs::write(&path, b"[1, 2, 3]      ").unwrap();
        let capped = UserFile::new("--discovery", &path).with_limit(12);
        let expected = format!(
            "--discovery {}: larger than 12 bytes, the most caas reads from it",
            path.display()
        );
        assert_eq!(message(capped.stream_json::<Vec<u32>>()), expected);
        assert_eq!(message(capped.read()), expected);
        let endless = UserFile::new("--discovery", "/dev/zero").with_limit(1000);
        assert!(endless.stream_json::<Vec<u32>>().unwrap().is_none());
        let missing = UserFile::new("--discovery", dir.path().join("missing.json"));
        assert!(message(missing.stream_json::<Vec<u32>>()).ends_with("missing.json: no such file"));
    }

    #[test]
    fn yaml_and_json_errors_have_one_format() {
        let yaml = message(from_yaml::<Value>("a: [1 2\nb: c\n", "bad.yaml"));
        assert!(yaml.starts_with("bad.yaml line "), "{yaml}");
        assert!(!yaml.contains("error:") && !yaml.contains("-->"), "{yaml}");
        let json = message(from_json::<Value>("{\n  \"a\": ,\n}", "bad.json"));
        assert_eq!(json, "bad.json line 2: expected value");
    }

    #[test]
    fn an_object_is_required_and_named_as_the_caller_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.yaml");
        fs::write(&path, "- a\n- b\n").unwrap();
        let err = message(UserFile::new("--vars-file", &path).read_object("variables"));
        assert!(
            err.ends_with("list.yaml: variables must be an object, not an array"),
            "{err}"
        );
        fs::write(&path, "a: 1\n").unwrap();
        let map = UserFile::new("--vars-file", &path)
            .read_object("variables")
            .unwrap();
        assert_eq!(map["a"], 1);
    }
}
