//! Multi-call dispatch: `xps ARGS` runs `xos ps ARGS`, and so on.

use std::ffi::OsString;
use std::path::Path;

/// Link names and the `xos` subcommand each stands for.
pub const ALIASES: &[(&str, &str)] = &[
    ("xps", "ps"),
    ("xsub", "submit"),
    ("xkill", "kill"),
    ("xwait", "wait"),
];

/// Rewrites `argv` when the program was invoked under an alias name. An
/// alias whose subcommand this build does not have is an error that says so.
pub fn expand(mut argv: Vec<OsString>, command: &clap::Command) -> Result<Vec<OsString>, String> {
    let Some(invoked) = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
    else {
        return Ok(argv);
    };
    let Some((alias, sub)) = ALIASES.iter().find(|(alias, _)| *alias == invoked) else {
        return Ok(argv);
    };
    if command.find_subcommand(sub).is_none() {
        return Err(format!(
            "{alias}: `{alias}` stands for `xos {sub}`, which this version of xos does not have yet (it arrives with job management)"
        ));
    }
    argv[0] = OsString::from("xos");
    argv.insert(1, OsString::from(*sub));
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn command_with(subs: &[&'static str]) -> clap::Command {
        subs.iter().fold(clap::Command::new("xos"), |c, s| {
            c.subcommand(clap::Command::new(*s))
        })
    }

    #[test]
    fn an_alias_becomes_its_subcommand_with_the_same_arguments() {
        let out = expand(
            os(&["/usr/bin/xps", "-a", "--json"]),
            &command_with(&["ps"]),
        )
        .unwrap();
        assert_eq!(out, os(&["xos", "ps", "-a", "--json"]));
        let out = expand(
            os(&["./xkill", "-s", "STOP", "j1"]),
            &command_with(&["kill"]),
        )
        .unwrap();
        assert_eq!(out, os(&["xos", "kill", "-s", "STOP", "j1"]));
    }

    #[test]
    fn the_plain_name_is_left_alone() {
        let argv = os(&["/usr/bin/xos", "node", "list"]);
        assert_eq!(expand(argv.clone(), &command_with(&["ps"])).unwrap(), argv);
    }

    #[test]
    fn an_alias_without_its_subcommand_says_so() {
        let err = expand(os(&["xwait", "j1"]), &command_with(&["ps"])).unwrap_err();
        assert!(err.contains("`xos wait`"), "{err}");
    }
}
