//! OS boot assets under `<data-dir>/assets/<os>/<version>/`: fetch releases, verify their
//! digests and OpenPGP signatures against pinned keys, publish them atomically, list them.
//!
//! - [`release`]: which files make up a release and where they live (pure parsers);
//! - [`http`]: downloads with resume and retries;
//! - [`pgp`]: pinned keys and signature verification;
//! - [`fetch`]: download, verify, publish (`caas assets fetch`);
//! - [`etcd`]: etcd releases (the binaries the etcd roles run), fetched and resolved;
//! - [`inventory`]: what is published, re-verified and listed (`verify`, `list`);
//! - [`progress`]: the events of a fetch, as progress bars, lines or JSON;
//! - [`manifest`]: `caas-assets.json`, read by `gen profile` too;
//! - [`static_binary`]: the static caas binary booting machines download.

pub mod etcd;
pub mod fetch;
pub mod http;
pub mod inventory;
pub mod manifest;
pub mod pgp;
pub mod progress;
pub mod release;
pub mod static_binary;
