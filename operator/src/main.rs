//! The `sns-operator` binary.

use clap::Parser;
use sns_operator::config::{Cli, Command};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Render { file } => {
            print!("{}", sns_operator::render::render_file(&file)?);
        }
    }
    Ok(())
}
