//! `cost-tracker`: the costlayer command line.
//!
//! Every command reads the same configuration: flags, then the `COSTLAYER_*`
//! environment variables, then `costlayer.toml`, then defaults.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cost;
mod models;

/// Know what your LLM calls cost: dashboard, exports, budgets and prices.
#[derive(Debug, Parser)]
#[command(name = "cost-tracker", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Price a usage on a model: breakdown by bucket and exact total.
    Cost(cost::CostArgs),
    /// List the price table: provider, model, rates per million tokens.
    Models(models::ModelsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Cost(args)) => cost::run(args),
        Some(Command::Models(args)) => models::run(args),
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            ExitCode::from(2)
        }
    }
}
