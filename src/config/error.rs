//! Config errors located in the file: `FILE:LINE:COL: message`.

use std::fmt;

use serde_saphyr::{Location, MessageFormatter, UserMessageFormatter};

/// One problem in a config file, located at a 1-based line and column of the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given to the loader.
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// 1-based column (in characters).
    pub col: u64,
    /// What is wrong, for a person to read; never contains an environment value.
    pub message: String,
}

impl ConfigError {
    /// An error at `location` in `file`. An unknown location (line 0) is reported at 1:1.
    pub fn at(file: &str, location: Location, message: impl Into<String>) -> Self {
        let (line, col) = if location.line() == 0 {
            (1, 1)
        } else {
            (location.line(), location.column().max(1))
        };
        Self {
            file: file.to_owned(),
            line,
            col,
            message: message.into(),
        }
    }

    /// Turns a YAML parse or type error into a located error with a plain message.
    pub(crate) fn from_yaml(file: &str, err: &serde_saphyr::Error) -> Self {
        let location = err.location().unwrap_or(Location::UNKNOWN);
        Self::at(file, location, yaml_message(err))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config file, in file order; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors, for iteration.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// `, did you mean `X`?` when one of `known` is close to `word`, else an empty string.
pub(crate) fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    let best = known
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(word, candidate), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, candidate)) => format!(", did you mean `{candidate}`?"),
        None => String::new(),
    }
}

/// The message of a YAML error, without location, in Gatehouse's wording where it matters.
fn yaml_message(err: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    match err {
        E::WithSnippet { error, .. } => yaml_message(error),
        E::AliasError { error, .. } => yaml_message(error),
        E::SerdeUnknownField {
            field, expected, ..
        } => format!(
            "unknown key `{field}`{}",
            did_you_mean(field, expected.iter().copied())
        ),
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => format!(
            "unknown value `{variant}`, expected {}{}",
            one_of(expected),
            did_you_mean(variant, expected.iter().copied())
        ),
        E::SerdeMissingField { field, .. } => format!("missing required key `{field}`"),
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => format!("expected {expected}, found {unexpected}"),
        E::Unexpected { expected, .. } => format!(
            "expected {}",
            match *expected {
                "mapping start" => "a mapping",
                "sequence start" => "a list",
                "string scalar" => "a string",
                other => other,
            }
        ),
        E::InvalidScalar { ty, .. } => format!("expected {}", describe_scalar(ty)),
        E::DuplicateMappingKey { key: Some(key), .. } => format!("duplicate key `{key}`"),
        other => UserMessageFormatter.format_message(other).into_owned(),
    }
}

/// A scalar type as a user would say it.
fn describe_scalar(ty: &str) -> String {
    match ty {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "bool" | "boolean" => "`true` or `false`".to_owned(),
        other => other.to_owned(),
    }
}

/// `` `a`, `b` or `c` `` for a list of accepted words.
fn one_of(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
    match quoted.split_last() {
        None => "nothing".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_file_line_col_message() {
        let err = ConfigError {
            file: "g.yaml".into(),
            line: 3,
            col: 7,
            message: "bad".into(),
        };
        assert_eq!(err.to_string(), "g.yaml:3:7: bad");
        let all = ConfigErrors(vec![err.clone(), err]);
        assert_eq!(all.to_string(), "g.yaml:3:7: bad\ng.yaml:3:7: bad");
    }

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(
            did_you_mean("listn", ["listen", "limits"]),
            ", did you mean `listen`?"
        );
        assert_eq!(did_you_mean("zzz", ["listen", "limits"]), "");
    }
}
