//! `write::apply` stages any number of files: temp files are closed once written, so a batch far
//! larger than the open-file limit (a 10,000-machine tree is 30,000 files) still goes through.
//! Its own test binary, because it lowers the process's open-file limit.

use std::fs;

use caas::write::{Action, FileWrite, apply};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

#[test]
fn more_files_than_open_file_descriptors() {
    let limit = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(64),
            maximum: limit.maximum,
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<FileWrite> = (0..300)
        .map(|i| {
            FileWrite::new(
                dir.path().join(format!("groups/node{i}.json")),
                format!("{{\"id\": \"node{i}\"}}\n").into_bytes(),
            )
        })
        .collect();
    let outcomes = apply(&files).unwrap();
    assert!(outcomes.iter().all(|o| o.action == Action::Created));
    for file in &files {
        assert_eq!(fs::read(&file.path).unwrap(), file.bytes);
    }
    let leftovers = fs::read_dir(dir.path().join("groups"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(leftovers, 0, "no temp file is left behind");
}
