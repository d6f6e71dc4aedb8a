//! The layers, each alone, on the simulated provider, `tower_test::mock` or
//! a `service_fn`, with tokio's paused clock.

#![allow(clippy::unwrap_used)]

#[path = "layers/support.rs"]
mod support;

#[path = "layers/cache.rs"]
mod cache;
#[path = "layers/rate_limit.rs"]
mod rate_limit;
#[path = "layers/retry.rs"]
mod retry;
