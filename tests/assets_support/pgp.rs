//! Test keys and signatures, generated with Sequoia for each test run (never fetched).
//!
//! The pinned test certificate mirrors the Flatcar key's shape: a certify-only primary with
//! rotating signing subkeys, here one good, one revoked as compromised, one that expired a day
//! after its creation, and one superseded (soft-revoked) after it signed. An unrelated
//! certificate stands for "some other key". Ed25519 keeps generation fast in debug builds.

use std::time::{Duration, SystemTime};

use sequoia_openpgp as openpgp;

use openpgp::Packet;
use openpgp::cert::prelude::*;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::SerializeInto as _;
use openpgp::types::{HashAlgorithm, KeyFlags, ReasonForRevocation, SignatureType};

const DAY: Duration = Duration::from_secs(86_400);

/// Which key makes a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    /// The pinned certificate's valid signing subkey.
    Good,
    /// A subkey revoked as compromised (after it signed: a hard revocation applies anyway).
    Revoked,
    /// A subkey that had expired when it signed.
    Expired,
    /// A subkey revoked as superseded after it signed: its old signatures stay valid.
    Superseded,
    /// The signing subkey of a certificate that is not pinned.
    Unknown,
}

impl Signer {
    pub const ALL: [Signer; 5] = [
        Signer::Good,
        Signer::Revoked,
        Signer::Expired,
        Signer::Superseded,
        Signer::Unknown,
    ];
}

pub struct Keys {
    pub pinned: Cert,
    pub unrelated: Cert,
    t0: SystemTime,
    good: openpgp::Fingerprint,
    revoked: openpgp::Fingerprint,
    expired: openpgp::Fingerprint,
    superseded: openpgp::Fingerprint,
}

fn signing_cert(t0: SystemTime, name: &str, subkeys: &[Option<Duration>]) -> Cert {
    let mut builder = CertBuilder::new()
        .set_creation_time(t0)
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_primary_key_flags(KeyFlags::empty().set_certification())
        .add_userid(format!("{name} <test@caas.invalid>"));
    for validity in subkeys {
        builder = builder.add_subkey(KeyFlags::empty().set_signing(), *validity, None);
    }
    builder.generate().expect("key generation").0
}

impl Keys {
    pub fn generate() -> Keys {
        let t0 = SystemTime::now() - 30 * DAY;
        let policy = StandardPolicy::new();
        let cert = signing_cert(t0, "caas test signing key", &[None, None, Some(DAY), None]);
        // Subkeys come back in the certificate's canonical order: tell them apart by expiry.
        let vc = cert.with_policy(&policy, t0).expect("valid at creation");
        let expired = vc
            .keys()
            .subkeys()
            .find(|ka| ka.key_expiration_time().is_some())
            .expect("the expiring subkey")
            .key()
            .fingerprint();
        let others: Vec<_> = vc
            .keys()
            .subkeys()
            .filter(|ka| ka.key_expiration_time().is_none())
            .map(|ka| ka.key().fingerprint())
            .collect();
        let (good, revoked, superseded) = (others[0].clone(), others[1].clone(), others[2].clone());

        let mut primary = cert
            .primary_key()
            .key()
            .clone()
            .parts_into_secret()
            .unwrap()
            .into_keypair()
            .unwrap();
        let mut revoke = |fpr: &openpgp::Fingerprint, reason| {
            let subkey = cert
                .keys()
                .subkeys()
                .find(|ka| &ka.key().fingerprint() == fpr)
                .unwrap()
                .key()
                .clone();
            SubkeyRevocationBuilder::new()
                .set_reason_for_revocation(reason, b"caas test")
                .unwrap()
                .set_signature_creation_time(t0 + 20 * DAY)
                .unwrap()
                .build(&mut primary, &cert, &subkey, None)
                .unwrap()
        };
        let hard = revoke(&revoked, ReasonForRevocation::KeyCompromised);
        let soft = revoke(&superseded, ReasonForRevocation::KeySuperseded);
        let pinned = cert
            .clone()
            .insert_packets([Packet::from(hard), Packet::from(soft)])
            .unwrap()
            .0;
        Keys {
            pinned,
            unrelated: signing_cert(t0, "someone else", &[None]),
            t0,
            good,
            revoked,
            expired,
            superseded,
        }
    }

    /// The pinned certificate, public parts only, armored: what `--keyring` takes.
    pub fn keyring(&self) -> Vec<u8> {
        self.pinned.armored().to_vec().unwrap()
    }

    /// A binary detached signature over `data` by `signer`, with SHA-512.
    pub fn sign(&self, signer: Signer, data: &[u8]) -> Vec<u8> {
        self.sign_with(signer, data, HashAlgorithm::SHA512)
    }

    /// The same, with a chosen hash algorithm.
    pub fn sign_with(&self, signer: Signer, data: &[u8], hash: HashAlgorithm) -> Vec<u8> {
        let recent = SystemTime::now() - Duration::from_secs(60);
        let (cert, fingerprint, when) = match signer {
            Signer::Good => (&self.pinned, self.good.clone(), recent),
            Signer::Revoked => (&self.pinned, self.revoked.clone(), self.t0 + 10 * DAY),
            Signer::Expired => (&self.pinned, self.expired.clone(), self.t0 + 5 * DAY),
            Signer::Superseded => (&self.pinned, self.superseded.clone(), self.t0 + 10 * DAY),
            Signer::Unknown => (
                &self.unrelated,
                self.unrelated
                    .keys()
                    .subkeys()
                    .next()
                    .unwrap()
                    .key()
                    .fingerprint(),
                recent,
            ),
        };
        let mut keypair = cert
            .keys()
            .subkeys()
            .secret()
            .find(|ka| ka.key().fingerprint() == fingerprint)
            .expect("the signing subkey")
            .key()
            .clone()
            .into_keypair()
            .unwrap();
        let signature = SignatureBuilder::new(SignatureType::Binary)
            .set_signature_creation_time(when)
            .unwrap()
            .set_hash_algo(hash)
            .sign_message(&mut keypair, data)
            .unwrap();
        Packet::from(signature).to_vec().unwrap()
    }
}
