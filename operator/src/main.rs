//! The `sns-operator` binary.

use clap::{CommandFactory, Parser};
use sns_operator::config::Cli;

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    // The reconciler arrives with the SnsCluster resource; until then the binary documents
    // its command line.
    Cli::command().print_help()?;
    Ok(())
}
