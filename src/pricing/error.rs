//! [`PricingError`]: why a cost could not be computed or a price file not loaded.

/// Why a cost could not be computed or a price file not loaded.
///
/// Every message says what to do about it.
///
/// # Example
///
/// ```
/// use costlayer::pricing::{PriceTable, PricingError};
/// use costlayer::{Mode, Usage};
///
/// let err = PriceTable::embedded()
///     .cost("gpt-4o-minnie", &Usage::new(1, 1), Mode::Online)
///     .unwrap_err();
/// assert!(matches!(err, PricingError::UnknownModel { .. }));
/// assert!(err.to_string().contains("did you mean gpt-4o-mini"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PricingError {
    /// No price for this model.
    #[error("no price for model `{model}`{}. Run `cost-tracker models` for the list, or add it to your price file (--prices FILE or COSTLAYER_PRICES)", suggest(.suggestions))]
    UnknownModel {
        /// The id asked for.
        model: String,
        /// The closest known models.
        suggestions: Vec<String>,
    },
    /// The cost does not fit in a [`Money`](crate::Money) (about $9.2 billion).
    #[error("the cost of {tokens} tokens of `{model}` overflows: check the token counts")]
    Overflow {
        /// The model.
        model: String,
        /// The largest bucket.
        tokens: u64,
    },
    /// A price file is malformed.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line (0 if unknown).
        line: usize,
        /// 1-based column (0 if unknown).
        column: usize,
        /// What is wrong (naming the model and field) and how to fix it.
        message: String,
    },
    /// A price file could not be read.
    #[error("cannot read price file {path}: {source}. Check the path and its permissions")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", s.join(", "))
    }
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit_once('\n')
        .map_or(before, |(_, tail)| tail)
        .chars()
        .count()
        + 1;
    (line, col)
}
