//! [`SharedStr`]: an immutable string whose clones share one allocation.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An immutable, cheaply cloned string: a clone is a reference count, not
/// a copy. The ledger record's names (user, team, provider, model, price
/// version) are `SharedStr`s, so recording a call reuses the tracker's,
/// the price table's and the request's strings instead of allocating new
/// ones.
///
/// It reads as a `&str` (it dereferences to one), compares with `str`,
/// `&str` and `String` on either side, and serialises as a plain string:
/// the JSON of a record is the same as with `String` fields.
///
/// ```
/// use costlayer_core::SharedStr;
///
/// let model = SharedStr::from("gpt-4o");
/// let copy = model.clone();
/// assert_eq!(copy, "gpt-4o");
/// assert_eq!(copy.len(), 6);
/// assert!(SharedStr::ptr_eq(&model, &copy));
/// assert_eq!(serde_json::to_string(&copy).unwrap(), r#""gpt-4o""#);
/// let owned: String = copy.into();
/// assert_eq!(owned, "gpt-4o");
/// ```
#[derive(Clone)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether two values share one allocation (a clone of the other).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl Default for SharedStr {
    /// The empty string (one allocation shared by every default value).
    fn default() -> Self {
        static EMPTY: std::sync::OnceLock<SharedStr> = std::sync::OnceLock::new();
        EMPTY.get_or_init(|| SharedStr(Arc::from(""))).clone()
    }
}

impl Deref for SharedStr {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl PartialEq for SharedStr {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
    }
}

impl Eq for SharedStr {}

impl PartialOrd for SharedStr {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SharedStr {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl Hash for SharedStr {
    /// As the `str` (so a map keyed by `SharedStr` can be read with `&str`).
    fn hash<H: Hasher>(&self, state: &mut H) {
        (*self.0).hash(state);
    }
}

macro_rules! eq_with {
    ($($t:ty),*) => {$(
        impl PartialEq<$t> for SharedStr {
            fn eq(&self, other: &$t) -> bool {
                *self.0 == **other
            }
        }
        impl PartialEq<SharedStr> for $t {
            fn eq(&self, other: &SharedStr) -> bool {
                **self == *other.0
            }
        }
    )*};
}
eq_with!(&str, String);

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == *other.0
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> Self {
        SharedStr(Arc::from(s))
    }
}

impl From<&String> for SharedStr {
    fn from(s: &String) -> Self {
        SharedStr(Arc::from(s.as_str()))
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        SharedStr(Arc::from(s))
    }
}

impl From<Arc<str>> for SharedStr {
    fn from(s: Arc<str>) -> Self {
        SharedStr(s)
    }
}

impl From<&SharedStr> for SharedStr {
    fn from(s: &SharedStr) -> Self {
        s.clone()
    }
}

impl From<SharedStr> for String {
    fn from(s: SharedStr) -> Self {
        String::from(&*s.0)
    }
}

impl From<SharedStr> for Arc<str> {
    fn from(s: SharedStr) -> Self {
        s.0
    }
}

impl Serialize for SharedStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SharedStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SharedStr, E> {
                Ok(SharedStr::from(v))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<SharedStr, E> {
                Ok(SharedStr::from(v))
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    #[test]
    fn compares_orders_and_hashes_as_its_str() {
        let a = SharedStr::from("alice");
        assert_eq!(a, "alice");
        assert_eq!("alice", a);
        assert_eq!(a, *"alice");
        assert_eq!(a, String::from("alice"));
        assert_eq!(String::from("alice"), a);
        assert_ne!(a, "bob");
        let (x, y) = (SharedStr::from("a"), SharedStr::from("b"));
        assert!(x < y);
        assert_eq!(x.cmp(&x.clone()), std::cmp::Ordering::Equal);
        let mut h: HashMap<SharedStr, u32> = HashMap::new();
        h.insert(a.clone(), 1);
        assert_eq!(h.get("alice"), Some(&1));
        let mut b: BTreeMap<SharedStr, u32> = BTreeMap::new();
        b.insert(a, 2);
        assert_eq!(b.get("alice"), Some(&2));
    }

    #[test]
    fn clones_share_and_serde_round_trips_as_a_string() {
        let a = SharedStr::from(String::from("gpt-4o"));
        let b = a.clone();
        assert!(SharedStr::ptr_eq(&a, &b));
        assert!(!SharedStr::ptr_eq(&a, &SharedStr::from("gpt-4o")));
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, r#""gpt-4o""#);
        let back: SharedStr = serde_json::from_str(r#""gpt-\u00e9""#).unwrap();
        assert_eq!(back, "gpt-é");
        assert!(serde_json::from_str::<SharedStr>("1").is_err());
        assert_eq!(format!("{a:?} {a}"), r#""gpt-4o" gpt-4o"#);
        assert_eq!(SharedStr::default(), "");
        assert!(SharedStr::ptr_eq(
            &SharedStr::default(),
            &SharedStr::default()
        ));
    }
}
