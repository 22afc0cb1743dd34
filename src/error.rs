//! Errors and exit codes.
//!
//! Exit codes: 0 success, 1 operational failure, 2 invalid usage or input.
//!
//! Library code returns `anyhow::Error` with context on every I/O step. An error the user can fix
//! by changing what they gave caas (a flag, a spec file, a template) carries an [`InvalidInput`]
//! somewhere in its chain; `main` maps that to exit code 2 and everything else to 1.

use std::fmt::Display;

/// Exit code of an operational failure: network, I/O, verification, lint findings.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of invalid usage or invalid input.
pub const EXIT_INVALID: u8 = 2;

/// What the user gave caas is wrong; the message names the flag, file, field or value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

/// Builds an [`InvalidInput`] error (exit code 2).
pub fn invalid(message: impl Display) -> anyhow::Error {
    anyhow::Error::new(InvalidInput(message.to_string()))
}

/// The exit code that `err` should end the process with.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|cause| cause.is::<InvalidInput>()) {
        EXIT_INVALID
    } else {
        EXIT_FAILURE
    }
}

/// Whether `err` comes from writing to a pipe whose reader has gone (`caas … | head`): not a
/// failure of caas, so it ends quietly, as other command-line filters do.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The whole error chain on one line (`outer: inner: root`), as scripts and CI logs want it.
pub fn one_line(err: &anyhow::Error) -> String {
    let joined = format!("{err:#}");
    joined.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn invalid_input_anywhere_in_the_chain_exits_2() {
        let err = Err::<(), _>(invalid("bad id"))
            .context("writing group")
            .unwrap_err();
        assert_eq!(exit_code(&err), EXIT_INVALID);
        assert_eq!(exit_code(&anyhow::anyhow!("disk full")), EXIT_FAILURE);
    }

    #[test]
    fn one_line_joins_the_chain_and_folds_newlines() {
        let err = Err::<(), _>(anyhow::anyhow!("line 1\n  line 2"))
            .context("reading x.yaml")
            .unwrap_err();
        assert_eq!(one_line(&err), "reading x.yaml: line 1 line 2");
    }
}
