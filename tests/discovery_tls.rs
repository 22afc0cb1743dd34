//! `caas api --tls-cert --tls-key` and `caas discover --ca-cert` end to end on 127.0.0.1, with
//! certificates made here (a CA, the API's certificate it signs, and bad ones): the round trip
//! over HTTPS, a CA that did not sign the certificate, an expired certificate and one for
//! another host (each refused at once with the reason, not retried), the header timeout over
//! TLS, and bad certificate or key files refused at startup with nothing written.

mod common;

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    date_time_ymd,
};

use common::api::Api;
use common::{assert_one_line_error, caas, reference_dir};

/// A CA: its certificate (PEM) and what signs with it.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names`, and its key, both PEM; `expired` puts its end in 2020.
    fn server(&self, names: &[&str], expired: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "caas api");
        if expired {
            params.not_before = date_time_ymd(2019, 1, 1);
            params.not_after = date_time_ymd(2020, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes `text` to `dir/name`, returning the path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

/// `caas api` over HTTPS with a certificate for `names` signed by `ca`.
fn https_api(dir: &Path, ca: &Ca, names: &[&str], expired: bool, extra: &[&str]) -> Api {
    let (cert, key) = ca.server(names, expired);
    let cert = write(dir, "api.pem", &cert);
    let key = write(dir, "api-key.pem", &key);
    let mut args = vec![
        "--tls-cert".to_owned(),
        cert.display().to_string(),
        "--tls-key".to_owned(),
        key.display().to_string(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let api = Api::start(&dir.join("caas.db"), &args);
    assert!(api.url.starts_with("https://127.0.0.1:"), "{}", api.url);
    api
}

/// `caas discover` of a captured machine to `api`, trusting `ca_file`.
fn discover(api: &str, ca_file: Option<&Path>) -> std::process::Output {
    let machine = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/discovery/machine-0");
    let cmdline = reference_dir().join("seed-fixtures/discoveryC/tests/proc/cmdline0");
    let mut command = caas();
    command
        .args(["discover", "--api", api, "--proc-cmdline"])
        .arg(cmdline)
        .arg("--sysfs")
        .arg(machine.join("sys"))
        .arg("--addresses")
        .arg(machine.join("addresses.json"))
        // Were a refusal retried, these would show as "retrying" lines.
        .args(["--retries", "3", "--retry-wait", "10ms"]);
    if let Some(ca) = ca_file {
        command.arg("--ca-cert").arg(ca);
    }
    command.output().unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A TLS client trusting only `ca_pem`, for requests the caas client does not make.
fn tls_stream(port: u16, ca_pem: &str) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = "127.0.0.1".try_into().unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    rustls::StreamOwned::new(connection, tcp)
}

#[test]
fn discover_reports_over_https_to_an_api_whose_ca_it_trusts() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("caas test CA");
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let api = https_api(dir.path(), &ca, &["127.0.0.1", "localhost"], false, &[]);

    let out = discover(&api.url, Some(&ca_file));
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with("reported ") && said.contains(&format!("{}/discovery", api.url)),
        "{said}"
    );

    // The report is stored: listed over HTTPS by a client trusting the same CA (with the
    // operator token the inventory routes require).
    let mut stream = tls_stream(api.port(), &ca.pem);
    stream
        .write_all(
            format!(
                "GET /discovery/machines HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                common::api::TOKEN
            )
            .as_bytes(),
        )
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"mac\""), "{answer}");

    // An operator's client trusts the same CA with --ca-cert, and only with it.
    let list = |ca: Option<&Path>| {
        let mut command = caas();
        command
            .args(["machines", "list", "--api", &api.url])
            .args(api.token_args());
        if let Some(ca) = ca {
            command.arg("--ca-cert").arg(ca);
        }
        command.output().unwrap()
    };
    let out = list(Some(&ca_file));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("52:54:00"),
        "{out:?}"
    );
    let out = list(None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).to_lowercase().contains("certificate"),
        "{}",
        stderr(&out)
    );

    // The boot script this server hands out chains back over https.
    let mut stream = tls_stream(api.port(), &ca.pem);
    stream
        .write_all(b"GET /boot.ipxe HTTP/1.1\r\nHost: 127.0.0.1:5000\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.contains("chain https://127.0.0.1:5000/ipxe?"),
        "{answer}"
    );

    // Plain HTTP to the HTTPS port gets no answer that could be mistaken for one; the CA
    // given with it is said to be unused.
    let http = api.url.replacen("https://", "http://", 1);
    let out = discover(&http, Some(&ca_file));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--ca-cert has nothing to check"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_certificate_from_another_ca_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("caas test CA");
    let api = https_api(dir.path(), &ca, &["127.0.0.1"], false, &[]);
    let other = write(dir.path(), "other-ca.pem", &Ca::new("someone else").pem);

    for ca_file in [Some(other.as_path()), None] {
        let out = discover(&api.url, ca_file);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("the API's TLS certificate was refused: it is not signed by a trusted CA"),
            "{err}"
        );
        assert!(!err.contains("retrying"), "a refusal was retried: {err}");
    }
}

#[test]
fn an_expired_certificate_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("caas test CA");
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let api = https_api(dir.path(), &ca, &["127.0.0.1"], true, &[]);

    let out = discover(&api.url, Some(&ca_file));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("the API's TLS certificate was refused: it has expired"),
        "{err}"
    );
    assert!(
        err.contains("it was valid until 2020-01-01T00:00:00Z"),
        "the message says when it expired: {err}"
    );
    assert!(!err.contains("retrying"), "a refusal was retried: {err}");
}

#[test]
fn a_certificate_for_another_host_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("caas test CA");
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let api = https_api(dir.path(), &ca, &["api.lab"], false, &[]);

    let out = discover(&api.url, Some(&ca_file));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("the API's TLS certificate was refused: it is not issued for this host"),
        "{err}"
    );
    assert!(
        err.contains("api.lab"),
        "the message names the certificate's host: {err}"
    );
}

#[test]
fn stalled_handshakes_and_headers_are_cut_off_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("caas test CA");
    let api = https_api(
        dir.path(),
        &ca,
        &["127.0.0.1"],
        false,
        &["--header-timeout", "1s"],
    );

    // A TCP connection that never starts the handshake is closed.
    let mut tcp = TcpStream::connect(("127.0.0.1", api.port())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut rest = Vec::new();
    let read = tcp.read_to_end(&mut rest);
    assert!(
        read.is_ok() || read.unwrap_err().kind() == std::io::ErrorKind::ConnectionReset,
        "the server kept a connection without a handshake open"
    );

    // Headers that never finish after the handshake: the connection is closed.
    let mut stream = tls_stream(api.port(), &ca.pem);
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(err) => assert!(
            !matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the server kept a TLS connection with unfinished headers open: {err}"
        ),
    }

    // Too much header over TLS: 431, as over plain HTTP.
    let mut stream = tls_stream(api.port(), &ca.pem);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(32 * 1024)
    );
    let _ = stream.write_all(big.as_bytes());
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.200}");
}

/// `caas api` with these TLS files: it must refuse to start, exit 2, say `want` in one line
/// and create no database.
fn refused_at_startup(dir: &Path, cert: &Path, key: &Path, want: &str) {
    let db = dir.join("refused.db");
    let out = caas()
        .args(["api", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_one_line_error(&out.stderr, want);
    assert!(!db.exists(), "a refused start created {}", db.display());
}

#[test]
fn bad_certificate_and_key_files_are_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("caas test CA");
    let (cert, key) = ca.server(&["127.0.0.1"], false);
    let (_, other_key) = ca.server(&["127.0.0.1"], false);
    let cert = write(d, "api.pem", &cert);
    let key = write(d, "api-key.pem", &key);
    let other_key = write(d, "other-key.pem", &other_key);
    let garbage = write(d, "garbage.pem", "not PEM at all\n");
    let broken = write(
        d,
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    let missing = d.join("missing.pem");

    refused_at_startup(
        d,
        &cert,
        &other_key,
        &format!(
            "--tls-key {} does not match --tls-cert {}: it is not the key of the certificate",
            other_key.display(),
            cert.display()
        ),
    );
    refused_at_startup(
        d,
        &garbage,
        &key,
        &format!(
            "--tls-cert {}: no PEM CERTIFICATE block in it",
            garbage.display()
        ),
    );
    refused_at_startup(
        d,
        &cert,
        &garbage,
        &format!(
            "--tls-key {}: no PEM PRIVATE KEY block in it",
            garbage.display()
        ),
    );
    refused_at_startup(
        d,
        &broken,
        &key,
        &format!(
            "--tls-cert {}: not a valid X.509 certificate",
            broken.display()
        ),
    );
    refused_at_startup(
        d,
        &missing,
        &key,
        &format!("--tls-cert {}: no such file", missing.display()),
    );
    // The key where the certificate belongs: no certificate in it.
    refused_at_startup(
        d,
        &key,
        &cert,
        &format!(
            "--tls-cert {}: no PEM CERTIFICATE block in it",
            key.display()
        ),
    );

    // One flag without the other is a usage error.
    let out = caas()
        .args(["api", "--listen", "127.0.0.1:0", "--db"])
        .arg(d.join("x.db"))
        .arg("--tls-cert")
        .arg(&cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--tls-key"), "{}", stderr(&out));

    // discover: a CA file that is not one is an input error before anything is sent.
    let out = discover("https://127.0.0.1:9", Some(&garbage));
    assert_eq!(out.status.code(), Some(2));
    assert_one_line_error(
        &out.stderr,
        &format!(
            "--ca-cert {}: no PEM CERTIFICATE block in it",
            garbage.display()
        ),
    );
}
