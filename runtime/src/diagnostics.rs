//! Errors that point into a source file: `file:line:column: message`, the YAML path, and a hint.

use std::fmt;

/// A 1-based line and column in a source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// One problem found in a workflow or project file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub location: Location,
    /// Where in the document, e.g. `steps[1].children[0].run_as`.
    pub yaml_path: String,
    pub message: String,
    /// What would fix it, when we can tell.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: a problem with the file as a whole (it cannot be read), at no position.
        if self.location.line == 0 {
            write!(f, "{}: {}", self.file, self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.location.line, self.location.column, self.message
            )?;
        }
        if !self.yaml_path.is_empty() {
            write!(f, " (at `{}`)", self.yaml_path)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n    hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one pass, so a user fixes them all at once instead of one per run.
#[derive(Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let normalised = word.replace('-', "_").to_lowercase();
    let len = normalised.chars().count();
    candidates
        .into_iter()
        // A name whose length differs by more than the distance allowed cannot be near; only
        // so many are compared, so one hint never costs more than a moment.
        .filter(|c| {
            let n = c.chars().count();
            n.abs_diff(len) <= 2.max(n / 4)
        })
        .take(MAX_COMPARED)
        .map(|c| (c, strsim::damerau_levenshtein(&normalised, c)))
        .filter(|&(c, d)| d <= 2.max(c.len() / 4) && d < c.len())
        .min_by_key(|&(_, d)| d)
        .map(|(c, _)| c)
}

/// The most names one `did_you_mean` compares.
const MAX_COMPARED: usize = 1_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_names_only() {
        let keys = ["run_as", "children", "name", "timeout"];
        assert_eq!(did_you_mean("run-as", keys), Some("run_as"));
        assert_eq!(did_you_mean("chidlren", keys), Some("children"));
        assert_eq!(did_you_mean("frobnicate", keys), None);
    }
}
