//! `cost-tracker cost`.

use std::process::ExitCode;

/// Arguments of `cost-tracker cost`.
#[derive(Debug, clap::Args)]
pub(crate) struct CostArgs {
    /// The model (canonical name or alias).
    #[arg(long)]
    model: String,
}

pub(crate) fn run(args: CostArgs) -> ExitCode {
    eprintln!(
        "cost-tracker cost --model {}: not available in this build yet",
        args.model
    );
    ExitCode::FAILURE
}
