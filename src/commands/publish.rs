//! `caas publish static`.

use std::io::Write as _;

use anyhow::Result;

use super::{lock_data_dir, lock_dir};
use crate::cli::{GlobalArgs, PublishCommand, PublishStaticArgs};
use crate::matchbox::server::MatchboxUrl;
use crate::publish::{PublishOptions, Published, publish};
use crate::report::Format;

pub fn run(global: &GlobalArgs, command: &PublishCommand) -> Result<()> {
    match command {
        PublishCommand::Static(args) => publish_static(global, args),
    }
}

fn publish_static(global: &GlobalArgs, args: &PublishStaticArgs) -> Result<()> {
    let metadata_upstream = args
        .metadata_upstream
        .as_deref()
        .map(MatchboxUrl::parse)
        .transpose()?
        .map(|url| url.as_str().to_owned());
    let options = PublishOptions {
        data_dir: global.data_dir.clone(),
        out: args.out.clone(),
        target: args.target,
        listen: args.listen.clone(),
        metadata_upstream,
        dry_run: args.write.dry_run,
    };
    // The data dir is locked while it is read, so a `gen` cannot change it half way; the
    // output directory has a lock of its own.
    let _data = lock_data_dir(global, "caas publish static", args.write.dry_run)?;
    let _out = if args.write.dry_run {
        None
    } else {
        Some(lock_dir(global, &args.out, "", "caas publish static", &[])?)
    };
    let published = publish(&options)?;
    report(&published, args, global.quiet)
}

fn report(published: &Published, args: &PublishStaticArgs, quiet: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if args.write.format == Format::Json {
        serde_json::to_writer_pretty(&mut out, published)?;
        writeln!(out)?;
        return Ok(());
    }
    if quiet {
        return Ok(());
    }
    let dry = args.write.dry_run;
    for (first, second) in &published.ties {
        eprintln!(
            "warning: {first} and {second} have the same selectors: matchbox may answer with either, the tree answers with {first}"
        );
    }
    writeln!(
        out,
        "{} {}",
        published.nginx_conf.action.describe(dry),
        published.nginx_conf.path.display()
    )?;
    writeln!(
        out,
        "bodies: {} written, {} unchanged, {} removed",
        published.bodies_written, published.bodies_unchanged, published.bodies_removed
    )?;
    let verb = match (published.tree_unchanged, dry) {
        (true, _) => "unchanged",
        (false, true) => "would publish",
        (false, false) => "published",
    };
    writeln!(
        out,
        "{verb} {} ({} entries) as {}",
        published.tree,
        published.entries,
        args.out.join("current").display()
    )?;
    Ok(())
}
