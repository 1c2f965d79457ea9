//! Config errors carry the position they were found at, printed as
//! `file:line:col: message` (SPEC §1), so an operator can jump straight to it.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as it was named (on the command line or by another file).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Every error found while loading one config (all are reported, not just the first).
#[derive(Debug, Clone, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors (and warnings) against one source text, turning byte spans into
/// line:col. Spans marked [`Reporter::poison`] hold a value already reported as
/// broken (an unset `${ENV}`; an empty span: the start of a table that lost a
/// mistyped key): errors found later inside them are follow-ons of that one cause
/// and are dropped, so each root cause is reported once.
pub struct Reporter<'a> {
    file: &'a Path,
    src: &'a str,
    pub errors: Vec<ConfigError>,
    /// Problems that do not fail the config (`portcullis check` prints `warning: ...`).
    pub warnings: Vec<ConfigError>,
    /// Errors dropped as follow-ons of a poisoned value.
    pub suppressed: usize,
    poisoned: Vec<Range<usize>>,
}

impl<'a> Reporter<'a> {
    pub fn new(file: &'a Path, src: &'a str) -> Self {
        Reporter {
            file,
            src,
            errors: Vec::new(),
            warnings: Vec::new(),
            suppressed: 0,
            poisoned: Vec::new(),
        }
    }

    /// Records an error at the start of `span` (byte offsets into the source),
    /// unless it lies inside a poisoned span.
    pub fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        if self.is_poisoned(&span) {
            self.suppressed += 1;
            return;
        }
        let e = self.error(span, message.into());
        self.errors.push(e);
    }

    /// Records a warning at the start of `span`.
    pub fn warn(&mut self, span: Range<usize>, message: impl Into<String>) {
        let e = self.error(span, message.into());
        self.warnings.push(e);
    }

    /// Marks `span` as holding a value already reported as broken.
    pub fn poison(&mut self, span: Range<usize>) {
        self.poisoned.push(span);
    }

    /// Whether `span` starts inside a poisoned span.
    pub fn is_poisoned(&self, span: &Range<usize>) -> bool {
        self.poisoned
            .iter()
            .any(|p| p.start <= span.start && span.start < p.end.max(p.start + 1))
    }

    /// An error (not recorded) at the start of `span`.
    pub fn error(&self, span: Range<usize>, message: String) -> ConfigError {
        let (line, col) = line_col(self.src, span.start);
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            col,
            message,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The source text.
    pub fn src(&self) -> &'a str {
        self.src
    }

    /// Errors in file order (line, then column; the order found within one place),
    /// each once.
    pub fn into_errors(mut self) -> ConfigErrors {
        self.errors
            .sort_by_key(|e| (e.file.as_path() != self.file, e.line, e.col));
        self.errors.dedup();
        ConfigErrors(self.errors)
    }

    /// Warnings in file order, each once.
    pub fn into_warnings(mut self) -> Vec<ConfigError> {
        self.warnings.sort_by_key(|e| (e.line, e.col));
        self.warnings.dedup();
        self.warnings
    }
}

/// 1-based line and column (in characters) of byte offset `pos` in `src`.
pub fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let before = src.get(..pos).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::line_col;

    #[test]
    fn positions() {
        let src = "a = 1\nbb = 2\n\nccc";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 4), (1, 5));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 11), (2, 6));
        assert_eq!(line_col(src, 14), (4, 1));
        assert_eq!(line_col(src, 999), (4, 4));
    }
}
