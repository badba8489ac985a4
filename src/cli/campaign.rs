//! `cartback campaign …`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::{Cli, Failure, settings};
use crate::campaign::CampaignSet;
use crate::render::Renderer;

/// Campaign subcommands.
#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Validate campaign files (default: every file in campaigns_dir); errors as file:line:col.
    Check {
        /// Files to check.
        files: Vec<PathBuf>,
    },
}

pub async fn run(cli: &Cli, cmd: &CampaignCommand) -> Result<(), Failure> {
    let s = settings(cli)?;
    match cmd {
        CampaignCommand::Check { files } => {
            let renderer = Renderer::load(&s.templates_dir)
                .with_context(|| format!("loading templates from {}", s.templates_dir.display()))
                .map_err(Failure::User)?;
            let exists = |name: &str, ch| renderer.has("en", name, ch);
            let result = if files.is_empty() {
                CampaignSet::load_dir(&s.campaigns_dir, &exists)
            } else {
                CampaignSet::load_files(files, &exists)
            };
            match result {
                Ok(set) => {
                    for name in set.names() {
                        println!("ok: {name}");
                    }
                    Ok(())
                }
                Err(errors) => {
                    for e in &errors.0 {
                        eprintln!("{e}\n");
                    }
                    Err(Failure::User(anyhow::anyhow!("{} problem(s) in campaign files", errors.0.len())))
                }
            }
        }
    }
}
