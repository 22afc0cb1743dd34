//! The `caas` binary: parse the command line, dispatch, map errors to exit codes.

use std::io::{self, IsTerminal as _};
use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

use caas::cli::{Cli, Command, Format, GlobalArgs};
use caas::commands;
use caas::error::{self, EXIT_INVALID};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return clap_error(err),
    };
    let server_log = match &cli.command {
        Command::Api(args) => Some(args.log_format),
        _ => None,
    };
    init_logging(&cli.global, server_log);
    match commands::run(&cli) {
        Ok(code) => code,
        Err(err) if error::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error::one_line(&err));
            ExitCode::from(error::exit_code(&err))
        }
    }
}

/// clap's own output for help and version; a rejected value (an invalid id, URL, MAC) is one
/// line naming it, as every other input error is.
fn clap_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::ValueValidation | ErrorKind::InvalidValue => {
            let text = err.render().to_string();
            eprintln!("{}", text.lines().next().unwrap_or_default());
            ExitCode::from(EXIT_INVALID)
        }
        _ => {
            let _ = err.print();
            ExitCode::from(err.exit_code() as u8)
        }
    }
}

/// Diagnostics go to stderr as `warning: …` lines; `-v` adds info, `-vv` debug, `-q` keeps only
/// errors. `CAAS_LOG` (an env-filter directive) overrides the level. A server (`caas api`)
/// logs at info by default (one line per request), as text or JSON lines with timestamps.
fn init_logging(global: &GlobalArgs, server: Option<Format>) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) if server.is_some() => "info",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("CAAS_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::stderr().is_terminal())
        .with_writer(io::stderr);
    match server {
        None => builder.event_format(caas_log_format::Plain).init(),
        Some(Format::Text) => builder.with_target(false).init(),
        Some(Format::Json) => builder.json().flatten_event(true).init(),
    }
}

mod caas_log_format {
    //! `level: message key=value` lines, the way command-line tools print diagnostics.

    use std::fmt;

    use tracing::{Event, Level, Subscriber};
    use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, format::Writer};
    use tracing_subscriber::registry::LookupSpan;

    pub struct Plain;

    impl<S, N> FormatEvent<S, N> for Plain
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        fn format_event(
            &self,
            ctx: &FmtContext<'_, S, N>,
            mut writer: Writer<'_>,
            event: &Event<'_>,
        ) -> fmt::Result {
            let level = match *event.metadata().level() {
                Level::ERROR => "error",
                Level::WARN => "warning",
                Level::INFO => "info",
                Level::DEBUG => "debug",
                Level::TRACE => "trace",
            };
            write!(writer, "{level}: ")?;
            ctx.field_format().format_fields(writer.by_ref(), event)?;
            writeln!(writer)
        }
    }
}
