//! OS boot assets under `<data-dir>/assets/<os>/<version>/`: what a published release holds.

pub mod manifest;
