//! The tower layers: cost recording, response cache, retry, rate limit.
//!
//! Each is a public `XLayer` + `X<S>` pair, usable alone with
//! `tower::ServiceBuilder`, `Clone` with its shared state behind `Arc`.

pub mod cache;
pub mod cost;
pub mod rate_limit;
pub mod retry;
