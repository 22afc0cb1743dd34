//! Fixtures for the `caas assets` tests: generated keys and signatures, a release server.
#![allow(dead_code)]

pub mod pgp;
pub mod server;
