//! Array jobs: `--array 1-1000` runs one element per index, each a job of
//! its own (`n1.42_7`).

use std::fmt;
use std::iter::StepBy;
use std::ops::RangeInclusive;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{SpecError, quote};

/// Most elements one array job may have.
pub const ARRAY_ELEMENTS_MAX: u64 = 100_000;

/// The indices of an array job: `start`, `start + step`, ... up to `end`
/// (included when on a step).
///
/// Written `5`, `1-1000` or `1-1000:10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArrayRange {
    pub start: u32,
    pub end: u32,
    pub step: u32,
}

impl ArrayRange {
    /// A checked range (see [`ArrayRange::check`]).
    pub fn new(start: u32, end: u32, step: u32) -> Result<ArrayRange, SpecError> {
        let range = ArrayRange { start, end, step };
        range.check()?;
        Ok(range)
    }

    /// Parses `N`, `START-END` or `START-END:STEP`. The error has an empty
    /// field.
    pub fn parse(text: &str) -> Result<ArrayRange, SpecError> {
        let refuse = |why: &str| {
            Err(SpecError::new(
                "",
                format!(
                    "{} is not an array range{why}; write START-END or START-END:STEP, such as 1-100 or 0-98:2, or a single index",
                    quote(text)
                ),
            ))
        };
        let number = |s: &str| -> Option<u32> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                s.parse().ok()
            }
        };
        let trimmed = text.trim();
        let (span, step) = match trimmed.split_once(':') {
            Some((span, step)) => (span, Some(step)),
            None => (trimmed, None),
        };
        let (start, end) = match span.split_once('-') {
            Some((start, end)) => (start, Some(end)),
            None => (span, None),
        };
        if start.is_empty() && end.is_some() {
            return refuse(" (indices cannot be negative)");
        }
        let Some(start) = number(start) else {
            return refuse("");
        };
        let end = match end {
            Some(e) => match number(e) {
                Some(e) => e,
                None => return refuse(""),
            },
            None if step.is_some() => return refuse(" (a step needs START-END)"),
            None => start,
        };
        let step = match step {
            Some(s) => match number(s) {
                Some(s) => s,
                None => return refuse(""),
            },
            None => 1,
        };
        ArrayRange::new(start, end, step)
    }

    /// Checks that `step >= 1`, `end >= start` and that there are at most
    /// [`ARRAY_ELEMENTS_MAX`] elements.
    pub fn check(&self) -> Result<(), SpecError> {
        if self.step == 0 {
            return Err(SpecError::new("", "the array step must be at least 1"));
        }
        if self.end < self.start {
            return Err(SpecError::new(
                "",
                format!(
                    "the array range {self} ends ({}) before it starts ({})",
                    self.end, self.start
                ),
            ));
        }
        let len = self.len_u64();
        if len > ARRAY_ELEMENTS_MAX {
            return Err(SpecError::new(
                "",
                format!(
                    "the array range {self} has {len} elements, more than {ARRAY_ELEMENTS_MAX}"
                ),
            ));
        }
        Ok(())
    }

    fn len_u64(&self) -> u64 {
        if self.end < self.start || self.step == 0 {
            return 0;
        }
        u64::from(self.end - self.start) / u64::from(self.step) + 1
    }

    /// Number of elements (0 only for an unchecked, invalid range).
    pub fn len(&self) -> usize {
        usize::try_from(self.len_u64()).unwrap_or(usize::MAX)
    }

    /// Whether there are no elements: never for a checked range.
    pub fn is_empty(&self) -> bool {
        self.len_u64() == 0
    }

    /// Whether `index` is one of the elements.
    pub fn contains(&self, index: u32) -> bool {
        self.step != 0
            && (self.start..=self.end).contains(&index)
            && (index - self.start).is_multiple_of(self.step)
    }

    /// The indices in increasing order (none for an invalid range).
    pub fn indices(&self) -> StepBy<RangeInclusive<u32>> {
        if self.step == 0 {
            // An empty range; `step_by(0)` would panic.
            #[allow(clippy::reversed_empty_ranges)]
            return (1..=0).step_by(1);
        }
        (self.start..=self.end).step_by(self.step as usize)
    }
}

impl fmt::Display for ArrayRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.start == self.end, self.step) {
            (true, 1) => write!(f, "{}", self.start),
            (_, 1) => write!(f, "{}-{}", self.start, self.end),
            _ => write!(f, "{}-{}:{}", self.start, self.end, self.step),
        }
    }
}

impl FromStr for ArrayRange {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<ArrayRange, SpecError> {
        ArrayRange::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        let r = ArrayRange::parse("1-1000").unwrap();
        assert_eq!((r.start, r.end, r.step), (1, 1000, 1));
        assert_eq!(r.len(), 1000);
        let r = ArrayRange::parse("1-1000:10").unwrap();
        assert_eq!((r.start, r.end, r.step), (1, 1000, 10));
        assert_eq!(r.len(), 100);
        assert_eq!(r.indices().last(), Some(991));
        let r = ArrayRange::parse("5").unwrap();
        assert_eq!(r.indices().collect::<Vec<_>>(), vec![5]);
        assert_eq!(r.len(), 1);
        assert!(!r.is_empty());
        let r = ArrayRange::parse("0-6:3").unwrap();
        assert_eq!(r.indices().collect::<Vec<_>>(), vec![0, 3, 6]);
        assert!(r.contains(3) && !r.contains(4) && !r.contains(9));
    }

    #[test]
    fn display_round_trips() {
        for text in ["5", "1-100", "1-100:2", "5-5:3", "0-0"] {
            let r = ArrayRange::parse(text).unwrap();
            assert_eq!(ArrayRange::parse(&r.to_string()).unwrap(), r, "{text}");
        }
        assert_eq!(ArrayRange::parse("1-100:1").unwrap().to_string(), "1-100");
    }

    #[test]
    fn refuses_bad_ranges() {
        for bad in [
            "",
            "-",
            "a",
            "1-",
            "-5",
            "-5-3",
            "1-a",
            "5-1",
            "1-10:0",
            "1-10:",
            "5:2",
            "1-100001",
            "0-100000",
            "1.5-3",
            "4294967296",
            "1-2-3",
            "1--3",
            " 1 - 3 ",
        ] {
            assert!(ArrayRange::parse(bad).is_err(), "{bad}");
        }
        assert!(ArrayRange::parse("1-100000").is_ok());
        assert!(ArrayRange::parse("0-199998:2").is_ok());
        assert!(
            ArrayRange::parse("5-1")
                .unwrap_err()
                .message
                .contains("before it starts")
        );
        assert!(
            ArrayRange::parse("1-200000")
                .unwrap_err()
                .message
                .contains("100000")
        );
        assert!(
            ArrayRange::parse("-5")
                .unwrap_err()
                .message
                .contains("negative")
        );
    }

    #[test]
    fn invalid_ranges_built_in_code_are_empty_not_panics() {
        let r = ArrayRange {
            start: 1,
            end: 10,
            step: 0,
        };
        assert!(r.check().is_err());
        assert_eq!(r.indices().count(), 0);
        assert!(r.is_empty());
        assert!(!r.contains(1));
        let r = ArrayRange {
            start: 10,
            end: 1,
            step: 1,
        };
        assert_eq!(r.indices().count(), 0);
        assert_eq!(r.len(), 0);
        let full = ArrayRange {
            start: 0,
            end: u32::MAX,
            step: u32::MAX,
        };
        assert_eq!(full.len(), 2);
    }
}
