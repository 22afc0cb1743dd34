//! TLS for the discovery API: the server side of `caas api --tls-cert --tls-key` and the trust
//! `caas discover --ca-cert` gives its client. Both use rustls with the ring provider (the one
//! ureq's rustls already brings).
//!
//! Every problem with the files is one line naming the file, at startup; a certificate the
//! client refuses (unknown issuer, wrong host, expired) is told apart from a network error, as
//! retrying cannot fix it.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::invalid;
use crate::input::UserFile;

/// The certificate chain in a PEM file: at least one `CERTIFICATE` block, nothing unreadable.
fn read_certificates(file: &UserFile) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = file.read()?;
    let bad = |why: String| invalid(format!("{} {}: {why}", file.flag, file.path.display()));
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| bad(format!("not a PEM certificate file ({err})")))?;
    if certs.is_empty() {
        return Err(bad("no PEM CERTIFICATE block in it".into()));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
fn read_private_key(file: &UserFile) -> Result<PrivateKeyDer<'static>> {
    let bytes = file.read()?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|err| {
        let why = match err {
            rustls::pki_types::pem::Error::NoItemsFound => "no PEM PRIVATE KEY block in it".into(),
            other => format!("not a PEM private key file ({other})"),
        };
        invalid(format!("{} {}: {why}", file.flag, file.path.display()))
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration of `caas api --tls-cert CERT --tls-key KEY`. A key that is not the
/// certificate's is refused here, not at the first handshake.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let cert_file = UserFile::new("--tls-cert", cert);
    let key_file = UserFile::new("--tls-key", key);
    let certs = read_certificates(&cert_file)?;
    let private_key = read_private_key(&key_file)?;
    let signing_key = provider()
        .key_provider
        .load_private_key(private_key.clone_key())
        .map_err(|err| {
            invalid(format!(
                "--tls-key {}: unusable private key ({err})",
                key.display()
            ))
        })?;
    let certified = rustls::sign::CertifiedKey::new(certs.clone(), signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(invalid(format!(
                "--tls-key {} does not match --tls-cert {}: it is not the key of the certificate",
                key.display(),
                cert.display()
            )));
        }
        Err(err) => {
            return Err(invalid(format!(
                "--tls-cert {}: not a valid X.509 certificate ({err})",
                cert.display()
            )));
        }
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| anyhow::anyhow!("setting up TLS: {err}"))?
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .map_err(|err| {
            anyhow::anyhow!("setting up TLS with --tls-cert {}: {err}", cert.display())
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The trust of `caas discover --ca-cert FILE`: the certificates in FILE, and only those.
pub fn root_certs(ca: &Path) -> Result<ureq::tls::RootCerts> {
    let certs = read_certificates(&UserFile::new("--ca-cert", ca))?;
    let mut store = rustls::RootCertStore::empty();
    for (i, der) in certs.iter().enumerate() {
        store.add(der.clone()).map_err(|err| {
            invalid(format!(
                "--ca-cert {}: certificate {} is not a usable CA certificate ({err})",
                ca.display(),
                i + 1
            ))
        })?;
    }
    let certs: Vec<_> = certs
        .iter()
        .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

/// Why the server's certificate was refused, when `err` is that: a problem no retry fixes.
pub fn certificate_refusal(err: &ureq::Error) -> Option<String> {
    let ureq::Error::Io(io_err) = err else {
        return None;
    };
    let rustls_err = io_err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())?;
    let rustls::Error::InvalidCertificate(cert_err) = rustls_err else {
        return Some(format!("the TLS handshake failed: {rustls_err}"));
    };
    use rustls::CertificateError as E;
    let why = match cert_err {
        E::UnknownIssuer => {
            "it is not signed by a trusted CA (give the CA that signed it with --ca-cert)".into()
        }
        E::ExpiredContext { time, not_after } => format!(
            "it has expired: it was valid until {}, and this machine's clock says {}",
            rfc3339(*not_after),
            rfc3339(*time)
        ),
        E::Expired => "it has expired".into(),
        E::NotValidYetContext { time, not_before } => format!(
            "it is not valid yet: it is valid from {}, and this machine's clock says {} \
             (a clock that is wrong also shows as this)",
            rfc3339(*not_before),
            rfc3339(*time)
        ),
        E::NotValidYet => "it is not valid yet (or this machine's clock is wrong)".into(),
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            format!("it is not issued for this host ({cert_err})")
        }
        other => other.to_string(),
    };
    Some(format!("the API's TLS certificate was refused: {why}"))
}

fn rfc3339(time: rustls::pki_types::UnixTime) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(time.as_secs());
    humantime::format_rfc3339_seconds(at).to_string()
}
