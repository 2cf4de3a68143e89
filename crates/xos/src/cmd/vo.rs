//! `xos login`, `whoami`, `token`, `user`, `vo`, `site serve|bundle|trust`,
//! `policy`, `node accounts` and `audit`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context as _, bail};
use xtreem_client::{Profile, VoClient};
use xtreem_proto::vo as pb;
use xtreem_util::time::unix_now;

use super::Context;
use crate::cli::{
    AuditCommand, LoginArgs, PolicyCommand, SiteCommand, TokenCommand, UserCommand, VoCommand,
};
use crate::output::{json, table, until};

/// Environment variable with a password, for scripts.
const PASSWORD_ENV: &str = "XOS_PASSWORD";

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(p);
    }
    let stdin = std::io::stdin();
    if !from_stdin && stdin.is_terminal() {
        eprint!("Password: ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("no password given: use --password-stdin, ${PASSWORD_ENV}, or type it at the prompt");
    }
    Ok(password)
}

fn default_user(user: Option<String>) -> anyhow::Result<String> {
    user.or_else(|| std::env::var("USER").ok())
        .context("no user name: pass --user")
}

impl Context {
    fn profile(&self) -> anyhow::Result<Profile> {
        Ok(Profile::load(&self.config_dir)?)
    }

    fn endpoint_of(&self, profile: &Profile) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| profile.endpoint.clone())
    }

    /// A VO client: with the admin certificate if the profile has one and
    /// no VO credential is asked for, else with the user's credential.
    fn vo_client(&self, vo: Option<&str>) -> anyhow::Result<VoClient> {
        let profile = self.profile()?;
        let endpoint = self.endpoint_of(&profile);
        let token = profile.token(vo);
        let as_admin =
            profile.admin.is_some() && (token.is_none() || vo.is_none() && profile.vo.is_empty());
        if !as_admin && token.is_none() {
            bail!(xtreem_client::ClientError::NoCredentials {
                dir: self.config_dir.display().to_string(),
                hint: format!(
                    "no credential for {}; run `xos login`",
                    vo.unwrap_or("any VO")
                ),
            });
        }
        Ok(VoClient::connect(
            &profile,
            &endpoint,
            as_admin,
            if as_admin { None } else { token },
        )?)
    }

    /// A client that authenticates with the admin certificate only.
    fn admin_vo_client(&self) -> anyhow::Result<VoClient> {
        let profile = self.profile()?;
        if profile.admin.is_none() {
            bail!(xtreem_client::ClientError::NoCredentials {
                dir: self.config_dir.display().to_string(),
                hint: "this needs site administrator credentials (`xos site init` or `xos site admin-credentials`)".into(),
            });
        }
        let endpoint = self.endpoint_of(&profile);
        Ok(VoClient::connect(&profile, &endpoint, true, None)?)
    }
}

/// The user's profile, created on a first command from --endpoint and --ca.
fn profile_or_create(ctx: &Context, ca: Option<&std::path::Path>) -> anyhow::Result<Profile> {
    match Profile::load(&ctx.config_dir) {
        Ok(p) => Ok(p),
        Err(_) => {
            let endpoint = ctx.endpoint.clone().context(
                "first use: give --endpoint HOST:PORT of a core node and --ca SITE-CA.crt",
            )?;
            let ca_path =
                ca.context("first use: give --ca SITE-CA.crt (from your site administrator)")?;
            let ca = std::fs::read_to_string(ca_path)
                .with_context(|| format!("cannot read {}", ca_path.display()))?;
            Ok(Profile::create(&ctx.config_dir, "", &endpoint, &ca)?)
        }
    }
}

pub async fn login(ctx: &Context, args: LoginArgs) -> anyhow::Result<()> {
    let mut profile = profile_or_create(ctx, args.ca.as_deref())?;
    let user = default_user(args.user)?;
    let password = read_password(args.password_stdin)?;
    let endpoint = ctx.endpoint_of(&profile);
    let mut client = VoClient::connect(&profile, &endpoint, false, None)?;
    let r = client
        .login(pb::LoginRequest {
            user: user.clone(),
            password,
            vo: args.vo.unwrap_or_default(),
            ttl_seconds: args.ttl.as_secs(),
        })
        .await?;
    profile.save_token(&r.vo, &r.token)?;
    if ctx.json {
        return json(
            &serde_json::json!({ "user": user, "vo": r.vo, "expires_unix": r.expires_unix }),
        );
    }
    println!(
        "logged in as {user} in VO {}; credential valid {}",
        r.vo,
        until(r.expires_unix, unix_now())
    );
    Ok(())
}

pub fn logout(ctx: &Context, vo: Option<String>) -> anyhow::Result<()> {
    let profile = ctx.profile()?;
    let vo = vo.unwrap_or(profile.vo.clone());
    profile.forget_token(&vo)?;
    println!("credential of VO {vo} removed");
    Ok(())
}

pub async fn whoami(ctx: &Context, vo: Option<String>) -> anyhow::Result<()> {
    let profile = ctx.profile()?;
    let token = profile
        .token(vo.as_deref())
        .context("not logged in: run `xos login`")?;
    let endpoint = ctx.endpoint_of(&profile);
    let mut client = VoClient::connect(&profile, &endpoint, false, Some(token))?;
    let w = client.whoami(pb::WhoamiRequest {}).await?;
    if ctx.json {
        return json(&serde_json::json!({
            "subject": w.subject, "issuer": w.issuer, "vo": w.vo, "groups": w.groups, "roles": w.roles,
            "scope": w.scope, "expires_unix": w.expires_unix, "actors": w.actors, "node": w.node,
            "uid": (w.uid >= 0).then_some(w.uid), "gid": (w.gid >= 0).then_some(w.gid),
            "local_user": w.local_user, "account_note": w.account_note,
        }));
    }
    println!("user      {}", w.subject);
    println!("vo        {}  (issuer {})", w.vo, w.issuer);
    println!("groups    {}", w.groups.join(" "));
    println!("roles     {}", w.roles.join(" "));
    println!("scopes    {}", w.scope);
    println!("expires   {}", until(w.expires_unix, unix_now()));
    if !w.actors.is_empty() {
        println!("actors    {}", w.actors.join(" <- "));
    }
    if w.uid >= 0 {
        println!(
            "account   uid {} gid {} ({}) on {}",
            w.uid, w.gid, w.local_user, w.node
        );
    } else if !w.account_note.is_empty() {
        println!("account   none on {}: {}", w.node, w.account_note);
    }
    Ok(())
}

pub async fn token(ctx: &Context, command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Delegate {
        scopes,
        ttl,
        audience,
        actor,
        vo,
    } = command;
    let scopes: Vec<String> = scopes
        .iter()
        .flat_map(|s| s.split_whitespace().map(str::to_owned))
        .collect();
    let mut client = ctx.vo_client(Some(&vo.unwrap_or(ctx.profile()?.vo)))?;
    let r = client
        .delegate(pb::DelegateRequest {
            scopes,
            ttl_seconds: ttl.as_secs(),
            audience: audience.unwrap_or_default(),
            actor: actor.unwrap_or_default(),
        })
        .await?;
    if ctx.json {
        return json(&serde_json::json!({ "token": r.token, "expires_unix": r.expires_unix }));
    }
    println!("{}", r.token);
    Ok(())
}

pub async fn user(ctx: &Context, command: UserCommand) -> anyhow::Result<()> {
    let UserCommand::Add {
        name,
        password_stdin,
    } = command;
    let password = read_password(password_stdin)?;
    ctx.admin_vo_client()?
        .add_user(pb::AddUserRequest {
            name: name.clone(),
            password,
        })
        .await?;
    println!("user {name} added");
    Ok(())
}

fn print_vo(ctx: &Context, vo: &pb::VoInfo) -> anyhow::Result<()> {
    if ctx.json {
        return json(&serde_json::json!({
            "name": vo.name, "issuer": vo.issuer, "state": vo.state, "groups": vo.groups,
            "keys": vo.keys.iter().map(|k| serde_json::json!({"kid": k.kid, "state": k.state})).collect::<Vec<_>>(),
        }));
    }
    println!("vo        {} ({})", vo.name, vo.state);
    println!("issuer    {}", vo.issuer);
    println!("groups    {}", vo.groups.join(" "));
    for k in &vo.keys {
        println!("key       {} {}", k.kid, k.state);
    }
    Ok(())
}

fn print_member(ctx: &Context, m: &pb::MemberInfo) -> anyhow::Result<()> {
    if ctx.json {
        return json(
            &serde_json::json!({ "vo": m.vo, "user": m.user, "state": m.state, "roles": m.roles }),
        );
    }
    println!(
        "{} in VO {}: {} {}",
        m.user,
        m.vo,
        m.state,
        m.roles.join(" ")
    );
    Ok(())
}

pub async fn vo(ctx: &Context, command: VoCommand) -> anyhow::Result<()> {
    match command {
        VoCommand::Create { name, admin } => {
            let vo = ctx
                .admin_vo_client()?
                .create_vo(pb::CreateVoRequest {
                    name,
                    first_admin: admin.unwrap_or_default(),
                })
                .await?;
            print_vo(ctx, &vo)
        }
        VoCommand::Delete { name } => {
            ctx.vo_client(Some(&name))?
                .delete_vo(pb::VoName { name: name.clone() })
                .await?;
            println!("VO {name} deleted");
            Ok(())
        }
        VoCommand::Suspend { name } => {
            let vo = ctx
                .vo_client(Some(&name))?
                .set_vo_state(pb::SetVoStateRequest {
                    name,
                    suspended: true,
                })
                .await?;
            print_vo(ctx, &vo)
        }
        VoCommand::Resume { name } => {
            let vo = ctx
                .vo_client(Some(&name))?
                .set_vo_state(pb::SetVoStateRequest {
                    name,
                    suspended: false,
                })
                .await?;
            print_vo(ctx, &vo)
        }
        VoCommand::List => {
            let list = ctx.vo_client(None)?.list_vos(pb::Empty {}).await?;
            if ctx.json {
                let vos: Vec<_> = list.vos.iter().map(|v| serde_json::json!({"name": v.name, "state": v.state, "issuer": v.issuer, "groups": v.groups})).collect();
                return json(&vos);
            }
            let rows: Vec<Vec<String>> = list
                .vos
                .iter()
                .map(|v| {
                    vec![
                        v.name.clone(),
                        v.state.clone(),
                        v.groups.len().to_string(),
                        v.issuer.clone(),
                    ]
                })
                .collect();
            table(&["VO", "STATE", "GROUPS", "ISSUER"], &rows);
            Ok(())
        }
        VoCommand::Show { name } => {
            let detail = ctx
                .vo_client(Some(&name))?
                .show_vo(pb::VoName { name })
                .await?;
            if let Some(vo) = &detail.vo {
                print_vo(ctx, vo)?;
            }
            if !ctx.json {
                let rows: Vec<Vec<String>> = detail
                    .members
                    .iter()
                    .map(|m| vec![m.user.clone(), m.state.clone(), m.roles.join(" ")])
                    .collect();
                table(&["MEMBER", "STATE", "ROLES"], &rows);
            }
            Ok(())
        }
        VoCommand::Group { path } => {
            let vo_name = path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let vo = ctx
                .vo_client(Some(&vo_name))?
                .create_group(pb::CreateGroupRequest {
                    vo: vo_name.clone(),
                    path,
                })
                .await?;
            print_vo(ctx, &vo)
        }
        VoCommand::Join {
            vo,
            user,
            password_stdin,
            ca,
        } => {
            let profile = profile_or_create(ctx, ca.as_deref())?;
            let user = default_user(user)?;
            let password = read_password(password_stdin)?;
            let endpoint = ctx.endpoint_of(&profile);
            let m = VoClient::connect(&profile, &endpoint, false, None)?
                .request_join(pb::RequestJoinRequest { vo, user, password })
                .await?;
            print_member(ctx, &m)
        }
        VoCommand::Approve { vo, user } => {
            let m = ctx
                .vo_client(Some(&vo))?
                .decide(pb::DecideRequest {
                    vo,
                    user,
                    approve: true,
                })
                .await?;
            print_member(ctx, &m)
        }
        VoCommand::Reject { vo, user } => {
            let m = ctx
                .vo_client(Some(&vo))?
                .decide(pb::DecideRequest {
                    vo,
                    user,
                    approve: false,
                })
                .await?;
            print_member(ctx, &m)
        }
        VoCommand::Remove { vo, user } => {
            let m = ctx
                .vo_client(Some(&vo))?
                .remove_member(pb::MemberName { vo, user })
                .await?;
            print_member(ctx, &m)
        }
        VoCommand::Grant {
            vo,
            user,
            role,
            group,
        } => {
            let group = group.unwrap_or(format!("/{vo}"));
            let m = ctx
                .vo_client(Some(&vo))?
                .grant_role(pb::RoleRequest {
                    vo,
                    user,
                    group,
                    role,
                })
                .await?;
            print_member(ctx, &m)
        }
        VoCommand::Revoke {
            vo,
            user,
            role,
            group,
        } => {
            let group = group.unwrap_or(format!("/{vo}"));
            let m = ctx
                .vo_client(Some(&vo))?
                .revoke_role(pb::RoleRequest {
                    vo,
                    user,
                    group,
                    role,
                })
                .await?;
            print_member(ctx, &m)
        }
        VoCommand::RotateKey { vo, activate } => {
            let info = ctx
                .vo_client(Some(&vo))?
                .rotate_key(pb::RotateKeyRequest { vo, activate })
                .await?;
            print_vo(ctx, &info)
        }
        VoCommand::WithdrawKey { vo, kid } => {
            let info = ctx
                .vo_client(Some(&vo))?
                .withdraw_key(pb::WithdrawKeyRequest { vo, kid })
                .await?;
            print_vo(ctx, &info)
        }
    }
}

pub async fn site(ctx: &Context, command: SiteCommand) -> anyhow::Result<()> {
    let mut client = ctx.admin_vo_client()?;
    match command {
        SiteCommand::Serve {
            vo,
            nodes,
            max_cores,
            stop,
        } => {
            client
                .serve_vo(pb::ServeVoRequest {
                    vo: vo.clone(),
                    nodes: nodes.clone(),
                    max_cores,
                    stop,
                })
                .await?;
            if stop {
                println!("the site no longer serves VO {vo}");
            } else if nodes.is_empty() {
                println!("the site serves VO {vo} on all its nodes");
            } else {
                println!("the site serves VO {vo} on {}", nodes.join(", "));
            }
        }
        SiteCommand::Bundle => println!("{}", client.site_bundle(pb::Empty {}).await?.bundle),
        SiteCommand::Trust { bundle } => {
            let text = std::fs::read_to_string(&bundle)
                .with_context(|| format!("cannot read {}", bundle.display()))?;
            client
                .trust_site(pb::TrustSiteRequest { bundle: text })
                .await?;
            println!("trusted the site in {}", bundle.display());
        }
        SiteCommand::Init { .. } | SiteCommand::AdminCredentials { .. } => {}
    }
    Ok(())
}

pub async fn policy(ctx: &Context, command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Set { level, name, file } => {
            let text = if file.as_os_str() == "-" {
                let mut t = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)?;
                t
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let vo = (level == "vo").then(|| name.clone()).flatten();
            let mut client =
                if level == "vo" && vo.is_some() && ctx.profile()?.token(vo.as_deref()).is_some() {
                    ctx.vo_client(vo.as_deref())?
                } else {
                    ctx.vo_client(None)?
                };
            client
                .set_policy(pb::SetPolicyRequest {
                    level: Some(pb::PolicyLevel {
                        level: level.clone(),
                        name: name.unwrap_or_default(),
                    }),
                    text,
                })
                .await?;
            println!("{level} policy set");
        }
        PolicyCommand::Show { level, name } => {
            let p = ctx
                .vo_client(None)?
                .show_policy(pb::PolicyLevel {
                    level,
                    name: name.unwrap_or_default(),
                })
                .await?;
            println!("{}", p.text);
        }
        PolicyCommand::Test {
            user,
            vo,
            action,
            node,
        } => {
            let r = ctx
                .vo_client(None)?
                .test_policy(pb::TestPolicyRequest {
                    user,
                    vo,
                    groups: Vec::new(),
                    action,
                    node,
                })
                .await?;
            if ctx.json {
                return json(
                    &serde_json::json!({ "allowed": r.allowed, "reasons": r.reasons, "errors": r.errors }),
                );
            }
            println!("{}", if r.allowed { "ALLOW" } else { "DENY" });
            for reason in &r.reasons {
                println!("  by {reason}");
            }
            for error in &r.errors {
                println!("  error: {error}");
            }
        }
    }
    Ok(())
}

pub async fn accounts(ctx: &Context) -> anyhow::Result<()> {
    let r = ctx.admin_vo_client()?.list_accounts(pb::Empty {}).await?;
    if ctx.json {
        let rows: Vec<_> = r
            .accounts
            .iter()
            .map(|a| serde_json::json!({"uid": a.uid, "gid": a.gid, "local_user": a.local_user, "vo": a.vo, "subject": a.subject, "issuer": a.issuer, "leased_unix": a.leased_unix, "last_used_unix": a.last_used_unix}))
            .collect();
        return json(&serde_json::json!({ "node": r.node, "accounts": rows }));
    }
    let rows: Vec<Vec<String>> = r
        .accounts
        .iter()
        .map(|a| {
            vec![
                a.uid.to_string(),
                a.gid.to_string(),
                a.local_user.clone(),
                a.vo.clone(),
                a.subject.clone(),
                if a.leased_unix > 0 {
                    "leased".into()
                } else {
                    "quarantined".into()
                },
            ]
        })
        .collect();
    table(
        &["UID", "GID", "LOCAL USER", "VO", "SUBJECT", "STATE"],
        &rows,
    );
    println!("node {}", r.node);
    Ok(())
}

pub async fn audit(ctx: &Context, command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Verify { file } = command;
    let (records, broken, place) = match file {
        Some(path) => {
            let report = xtreem_audit::verify(&path)?;
            (
                report.records,
                report.first_broken.map(|b| b.to_string()),
                path.display().to_string(),
            )
        }
        None => {
            let r = ctx.admin_vo_client()?.audit_verify(pb::Empty {}).await?;
            (
                r.records,
                (!r.intact).then_some(r.first_broken),
                format!("{} on {}", r.path, r.node),
            )
        }
    };
    if ctx.json {
        json(
            &serde_json::json!({ "log": place, "records": records, "intact": broken.is_none(), "first_broken": broken }),
        )?;
    } else if let Some(b) = &broken {
        println!("{place}: BROKEN after {records} good records: {b}");
    } else {
        println!("{place}: intact, {records} records");
    }
    if broken.is_some() {
        bail!("the audit log's hash chain is broken");
    }
    Ok(())
}
