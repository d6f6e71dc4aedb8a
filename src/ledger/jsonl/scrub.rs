//! Known secrets never reach the ledger: every string of a record is
//! passed through [`costlayer_core::redact::text`] before it is written.

use std::borrow::Cow;

use costlayer_core::redact;

use crate::ledger::CostRecord;
use crate::SharedStr;

/// `r` with every known secret masked; borrowed when there is none (the
/// usual case: one substring search per string and registered secret).
pub(crate) fn record(r: &CostRecord) -> Cow<'_, CostRecord> {
    let dirty = |s: &str| matches!(redact::text(s), Cow::Owned(_));
    let any = dirty(&r.user)
        || r.team.as_deref().is_some_and(dirty)
        || dirty(&r.provider)
        || dirty(&r.model)
        || r.request_id.as_deref().is_some_and(dirty)
        || r.price_version.as_deref().is_some_and(dirty)
        || r.tags.iter().any(|(k, v)| dirty(k) || dirty(v))
        || r.cost_notes.iter().any(|n| dirty(n));
    if !any {
        return Cow::Borrowed(r);
    }
    let clean = |s: &mut String| {
        if let Cow::Owned(o) = redact::text(s) {
            *s = o;
        }
    };
    let shared = |s: &mut SharedStr| {
        if let Cow::Owned(o) = redact::text(s) {
            *s = o.into();
        }
    };
    let mut r = r.clone();
    shared(&mut r.user);
    r.team.as_mut().map(shared);
    shared(&mut r.provider);
    shared(&mut r.model);
    r.request_id.as_mut().map(shared);
    r.price_version.as_mut().map(shared);
    r.cost_notes.iter_mut().for_each(clean);
    r.tags = std::mem::take(&mut r.tags)
        .into_iter()
        .map(|(k, v)| (redact::string(&k), redact::string(&v)))
        .collect();
    Cow::Owned(r)
}
