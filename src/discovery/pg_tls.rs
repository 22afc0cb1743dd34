//! TLS to PostgreSQL, as the URL's `sslmode` asks (rustls).
//!
//! - `disable`, `prefer` or no `sslmode`: no TLS. (libpq's `prefer` tries TLS without checking
//!   the server: an encrypted channel to whoever answers. caas does not pretend; ask for
//!   `require` or `verify-full`.)
//! - `require`, `verify-ca`: TLS, the server's certificate chain checked against the CA in
//!   `sslrootcert=FILE` (PEM), or the public web roots when none is given; the name is not.
//!   (libpq's `require` checks nothing unless a root certificate is present: caas always checks
//!   the chain.)
//! - `verify-full`: the chain and the host name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// What the URL asks of the channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsMode {
    Off,
    /// TLS with the certificate chain checked.
    VerifyChain,
    /// TLS with the chain and the host name checked.
    VerifyFull,
}

/// The URL's TLS parameters, taken out of it (the PostgreSQL client knows neither
/// `verify-*` nor `sslrootcert`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsParams {
    pub mode: TlsMode,
    pub root_cert: Option<PathBuf>,
}

/// Splits `sslmode` and `sslrootcert` off a PostgreSQL URL: (the URL without them, the TLS
/// parameters).
pub fn split_url(url: &str) -> anyhow::Result<(String, TlsParams)> {
    let mut parsed = url::Url::parse(url).context("not a valid URL")?;
    let mut mode = TlsMode::Off;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for (key, value) in parsed.query_pairs() {
        match &*key {
            "sslmode" => {
                mode = match &*value {
                    "disable" | "allow" | "prefer" => TlsMode::Off,
                    "require" | "verify-ca" => TlsMode::VerifyChain,
                    "verify-full" => TlsMode::VerifyFull,
                    other => bail!(
                        "sslmode={other}: expected disable, prefer, require, verify-ca or verify-full"
                    ),
                }
            }
            "sslrootcert" => root_cert = Some(PathBuf::from(&*value)),
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((parsed.to_string(), TlsParams { mode, root_cert }))
}

/// The rustls client configuration for `params` (also built when TLS is off: the connector
/// type is the same either way, and it is never used then).
pub fn client_config(params: &TlsParams) -> anyhow::Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    match &params.root_cert {
        Some(path) => add_pem_certificates(&mut roots, path)?,
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?;
    let roots = Arc::new(roots);
    let config = if params.mode == TlsMode::VerifyFull {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let chain = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .context("setting up TLS")?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(chain)))
            .with_no_client_auth()
    };
    Ok(config)
}

fn add_pem_certificates(roots: &mut RootCertStore, path: &Path) -> anyhow::Result<()> {
    let context = || format!("sslrootcert={}", path.display());
    let mut added = 0;
    for cert in CertificateDer::pem_file_iter(path).with_context(context)? {
        roots
            .add(cert.with_context(context)?)
            .with_context(context)?;
        added += 1;
    }
    if added == 0 {
        bail!("{}: no PEM certificate in it", context());
    }
    Ok(())
}

/// Checks the chain to a trusted root (and the signatures), not the name: `require` and
/// `verify-ca`.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let (url, params) =
            split_url("postgresql://caas@db:5432/caas?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=x")
                .unwrap();
        assert_eq!(url, "postgresql://caas@db:5432/caas?application_name=x");
        assert_eq!(params.mode, TlsMode::VerifyFull);
        assert_eq!(params.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        let (url, params) = split_url("postgres://db/caas?sslmode=require").unwrap();
        assert_eq!(url, "postgres://db/caas");
        assert_eq!(params.mode, TlsMode::VerifyChain);
        let (_, params) = split_url("postgres://db/caas").unwrap();
        assert_eq!(params.mode, TlsMode::Off);
        let err = split_url("postgres://db/caas?sslmode=always").unwrap_err();
        assert!(err.to_string().contains("sslmode=always"), "{err}");
    }
}
