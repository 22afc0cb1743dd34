//! OpenPGP: the pinned keys and detached-signature verification.
//!
//! Verification goes through Sequoia's `DetachedVerifier` with its `StandardPolicy`
//! (<https://docs.rs/sequoia-openpgp/2/sequoia_openpgp/policy/struct.StandardPolicy.html>),
//! which judges a key at the time it made the signature, so a
//! subkey revoked as compromised, or one that had expired when it signed, is refused, while an
//! old release signed by a since-expired subkey still verifies. Only a good signature whose
//! certificate is one of the pinned primaries is accepted; every other outcome is a
//! [`SignatureError`] that says which of "bad signature", "unknown key" and "revoked or expired
//! key" it is.

use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use sequoia_openpgp as openpgp;

use openpgp::Cert;
use openpgp::cert::CertParser;
use openpgp::cert::amalgamation::ValidAmalgamation as _;
use openpgp::cert::amalgamation::key::PrimaryKey as _;
use openpgp::packet::Signature;
use openpgp::parse::Parse as _;
use openpgp::parse::stream::{
    DetachedVerifierBuilder, MessageLayer, MessageStructure, VerificationError, VerificationHelper,
};
use openpgp::policy::{HashAlgoSecurity, StandardPolicy};
use openpgp::types::HashAlgorithm;
use openpgp::types::RevocationStatus;

use crate::clock;
use crate::error::invalid;
use crate::os::Os;

/// Warn when the newest signing key of a pinned certificate expires within this long.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(60 * 86_400);

/// The certificates a signature must come from.
#[derive(Clone, Debug)]
pub struct Keyring {
    certs: Vec<Cert>,
    origin: String,
}

impl Keyring {
    /// The keys caas ships for `os` (keys/README.md says where each comes from).
    pub fn embedded(os: Os) -> Keyring {
        let mut certs = Vec::new();
        let mut names = Vec::new();
        for file in os.descriptor().keys {
            let parsed = Keyring::parse(file.armored, file.name)
                .unwrap_or_else(|err| panic!("embedded key file {} is broken: {err}", file.name));
            certs.extend(parsed.certs);
            names.push(file.name);
        }
        Keyring {
            certs,
            origin: format!("embedded {}", names.join(" + ")),
        }
    }

    /// Reads an OpenPGP keyring (armored or binary, one or more certificates); secret key
    /// material, if any, is dropped.
    pub fn from_file(path: &Path) -> anyhow::Result<Keyring> {
        let bytes = std::fs::read(path)
            .map_err(|err| invalid(format!("cannot read --keyring {:?}: {err}", path)))?;
        Keyring::parse(&bytes, &path.display().to_string()).map_err(|err| {
            invalid(format!(
                "--keyring {:?} is not a usable OpenPGP keyring: {err}",
                path
            ))
        })
    }

    /// Parses certificates from armored or binary bytes.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Keyring, String> {
        let mut certs = Vec::new();
        let parser = CertParser::from_bytes(bytes).map_err(|err| err.to_string())?;
        for cert in parser {
            certs.push(
                cert.map_err(|err| err.to_string())?
                    .strip_secret_key_material(),
            );
        }
        if certs.is_empty() {
            return Err("it holds no certificate".into());
        }
        Ok(Keyring {
            certs,
            origin: origin.to_owned(),
        })
    }

    /// Where the keys came from (`embedded flatcar.asc`, or the --keyring path).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The pinned primary fingerprints, upper-case hex.
    pub fn primaries(&self) -> Vec<String> {
        self.certs
            .iter()
            .map(|cert| cert.fingerprint().to_hex())
            .collect()
    }

    fn pins(&self, fingerprint: &openpgp::Fingerprint) -> bool {
        self.certs
            .iter()
            .any(|cert| &cert.fingerprint() == fingerprint)
    }
}

/// A signature that verified: the pinned primary, the (sub)key that signed, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoodSignature {
    pub primary: String,
    pub key: String,
    pub created: SystemTime,
}

/// Why a signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A pinned key made the signature, but the data does not match it (tampered or truncated).
    #[error("bad signature: the data does not match it ({0})")]
    Bad(String),
    /// No pinned key made the signature.
    #[error("unknown key: signed by {issuers}, which is not one of the pinned keys ({pinned})")]
    UnknownKey { issuers: String, pinned: String },
    /// A pinned key made it, but that key was revoked, or not valid when it signed.
    #[error("revoked or expired key: {0}")]
    RevokedOrExpired(String),
    /// The signature file is not a usable OpenPGP signature.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// The data could not be read.
    #[error("reading the signed data: {0}")]
    Io(String),
}

impl SignatureError {
    /// When a file carries several signatures and none is good, the most telling failure wins.
    fn rank(&self) -> u8 {
        match self {
            SignatureError::Bad(_) => 4,
            SignatureError::RevokedOrExpired(_) => 3,
            SignatureError::UnknownKey { .. } => 2,
            SignatureError::Malformed(_) => 1,
            SignatureError::Io(_) => 0,
        }
    }
}

struct Helper<'k> {
    keyring: &'k Keyring,
    outcome: Option<Result<GoodSignature, SignatureError>>,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _ids: &[openpgp::KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self.keyring.certs.clone())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        let mut worst: Option<SignatureError> = None;
        for layer in structure.into_iter() {
            let MessageLayer::SignatureGroup { results } = layer else {
                continue;
            };
            for result in results {
                let failure = match result {
                    Ok(good) if self.keyring.pins(&good.ka.cert().fingerprint()) => {
                        self.outcome = Some(Ok(GoodSignature {
                            primary: good.ka.cert().fingerprint().to_hex(),
                            key: good.ka.key().fingerprint().to_hex(),
                            created: good
                                .sig
                                .signature_creation_time()
                                .unwrap_or(SystemTime::UNIX_EPOCH),
                        }));
                        return Ok(());
                    }
                    Ok(good) => SignatureError::UnknownKey {
                        issuers: good.ka.cert().fingerprint().to_hex(),
                        pinned: self.keyring.primaries().join(", "),
                    },
                    Err(err) => classify(&err, self.keyring),
                };
                if worst.as_ref().is_none_or(|w| failure.rank() > w.rank()) {
                    worst = Some(failure);
                }
            }
        }
        self.outcome = Some(Err(worst.unwrap_or_else(|| {
            SignatureError::Malformed("the signature file holds no signature".into())
        })));
        Ok(())
    }
}

fn signed_on(sig: &Signature) -> String {
    sig.signature_creation_time()
        .map(clock::date)
        .unwrap_or_else(|| "an unknown date".into())
}

fn classify(err: &VerificationError<'_>, keyring: &Keyring) -> SignatureError {
    match err {
        VerificationError::MissingKey { sig } => {
            let issuers: Vec<String> = sig.get_issuers().iter().map(|h| h.to_hex()).collect();
            SignatureError::UnknownKey {
                issuers: if issuers.is_empty() {
                    "a key it does not name".into()
                } else {
                    issuers.join(", ")
                },
                pinned: keyring.primaries().join(", "),
            }
        }
        VerificationError::UnboundKey { sig, cert, error } => {
            SignatureError::RevokedOrExpired(format!(
                "no key of {} was valid when the signature was made on {}: {error}",
                cert.fingerprint().to_hex(),
                signed_on(sig)
            ))
        }
        VerificationError::BadKey { sig, ka, error } => {
            let who = if ka.primary() {
                format!("key {}", ka.key().fingerprint().to_hex())
            } else {
                format!(
                    "subkey {} of {}",
                    ka.key().fingerprint().to_hex(),
                    ka.cert().fingerprint().to_hex()
                )
            };
            let detail = if let RevocationStatus::Revoked(revocations) = ka.revocation_status() {
                let reason = revocations
                    .iter()
                    .find_map(|rev| rev.reason_for_revocation())
                    .map(|(code, _)| code.to_string().to_lowercase())
                    .unwrap_or_else(|| "no reason given".into());
                format!("{who} is revoked ({reason})")
            } else if let Some(expired) = ka
                .key_expiration_time()
                .filter(|&t| sig.signature_creation_time().is_some_and(|s| t <= s))
            {
                format!(
                    "{who} expired on {}, before the signature was made on {}",
                    clock::date(expired),
                    signed_on(sig)
                )
            } else {
                format!("{who} cannot be used for this signature: {error}")
            };
            SignatureError::RevokedOrExpired(detail)
        }
        VerificationError::BadSignature { error, .. } => SignatureError::Bad(error.to_string()),
        VerificationError::MalformedSignature { error, .. } => {
            SignatureError::Malformed(error.to_string())
        }
        VerificationError::UnknownSignature { sig } => {
            SignatureError::Malformed(sig.error().to_string())
        }
        other => SignatureError::Malformed(other.to_string()),
    }
}

/// Sequoia's standard policy, with one deliberate relaxation: SHA-1 is accepted where only
/// second-preimage resistance matters, i.e. in the self-signatures of the pinned certificates.
///
/// Those certificates are trusted because they are pinned (embedded in caas or given with
/// --keyring), not because of their self-signatures, and the historical CoreOS key binds its
/// user id with a SHA-1 self-signature (2017) that the standard policy stopped accepting in
/// 2023, which would make every archived Container Linux image unverifiable. Signatures over
/// data need collision resistance, so a SHA-1 data signature is still refused.
fn policy() -> StandardPolicy<'static> {
    let mut policy = StandardPolicy::new();
    policy.accept_hash_property(
        HashAlgorithm::SHA1,
        HashAlgoSecurity::SecondPreImageResistance,
    );
    policy
}

/// Verifies a detached signature (binary or armored) over everything `data` yields.
pub fn verify_detached<R: Read + Send + Sync>(
    keyring: &Keyring,
    signature: &[u8],
    data: R,
) -> Result<GoodSignature, SignatureError> {
    let policy = policy();
    let helper = Helper {
        keyring,
        outcome: None,
    };
    let malformed = |err: anyhow::Error| SignatureError::Malformed(format!("{err:#}"));
    let mut verifier = DetachedVerifierBuilder::from_bytes(signature)
        .map_err(malformed)?
        .with_policy(&policy, None, helper)
        .map_err(malformed)?;
    let result = verifier.verify_reader(data);
    let outcome = verifier.into_helper().outcome;
    match (result, outcome) {
        (_, Some(outcome)) => outcome,
        (Err(err), None) if err.downcast_ref::<io::Error>().is_some() => {
            Err(SignatureError::Io(format!("{err:#}")))
        }
        (Err(err), None) => Err(malformed(err)),
        (Ok(()), None) => Err(SignatureError::Malformed(
            "the signature file holds no signature".into(),
        )),
    }
}

/// Verifies a detached signature over a file on disk.
pub fn verify_file(
    keyring: &Keyring,
    signature: &[u8],
    path: &Path,
) -> anyhow::Result<Result<GoodSignature, SignatureError>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(verify_detached(
        keyring,
        signature,
        io::BufReader::with_capacity(1 << 20, file),
    ))
}

/// Verifies a signature on a separate thread while the data streams in, so hashing for the
/// signature overlaps with the download instead of re-reading the file afterwards.
pub struct StreamVerifier {
    tx: Option<SyncSender<Vec<u8>>>,
    handle: Option<JoinHandle<Result<GoodSignature, SignatureError>>>,
}

impl StreamVerifier {
    pub fn start(keyring: Arc<Keyring>, signature: Arc<[u8]>) -> StreamVerifier {
        let (tx, rx) = sync_channel(16);
        let handle = thread::spawn(move || {
            verify_detached(
                &keyring,
                &signature,
                ChannelReader {
                    rx: Mutex::new(rx),
                    chunk: Vec::new(),
                    pos: 0,
                },
            )
        });
        StreamVerifier {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    /// Hands the next bytes of the data to the verifier.
    pub fn feed(&mut self, bytes: &[u8]) {
        if let Some(tx) = &self.tx
            && tx.send(bytes.to_vec()).is_err()
        {
            // The verifier stopped early (an unusable signature); `finish` reports why.
            self.tx = None;
        }
    }

    /// Ends the data and returns the verdict.
    pub fn finish(mut self) -> Result<GoodSignature, SignatureError> {
        self.tx = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(verdict)) => verdict,
            _ => Err(SignatureError::Io("the verifier thread failed".into())),
        }
    }
}

impl Drop for StreamVerifier {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

struct ChannelReader {
    rx: Mutex<Receiver<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            let next = self.rx.lock().expect("one reader").recv();
            match next {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// When the newest usable signing key of a certificate stops working.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyExpiry {
    /// It has no expiry.
    Never,
    /// It expires, but not within [`EXPIRY_WARNING`].
    Later(SystemTime),
    /// It expires within [`EXPIRY_WARNING`].
    Soon(SystemTime),
    /// It has expired: releases signed from now on cannot verify against this copy of the key.
    Expired(SystemTime),
    /// The certificate has no signing key that is not revoked.
    NoSigningKey,
}

/// The expiry of one certificate's newest signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyStatus {
    pub primary: String,
    pub key: Option<String>,
    pub expiry: KeyExpiry,
}

impl SigningKeyStatus {
    /// A warning line when the key expires soon; `None` otherwise.
    pub fn warning(&self, now: SystemTime, origin: &str) -> Option<String> {
        let KeyExpiry::Soon(expires) = self.expiry else {
            return None;
        };
        let days = expires
            .duration_since(now)
            .map(|d| d.as_secs() / 86_400)
            .unwrap_or(0);
        Some(format!(
            "the newest signing key {} of pinned key {} ({origin}) expires on {} (in {days} days): \
             releases signed after that need a refreshed key; update caas or pass --keyring",
            self.key.as_deref().unwrap_or("?"),
            self.primary,
            clock::date(expires)
        ))
    }
}

/// For each certificate, when its newest signing key (by creation time, then by expiry;
/// revoked keys skipped) expires, judged at `now`. Pure: the caller passes the clock.
pub fn signing_key_status(keyring: &Keyring, now: SystemTime) -> Vec<SigningKeyStatus> {
    let policy = policy();
    keyring
        .certs
        .iter()
        .map(|cert| {
            let primary = cert.fingerprint().to_hex();
            let newest = cert
                .keys()
                .with_policy(&policy, now)
                .filter(|ka| ka.for_signing())
                .filter(|ka| !matches!(ka.revocation_status(), RevocationStatus::Revoked(_)))
                // Ties (keys made at the same instant) go to the one that lasts longer.
                .max_by_key(|ka| {
                    let expiry = ka.key_expiration_time();
                    (ka.key().creation_time(), expiry.is_none(), expiry)
                });
            let Some(ka) = newest else {
                return SigningKeyStatus {
                    primary,
                    key: None,
                    expiry: KeyExpiry::NoSigningKey,
                };
            };
            let expiry = match ka.key_expiration_time() {
                None => KeyExpiry::Never,
                Some(t) if t <= now => KeyExpiry::Expired(t),
                Some(t) if t <= now + EXPIRY_WARNING => KeyExpiry::Soon(t),
                Some(t) => KeyExpiry::Later(t),
            };
            SigningKeyStatus {
                primary,
                key: Some(ka.key().fingerprint().to_hex()),
                expiry,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLATCAR_PRIMARY: &str = "F88CFEDEFF29A5B4D9523864E25D9AED0593B34A";
    const FLATCAR_2025_SUBKEY: &str = "52F145DFD00BBDCD928CBB5A32DA80F91EF52974";

    #[test]
    fn embedded_keys_parse_and_carry_the_expected_primaries() {
        assert_eq!(
            Keyring::embedded(Os::Flatcar).primaries(),
            [FLATCAR_PRIMARY]
        );
        assert_eq!(
            Keyring::embedded(Os::FedoraCoreos).primaries(),
            [
                "C6E7F081CF80E13146676E88829B606631645531",
                "36F612DCF27F7D1A48A835E4DBFCF71C6D9F90A6",
                "4F50A6114CD5C6976A7F1179655A4B02F577861E",
                "D924B10D3E810DABDD8B56B596E7E91491211FCE",
            ]
        );
        assert_eq!(
            Keyring::embedded(Os::Coreos).primaries(),
            ["04127D0BFABEC8871FFB2CCE50E0885593D2DCB4"]
        );
    }

    #[test]
    fn the_real_flatcar_key_warns_only_within_sixty_days_of_its_subkey_expiry() {
        let keyring = Keyring::embedded(Os::Flatcar);
        let status = |now| signing_key_status(&keyring, now).remove(0);

        // The day this was written: 102 days before the 2025 subkey expires.
        let today = clock::from_date(2026, 11, 26);
        let now = status(today);
        assert_eq!(now.key.as_deref(), Some(FLATCAR_2025_SUBKEY));
        assert!(matches!(now.expiry, KeyExpiry::Later(t) if clock::date(t) == "2027-03-08"));
        assert_eq!(now.warning(today, "x"), None);

        let january = clock::from_date(2027, 1, 15);
        let soon = status(january);
        assert!(matches!(soon.expiry, KeyExpiry::Soon(_)));
        let warning = soon.warning(january, "embedded flatcar.asc").unwrap();
        assert!(warning.contains("2027-03-08"), "{warning}");
        assert!(warning.contains("in 52 days"), "{warning}");
        assert!(warning.contains(FLATCAR_2025_SUBKEY), "{warning}");

        let april = clock::from_date(2027, 4, 1);
        assert!(matches!(status(april).expiry, KeyExpiry::Expired(_)));
        assert_eq!(status(april).warning(april, "x"), None);
    }

    #[test]
    fn fedora_primaries_sign_and_never_expire() {
        let keyring = Keyring::embedded(Os::FedoraCoreos);
        for status in signing_key_status(&keyring, clock::from_date(2026, 11, 26)) {
            assert_eq!(status.expiry, KeyExpiry::Never, "{status:?}");
            assert_eq!(status.key.as_deref(), Some(status.primary.as_str()));
        }
    }

    #[test]
    fn the_historical_coreos_key_has_expired() {
        let keyring = Keyring::embedded(Os::Coreos);
        let status = signing_key_status(&keyring, clock::from_date(2026, 11, 26)).remove(0);
        assert_eq!(
            status.key.as_deref(),
            Some("FD986FB096482F906F55B2EA01C9CAE767B3CA0E")
        );
        assert!(matches!(status.expiry, KeyExpiry::Expired(t) if clock::date(t) == "2021-06-01"));
    }

    /// Revoked subkeys of the real keys (keys/README.md), seen as revoked under the policy.
    fn revoked_subkeys(os: Os) -> Vec<String> {
        let keyring = Keyring::embedded(os);
        let policy = policy();
        let now = clock::from_date(2026, 11, 26);
        let cert = keyring.certs[0].with_policy(&policy, now).unwrap();
        let mut revoked: Vec<String> = cert
            .keys()
            .subkeys()
            .filter(|ka| matches!(ka.revocation_status(), RevocationStatus::Revoked(_)))
            .map(|ka| ka.key().fingerprint().to_hex())
            .collect();
        revoked.sort();
        revoked
    }

    #[test]
    fn the_real_keys_revoked_subkeys_are_known_as_revoked() {
        assert_eq!(
            revoked_subkeys(Os::Flatcar),
            [
                "1E100DD7A677A6F9A532C9F9B51DE377064D542D",
                "A621F1DA96C93C639506832D603443A1D0FC498C",
            ]
        );
        assert_eq!(
            revoked_subkeys(Os::Coreos),
            ["A5FA42549745ABBC7B827E368633FB13B58844F1"]
        );
    }

    #[test]
    fn keyrings_must_hold_a_certificate() {
        assert!(Keyring::parse(b"", "empty").is_err());
        assert!(Keyring::parse(b"not a key", "junk").is_err());
    }

    #[test]
    fn garbage_signatures_are_malformed() {
        let keyring = Keyring::embedded(Os::Flatcar);
        let verdict = verify_detached(&keyring, b"\x00garbage", &b"data"[..]);
        assert!(
            matches!(verdict, Err(SignatureError::Malformed(_))),
            "{verdict:?}"
        );
    }
}
