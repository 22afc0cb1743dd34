//! matchbox's data model and data directory: profiles, groups, selectors. Reading follows
//! matchbox's Go decoding rules; writing is canonical. What the files mean to the server (boot
//! arguments, templates, raw Ignition, selection) lives here too, for `lint` and `explain`
//! alike; positions in JSON files come from [`spans`].

pub mod boot;
pub mod clc;
pub mod datadir;
pub mod decode;
pub mod group;
pub mod group_index;
pub mod head;
pub mod ignition;
pub mod kargs;
pub mod mac;
pub mod profile;
pub mod secrets;
pub mod select;
pub mod server;
pub mod spans;
pub mod store;
pub mod target;
pub mod template;

pub use datadir::DataDir;
pub use group::{Group, Selector};
pub use profile::{Boot, Profile};
