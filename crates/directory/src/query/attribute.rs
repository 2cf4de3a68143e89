//! The attributes a query can compare and sort by, and how their values are
//! written (numbers with size units).

use std::fmt;

/// A property of a node record that a query compares or sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attribute {
    Cores,
    Memory,
    Disk,
    FreeCores,
    FreeMemory,
    FreeDisk,
    Load,
    Jobs,
    Name,
    Site,
    Arch,
    Os,
    Kernel,
    /// `alive` or `dead`.
    State,
}

/// How an attribute's values are written and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeKind {
    /// A plain number (`cores`, `load`, ...).
    Number,
    /// A byte count; values may carry a size unit.
    Size,
    /// Text compared with `==`, `!=` and `in` only.
    Text,
}

impl Attribute {
    /// Every attribute, in the order error messages list them.
    pub const ALL: [Attribute; 14] = [
        Attribute::Cores,
        Attribute::Memory,
        Attribute::Disk,
        Attribute::FreeCores,
        Attribute::FreeMemory,
        Attribute::FreeDisk,
        Attribute::Load,
        Attribute::Jobs,
        Attribute::Name,
        Attribute::Site,
        Attribute::Arch,
        Attribute::Os,
        Attribute::Kernel,
        Attribute::State,
    ];

    /// The name used in queries (`mem` for memory).
    pub fn name(self) -> &'static str {
        match self {
            Attribute::Cores => "cores",
            Attribute::Memory => "mem",
            Attribute::Disk => "disk",
            Attribute::FreeCores => "free_cores",
            Attribute::FreeMemory => "free_mem",
            Attribute::FreeDisk => "free_disk",
            Attribute::Load => "load",
            Attribute::Jobs => "jobs",
            Attribute::Name => "name",
            Attribute::Site => "site",
            Attribute::Arch => "arch",
            Attribute::Os => "os",
            Attribute::Kernel => "kernel",
            Attribute::State => "state",
        }
    }

    /// Looks an attribute up by its query name or an accepted alias.
    pub fn from_name(name: &str) -> Option<Attribute> {
        match name {
            "memory" => Some(Attribute::Memory),
            "free_memory" => Some(Attribute::FreeMemory),
            _ => Attribute::ALL.into_iter().find(|a| a.name() == name),
        }
    }

    pub fn kind(self) -> AttributeKind {
        match self {
            Attribute::Memory | Attribute::Disk | Attribute::FreeMemory | Attribute::FreeDisk => {
                AttributeKind::Size
            }
            Attribute::Cores | Attribute::FreeCores | Attribute::Load | Attribute::Jobs => {
                AttributeKind::Number
            }
            Attribute::Name
            | Attribute::Site
            | Attribute::Arch
            | Attribute::Os
            | Attribute::Kernel
            | Attribute::State => AttributeKind::Text,
        }
    }

    /// Whether the value comes from the dynamic sample (and is missing when
    /// the record has none).
    pub fn is_dynamic(self) -> bool {
        matches!(
            self,
            Attribute::FreeCores
                | Attribute::FreeMemory
                | Attribute::FreeDisk
                | Attribute::Load
                | Attribute::Jobs
        )
    }

    /// "cores, mem, ..." for error messages.
    pub(crate) fn known_list() -> String {
        let names: Vec<&str> = Attribute::ALL.iter().map(|a| a.name()).collect();
        names.join(", ")
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const UNITS: [(&str, f64); 13] = [
    ("B", 1.0),
    ("KiB", 1024.0),
    ("MiB", 1_048_576.0),
    ("GiB", 1_073_741_824.0),
    ("TiB", 1_099_511_627_776.0),
    ("KB", 1e3),
    ("MB", 1e6),
    ("GB", 1e9),
    ("TB", 1e12),
    ("K", 1024.0),
    ("M", 1_048_576.0),
    ("G", 1_073_741_824.0),
    ("T", 1_099_511_627_776.0),
];

/// Why a written value is not a number for an attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NumberError {
    NotANumber,
    UnitNotAllowed(String),
    UnknownUnit(String),
}

/// Parses `8`, `0.5`, `8GiB`, `1.5T`; units only for size attributes.
pub(crate) fn parse_number(word: &str, kind: AttributeKind) -> Result<f64, NumberError> {
    let digits_end = word
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && c == '-')))
        .map_or(word.len(), |(i, _)| i);
    let (digits, unit) = word.split_at(digits_end);
    let value: f64 = digits.parse().map_err(|_| NumberError::NotANumber)?;
    if !value.is_finite() {
        return Err(NumberError::NotANumber);
    }
    if unit.is_empty() {
        return Ok(value);
    }
    if kind != AttributeKind::Size {
        // `4x` on cores is a typo rather than a unit; say so plainly.
        return Err(match UNITS.iter().any(|(u, _)| *u == unit) {
            true => NumberError::UnitNotAllowed(unit.to_owned()),
            false => NumberError::NotANumber,
        });
    }
    UNITS
        .iter()
        .find(|(u, _)| *u == unit)
        .map(|(_, factor)| value * factor)
        .ok_or_else(|| NumberError::UnknownUnit(unit.to_owned()))
}

/// The units, for error messages.
pub(crate) fn unit_list() -> String {
    let names: Vec<&str> = UNITS.iter().map(|(u, _)| *u).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_resolve() {
        for a in Attribute::ALL {
            assert_eq!(Attribute::from_name(a.name()), Some(a));
        }
        assert_eq!(Attribute::from_name("memory"), Some(Attribute::Memory));
        assert_eq!(Attribute::from_name("Cores"), None);
        assert!(Attribute::known_list().starts_with("cores, mem, disk"));
    }

    #[test]
    fn numbers_take_units_only_on_sizes() {
        use AttributeKind::*;
        assert_eq!(parse_number("8", Number), Ok(8.0));
        assert_eq!(parse_number("0.5", Number), Ok(0.5));
        assert_eq!(parse_number("-1", Number), Ok(-1.0));
        assert_eq!(parse_number("8GiB", Size), Ok(8.0 * 1_073_741_824.0));
        assert_eq!(parse_number("1.5T", Size), Ok(1.5 * 1_099_511_627_776.0));
        assert_eq!(parse_number("2GB", Size), Ok(2e9));
        assert_eq!(
            parse_number("4GiB", Number),
            Err(NumberError::UnitNotAllowed("GiB".into()))
        );
        assert_eq!(parse_number("4x", Number), Err(NumberError::NotANumber));
        assert_eq!(
            parse_number("4XB", Size),
            Err(NumberError::UnknownUnit("XB".into()))
        );
        for bad in ["", "abc", "1.2.3", ".", "-", "GiB", "1-2"] {
            assert!(parse_number(bad, Size).is_err(), "{bad}");
        }
    }
}
