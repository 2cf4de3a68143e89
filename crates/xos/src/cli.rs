//! The command line of `xos`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit::HELP;

/// Xtreem: one Linux machine made of many, across sites and Virtual Organizations.
#[derive(Parser)]
#[command(name = "xos", version, about, after_help = HELP)]
pub struct Cli {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Node to talk to (HOST:PORT); default: the one saved by `xos site init`.
    #[arg(long, global = true, env = "XOS_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Directory of the administrator credentials.
    #[arg(long, global = true, env = "XOS_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Sites: create one and its certificate authority.
    #[command(subcommand)]
    Site(SiteCommand),
    /// Nodes: join tokens, listing, removal, probing.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Find nodes with a directory query (your VO's nodes, across trusted sites).
    #[command(
        after_help = "Query language: comparisons (== != < <= > >=), `in [a,b]`, `tag:NAME`, `label:KEY==VALUE`,\n`vo:NAME`, `service:KIND`, `role:NAME`, joined with && || ! and parentheses; then `sort [-]ATTR` and `limit N`.\nAttributes: cores mem disk free_cores free_mem free_disk load jobs name site arch os kernel state.\n\nExample:\n  xos nodes\n  xos nodes 'cores>=4 && mem>=8GiB && arch==x86_64 && site in [a,b] && tag:gpu' --sort -load --limit 5\n  xos nodes 'free_cores>=2 sort -free_cores limit 3' --json"
    )]
    Nodes(NodesArgs),
    /// Look up services (vo, site-ca, directory, execution...) in the directory.
    #[command(after_help = "Example:\n  xos services\n  xos services vo")]
    Services {
        /// Kind of service (all kinds if omitted).
        kind: Option<String>,
    },
    /// Start a local grid of xosd processes on 127.0.0.1 and show what it does.
    #[command(
        after_help = "Example:\n  xos demo            # start, show, stop (about a minute)\n  xos demo --keep     # leave the grid running and print how to use it"
    )]
    Demo(DemoArgs),
    /// Measure the system; prints `name: value unit` lines.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Sign in once: get a VO credential (saved mode 0600) that every node verifies.
    #[command(
        after_help = "Example:\n  xos login --user alice --vo demo --endpoint 10.0.0.1:7100 --ca lab-ca.crt\n  echo \"$PW\" | xos login --user alice --password-stdin"
    )]
    Login(LoginArgs),
    /// Forget the saved credential of a VO.
    #[command(after_help = "Example:\n  xos logout --vo demo")]
    Logout {
        #[arg(long)]
        vo: Option<String>,
    },
    /// Show your identity, VO, groups, scopes, expiry, and your account on the node asked.
    #[command(
        after_help = "Example:\n  xos whoami\n  xos whoami --endpoint 10.0.0.7:7100   # and your local uid there"
    )]
    Whoami {
        #[arg(long)]
        vo: Option<String>,
    },
    /// Credentials: delegation.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Local user accounts of the VO service (site administrators).
    #[command(subcommand)]
    User(UserCommand),
    /// Virtual Organizations: lifecycle, groups, membership, roles, keys.
    #[command(subcommand)]
    Vo(VoCommand),
    /// Policies at VO, site and user level (Cedar).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The audit log of a node.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Submit a job (TOML, JSON or JSDL description); prints its id. Also `xsub`.
    #[command(
        after_help = "Example:\n  xos submit job.toml\n  xos submit --array 1-100 job.toml\n  echo 'executable = \"/bin/hostname\"' | xos submit -\n\nA description (TOML):\n  name = \"sim\"\n  executable = \"/usr/bin/python3\"\n  args = [\"run.py\"]\n  count = 4\n  constraints = \"cores>=2 && arch==x86_64\"\n  [resources]\n  cores = 2\n  memory = \"2GiB\"\n  walltime = \"1h\""
    )]
    Submit(SubmitArgs),
    /// Your jobs across the site: state, nodes, runtime, CPU. Also `xps`.
    #[command(after_help = "Example:\n  xps\n  xps -a --state running\n  xos ps --json")]
    Ps(PsArgs),
    /// One job: units, nodes, exit, and the timeline of its placement and events.
    #[command(after_help = "Example:\n  xos status n1.42")]
    Status {
        job: String,
        #[arg(long)]
        vo: Option<String>,
    },
    /// Send a signal to jobs (TERM by default; STOP and CONT suspend and resume). Also `xkill`.
    #[command(
        after_help = "Example:\n  xkill n1.42\n  xkill -s STOP n1.42\n  xkill -s USR1 n1.42 n1.43"
    )]
    Kill(KillArgs),
    /// Keep a queued job from starting.
    #[command(after_help = "Example:\n  xos hold n1.42")]
    Hold {
        job: String,
        #[arg(long)]
        vo: Option<String>,
    },
    /// Let a held job start.
    #[command(after_help = "Example:\n  xos release n1.42")]
    Release {
        job: String,
        #[arg(long)]
        vo: Option<String>,
    },
    /// Wait until jobs end; exits with the exit code of the first job that failed (else 0). Also `xwait`.
    #[command(after_help = "Example:\n  xwait n1.42 && echo ok")]
    Wait {
        #[arg(required = true)]
        jobs: Vec<String>,
        #[arg(long)]
        vo: Option<String>,
    },
    /// A unit's output: `JOB` (unit 0) or `JOB.UNIT`.
    #[command(
        after_help = "Example:\n  xos logs n1.42\n  xos logs -f n1.42.3\n  xos logs --stderr n1.42"
    )]
    Logs {
        job: String,
        /// Keep printing until the unit ends.
        #[arg(short, long)]
        follow: bool,
        #[arg(long)]
        stderr: bool,
        #[arg(long)]
        vo: Option<String>,
    },
    /// Ask a self-checkpointing job to save its files and restart from them.
    #[command(
        after_help = "The job declares how in its description:\n  [checkpoint]\n  signal = \"USR1\"      # asks the job to checkpoint\n  exit_code = 85       # the job exits with it once its files are saved\n  files = [\"state.dat\"]\n\nExample:\n  xos checkpoint n1.42"
    )]
    Checkpoint {
        job: String,
        #[arg(long)]
        vo: Option<String>,
    },
    /// Checkpoint a job and restart it on a node matching a directory query.
    #[command(
        after_help = "Example:\n  xos migrate n1.42 --to 'name == node-3'\n  xos migrate n1.42 --to 'tag:gpu && free_cores>=4'"
    )]
    Migrate {
        job: String,
        /// Where to: a directory query (see `xos nodes --help`).
        #[arg(long)]
        to: String,
        #[arg(long)]
        vo: Option<String>,
    },
    /// Reserve nodes for a time window; jobs with `reservation = "ID"` run inside it.
    #[command(
        after_help = "Example:\n  xos reserve --nodes 2 --cores 1 --duration 1h\n  xos reserve --nodes 4 --cores 8 --memory 16GiB --start 2026-12-01T08:00:00Z --duration 8h --exclusive\n  xos reserve --nodes 1 --cores 2 --duration 30m --query 'tag:gpu'"
    )]
    Reserve(ReserveArgs),
    /// Your reservations held by the node asked.
    #[command(after_help = "Example:\n  xos reservations")]
    Reservations {
        #[arg(long)]
        vo: Option<String>,
    },
    /// Cancel a reservation and free its nodes.
    #[command(after_help = "Example:\n  xos unreserve r-node-1.3")]
    Unreserve {
        id: String,
        #[arg(long)]
        vo: Option<String>,
    },
    /// Usage summed per user and VO: CPU, wall time, peak memory, I/O.
    #[command(
        after_help = "Example:\n  xos acct\n  xos acct --vo demo --since 24h\n  xos acct --user alice --since 2026-11-01T00:00:00Z"
    )]
    Acct(AcctArgs),
}

#[derive(Args)]
pub struct SubmitArgs {
    /// The description file, or - for standard input.
    pub file: std::path::PathBuf,
    /// Run an array of jobs: `1-100`, `1-100:10` (step), `5`.
    #[arg(long)]
    pub array: Option<String>,
    /// Keep it from starting until `xos release`.
    #[arg(long)]
    pub hold: bool,
    /// Submit with the credential of this VO (default: your only one).
    #[arg(long)]
    pub vo: Option<String>,
}

#[derive(Args)]
pub struct PsArgs {
    /// Every job you may see (VO admins: the VO's; site admins: the site's).
    #[arg(short, long)]
    pub all: bool,
    /// Only jobs in these states (queued, held, running, suspended, done, failed, cancelled).
    #[arg(long, value_delimiter = ',')]
    pub state: Vec<String>,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub vo: Option<String>,
}

#[derive(Args)]
pub struct KillArgs {
    /// Signal name (TERM, KILL, INT, HUP, USR1, USR2, STOP, CONT) or number.
    #[arg(short, long, default_value = "TERM")]
    pub signal: String,
    #[arg(required = true)]
    pub jobs: Vec<String>,
    #[arg(long)]
    pub vo: Option<String>,
}

#[derive(Args)]
pub struct ReserveArgs {
    #[arg(long)]
    pub nodes: u32,
    /// Cores on each node.
    #[arg(long)]
    pub cores: u32,
    /// Memory on each node (e.g. 4GiB).
    #[arg(long, default_value = "256MiB")]
    pub memory: String,
    /// How long, e.g. 30m, 8h.
    #[arg(long)]
    pub duration: String,
    /// When it starts (RFC 3339); now if omitted.
    #[arg(long)]
    pub start: Option<String>,
    /// No other job may use the nodes meanwhile.
    #[arg(long)]
    pub exclusive: bool,
    /// A directory query the nodes must match.
    #[arg(long)]
    pub query: Option<String>,
    #[arg(long)]
    pub vo: Option<String>,
}

#[derive(Args)]
pub struct AcctArgs {
    #[arg(long)]
    pub vo: Option<String>,
    #[arg(long)]
    pub user: Option<String>,
    /// A time (RFC 3339) or how long ago (`24h`, `7d`).
    #[arg(long)]
    pub since: Option<String>,
}

#[derive(Args)]
pub struct NodesArgs {
    /// The query (all nodes you may see if omitted).
    pub query: Option<String>,
    /// Sort keys, e.g. `-load` or `cores,-free_mem` (added after the query's own).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub sort: Vec<String>,
    /// At most this many nodes.
    #[arg(long)]
    pub limit: Option<u32>,
    /// Ask with the credential of this VO (default: your only one).
    #[arg(long)]
    pub vo: Option<String>,
    /// Only the site of the node asked; do not forward to other sites.
    #[arg(long)]
    pub local: bool,
}

#[derive(Args)]
pub struct LoginArgs {
    /// User name (default: $USER).
    #[arg(long)]
    pub user: Option<String>,
    /// VO to log in to (default: your only VO).
    #[arg(long)]
    pub vo: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Lifetime of the credential.
    #[arg(long, default_value = "12h", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,
    /// The site CA certificate, on first login (saved in the config dir).
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Exchange your credential for a narrower one: fewer scopes, shorter life, one audience.
    #[command(
        after_help = "Example:\n  xos token delegate --scope compute.read --ttl 10m --audience xtreem:lab --actor node-2"
    )]
    Delegate {
        /// Scopes to keep (repeat or separate with spaces).
        #[arg(long = "scope", required = true, num_args = 1..)]
        scopes: Vec<String>,
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
        /// e.g. xtreem:SITE; default: the original audience.
        #[arg(long)]
        audience: Option<String>,
        /// Who will use the delegated credential.
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        vo: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a local account (argon2id); the password comes from stdin or $XOS_PASSWORD.
    #[command(after_help = "Example:\n  echo 'long secret' | xos user add alice --password-stdin")]
    Add {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
pub enum VoCommand {
    /// Create a VO (site administrators); --admin names its first VO admin.
    #[command(after_help = "Example:\n  xos vo create demo --admin alice")]
    Create {
        name: String,
        #[arg(long)]
        admin: Option<String>,
    },
    /// Delete a VO.
    #[command(after_help = "Example:\n  xos vo delete demo")]
    Delete { name: String },
    /// Suspend a VO: no logins or changes until resumed.
    #[command(after_help = "Example:\n  xos vo suspend demo")]
    Suspend { name: String },
    /// Resume a suspended VO.
    #[command(after_help = "Example:\n  xos vo resume demo")]
    Resume { name: String },
    /// List VOs (yours, or all for site administrators).
    #[command(after_help = "Example:\n  xos vo list --json")]
    List,
    /// Show a VO with its groups, keys and members.
    #[command(after_help = "Example:\n  xos vo show demo")]
    Show { name: String },
    /// Create a group /VO/GROUP[/SUBGROUP].
    #[command(after_help = "Example:\n  xos vo group /demo/analysis")]
    Group { path: String },
    /// Ask to join a VO (authenticates with your password).
    #[command(after_help = "Example:\n  xos vo join demo --user bob --password-stdin")]
    Join {
        vo: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        password_stdin: bool,
        /// The site CA certificate, if this is your first command.
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// Approve a request to join (VO admins).
    #[command(after_help = "Example:\n  xos vo approve demo bob")]
    Approve { vo: String, user: String },
    /// Reject a request to join (VO admins).
    #[command(after_help = "Example:\n  xos vo reject demo mallory")]
    Reject { vo: String, user: String },
    /// Remove a member (VO admins), or leave (yourself).
    #[command(after_help = "Example:\n  xos vo remove demo bob")]
    Remove { vo: String, user: String },
    /// Grant ROLE on a group (default: the VO root); never above your own.
    #[command(after_help = "Example:\n  xos vo grant demo bob admin --group /demo/analysis")]
    Grant {
        vo: String,
        user: String,
        role: String,
        #[arg(long)]
        group: Option<String>,
    },
    /// Revoke ROLE on a group.
    #[command(after_help = "Example:\n  xos vo revoke demo bob admin --group /demo/analysis")]
    Revoke {
        vo: String,
        user: String,
        role: String,
        #[arg(long)]
        group: Option<String>,
    },
    /// Publish a new signing key ahead of use; --activate signs with it from now on.
    #[command(
        after_help = "Example:\n  xos vo rotate-key demo            # publish\n  xos vo rotate-key demo --activate # use"
    )]
    RotateKey {
        vo: String,
        #[arg(long)]
        activate: bool,
    },
    /// Withdraw a key: credentials signed with it are refused at once.
    #[command(after_help = "Example:\n  xos vo withdraw-key demo demo-1795390000-a1b2c3")]
    WithdrawKey { vo: String, kid: String },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Set the policy of a level from a Cedar file ('-' for stdin); validated first.
    #[command(
        after_help = "Example:\n  xos policy set site --file no-demo-on-gpu.cedar\n  xos policy set vo demo --file demo.cedar"
    )]
    Set {
        /// vo, site or user
        level: String,
        /// VO name, site name or user; default: yours.
        name: Option<String>,
        #[arg(long)]
        file: PathBuf,
    },
    /// Show the policy of a level.
    #[command(after_help = "Example:\n  xos policy show vo demo")]
    Show { level: String, name: Option<String> },
    /// Ask the node whether USER of VO may do ACTION on a node.
    #[command(
        after_help = "Example:\n  xos policy test --user bob --vo demo --action use_node --node node-2"
    )]
    Test {
        #[arg(long, default_value = "")]
        user: String,
        #[arg(long, default_value = "")]
        vo: String,
        #[arg(long)]
        action: String,
        #[arg(long, default_value = "")]
        node: String,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of a node's audit log (--endpoint) or of a file.
    #[command(
        after_help = "Example:\n  xos audit verify --endpoint 10.0.0.7:7100\n  xos audit verify --file /var/lib/xtreem/audit.log"
    )]
    Verify {
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

#[derive(Args, Clone)]
pub struct LocalSocket {
    /// Data directory of the local xosd (its admin socket is inside).
    #[arg(long, default_value = "/var/lib/xtreem")]
    pub data_dir: PathBuf,
    /// Path of the admin socket, if not in --data-dir.
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

impl LocalSocket {
    pub fn path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("admin.sock"))
    }
}

#[derive(Subcommand)]
pub enum SiteCommand {
    /// Let a VO use this site's nodes (all, or --nodes), with an optional core cap.
    #[command(
        after_help = "Example:\n  xos site serve demo --nodes node-2,node-3 --max-cores 64\n  xos site serve demo --stop"
    )]
    Serve {
        vo: String,
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
        #[arg(long, default_value_t = 0)]
        max_cores: u32,
        #[arg(long)]
        stop: bool,
    },
    /// Print this site's bundle (CA and VO issuers) for other sites to trust.
    #[command(after_help = "Example:\n  xos site bundle > lab.bundle.json")]
    Bundle,
    /// Trust another site's bundle: its VOs' credentials become verifiable here.
    #[command(after_help = "Example:\n  xos site trust other.bundle.json")]
    Trust { bundle: PathBuf },
    /// Create site NAME and its CA on this machine's core node, and save
    /// administrator credentials for this user.
    #[command(after_help = "Example:\n  sudo xos site init lab --data-dir /var/lib/xtreem")]
    Init {
        /// Site name (a-z, 0-9, '-').
        name: String,
        #[command(flatten)]
        local: LocalSocket,
        /// Name in the administrator certificate.
        #[arg(long, default_value = "admin")]
        admin: String,
    },
    /// Issue new administrator credentials from the site authority on this machine.
    #[command(
        after_help = "Example:\n  sudo xos site admin-credentials --admin alice --config-dir ~alice/.config/xtreem"
    )]
    AdminCredentials {
        #[command(flatten)]
        local: LocalSocket,
        #[arg(long, default_value = "admin")]
        admin: String,
    },
}

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Print a one-time join token for a new node.
    #[command(
        after_help = "Example:\n  xos node join-token --ttl 30m\n  # then on the new node: XOSD_JOIN_TOKEN=<token> xosd --config /etc/xtreem/xosd.toml"
    )]
    JoinToken {
        /// How long the token stays valid (e.g. 10m, 1h, 24h).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
    },
    /// List the site's nodes with their roles and state.
    #[command(
        after_help = "Example:\n  xos node list\n  xos node list --json --endpoint 127.0.0.11:7100"
    )]
    List,
    /// Remove a node from the site and revoke its certificates.
    #[command(after_help = "Example:\n  xos node remove node-3")]
    Remove { node: String },
    /// Ask the node at --endpoint to ping NODE over node-to-node mTLS.
    #[command(after_help = "Example:\n  xos node ping node-2 --count 100")]
    Ping {
        node: String,
        #[arg(long, default_value_t = 10)]
        count: u32,
    },
    /// Show the status of the node at --endpoint.
    #[command(after_help = "Example:\n  xos node status --endpoint 127.0.0.12:7100")]
    Status,
    /// List the dynamic account mappings of the node at --endpoint (site administrators).
    #[command(after_help = "Example:\n  xos node accounts --endpoint 127.0.0.12:7100")]
    Accounts,
    /// The gossip view of the node at --endpoint: members, liveness, counters (site administrators).
    #[command(after_help = "Example:\n  xos node members --endpoint 127.0.0.12:7100")]
    Members,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Leave the grid running and print how to talk to it.
    #[arg(long)]
    pub keep: bool,
    /// Number of xosd processes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub nodes: u16,
    /// Directory for the grid's files (default: a new temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Directory: a real 5-process grid, local queries and memory, and the
    /// deterministic simulation (1,000 and 10,000 nodes; 100 sites x 1,000).
    #[command(
        after_help = "Example:\n  xos bench directory\n  xos bench directory --nodes 2000 --no-federation   # quicker"
    )]
    Directory {
        /// Nodes of the single-site simulation; above 1,000 the site starts formed (warm start):
        /// 10,000 takes about 8 minutes here (see docs/PERFORMANCE.md).
        #[arg(long, default_value_t = 1_000)]
        nodes: u32,
        /// Skip the 100-site federation simulation.
        #[arg(long)]
        no_federation: bool,
        /// Skip the simulation entirely.
        #[arg(long)]
        no_sim: bool,
    },
    /// Jobs on a 4-node grid: submit-to-start, throughput against raw fork+exec, xps, status, memory.
    #[command(after_help = "Example:\n  xos bench jobs\n  xos bench jobs --jobs 2000   # quicker")]
    Jobs {
        /// Trivial jobs (/bin/true) submitted back to back.
        #[arg(long, default_value_t = 10_000)]
        jobs: u32,
        /// Submissions in flight at once over the client's connection.
        #[arg(long, default_value_t = 64)]
        in_flight: usize,
        /// Sequential jobs timed from submit to start on the idle grid.
        #[arg(long, default_value_t = 200)]
        latency_samples: u32,
        /// Job cores each node declares (`[jobs] cores`); default the machine's.
        #[arg(long)]
        slots: Option<u32>,
    },
    /// mTLS round trip between two local nodes, CLI start-up, idle daemon memory.
    #[command(after_help = "Example:\n  xos bench fabric --count 20000")]
    Fabric {
        /// Round trips to measure.
        #[arg(long, default_value_t = 10_000)]
        count: u32,
    },
    /// VO security: credential verification, policy decisions, login round trip.
    #[command(
        after_help = "Example:\n  xos bench auth\n  xos bench auth --verifications 200000 --decisions 10000 --logins 200"
    )]
    Auth {
        /// Credential verifications to time (one thread, full signature check each).
        #[arg(long, default_value_t = 200_000)]
        verifications: u32,
        /// Authorization decisions to time, each individually, with 100 policies loaded.
        #[arg(long, default_value_t = 10_000)]
        decisions: u32,
        /// Logins to time on loopback (per variant: fresh connection, reused connection, `xos login` process).
        #[arg(long, default_value_t = 200)]
        logins: u32,
    },
}
