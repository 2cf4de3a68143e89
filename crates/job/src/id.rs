//! Job and unit identifiers: `n1.42` is job 42 of home node `n1`, `n1.42_7`
//! is element 7 of array job `n1.42`, and `n1.42.3` / `n1.42_7.3` is the
//! unit (process) of rank 3 of a job.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use xtreem_util::names::NodeName;

use crate::error::{SpecError, quote};

/// A job: the node that accepted it (its home), that node's sequence number,
/// and for an element of an array job, its index.
///
/// Written `HOME.SEQ` or `HOME.SEQ_INDEX`; serialized as that string.
/// Ordered by home, then sequence, then index (the parent before its
/// elements).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId {
    /// Node name: 1-63 of a-z, 0-9, '-', not starting or ending with '-'.
    pub home: String,
    pub seq: u64,
    /// The array element, `None` for an ordinary job or an array as a whole.
    pub index: Option<u32>,
}

/// One process (unit) of a job: its rank among the job's `count` units.
///
/// Written `JOB.RANK` (`n1.42.3`, `n1.42_7.3`); serialized as that string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitId {
    pub job: JobId,
    pub rank: u32,
}

/// A decimal number as written in ids: digits only, no sign, no leading zero.
fn id_number<T: FromStr>(text: &str) -> Option<T> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

impl JobId {
    pub fn new(home: impl Into<String>, seq: u64) -> JobId {
        JobId {
            home: home.into(),
            seq,
            index: None,
        }
    }

    /// Parses `HOME.SEQ` or `HOME.SEQ_INDEX`. The error (with an empty
    /// field) says which part is wrong.
    pub fn parse(s: &str) -> Result<JobId, SpecError> {
        let refuse = |why: String| {
            Err(SpecError::new(
                "",
                format!("{} is not a job id: {why}", quote(s)),
            ))
        };
        let Some((home, rest)) = s.split_once('.') else {
            return refuse(
                "expected HOME.SEQ such as n1.42, or n1.42_7 for an array element".into(),
            );
        };
        if let Err(e) = home.parse::<NodeName>() {
            return refuse(e.to_string());
        }
        let (seq, index) = match rest.split_once('_') {
            Some((seq, index)) => (seq, Some(index)),
            None => (rest, None),
        };
        let Some(seq) = id_number::<u64>(seq) else {
            return refuse(format!(
                "the sequence number {} is not a decimal number without leading zeros",
                quote(seq)
            ));
        };
        let index = match index {
            None => None,
            Some(text) => match id_number::<u32>(text) {
                Some(i) => Some(i),
                None => {
                    return refuse(format!(
                        "the array index {} is not a decimal number without leading zeros (at most {})",
                        quote(text),
                        u32::MAX
                    ));
                }
            },
        };
        Ok(JobId {
            home: home.to_owned(),
            seq,
            index,
        })
    }

    /// Checks a job id built in code (parsed ids are always valid).
    pub fn validate(&self) -> Result<(), SpecError> {
        self.home
            .parse::<NodeName>()
            .map(|_| ())
            .map_err(|e| SpecError::new("", format!("job id {self}: {e}")))
    }

    /// The array job this element belongs to (itself when not an element).
    pub fn array_parent(&self) -> JobId {
        JobId {
            index: None,
            ..self.clone()
        }
    }

    /// Element `index` of this array job.
    pub fn element(&self, index: u32) -> JobId {
        JobId {
            index: Some(index),
            ..self.clone()
        }
    }

    /// The unit of rank `rank` of this job.
    pub fn unit(&self, rank: u32) -> UnitId {
        UnitId {
            job: self.clone(),
            rank,
        }
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.home, self.seq)?;
        if let Some(index) = self.index {
            write!(f, "_{index}")?;
        }
        Ok(())
    }
}

impl FromStr for JobId {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<JobId, SpecError> {
        JobId::parse(s)
    }
}

impl UnitId {
    /// Parses `HOME.SEQ.RANK` or `HOME.SEQ_INDEX.RANK`.
    pub fn parse(s: &str) -> Result<UnitId, SpecError> {
        match UnitId::parse_job_or_unit(s)? {
            (job, Some(rank)) => Ok(UnitId { job, rank }),
            (_, None) => Err(SpecError::new(
                "",
                format!(
                    "{} is a job id, not a unit id; add the rank, as in n1.42.0",
                    quote(s)
                ),
            )),
        }
    }

    /// Parses either a job id (`n1.42`, `n1.42_7`) or a unit id
    /// (`n1.42.3`), for commands that take both: the rank is `None` for a
    /// job id.
    pub fn parse_job_or_unit(s: &str) -> Result<(JobId, Option<u32>), SpecError> {
        if s.matches('.').count() < 2 {
            return Ok((JobId::parse(s)?, None));
        }
        let (job, rank) = s.rsplit_once('.').unwrap_or((s, ""));
        let job = JobId::parse(job)?;
        match id_number::<u32>(rank) {
            Some(rank) => Ok((job, Some(rank))),
            None => Err(SpecError::new(
                "",
                format!(
                    "{} is not a unit id: the rank {} is not a decimal number without leading zeros",
                    quote(s),
                    quote(rank)
                ),
            )),
        }
    }
}

impl fmt::Display for UnitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.job, self.rank)
    }
}

impl FromStr for UnitId {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<UnitId, SpecError> {
        UnitId::parse(s)
    }
}

macro_rules! serde_as_string {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                <$ty>::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_string!(JobId);
serde_as_string!(UnitId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_round_trip() {
        for text in [
            "n1.42",
            "n1.42_7",
            "node-7.0",
            "a.18446744073709551615_4294967295",
        ] {
            let id = JobId::parse(text).unwrap();
            assert_eq!(id.to_string(), text);
            assert_eq!(text.parse::<JobId>().unwrap(), id);
        }
        let id = JobId::parse("n1.42_7").unwrap();
        assert_eq!(id.home, "n1");
        assert_eq!(id.seq, 42);
        assert_eq!(id.index, Some(7));
        assert_eq!(id.array_parent(), JobId::new("n1", 42));
        assert_eq!(JobId::new("n1", 42).element(7), id);
    }

    #[test]
    fn job_id_errors_name_the_part() {
        let cases = [
            ("n1", "expected HOME.SEQ"),
            ("N1.4", "invalid node name"),
            (".4", "invalid node name"),
            ("n1.", "sequence number"),
            ("n1.04", "sequence number"),
            ("n1.+4", "sequence number"),
            ("n1.4.5", "sequence number"),
            ("n1.18446744073709551616", "sequence number"),
            ("n1.4_", "array index"),
            ("n1.4_x", "array index"),
            ("n1.4_4294967296", "array index"),
            ("n1.4_1_2", "array index"),
        ];
        for (text, part) in cases {
            let err = JobId::parse(text).unwrap_err();
            assert!(err.message.contains(part), "{text}: {err}");
            assert!(err.message.contains("is not a job id"), "{text}: {err}");
        }
    }

    #[test]
    fn unit_ids_round_trip_and_mix_with_job_ids() {
        let unit = UnitId::parse("n1.42_7.3").unwrap();
        assert_eq!(unit.job, JobId::new("n1", 42).element(7));
        assert_eq!(unit.rank, 3);
        assert_eq!(unit.to_string(), "n1.42_7.3");
        assert_eq!(JobId::new("n1", 42).unit(0).to_string(), "n1.42.0");
        assert_eq!(
            UnitId::parse_job_or_unit("n1.42").unwrap(),
            (JobId::new("n1", 42), None)
        );
        assert_eq!(
            UnitId::parse_job_or_unit("n1.42.3").unwrap(),
            (JobId::new("n1", 42), Some(3))
        );
        assert!(
            UnitId::parse("n1.42")
                .unwrap_err()
                .message
                .contains("add the rank")
        );
        assert!(
            UnitId::parse("n1.42.03")
                .unwrap_err()
                .message
                .contains("rank")
        );
        assert!(UnitId::parse("n1.42.3.4").is_err());
    }

    #[test]
    fn serde_uses_the_text_form() {
        let id = JobId::parse("n1.42_7").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"n1.42_7\"");
        let back: JobId = serde_json::from_str("\"n1.42_7\"").unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<JobId>("\"bad\"").is_err());
        let unit = id.unit(2);
        let text = serde_json::to_string(&unit).unwrap();
        assert_eq!(serde_json::from_str::<UnitId>(&text).unwrap(), unit);
    }

    #[test]
    fn validate_catches_ids_built_in_code() {
        assert!(JobId::new("n1", 1).validate().is_ok());
        assert!(JobId::new("N 1", 1).validate().is_err());
    }
}
