//! Topic names: 1 to [`TOPIC_NAME_CHARS_MAX`] characters of `[A-Za-z0-9._-]`,
//! and not `.` or `..` (a topic's name is also its directory name).

/// Longest topic name, in characters. Kafka's limit, and short enough that
/// `<name>-<partition>` stays far below common file-name limits (255 bytes).
pub const TOPIC_NAME_CHARS_MAX: usize = 249;

/// Why a topic name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicNameError {
    /// The name is empty.
    #[error("topic name is empty")]
    Empty,
    /// The name is too long.
    #[error("topic name is {len} characters long; the limit is {TOPIC_NAME_CHARS_MAX}")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// The name holds a character outside `[A-Za-z0-9._-]`.
    #[error("topic name {name:?} contains {ch:?}; allowed are A-Z, a-z, 0-9, '.', '_' and '-'")]
    InvalidChar {
        /// The name.
        name: String,
        /// The first bad character.
        ch: char,
    },
    /// The name is `.` or `..`.
    #[error("topic name {0:?} is reserved")]
    Reserved(String),
}

/// Checks a topic name against the rules.
pub fn validate_topic_name(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if let Some(ch) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(TopicNameError::InvalidChar {
            name: name.to_owned(),
            ch,
        });
    }
    if name.len() > TOPIC_NAME_CHARS_MAX {
        return Err(TopicNameError::TooLong { len: name.len() });
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::Reserved(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        assert!(validate_topic_name("orders.v1_eu-west").is_ok());
        assert!(validate_topic_name(&"a".repeat(249)).is_ok());
        assert_eq!(
            validate_topic_name(&"a".repeat(250)),
            Err(TopicNameError::TooLong { len: 250 })
        );
        assert_eq!(validate_topic_name(""), Err(TopicNameError::Empty));
        assert!(matches!(
            validate_topic_name("a/b"),
            Err(TopicNameError::InvalidChar { ch: '/', .. })
        ));
        assert!(matches!(
            validate_topic_name("naïve"),
            Err(TopicNameError::InvalidChar { ch: 'ï', .. })
        ));
        assert!(matches!(
            validate_topic_name(".."),
            Err(TopicNameError::Reserved(_))
        ));
    }
}
