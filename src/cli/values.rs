//! Value parsers that tell shell completion the known values of a flag
//! (`--role`, `--room`) while keeping the command's own validation and its
//! messages: clap completes from `possible_values`, and without them the
//! generated scripts fell back to completing file names.

use std::ffi::OsStr;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;

/// Parses with `parse`, offers `known` to completion.
#[derive(Clone)]
pub struct Known<T> {
    known: &'static [&'static str],
    parse: fn(&str) -> Result<T, String>,
}

impl<T> Known<T> {
    pub const fn new(known: &'static [&'static str], parse: fn(&str) -> Result<T, String>) -> Self {
        Known { known, parse }
    }
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Known<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let text = value
            .to_str()
            .ok_or_else(|| clap::Error::new(ErrorKind::InvalidUtf8).with_cmd(cmd))?;
        // Worded as clap words a value parser's error.
        (self.parse)(text).map_err(|reason| {
            let arg = arg.map(|a| a.to_string()).unwrap_or_default();
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("invalid value '{text}' for '{arg}': {reason}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(self.known.iter().map(PossibleValue::new)))
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, ValueHint};

    #[test]
    fn role_and_room_complete_their_known_values() {
        let cmd = crate::cli::Cli::command();
        let values = |sub: &[&str], arg: &str| -> Vec<String> {
            let mut c = &cmd;
            for s in sub {
                c = c.find_subcommand(s).unwrap();
            }
            let a = c.get_arguments().find(|a| a.get_id() == arg).unwrap();
            assert_ne!(a.get_value_hint(), ValueHint::FilePath);
            a.get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string())
                .collect()
        };
        assert_eq!(
            values(&["token", "create"], "role"),
            ["admin", "operator", "viewer", "service"]
        );
        assert_eq!(
            values(&["tail"], "rooms"),
            crate::protocol::rooms::ROOMS.to_vec()
        );
        let bash = crate::cli::docs::generated_files()
            .into_iter()
            .find(|(p, _)| p.ends_with("pytake.bash"))
            .map(|(_, b)| String::from_utf8(b).unwrap())
            .unwrap();
        assert!(
            bash.contains("admin operator viewer service"),
            "bash completes roles"
        );
    }
}
