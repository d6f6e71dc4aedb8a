//! Alerts printed as a human line or as JSON.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Alert, AlertSink, SinkError};

/// How [`StdoutSink`] prints an alert.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StdoutFormat {
    /// `[costlayer] WARNING: budget `monthly` reached 80% …` (the default).
    #[default]
    Human,
    /// One JSON object a line ([`Alert::to_json`]).
    Json,
}

/// Prints each alert on one line, to standard output or any writer.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use costlayer::alert::{Alert, AlertSink, StdoutSink};
///
/// let buf = Arc::new(Mutex::new(Vec::new()));
/// let sink = StdoutSink::json().writer(buf.clone());
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// sink.send(&Alert::example()).await.unwrap();
/// # });
/// let out = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
/// let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
/// assert_eq!(v["budget"], "monthly");
/// ```
#[derive(Clone)]
pub struct StdoutSink {
    format: StdoutFormat,
    out: Option<Arc<Mutex<dyn Write + Send>>>,
}

impl fmt::Debug for StdoutSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdoutSink")
            .field("format", &self.format)
            .field("stdout", &self.out.is_none())
            .finish()
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::human()
    }
}

impl StdoutSink {
    /// Human-readable lines on standard output.
    pub fn human() -> Self {
        StdoutSink {
            format: StdoutFormat::Human,
            out: None,
        }
    }

    /// JSON lines on standard output.
    pub fn json() -> Self {
        StdoutSink {
            format: StdoutFormat::Json,
            out: None,
        }
    }

    /// A sink printing in `format`.
    pub fn new(format: StdoutFormat) -> Self {
        StdoutSink { format, out: None }
    }

    /// Writes to `out` instead of standard output (a file, a buffer in a
    /// test). Defaults to standard output.
    pub fn writer<W: Write + Send + 'static>(mut self, out: Arc<Mutex<W>>) -> Self {
        self.out = Some(out);
        self
    }

    /// The line printed for `alert` (without the newline).
    pub fn render(&self, alert: &Alert) -> String {
        match self.format {
            StdoutFormat::Human => format!("[costlayer] {}", alert.message),
            StdoutFormat::Json => alert.to_json().to_string(),
        }
    }
}

#[async_trait]
impl AlertSink for StdoutSink {
    async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        let mut line = self.render(alert);
        line.push('\n');
        match &self.out {
            Some(out) => {
                let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
                w.write_all(line.as_bytes())?;
                w.flush()?;
            }
            None => {
                let mut w = std::io::stdout().lock();
                w.write_all(line.as_bytes())?;
                w.flush()?;
            }
        }
        Ok(())
    }

    fn name(&self) -> &str {
        "stdout"
    }

    fn target(&self) -> Option<String> {
        Some(
            if self.out.is_some() {
                "a writer"
            } else {
                "standard output"
            }
            .to_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn human_line() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = StdoutSink::human().writer(buf.clone());
        sink.send(&Alert::example()).await.expect("send");
        let out = String::from_utf8(buf.lock().expect("lock").clone()).expect("utf8");
        assert_eq!(
            out,
            "[costlayer] WARNING: budget `monthly` reached 80% of its limit for 2026-11: spent $160.00 of $200.00\n"
        );
    }
}
