//! `caas schedule once`: discovered machines become an etcd cluster and its workers.

pub mod assign;
pub mod state;
