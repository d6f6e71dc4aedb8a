//! [`Quota`]: requests and tokens per minute.

use std::num::NonZeroU32;

/// Requests per minute and tokens per minute for one key, the two limits
/// providers enforce. Either may be absent (not limited).
///
/// Each is a token bucket that holds `burst` (defaults to the per-minute
/// quota: a full minute's allowance may be spent at once) and refills
/// continuously at the per-minute rate. Over any 60 s window a bucket admits
/// at most `burst + quota`; set a smaller burst to stay strictly inside a
/// provider's limit.
///
/// Zero quotas cannot be written ([`NonZeroU32`]).
///
/// ```
/// use std::num::NonZeroU32;
/// use costlayer::layer::rate_limit::Quota;
///
/// let nz = |n| NonZeroU32::new(n).unwrap();
/// let q = Quota::per_minute(nz(500), nz(200_000)).token_burst(nz(50_000));
/// assert_eq!(q.requests(), Some((500, 500)));
/// assert_eq!(q.tokens(), Some((200_000, 50_000)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    requests: Option<(NonZeroU32, Option<NonZeroU32>)>,
    tokens: Option<(NonZeroU32, Option<NonZeroU32>)>,
}

impl Quota {
    /// `requests` per minute and `tokens` per minute.
    pub const fn per_minute(requests: NonZeroU32, tokens: NonZeroU32) -> Self {
        Quota {
            requests: Some((requests, None)),
            tokens: Some((tokens, None)),
        }
    }

    /// Only a requests-per-minute limit.
    pub const fn requests_per_minute(requests: NonZeroU32) -> Self {
        Quota {
            requests: Some((requests, None)),
            tokens: None,
        }
    }

    /// Only a tokens-per-minute limit.
    pub const fn tokens_per_minute(tokens: NonZeroU32) -> Self {
        Quota {
            requests: None,
            tokens: Some((tokens, None)),
        }
    }

    /// No limit at all (for a key that must not be limited).
    pub const fn unlimited() -> Self {
        Quota {
            requests: None,
            tokens: None,
        }
    }

    /// Sets the requests-per-minute limit, keeping the token limit.
    pub const fn and_requests_per_minute(mut self, requests: NonZeroU32) -> Self {
        self.requests = Some((requests, None));
        self
    }

    /// Sets the tokens-per-minute limit, keeping the request limit.
    pub const fn and_tokens_per_minute(mut self, tokens: NonZeroU32) -> Self {
        self.tokens = Some((tokens, None));
        self
    }

    /// The most requests admitted at once. Defaults to the per-minute
    /// quota. No effect without a request limit.
    pub const fn request_burst(mut self, burst: NonZeroU32) -> Self {
        if let Some((rate, _)) = self.requests {
            self.requests = Some((rate, Some(burst)));
        }
        self
    }

    /// The most tokens admitted at once, which is also the largest request
    /// that can ever be admitted. Defaults to the per-minute quota. No
    /// effect without a token limit.
    pub const fn token_burst(mut self, burst: NonZeroU32) -> Self {
        if let Some((rate, _)) = self.tokens {
            self.tokens = Some((rate, Some(burst)));
        }
        self
    }

    /// `(per minute, burst)` of the request limit, if any.
    pub fn requests(&self) -> Option<(u32, u32)> {
        self.requests
            .map(|(rate, burst)| (rate.get(), burst.unwrap_or(rate).get()))
    }

    /// `(per minute, burst)` of the token limit, if any.
    pub fn tokens(&self) -> Option<(u32, u32)> {
        self.tokens
            .map(|(rate, burst)| (rate.get(), burst.unwrap_or(rate).get()))
    }
}
