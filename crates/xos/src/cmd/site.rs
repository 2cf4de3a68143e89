//! `xos site ...`

use xtreem_client::local;

use super::Context;
use crate::cli::SiteCommand;

pub async fn run(ctx: &Context, command: SiteCommand) -> anyhow::Result<()> {
    let (credentials, created) = match &command {
        SiteCommand::Init { name, local, admin } => {
            (local::init_site(&local.path(), name, admin).await?, true)
        }
        SiteCommand::AdminCredentials { local, admin } => {
            (local::issue_admin(&local.path(), admin).await?, false)
        }
        SiteCommand::Serve { .. } | SiteCommand::Bundle | SiteCommand::Trust { .. } => {
            return super::vo::site(ctx, command).await;
        }
    };
    credentials.save(&ctx.config_dir)?;
    if ctx.json {
        return crate::output::json(&serde_json::json!({
            "site": credentials.site,
            "endpoint": credentials.endpoint,
            "config_dir": ctx.config_dir,
        }));
    }
    if created {
        println!("site {} created; this node holds its CA", credentials.site);
    }
    println!(
        "administrator credentials saved in {} (key mode 0600); endpoint {}",
        ctx.config_dir.display(),
        credentials.endpoint
    );
    if created {
        println!("next: `xos node join-token` for each node that joins");
    }
    Ok(())
}
