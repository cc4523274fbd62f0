//! Consumer-group names: 1 to [`GROUP_NAME_BYTES_MAX`] bytes of UTF-8
//! without control characters.
//!
//! Looser than topic names on purpose: a group name is never a file name
//! (it is stored inside offset records), so, as with Kafka's group ids,
//! spaces, `/` and non-ASCII letters are fine. Control characters are not:
//! names show up in logs, in `skiff group list` and in error messages.
//! Broker, client and CLI all check names with [`validate_group_name`].

/// Longest group name, in bytes. Names appear in every offset record and
/// every group request; 255 is plenty for a service name plus a suffix.
pub const GROUP_NAME_BYTES_MAX: usize = 255;

/// Why a group name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupNameError {
    /// The name is empty.
    #[error("group name must be 1 to {GROUP_NAME_BYTES_MAX} bytes, got 0")]
    Empty,
    /// The name is too long.
    #[error("group name must be 1 to {GROUP_NAME_BYTES_MAX} bytes, got {len}")]
    TooLong {
        /// Its length, in bytes.
        len: usize,
    },
    /// The name holds a control character (a newline, a tab, an escape...).
    #[error("group name {name:?} contains control characters")]
    ControlChar {
        /// The name.
        name: String,
        /// The first control character.
        ch: char,
    },
}

/// Checks a group name against the rules.
pub fn validate_group_name(name: &str) -> Result<(), GroupNameError> {
    if name.is_empty() {
        return Err(GroupNameError::Empty);
    }
    if name.len() > GROUP_NAME_BYTES_MAX {
        return Err(GroupNameError::TooLong { len: name.len() });
    }
    if let Some(ch) = name.chars().find(|c| c.is_control()) {
        return Err(GroupNameError::ControlChar {
            name: name.to_owned(),
            ch,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_follow_the_rules() {
        assert!(validate_group_name("billing").is_ok());
        assert!(validate_group_name("team a/billing.v2 ünïcode").is_ok());
        assert!(validate_group_name(&"g".repeat(255)).is_ok());
        // 254 bytes plus a two-byte letter: 256 bytes, 255 characters.
        let multibyte = format!("{}é", "g".repeat(254));
        assert_eq!(
            validate_group_name(&multibyte),
            Err(GroupNameError::TooLong { len: 256 })
        );
        assert_eq!(
            validate_group_name(&"g".repeat(256)),
            Err(GroupNameError::TooLong { len: 256 })
        );
        assert_eq!(validate_group_name(""), Err(GroupNameError::Empty));
        for bad in ["a\nb", "\t", "tail\u{7f}", "esc\u{1b}[31m", "c1\u{85}"] {
            assert!(
                matches!(
                    validate_group_name(bad),
                    Err(GroupNameError::ControlChar { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn messages_name_the_limit_and_the_name() {
        assert_eq!(
            GroupNameError::TooLong { len: 300 }.to_string(),
            "group name must be 1 to 255 bytes, got 300"
        );
        assert_eq!(
            validate_group_name("a\nb").map_err(|e| e.to_string()),
            Err("group name \"a\\nb\" contains control characters".to_owned())
        );
    }

    proptest! {
        /// The rule, stated once more as an oracle; `validate_group_name`
        /// agrees with it on any string and never panics.
        #[test]
        fn validation_matches_the_rule(name in any::<String>()) {
            let ok = (1..=GROUP_NAME_BYTES_MAX).contains(&name.len())
                && !name.chars().any(char::is_control);
            prop_assert_eq!(validate_group_name(&name).is_ok(), ok);
        }

        #[test]
        fn printable_names_within_the_limit_are_accepted(
            name in "[^\\p{Cc}]{1,63}"
        ) {
            prop_assert!(name.len() <= GROUP_NAME_BYTES_MAX);
            prop_assert_eq!(validate_group_name(&name), Ok(()));
        }

        #[test]
        fn one_control_character_anywhere_is_refused(
            head in "[a-z ]{0,20}",
            control in "\\p{Cc}",
            tail in "[a-z ]{0,20}",
        ) {
            let name = format!("{head}{control}{tail}");
            let refused = matches!(
                validate_group_name(&name),
                Err(GroupNameError::ControlChar { .. })
            );
            prop_assert!(refused, "{:?}", name);
        }
    }
}
