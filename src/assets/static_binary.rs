//! What `caas assets fetch caas` publishes: the caas binary booting machines download to run
//! `caas discover`. Those machines have whatever libc their OS has (or none caas can count on),
//! so only a statically linked binary is published: one whose ELF program headers ask for no
//! program interpreter (`PT_INTERP`, the dynamic loader such as `/lib64/ld-linux-x86-64.so.2`).
//! `make static` builds one (musl, `--profile static`).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::write::{self, FileWrite};

/// Where `make static` leaves the static build, relative to the repository.
pub const STATIC_BUILD: &str = "target/x86_64-unknown-linux-musl/static/caas";

/// How to get a static build, for error messages.
pub fn how_to_build() -> String {
    format!(
        "build the static one with `make static` (cargo build --profile static --target \
         x86_64-unknown-linux-musl; needs `rustup target add x86_64-unknown-linux-musl` and \
         Debian's musl-tools), then publish it with `caas assets fetch caas --binary \
         {STATIC_BUILD}`"
    )
}

/// ELF program header type of the program interpreter.
const PT_INTERP: u32 = 3;

/// The program interpreter an ELF executable asks for (`None`: statically linked), or why
/// `bytes` is not an ELF executable caas can read.
pub fn interpreter(bytes: &[u8]) -> Result<Option<String>, String> {
    if bytes.len() < 16 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF executable".into());
    }
    let class64 = match bytes[4] {
        1 => false,
        2 => true,
        other => return Err(format!("unknown ELF class {other}")),
    };
    let little = match bytes[5] {
        1 => true,
        2 => false,
        other => return Err(format!("unknown ELF data encoding {other}")),
    };
    let truncated = || "a truncated ELF header".to_owned();
    let u16_at = |at: usize| -> Result<u16, String> {
        let b: [u8; 2] = bytes
            .get(at..at + 2)
            .ok_or_else(truncated)?
            .try_into()
            .expect("2 bytes");
        Ok(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Result<u32, String> {
        let b: [u8; 4] = bytes
            .get(at..at + 4)
            .ok_or_else(truncated)?
            .try_into()
            .expect("4 bytes");
        Ok(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let u64_at = |at: usize| -> Result<u64, String> {
        let b: [u8; 8] = bytes
            .get(at..at + 8)
            .ok_or_else(truncated)?
            .try_into()
            .expect("8 bytes");
        Ok(if little {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    };
    let word_at = |at: usize| -> Result<u64, String> {
        if class64 {
            u64_at(at)
        } else {
            u32_at(at).map(u64::from)
        }
    };
    // e_phoff, e_phentsize, e_phnum.
    let (phoff, phentsize, phnum) = if class64 {
        (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?)
    } else {
        (u64::from(u32_at(0x1c)?), u16_at(0x2a)?, u16_at(0x2c)?)
    };
    let to_usize = |v: u64| usize::try_from(v).map_err(|_| truncated());
    for i in 0..usize::from(phnum) {
        let at = to_usize(phoff)?
            .checked_add(i * usize::from(phentsize))
            .ok_or_else(truncated)?;
        if u32_at(at)? != PT_INTERP {
            continue;
        }
        // p_offset and p_filesz.
        let (offset, size) = if class64 {
            (word_at(at + 0x08)?, word_at(at + 0x20)?)
        } else {
            (word_at(at + 0x04)?, word_at(at + 0x10)?)
        };
        let start = to_usize(offset)?;
        let end = start.checked_add(to_usize(size)?).ok_or_else(truncated)?;
        let path = bytes.get(start..end).ok_or_else(truncated)?;
        let path = path.split(|&b| b == 0).next().unwrap_or_default();
        return Ok(Some(String::from_utf8_lossy(path).into_owned()));
    }
    Ok(None)
}

/// Refuses anything but a statically linked ELF executable, naming `path` and saying how to
/// build the static one.
pub fn check_static(bytes: &[u8], path: &Path) -> anyhow::Result<()> {
    match interpreter(bytes) {
        Ok(None) => Ok(()),
        Ok(Some(loader)) => Err(crate::error::invalid(format!(
            "{} is dynamically linked (it needs {loader} and the libraries of the machine it \
             was built on): booting machines may have no such libc; {}",
            path.display(),
            how_to_build()
        ))),
        Err(why) => Err(crate::error::invalid(format!(
            "{}: {why}: caas publishes a statically linked caas executable; {}",
            path.display(),
            how_to_build()
        ))),
    }
}

/// `caas assets fetch caas`, as plain options.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    /// The binary to publish.
    pub binary: PathBuf,
    /// The assets directory (the binary goes to `<dest>/caas/caas`).
    pub dest: PathBuf,
}

/// What was published.
#[derive(Debug)]
pub struct Published {
    pub dir: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub outcomes: Vec<write::Outcome>,
}

/// Publishes a static caas binary as `<dest>/caas/caas` (mode 0755) and `caas.sha256`
/// (`sha256sum` format); a dynamically linked one is refused and nothing is written.
pub fn publish(options: &PublishOptions) -> anyhow::Result<Published> {
    let bytes = fs::read(&options.binary)
        .with_context(|| format!("reading {}", options.binary.display()))?;
    check_static(&bytes, &options.binary)?;
    let sha256 = write::sha256_hex(&bytes);
    let size = bytes.len() as u64;
    let dir = options.dest.join("caas");
    let mut binary = FileWrite::new(dir.join("caas"), bytes);
    binary.mode = 0o755;
    let files = [
        binary,
        FileWrite::new(
            dir.join("caas.sha256"),
            format!("{sha256}  caas\n").into_bytes(),
        ),
    ];
    let outcomes = write::apply(&files)?;
    Ok(Published {
        dir,
        sha256,
        size,
        outcomes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 little-endian executable header with `interp` as PT_INTERP (or none).
    fn elf64(interp: Option<&str>) -> Vec<u8> {
        let mut bytes = vec![0u8; 0x40 + 2 * 0x38];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        bytes[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        bytes[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        // A PT_LOAD first.
        bytes[0x40..0x44].copy_from_slice(&1u32.to_le_bytes());
        if let Some(interp) = interp {
            let at = 0x40 + 0x38;
            let offset = bytes.len() as u64;
            bytes[at..at + 4].copy_from_slice(&PT_INTERP.to_le_bytes());
            bytes[at + 8..at + 16].copy_from_slice(&offset.to_le_bytes());
            bytes[at + 0x20..at + 0x28].copy_from_slice(&(interp.len() as u64 + 1).to_le_bytes());
            bytes.extend_from_slice(interp.as_bytes());
            bytes.push(0);
        }
        bytes
    }

    #[test]
    fn finds_the_program_interpreter() {
        assert_eq!(interpreter(&elf64(None)), Ok(None));
        assert_eq!(
            interpreter(&elf64(Some("/lib64/ld-linux-x86-64.so.2"))),
            Ok(Some("/lib64/ld-linux-x86-64.so.2".into()))
        );
        assert!(interpreter(b"#!/bin/sh\n").is_err());
        let mut cut = elf64(Some("/lib/ld-musl-x86_64.so.1"));
        cut.truncate(0x60);
        assert!(interpreter(&cut).is_err());
    }

    #[test]
    fn the_test_build_of_caas_is_dynamic_and_refused() {
        // The unit tests run from a glibc build: exactly what must not be published.
        let exe = std::env::current_exe().unwrap();
        let bytes = fs::read(&exe).unwrap();
        assert!(interpreter(&bytes).unwrap().is_some());
        let err = check_static(&bytes, &exe).unwrap_err().to_string();
        assert!(err.contains("dynamically linked"), "{err}");
        assert!(err.contains("make static"), "{err}");
    }
}
