//! The test servers: `COSTLAYER_TEST_DATABASE_URL` and
//! `COSTLAYER_TEST_REDIS_URL` (set by `.ci/run`).
//!
//! Without a variable, a test that needs the server prints loudly that it
//! was skipped and passes, except under CI (`CI` set), where it fails: CI
//! must never skip them. Each test works in its own schema or key prefix,
//! so tests run in parallel.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};

fn server(var: &str, what: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("{var} is not set under CI: .ci/run must start {what} and set it");
            }
            eprintln!(
                "\n*** SKIPPED {test}: {var} is not set. Start {what} and set {var} \
                 (see .ci/run) to run it. ***\n"
            );
            None
        }
    }
}

/// The PostgreSQL URL, or `None` (after a loud notice) outside CI.
pub fn database_url(test: &str) -> Option<String> {
    server("COSTLAYER_TEST_DATABASE_URL", "PostgreSQL", test)
}

/// The Redis URL, or `None` (after a loud notice) outside CI.
pub fn redis_url(test: &str) -> Option<String> {
    server("COSTLAYER_TEST_REDIS_URL", "Redis", test)
}

/// A name no other test (or run) uses: `<prefix>_<test>_<pid>_<n>_<time>`.
pub fn unique(prefix: &str, test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{test}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
    .to_lowercase()
}
