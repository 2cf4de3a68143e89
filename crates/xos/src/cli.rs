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
    /// Start a local grid of xosd processes on 127.0.0.1 and show what it does.
    #[command(
        after_help = "Example:\n  xos demo            # start, show, stop (about a minute)\n  xos demo --keep     # leave the grid running and print how to use it"
    )]
    Demo(DemoArgs),
    /// Measure the system; prints `name: value unit` lines.
    #[command(subcommand)]
    Bench(BenchCommand),
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
    /// mTLS round trip between two local nodes, CLI start-up, idle daemon memory.
    #[command(after_help = "Example:\n  xos bench fabric --count 20000")]
    Fabric {
        /// Round trips to measure.
        #[arg(long, default_value_t = 10_000)]
        count: u32,
    },
}
