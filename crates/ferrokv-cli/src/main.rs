//! ferrokv-cli: a redis-cli-like client and Redis Cluster admin tool.
//!
//! ```text
//! ferrokv-cli [-h HOST] [-p PORT] [-a PASSWORD] [--resp3] [-c] [--raw|--no-raw] [-e] CMD ARG...
//! ferrokv-cli [options]                                  (interactive; reads lines from a pipe)
//! ferrokv-cli cluster create HOST:PORT... [--replicas N] [--yes]
//! ferrokv-cli cluster check HOST:PORT
//! ferrokv-cli cluster info HOST:PORT
//! ferrokv-cli cluster reshard HOST:PORT [--from IDS|all] [--to ID] [--slots N] [--yes]
//!                             [--timeout MS] [--pipeline N] [--replace] [--dry-run] [--json]
//! ferrokv-cli cluster rebalance HOST:PORT [--weight ID=W ...] [--use-empty-masters]
//!                               [--threshold PCT] [--simulate] [--by slots|load]
//!                               [same options as reshard]
//! ferrokv-cli cluster add-node NEW_HOST:PORT EXISTING_HOST:PORT [--slave|--replica] [--master-id ID]
//! ferrokv-cli cluster del-node HOST:PORT NODE_ID
//! ferrokv-cli cluster fix HOST:PORT [--yes] [--timeout MS] [--pipeline N] [--replace]
//! ferrokv-cli cluster import HOST:PORT --from HOST:PORT [--copy] [--replace]
//! ferrokv-cli cluster failover HOST:PORT [--force|--takeover] [--timeout MS]
//! ```
//!
//! `--cluster SUBCOMMAND ...` (redis-cli's spelling) works too, and so do redis-cli's
//! option names (`--cluster-from`, `--cluster-slots`, `--cluster-yes`,
//! `--cluster-use-empty-masters`, ...). `cluster info` and `cluster failover` are admin
//! commands only with an address after them: `ferrokv-cli CLUSTER INFO` and
//! `ferrokv-cli CLUSTER FAILOVER FORCE` go to the server, as with redis-cli.
//!
//! Slot moves follow redis-cli (see `cluster::mover`): a progress bar on stderr when it
//! is a terminal, `--dry-run` prints the plan only, `--json` prints a summary on stdout,
//! and Ctrl-C stops after the slot in progress, leaving no slot open. The exit code is
//! 0 on success and 1 on any failure, interruption included.

#![forbid(unsafe_code)]

mod client;
mod cluster;
mod conn;
mod output;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};

use client::ClientConfig;
use conn::{Endpoint, Handshake};
use output::Mode;

/// The cluster admin commands, for `--help` and `cluster --help`.
const CLUSTER_USAGE: &str = "Cluster admin:\n  ferrokv-cli cluster create HOST:PORT... [--replicas N] [--yes]\n  \
                  ferrokv-cli cluster check|info|fix HOST:PORT\n  \
                  ferrokv-cli cluster reshard|rebalance HOST:PORT [options]\n  \
                  ferrokv-cli cluster add-node NEW_HOST:PORT EXISTING_HOST:PORT [--slave] [--master-id ID]\n  \
                  ferrokv-cli cluster del-node HOST:PORT NODE_ID\n  \
                  ferrokv-cli cluster import HOST:PORT --from HOST:PORT [--copy] [--replace]\n  \
                  ferrokv-cli cluster failover HOST:PORT [--force|--takeover]\n\
                  (ferrokv-cli cluster SUBCOMMAND --help for each one's options)";

#[derive(Parser, Debug)]
#[command(
    name = "ferrokv-cli",
    version,
    about = "Client and cluster admin for ferrokv and Redis",
    disable_help_flag = true,
    after_help = CLUSTER_USAGE
)]
struct Cli {
    /// Server hostname.
    #[arg(short = 'h', default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(short = 'p', default_value_t = 6379)]
    port: u16,
    /// Password for AUTH (also read from REDISCLI_AUTH).
    #[arg(short = 'a', long = "pass")]
    password: Option<String>,
    /// User name for AUTH (needs -a).
    #[arg(long)]
    user: Option<String>,
    /// Do not warn about a password given on the command line.
    #[arg(long)]
    no_auth_warning: bool,
    /// Speak RESP3 (HELLO 3).
    #[arg(short = '3', long = "resp3")]
    resp3: bool,
    /// Cluster mode: follow -MOVED and -ASK redirections.
    #[arg(short = 'c')]
    follow_redirects: bool,
    /// Print replies raw (the default when stdout is not a terminal).
    #[arg(long, conflicts_with = "no_raw")]
    raw: bool,
    /// Print replies formatted for people even when stdout is not a terminal.
    #[arg(long)]
    no_raw: bool,
    /// In one-shot mode, print an error reply on stderr and exit with code 1.
    #[arg(short = 'e')]
    exit_on_error: bool,
    /// Cluster admin command (create, check, info), as redis-cli spells it.
    #[arg(long = "cluster", value_name = "SUBCOMMAND")]
    cluster_command: Option<String>,
    /// cluster create: replicas per master.
    #[arg(long, visible_alias = "cluster-replicas", value_name = "N")]
    replicas: Option<usize>,
    /// cluster create: do not ask for confirmation.
    #[arg(long, visible_alias = "cluster-yes")]
    yes: bool,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// The command and its arguments; none starts the interactive mode.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// Options that may follow `cluster create`.
#[derive(Parser, Debug)]
#[command(name = "ferrokv-cli cluster create", no_binary_name = true)]
struct CreateArgs {
    /// The nodes, empty and in cluster mode.
    #[arg(required = true, value_name = "HOST:PORT")]
    nodes: Vec<String>,
    /// Replicas per master.
    #[arg(long, visible_alias = "cluster-replicas", value_name = "N")]
    replicas: Option<usize>,
    /// Do not ask for confirmation.
    #[arg(long, visible_alias = "cluster-yes")]
    yes: bool,
}

/// `cluster check` / `cluster info` arguments.
#[derive(Parser, Debug)]
#[command(no_binary_name = true)]
struct NodeArgs {
    /// HOST:PORT, or HOST PORT.
    #[arg(required = true, num_args = 1..=2, value_name = "HOST:PORT")]
    node: Vec<String>,
}

/// Options of every command that moves slots or keys.
#[derive(clap::Args, Debug)]
struct MoveFlags {
    /// MIGRATE timeout in milliseconds.
    #[arg(long, visible_alias = "cluster-timeout", value_name = "MS", default_value_t = 60000)]
    timeout: u64,
    /// Keys per GETKEYSINSLOT/MIGRATE batch.
    #[arg(long, visible_alias = "cluster-pipeline", value_name = "N", default_value_t = 10)]
    pipeline: usize,
    /// Overwrite keys the target already has.
    #[arg(long, visible_alias = "cluster-replace")]
    replace: bool,
    /// Do not ask for confirmation.
    #[arg(long, visible_alias = "cluster-yes")]
    yes: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print a JSON summary on stdout (the human output goes to stderr).
    #[arg(long)]
    json: bool,
    /// Move keys with MIGRATE, slot by slot, even between ferrokv nodes (which otherwise
    /// use whole-slot migration: CLUSTER MIGRATION IMPORT).
    #[arg(long)]
    legacy: bool,
}

impl MoveFlags {
    fn args(&self, cli: &Cli) -> cluster::reshard::MoveArgs {
        cluster::reshard::MoveArgs {
            timeout_ms: self.timeout,
            pipeline: self.pipeline,
            replace: self.replace,
            yes: self.yes || cli.yes,
            dry_run: self.dry_run,
            json: self.json,
            legacy: self.legacy,
        }
    }
}

/// `cluster reshard` arguments.
#[derive(Parser, Debug)]
#[command(name = "ferrokv-cli cluster reshard", no_binary_name = true)]
struct ReshardArgs {
    #[arg(required = true, num_args = 1..=2, value_name = "HOST:PORT")]
    node: Vec<String>,
    /// Source node ids, comma-separated, or `all`.
    #[arg(long, visible_alias = "cluster-from", value_name = "IDS")]
    from: Option<String>,
    /// The receiving node's id.
    #[arg(long, visible_alias = "cluster-to", value_name = "ID")]
    to: Option<String>,
    /// How many slots to move.
    #[arg(long, visible_alias = "cluster-slots", value_name = "N")]
    slots: Option<usize>,
    #[command(flatten)]
    moving: MoveFlags,
}

/// `cluster rebalance` arguments.
#[derive(Parser, Debug)]
#[command(name = "ferrokv-cli cluster rebalance", no_binary_name = true)]
struct RebalanceArgs {
    #[arg(required = true, num_args = 1..=2, value_name = "HOST:PORT")]
    node: Vec<String>,
    /// `ID=WEIGHT` (ids may be abbreviated); a master's weight is 1 unless given.
    #[arg(long, visible_alias = "cluster-weight", value_name = "ID=W", num_args = 1.., action = ArgAction::Append)]
    weight: Vec<String>,
    /// Give slots to masters that have none.
    #[arg(long, visible_alias = "cluster-use-empty-masters")]
    use_empty_masters: bool,
    /// Rebalance only when a master is this many percent off its share.
    #[arg(long, visible_alias = "cluster-threshold", value_name = "PCT", default_value_t = 2.0)]
    threshold: f32,
    /// Show the moves (one # per slot) without moving anything.
    #[arg(long, visible_alias = "cluster-simulate")]
    simulate: bool,
    /// What to even out: `slots` (counts, as redis-cli) or `load` (the CPU time each
    /// slot's commands took, from CLUSTER SLOT-STATS; enable
    /// cluster-slot-stats-enabled on the masters first).
    #[arg(long, value_name = "slots|load", default_value = "slots", value_parser = ["slots", "load"])]
    by: String,
    #[command(flatten)]
    moving: MoveFlags,
}

/// `cluster add-node` arguments.
#[derive(Parser, Debug)]
#[command(name = "ferrokv-cli cluster add-node", no_binary_name = true)]
struct AddNodeArgs {
    /// The new node, then a node of the cluster.
    #[arg(required = true, num_args = 2, value_name = "HOST:PORT")]
    nodes: Vec<String>,
    /// Add the node as a replica.
    #[arg(long, visible_aliases = ["replica", "cluster-slave", "cluster-replica"])]
    slave: bool,
    /// The master to replicate (default: the one with the fewest replicas).
    #[arg(long, visible_alias = "cluster-master-id", value_name = "ID")]
    master_id: Option<String>,
}

/// `cluster del-node` arguments.
#[derive(Parser, Debug)]
#[command(name = "ferrokv-cli cluster del-node", no_binary_name = true)]
struct DelNodeArgs {
    #[arg(value_name = "HOST:PORT")]
    node: String,
    #[arg(value_name = "NODE_ID")]
    id: String,
}

/// `cluster fix` arguments.
#[derive(Parser, Debug)]
#[command(name = "ferrokv-cli cluster fix", no_binary_name = true)]
struct FixArgs {
    #[arg(required = true, num_args = 1..=2, value_name = "HOST:PORT")]
    node: Vec<String>,
    #[command(flatten)]
    moving: MoveFlags,
}

/// `cluster import` arguments.
#[derive(Parser, Debug)]
#[command(name = "ferrokv-cli cluster import", no_binary_name = true)]
struct ImportArgs {
    #[arg(required = true, num_args = 1..=2, value_name = "HOST:PORT")]
    node: Vec<String>,
    /// The standalone node whose keys are imported.
    #[arg(long, visible_alias = "cluster-from", value_name = "HOST:PORT", required = true)]
    from: String,
    /// Keep the keys on the source.
    #[arg(long, visible_alias = "cluster-copy")]
    copy: bool,
    #[command(flatten)]
    moving: MoveFlags,
}

/// `cluster failover` arguments.
#[derive(Parser, Debug)]
#[command(name = "ferrokv-cli cluster failover", no_binary_name = true)]
struct FailoverArgs {
    /// The replica to promote.
    #[arg(required = true, num_args = 1..=2, value_name = "HOST:PORT")]
    node: Vec<String>,
    /// Without the master's agreement (it may be down).
    #[arg(long, conflicts_with = "takeover")]
    force: bool,
    /// Without any vote.
    #[arg(long)]
    takeover: bool,
    /// How long to wait for the new roles, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30000)]
    timeout: u64,
}

/// `cluster create|check|info ...`: the subcommand and its arguments, or `None` when
/// the command line is a command for the server.
fn admin_command(cli: &Cli, words: &[String]) -> Option<(String, Vec<String>)> {
    if let Some(sub) = &cli.cluster_command {
        return Some((sub.to_ascii_lowercase(), words.to_vec()));
    }
    let (first, rest) = words.split_first()?;
    let sub = rest.first()?.to_ascii_lowercase();
    if !first.eq_ignore_ascii_case("cluster") {
        return None;
    }
    // `cluster --help` and `cluster SUB --help` are ours, never "--help" sent to a server.
    let asks_help = |a: &String| a == "--help" || a == "-h";
    match sub.as_str() {
        "--help" | "-h" => Some(("help".into(), Vec::new())),
        "create" | "check" | "reshard" | "rebalance" | "add-node" | "del-node" | "fix" | "import" => {
            Some((sub, rest[1..].to_vec()))
        }
        // CLUSTER INFO the server command takes no argument.
        "info" if rest.len() > 1 => Some((sub, rest[1..].to_vec())),
        // CLUSTER FAILOVER [FORCE|TAKEOVER] is the server command: the admin one names a node.
        "failover" if rest.get(1).is_some_and(|a| Endpoint::parse(a).is_some() || asks_help(a)) => {
            Some((sub, rest[1..].to_vec()))
        }
        "info" if rest.get(1).is_some_and(asks_help) => Some((sub, rest[1..].to_vec())),
        _ => None,
    }
}

fn run_admin(cli: &Cli, sub: &str, args: Vec<String>, handshake: &Handshake) -> Result<(), String> {
    // `cluster SUB --help` asked for the usage: print it and succeed (clap reports it
    // as an "error"); a real error is the caller's to print.
    let usage = |e: clap::Error| {
        if e.kind() == clap::error::ErrorKind::DisplayHelp {
            print!("{e}");
            std::process::exit(0);
        }
        e.to_string().trim_end().to_string()
    };
    match sub {
        "help" => {
            println!("{CLUSTER_USAGE}");
            Ok(())
        }
        "create" => {
            let a = CreateArgs::try_parse_from(args).map_err(usage)?;
            let options =
                cluster::CreateOptions { replicas: a.replicas.or(cli.replicas).unwrap_or(0), yes: a.yes || cli.yes };
            cluster::create(&a.nodes, &options, handshake)
        }
        "check" | "info" => {
            let matches = NodeArgs::command()
                .name(if sub == "check" { "ferrokv-cli cluster check" } else { "ferrokv-cli cluster info" })
                .try_get_matches_from(args)
                .map_err(usage)?;
            let a = NodeArgs::from_arg_matches(&matches).map_err(usage)?;
            let entry = cluster::node_argument(&a.node)?;
            if sub == "check" {
                cluster::check(&entry, handshake)
            } else {
                cluster::info(&entry, handshake)
            }
        }
        "reshard" => {
            let a = ReshardArgs::try_parse_from(args).map_err(usage)?;
            let o =
                cluster::reshard::ReshardOptions { from: a.from, to: a.to, slots: a.slots, moving: a.moving.args(cli) };
            cluster::reshard::reshard(&cluster::node_argument(&a.node)?, &o, handshake)
        }
        "rebalance" => {
            let a = RebalanceArgs::try_parse_from(args).map_err(usage)?;
            let o = cluster::reshard::RebalanceOptions {
                weights: a.weight,
                use_empty: a.use_empty_masters,
                threshold: a.threshold,
                simulate: a.simulate,
                by_load: a.by == "load",
                moving: a.moving.args(cli),
            };
            cluster::reshard::rebalance(&cluster::node_argument(&a.node)?, &o, handshake)
        }
        "add-node" => {
            let a = AddNodeArgs::try_parse_from(args).map_err(usage)?;
            let new = cluster::node_argument(&a.nodes[..1])?;
            let existing = cluster::node_argument(&a.nodes[1..])?;
            cluster::membership::add_node(&new, &existing, a.slave, a.master_id.as_deref(), handshake)
        }
        "del-node" => {
            let a = DelNodeArgs::try_parse_from(args).map_err(usage)?;
            cluster::membership::del_node(&cluster::node_argument(&[a.node])?, &a.id, handshake)
        }
        "fix" => {
            let a = FixArgs::try_parse_from(args).map_err(usage)?;
            cluster::repair::fix(&cluster::node_argument(&a.node)?, &a.moving.args(cli), handshake)
        }
        "import" => {
            let a = ImportArgs::try_parse_from(args).map_err(usage)?;
            let from = cluster::node_argument(&[a.from])?;
            let o = cluster::repair::ImportOptions { from, copy: a.copy, moving: a.moving.args(cli) };
            cluster::repair::import(&cluster::node_argument(&a.node)?, &o, handshake)
        }
        "failover" => {
            let a = FailoverArgs::try_parse_from(args).map_err(usage)?;
            let mode = match (a.force, a.takeover) {
                (true, _) => cluster::membership::FailoverMode::Force,
                (_, true) => cluster::membership::FailoverMode::Takeover,
                _ => cluster::membership::FailoverMode::Default,
            };
            let timeout = std::time::Duration::from_millis(a.timeout);
            cluster::membership::failover(&cluster::node_argument(&a.node)?, mode, timeout, handshake)
        }
        other => Err(format!(
            "Unknown --cluster subcommand '{other}': expected create, check, info, reshard, rebalance, add-node, \
             del-node, fix, import or failover"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let password = cli.password.clone().or_else(|| std::env::var("REDISCLI_AUTH").ok());
    if cli.password.is_some() && !cli.no_auth_warning {
        eprintln!("Warning: Using a password with '-a' or '-u' option on the command line interface may not be safe.");
    }
    let handshake = Handshake { user: cli.user.clone(), password, resp3: cli.resp3 };

    let words: Vec<String> = cli.command.iter().map(|w| w.to_string_lossy().into_owned()).collect();
    if let Some((sub, args)) = admin_command(&cli, &words) {
        return match run_admin(&cli, &sub, args, &handshake) {
            Ok(()) => ExitCode::SUCCESS,
            Err(reason) => {
                eprintln!("{reason}");
                ExitCode::FAILURE
            }
        };
    }

    let mode = if cli.raw {
        Mode::Raw
    } else if cli.no_raw || std::io::stdout().is_terminal() {
        Mode::Human
    } else {
        Mode::Raw
    };
    let config = ClientConfig {
        endpoint: Endpoint::new(cli.host.clone(), cli.port),
        handshake,
        cluster: cli.follow_redirects,
        mode,
        exit_on_error: cli.exit_on_error,
    };
    let code = if cli.command.is_empty() {
        client::repl(config)
    } else {
        let command: Vec<Vec<u8>> = cli.command.iter().cloned().map(OsStringExt::into_vec).collect();
        client::one_shot(config, &command)
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("ferrokv-cli").chain(args.iter().copied())).expect("parse")
    }

    fn words(cli: &Cli) -> Vec<String> {
        cli.command.iter().map(|w| w.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn options_stop_at_the_command() {
        let cli = parse(&["-h", "10.0.0.1", "-p", "7000", "-c", "SET", "k", "-1", "-p"]);
        assert_eq!((cli.host.as_str(), cli.port, cli.follow_redirects), ("10.0.0.1", 7000, true));
        assert_eq!(words(&cli), vec!["SET", "k", "-1", "-p"]);
        let cli = parse(&[]);
        assert_eq!((cli.host.as_str(), cli.port), ("127.0.0.1", 6379));
        assert!(cli.command.is_empty());
    }

    #[test]
    fn cluster_admin_is_told_apart_from_server_commands() {
        let admin = |args: &[&str]| {
            let cli = parse(args);
            admin_command(&cli, &words(&cli))
        };
        assert_eq!(admin(&["CLUSTER", "INFO"]), None);
        assert_eq!(admin(&["cluster", "nodes"]), None);
        assert_eq!(admin(&["GET", "cluster"]), None);
        assert_eq!(admin(&["cluster", "info", "h:1"]), Some(("info".into(), vec!["h:1".into()])));
        assert_eq!(admin(&["cluster", "check", "h:1"]), Some(("check".into(), vec!["h:1".into()])));
        assert_eq!(
            admin(&["cluster", "create", "a:1", "b:2", "--replicas", "1"]),
            Some(("create".into(), vec!["a:1".into(), "b:2".into(), "--replicas".into(), "1".into()]))
        );
        assert_eq!(admin(&["--cluster", "check", "h:1"]), Some(("check".into(), vec!["h:1".into()])));
        assert_eq!(admin(&["cluster", "failover"]), None);
        assert_eq!(admin(&["cluster", "failover", "FORCE"]), None);
        assert_eq!(admin(&["cluster", "failover", "h:1"]), Some(("failover".into(), vec!["h:1".into()])));
        assert_eq!(admin(&["cluster", "reshard", "h:1"]), Some(("reshard".into(), vec!["h:1".into()])));
        // Help is ours, never "--help" sent to a server.
        assert_eq!(admin(&["cluster", "--help"]), Some(("help".into(), vec![])));
        assert_eq!(admin(&["cluster", "-h"]), Some(("help".into(), vec![])));
        assert_eq!(admin(&["cluster", "failover", "--help"]), Some(("failover".into(), vec!["--help".into()])));
        assert_eq!(admin(&["cluster", "info", "-h"]), Some(("info".into(), vec!["-h".into()])));
        assert_eq!(admin(&["cluster", "help"]), None, "CLUSTER HELP is the server's");
    }

    #[test]
    fn migration_options_take_redis_cli_spellings() {
        let a = ReshardArgs::try_parse_from([
            "h:1",
            "--cluster-from",
            "a,b",
            "--cluster-to",
            "c",
            "--cluster-slots",
            "5",
            "--cluster-pipeline",
            "3",
            "--cluster-replace",
            "--cluster-yes",
        ])
        .expect("parse");
        assert_eq!((a.from.as_deref(), a.to.as_deref(), a.slots), (Some("a,b"), Some("c"), Some(5)));
        assert_eq!((a.moving.pipeline, a.moving.replace, a.moving.yes, a.moving.timeout), (3, true, true, 60000));
        let r = RebalanceArgs::try_parse_from(["h:1", "--cluster-weight", "a=2", "b=0", "--cluster-use-empty-masters"])
            .expect("parse");
        assert_eq!(r.weight, vec!["a=2", "b=0"]);
        assert!(r.use_empty_masters && (r.threshold - 2.0).abs() < f32::EPSILON);
        let n =
            AddNodeArgs::try_parse_from(["n:1", "e:2", "--cluster-slave", "--cluster-master-id", "x"]).expect("add");
        assert!(n.slave && n.master_id.as_deref() == Some("x"));
        assert!(AddNodeArgs::try_parse_from(["n:1", "e:2", "--replica"]).expect("replica").slave);
        assert!(FailoverArgs::try_parse_from(["h:1", "--force", "--takeover"]).is_err());
        assert!(ImportArgs::try_parse_from(["h:1"]).is_err());
    }

    #[test]
    fn create_options_parse_after_the_nodes() {
        let a = CreateArgs::try_parse_from(["a:1", "b:2", "c:3", "--cluster-replicas", "2", "--yes"]).expect("parse");
        assert_eq!(a.nodes, vec!["a:1", "b:2", "c:3"]);
        assert_eq!((a.replicas, a.yes), (Some(2), true));
        assert!(CreateArgs::try_parse_from(["--yes"]).is_err());
        assert!(NodeArgs::try_parse_from(["h", "1", "x"]).is_err());
    }
}
