//! What each command does. Logic lives in the library crates; these
//! functions call them and print.

mod bench;
mod bench_directory;
mod bench_jobs;
mod bench_sim;
mod demo;
mod directory;
mod jobs;
mod node;
mod site;
mod vo;

use std::path::PathBuf;

use xtreem_client::{Client, Credentials};

use crate::cli::{Cli, Command};

/// Options every command may use.
pub struct Context {
    pub json: bool,
    pub endpoint: Option<String>,
    pub config_dir: PathBuf,
}

impl Context {
    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        Ok(Credentials::load(&self.config_dir)?)
    }

    /// How a user-facing service is called: the profile, the endpoint, and
    /// the user's VO credential if there is one, else the site administrator
    /// certificate (`as_admin`).
    pub fn user_or_admin(
        &self,
        vo: Option<&str>,
    ) -> anyhow::Result<(xtreem_client::Profile, String, bool, Option<String>)> {
        let profile = xtreem_client::Profile::load(&self.config_dir)?;
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| profile.endpoint.clone());
        let token = profile.token(vo);
        let as_admin = token.is_none() && profile.admin.is_some();
        if !as_admin && token.is_none() {
            anyhow::bail!(xtreem_client::ClientError::NoCredentials {
                dir: self.config_dir.display().to_string(),
                hint: format!(
                    "no credential for {}; run `xos login`",
                    vo.unwrap_or("any VO")
                ),
            });
        }
        Ok((profile, endpoint, as_admin, token))
    }

    /// A client for --endpoint, or for the endpoint saved with the credentials.
    pub fn client(&self) -> anyhow::Result<Client> {
        let credentials = self.credentials()?;
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| credentials.endpoint.clone());
        Ok(Client::connect(&endpoint, &credentials)?)
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Context {
        json: cli.json,
        endpoint: cli.endpoint,
        config_dir: cli.config_dir.unwrap_or_else(xtreem_client::config_dir),
    };
    match cli.command {
        Command::Site(c) => site::run(&ctx, c).await,
        Command::Node(c) => node::run(&ctx, c).await,
        Command::Nodes(args) => directory::nodes(&ctx, args).await,
        Command::Services { kind } => directory::services(&ctx, kind).await,
        Command::Demo(args) => demo::run(&ctx, args).await,
        Command::Bench(c) => bench::run(&ctx, c).await,
        Command::Login(args) => vo::login(&ctx, args).await,
        Command::Logout { vo: v } => vo::logout(&ctx, v),
        Command::Whoami { vo: v } => vo::whoami(&ctx, v).await,
        Command::Token(c) => vo::token(&ctx, c).await,
        Command::User(c) => vo::user(&ctx, c).await,
        Command::Vo(c) => vo::vo(&ctx, c).await,
        Command::Policy(c) => vo::policy(&ctx, c).await,
        Command::Audit(c) => vo::audit(&ctx, c).await,
        Command::Submit(args) => jobs::submit(&ctx, args).await,
        Command::Ps(args) => jobs::ps(&ctx, args).await,
        Command::Status { job, vo: v } => jobs::status(&ctx, &job, v).await,
        Command::Kill(args) => jobs::kill(&ctx, args).await,
        Command::Hold { job, vo: v } => jobs::hold(&ctx, &job, v, true).await,
        Command::Release { job, vo: v } => jobs::hold(&ctx, &job, v, false).await,
        Command::Wait { jobs: ids, vo: v } => jobs::wait(&ctx, &ids, v).await,
        Command::Logs {
            job,
            follow,
            stderr,
            vo: v,
        } => jobs::logs(&ctx, &job, follow, stderr, v).await,
        Command::Acct(args) => jobs::acct(&ctx, args).await,
        Command::Reserve(args) => jobs::reserve(&ctx, args).await,
        Command::Reservations { vo: v } => jobs::reservations(&ctx, v).await,
        Command::Unreserve { id, vo: v } => jobs::unreserve(&ctx, &id, v).await,
        Command::Checkpoint { job, vo: v } => jobs::checkpoint(&ctx, &job, None, v).await,
        Command::Migrate { job, to, vo: v } => jobs::checkpoint(&ctx, &job, Some(to), v).await,
    }
}
