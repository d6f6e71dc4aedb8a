//! [`SharedStr`], an immutable string whose clones share one allocation,
//! and [`SharedVec`], a copy-on-write list whose clones share theirs.

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

/// A list whose clones share one allocation until one of them is changed
/// (copy on write, by [`Arc::make_mut`]): a clone is a reference count, not
/// a copy of every element.
///
/// [`ChatRequest`](crate::ChatRequest)'s messages and tools are
/// `SharedVec`s, so a layer that keeps a copy of the request (the retry
/// layer, for the next attempt) copies no conversation, and a tool loop
/// that appends to a request it cloned copies the list once, at the first
/// change.
///
/// It reads as a slice (it dereferences to `[T]`: `len`, `iter`, indexing,
/// `last`, ...), changes like a `Vec` (`push`, `extend`, `insert`,
/// `remove`, `truncate`, `clear`, `retain`, and `&mut` access to its
/// elements), compares with slices, arrays and `Vec`s, and serialises as a
/// plain list: the JSON is the same as with a `Vec`. An empty list
/// allocates nothing.
///
/// The wrapper is written here rather than taken from a crate so that a
/// public field's type stays this crate's own; the sharing itself is std's
/// `Arc::make_mut`.
///
/// ```
/// use costlayer_core::SharedVec;
///
/// let mut history: SharedVec<String> = vec!["hi".to_string()].into();
/// let kept = history.clone();
/// assert!(SharedVec::ptr_eq(&history, &kept));
/// history.push("how are you?".to_string()); // copies once, here
/// assert_eq!(history.len(), 2);
/// assert_eq!(kept, ["hi".to_string()]);
/// assert_eq!(history[1], "how are you?");
/// assert_eq!(serde_json::to_string(&history)?, r#"["hi","how are you?"]"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
pub struct SharedVec<T>(Option<Arc<Vec<T>>>);

impl<T> SharedVec<T> {
    /// An empty list (no allocation).
    pub const fn new() -> Self {
        SharedVec(None)
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        match &self.0 {
            Some(v) => v,
            None => &[],
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// Whether two lists share one allocation (a clone of the other, not
    /// changed since). Two empty lists share none.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        match (&a.0, &b.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl<T: Clone> SharedVec<T> {
    /// The list as a `Vec` to change, copied first if a clone shares it.
    pub fn make_mut(&mut self) -> &mut Vec<T> {
        Arc::make_mut(self.0.get_or_insert_with(Default::default))
    }

    /// Appends an element.
    pub fn push(&mut self, value: T) {
        self.make_mut().push(value);
    }

    /// Removes the last element and returns it.
    pub fn pop(&mut self) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        self.make_mut().pop()
    }

    /// Inserts an element at `index`, shifting the rest.
    ///
    /// # Panics
    /// If `index > len`, as [`Vec::insert`].
    pub fn insert(&mut self, index: usize, value: T) {
        self.make_mut().insert(index, value);
    }

    /// Removes and returns the element at `index`, shifting the rest.
    ///
    /// # Panics
    /// If `index >= len`, as [`Vec::remove`].
    pub fn remove(&mut self, index: usize) -> T {
        self.make_mut().remove(index)
    }

    /// Keeps the first `len` elements.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.make_mut().truncate(len);
        }
    }

    /// Removes every element (a shared list is let go, not copied).
    pub fn clear(&mut self) {
        self.0 = None;
    }

    /// Keeps the elements for which `keep` returns true.
    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        if !self.is_empty() {
            self.make_mut().retain(keep);
        }
    }

    /// The elements as a `Vec`, copied only if a clone shares them.
    pub fn into_vec(self) -> Vec<T> {
        match self.0 {
            Some(v) => Arc::unwrap_or_clone(v),
            None => Vec::new(),
        }
    }
}

impl<T> Clone for SharedVec<T> {
    fn clone(&self) -> Self {
        SharedVec(self.0.clone())
    }
}

impl<T> Default for SharedVec<T> {
    fn default() -> Self {
        SharedVec::new()
    }
}

impl<T> Deref for SharedVec<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Clone> std::ops::DerefMut for SharedVec<T> {
    /// The elements to change in place, copied first if a clone shares
    /// them.
    fn deref_mut(&mut self) -> &mut [T] {
        if self.is_empty() {
            return &mut [];
        }
        self.make_mut()
    }
}

impl<T> AsRef<[T]> for SharedVec<T> {
    fn as_ref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: fmt::Debug> fmt::Debug for SharedVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

impl<T: PartialEq> PartialEq for SharedVec<T> {
    fn eq(&self, other: &Self) -> bool {
        Self::ptr_eq(self, other) || self.as_slice() == other.as_slice()
    }
}

impl<T: Eq> Eq for SharedVec<T> {}

impl<T: Hash> Hash for SharedVec<T> {
    /// As the slice.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl<T: PartialEq> PartialEq<[T]> for SharedVec<T> {
    fn eq(&self, other: &[T]) -> bool {
        self.as_slice() == other
    }
}

impl<T: PartialEq> PartialEq<Vec<T>> for SharedVec<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: PartialEq, const N: usize> PartialEq<[T; N]> for SharedVec<T> {
    fn eq(&self, other: &[T; N]) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T> From<Vec<T>> for SharedVec<T> {
    fn from(v: Vec<T>) -> Self {
        if v.is_empty() {
            SharedVec(None)
        } else {
            SharedVec(Some(Arc::new(v)))
        }
    }
}

impl<T, const N: usize> From<[T; N]> for SharedVec<T> {
    fn from(a: [T; N]) -> Self {
        Vec::from(a).into()
    }
}

impl<T: Clone> From<&[T]> for SharedVec<T> {
    fn from(s: &[T]) -> Self {
        s.to_vec().into()
    }
}

impl<T: Clone> From<SharedVec<T>> for Vec<T> {
    fn from(v: SharedVec<T>) -> Self {
        v.into_vec()
    }
}

impl<T> FromIterator<T> for SharedVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        iter.into_iter().collect::<Vec<T>>().into()
    }
}

impl<T: Clone> Extend<T> for SharedVec<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        let mut iter = iter.into_iter().peekable();
        if iter.peek().is_some() {
            self.make_mut().extend(iter);
        }
    }
}

impl<'a, T> IntoIterator for &'a SharedVec<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl<'a, T: Clone> IntoIterator for &'a mut SharedVec<T> {
    type Item = &'a mut T;
    type IntoIter = std::slice::IterMut<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        use std::ops::DerefMut;
        self.deref_mut().iter_mut()
    }
}

impl<T: Clone> IntoIterator for SharedVec<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl<T: Serialize> Serialize for SharedVec<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for SharedVec<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<T>::deserialize(d).map(SharedVec::from)
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

    #[test]
    fn a_shared_vec_copies_on_the_first_change_only() {
        let empty: SharedVec<u32> = SharedVec::new();
        assert!(empty.is_empty());
        assert!(!SharedVec::ptr_eq(&empty, &empty.clone()));
        let mut a: SharedVec<u32> = vec![1, 2, 3].into();
        let b = a.clone();
        assert!(SharedVec::ptr_eq(&a, &b));
        a[0] = 10; // through DerefMut: copies, b keeps its values
        assert!(!SharedVec::ptr_eq(&a, &b));
        assert_eq!(a, [10, 2, 3]);
        assert_eq!(b, vec![1, 2, 3]);
        let c = a.clone();
        a.push(4);
        a.extend([5, 6]);
        a.insert(0, 0);
        assert_eq!(a.remove(1), 10);
        a.retain(|x| x % 2 == 0);
        assert_eq!(a, [0, 2, 4, 6]);
        assert_eq!(a.pop(), Some(6));
        a.truncate(1);
        assert_eq!(a, [0]);
        assert_eq!(c, [10, 2, 3]);
        for x in &mut a {
            *x += 1;
        }
        assert_eq!(a.iter().sum::<u32>(), 1);
        a.clear();
        assert!(a.is_empty());
        assert_eq!(a.pop(), None);
        // A list no clone shares is changed in place.
        let mut d: SharedVec<u32> = (0..4).collect();
        let before = d.as_ptr();
        d[1] = 9;
        assert_eq!(d.as_ptr(), before);
        assert_eq!(d.clone().into_vec(), vec![0, 9, 2, 3]);
        assert_eq!(format!("{d:?}"), "[0, 9, 2, 3]");
    }

    #[test]
    fn a_shared_vec_serialises_as_a_list() -> Result<(), serde_json::Error> {
        let v: SharedVec<String> = vec!["a".to_string(), "b".to_string()].into();
        assert_eq!(serde_json::to_string(&v)?, r#"["a","b"]"#);
        let back: SharedVec<String> = serde_json::from_str(r#"["a","b"]"#)?;
        assert_eq!(back, v);
        let none: SharedVec<String> = serde_json::from_str("[]")?;
        assert!(none.is_empty());
        assert!(serde_json::from_str::<SharedVec<String>>("{}").is_err());
        Ok(())
    }
}
