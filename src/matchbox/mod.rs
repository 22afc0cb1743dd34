//! matchbox's data model and data directory: profiles, groups, selectors. Reading follows
//! matchbox's Go decoding rules; writing is canonical.

pub mod datadir;
pub mod decode;
pub mod group;
pub mod kargs;
pub mod mac;
pub mod profile;
pub mod select;
pub mod server;
pub mod store;
pub mod target;

pub use datadir::DataDir;
pub use group::{Group, Selector};
pub use profile::{Boot, Profile};
