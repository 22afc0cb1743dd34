//! `caas gen cluster`.
use crate::cli::{GenClusterArgs, GlobalArgs};
use anyhow::Result;
pub fn gen_cluster(_global: &GlobalArgs, _args: &GenClusterArgs) -> Result<()> {
    todo!()
}
