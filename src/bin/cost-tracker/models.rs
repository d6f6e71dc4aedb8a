//! `cost-tracker models`.

use std::process::ExitCode;

/// Arguments of `cost-tracker models`.
#[derive(Debug, clap::Args)]
pub(crate) struct ModelsArgs {}

pub(crate) fn run(_args: ModelsArgs) -> ExitCode {
    eprintln!("cost-tracker models: not available in this build yet");
    ExitCode::FAILURE
}
