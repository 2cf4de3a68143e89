//! Signal names and numbers, for checkpoint signals (`USR2`, `SIGTERM`,
//! `12`).

use crate::error::{SpecError, quote};

/// Signals known by name, without the `SIG` prefix.
const NAMES: [(&str, i32); 13] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("XCPU", libc::SIGXCPU),
    ("WINCH", libc::SIGWINCH),
];

/// Highest signal number accepted (Linux real-time signals end at 64).
pub const SIGNAL_MAX: i32 = 64;

/// Parses a signal: a name with or without `SIG` (`USR2`, `SIGUSR2`,
/// `sigusr2`; HUP, INT, QUIT, KILL, USR1, USR2, ALRM, TERM, CONT, STOP, TSTP,
/// XCPU, WINCH) or a number from 1 to 64. The error has an empty field.
pub fn parse_signal(s: &str) -> Result<i32, SpecError> {
    let text = s.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<i32>() {
            Ok(n) if (1..=SIGNAL_MAX).contains(&n) => Ok(n),
            _ => Err(SpecError::new(
                "",
                format!(
                    "signal number {} is not between 1 and {SIGNAL_MAX}",
                    quote(s)
                ),
            )),
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, number)| *number)
        .ok_or_else(|| {
            let known: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
            SpecError::new(
                "",
                format!(
                    "{} is not a signal; use a number from 1 to {SIGNAL_MAX} or one of {}",
                    quote(s),
                    known.join(", ")
                ),
            )
        })
}

/// The name of a signal without `SIG` (`USR2` for 12 on Linux), when it is
/// one of the names [`parse_signal`] knows.
pub fn signal_name(number: i32) -> Option<&'static str> {
    NAMES
        .iter()
        .find(|(_, n)| *n == number)
        .map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_or_without_sig_and_numbers() {
        assert_eq!(parse_signal("TERM"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("SIGTERM"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("usr2"), Ok(libc::SIGUSR2));
        assert_eq!(parse_signal("SigUsr1"), Ok(libc::SIGUSR1));
        for name in ["KILL", "HUP", "INT", "QUIT", "STOP", "CONT"] {
            assert!(parse_signal(name).is_ok(), "{name}");
        }
        assert_eq!(parse_signal("12"), Ok(12));
        assert_eq!(parse_signal("1"), Ok(1));
        assert_eq!(parse_signal("64"), Ok(64));
    }

    #[test]
    fn refuses_unknown_and_out_of_range() {
        for bad in [
            "",
            "0",
            "65",
            "-1",
            "FOO",
            "SIG",
            "SIGSIGTERM",
            "1.5",
            "99999999999",
        ] {
            let err = parse_signal(bad).unwrap_err();
            assert!(err.field.is_empty());
            assert!(!err.message.is_empty(), "{bad}");
        }
        assert!(parse_signal("FOO").unwrap_err().message.contains("USR2"));
    }

    #[test]
    fn names_round_trip() {
        for (name, number) in NAMES {
            assert_eq!(signal_name(number), Some(name));
            assert_eq!(parse_signal(name), Ok(number));
        }
        assert_eq!(signal_name(40), None);
    }
}
