//! The error of descriptor and summary validation and decoding.

/// Why a descriptor, sample or summary was refused. Every variant names what
/// was wrong so that an operator can fix the publishing node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    /// A field holds a value outside its allowed range or form.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The encoded form is larger than a peer may send.
    #[error("encoded {what} is {size} bytes, more than the {max} allowed")]
    TooLarge {
        what: &'static str,
        size: usize,
        max: usize,
    },
    /// The bytes are not an encoding of the expected type.
    #[error("cannot decode {what}: {reason}")]
    Decode { what: &'static str, reason: String },
}

impl DescriptorError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        DescriptorError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
