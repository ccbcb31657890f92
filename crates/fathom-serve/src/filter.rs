//! Metadata filters: the filter language, and [`Payloads`], the per-collection column
//! store that turns a filter into the set of matching ids ([`IdBitmap`]) before the index
//! search, which then only looks at those ids.
//!
//! # The filter language
//!
//! A filter is a JSON object. Two dialects are accepted and may be mixed at any level:
//! the MongoDB / Chroma one (`{"price": {"$lt": 10}}`) and the Qdrant one
//! (`{"must": [{"key": "price", "range": {"lt": 10}}]}`). Every condition of a filter
//! must hold; `{}` matches every item.
//!
//! | Filter | Matches items whose … |
//! |---|---|
//! | `{"f": v}`, `{"f": {"$eq": v}}` | `f` equals `v` |
//! | `{"f": {"$ne": v}}` | `f` does not equal `v` (includes items without `f`) |
//! | `{"f": {"$in": [v, …]}}` | `f` equals one of the values |
//! | `{"f": {"$nin": [v, …]}}` | `f` equals none of the values (includes items without `f`) |
//! | `{"f": {"$gt": x}}`, `$gte`, `$lt`, `$lte` | `f` is a number (or a date) in the range |
//! | `{"f": {"$exists": true}}` | `f` is present and not null |
//! | `{"f": {"$exists": false}}` | `f` is missing or null |
//! | `{"f": {"$not": {"$gt": 5}}}` | the operators on `f` do not match |
//! | `{"$and": [F, …]}` | every filter `F` matches (an empty list: every item) |
//! | `{"$or": [F, …]}` | at least one `F` matches (the list must not be empty) |
//! | `{"$not": F}` | `F` does not match |
//! | `{"key": "f", "match": {"value": v}}` | `f` equals `v` (Qdrant) |
//! | `{"key": "f", "match": {"any": [v, …]}}` | `f` equals one of the values |
//! | `{"key": "f", "match": {"except": [v, …]}}` | `f` equals none of the values (includes items without `f`) |
//! | `{"key": "f", "range": {"gt": x, "lte": y}}` | `f` lies in the range (`gt` `gte` `lt` `lte`) |
//! | `{"is_empty": {"key": "f"}}` | `f` is missing, null or `[]` |
//! | `{"is_null": {"key": "f"}}` | `f` is present and null |
//! | `{"must": [C, …]}` | every condition or filter `C` matches (an empty list: every item) |
//! | `{"should": [C, …]}` | at least one `C` matches (an empty list is ignored) |
//! | `{"must_not": [C, …]}` | no `C` matches |
//!
//! Several operators on one field (`{"price": {"$gte": 1, "$ne": 5}}`) and several keys in
//! one object (`{"category": "books", "price": {"$lt": 10}}`) must all hold.
//!
//! - **Fields**: `"a.b.c"` reaches into nested objects (also through arrays of objects:
//!   `"items.sku"` sees the `sku` of every object in the `items` array). Qdrant's
//!   `"a[].b"` is accepted and means the same as `"a.b"`. Keys containing a `.` can't be
//!   addressed.
//! - **Values**: numbers (compared by value, exactly: `1` equals `1.0`, and 64-bit
//!   integers beyond 2^53 stay apart, as in Qdrant and MongoDB; see [`Num`]), strings
//!   and bools, never equal to one another (`"1"` is not `1`, `true` is not `1`).
//!   Equality with `null`, an array or an object is an error: test for null with
//!   `$exists`, `is_null` or `is_empty`.
//! - **Arrays** in the metadata: a condition matches when any element matches (`{"tags":
//!   "red"}` matches `{"tags": ["red", "blue"]}`). `$ne`, `$nin` and `except` are the
//!   negations of `$eq`, `$in` and `any`: they match when no element matches, and when the
//!   field is missing. Several range operators on one field form one range, which one
//!   element must lie in.
//! - **Ranges** compare numbers, or dates: a bound such as `"2024-05-01"`,
//!   `"2024-05-01T12:00:00Z"` or `"2024-05-01T12:00:00.250+02:00"` (RFC 3339; no zone
//!   means UTC; `T` may be a space; seconds may be left out) matches string values that
//!   are dates, compared as instants (to about a microsecond). A range never matches
//!   strings with number bounds, nor numbers with date bounds; any other bound is an
//!   error, as is mixing number and date bounds in one range.
//! - **Reserved keys**: `must`, `should`, `must_not` are always Qdrant clauses; an object
//!   with `key` beside `match` or `range` is a Qdrant condition; `is_empty` / `is_null`
//!   whose value is an object with `key` are Qdrant conditions. Address fields of those
//!   names with the Qdrant form, e.g. `{"key": "must", "match": {"value": 1}}`.
//! - **Limits**: at most 32 levels of nesting ([`MAX_DEPTH`]), 100 000 conditions and
//!   listed values ([`MAX_TERMS`]), 32 parts in a field path ([`MAX_PATH_SEGMENTS`]).
//!   Errors say what was wrong, where, and what was expected, e.g. `unknown operator
//!   "$gtx" at "price"; expected one of $eq $ne $in $nin $gt $gte $lt $lte $exists $not`.
//!
//! ```
//! use fathom_serve::filter::{parse, Payloads};
//! use serde_json::json;
//! let mut p = Payloads::default();
//! p.insert(0, &json!({"category": "books", "price": 8, "tags": ["new"]}));
//! p.insert(1, &json!({"category": "books", "price": 25}));
//! p.insert(2, &json!({"category": "music", "price": 5, "when": "2024-05-01"}));
//! let f = parse(&json!({"category": "books", "price": {"$lt": 10}})).unwrap();
//! assert_eq!(p.evaluate(&f).iter().collect::<Vec<_>>(), vec![0]);
//! let f = parse(&json!({"should": [{"key": "tags", "match": {"any": ["new"]}},
//!                                  {"key": "when", "range": {"gte": "2024-01-01"}}]})).unwrap();
//! assert_eq!(p.evaluate(&f).iter().collect::<Vec<_>>(), vec![0, 2]);
//! ```

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use fathom_core::{IdSelector, Idx};
use serde_json::{Map, Value};

/// The deepest nesting of filter objects [`parse`] accepts.
pub const MAX_DEPTH: usize = 32;

/// The most conditions, filter objects and listed values (`$in`, `any`, …) one filter may
/// hold.
pub const MAX_TERMS: usize = 100_000;

/// The most parts a field path (`a.b.c`) may have; metadata nested deeper is not indexed.
pub const MAX_PATH_SEGMENTS: usize = 32;

// ---------------------------------------------------------------------------------------
// The parsed filter.

/// A parsed filter (see the [module documentation](self) for the language).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every item (`{}`, an empty `$and` or `must`).
    All,
    /// Items matching every filter.
    And(Vec<Filter>),
    /// Items matching at least one filter.
    Or(Vec<Filter>),
    /// Items not matching the filter.
    Not(Box<Filter>),
    /// Items whose field at `path` satisfies `cond`.
    Field {
        /// The field path, parts separated by `.`.
        path: String,
        /// The condition on its values.
        cond: Cond,
    },
}

/// A condition on the values of one field.
///
/// A field's values are what its path reaches (several when it passes through an array
/// of objects); the elements of an array value count as values too.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// A value equals this one.
    Eq(Scalar),
    /// A value equals one of these.
    In(Vec<Scalar>),
    /// A value (a number, or a date string for a date range) lies in the range.
    Range(Range),
    /// The field is present and not null.
    Exists,
    /// The field is present and null.
    IsNull,
    /// The field is missing, null or an empty array.
    IsEmpty,
}

/// A number as filters compare it: exactly, as Qdrant and MongoDB do. Integers beyond
/// 2^53 stay apart (9007199254740993 ≠ 9007199254740992), an integer equals the float of
/// the same value (1 = 1.0), and all of them order by value. Dates are their instants in
/// seconds. Kept as the nearest double, in bits that sort like it, and an integer's
/// distance from that double (at most 2^10 for a 64-bit integer): the pair orders exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Num {
    nearest: u64,
    offset: i64,
}

impl Num {
    /// Below every number.
    const MIN: Num = Num {
        nearest: 0,
        offset: i64::MIN,
    };
    /// Above every number.
    const MAX: Num = Num {
        nearest: u64::MAX,
        offset: i64::MAX,
    };

    /// A float (`-0.0` is `0.0`).
    pub fn from_f64(x: f64) -> Num {
        Num {
            nearest: ordered(x),
            offset: 0,
        }
    }

    /// An integer of up to 64 bits (signed or not).
    pub fn from_int(i: i128) -> Num {
        let nearest = i as f64;
        Num {
            nearest: ordered(nearest),
            // |i| < 2^64, so the nearest double is an integer below 2^65 and the
            // difference at most half a unit in its last place, 2^11.
            offset: (i - nearest as i128) as i64,
        }
    }

    /// A JSON number: an integer exactly, a float as it is.
    pub fn from_json(n: &serde_json::Number) -> Option<Num> {
        if let Some(u) = n.as_u64() {
            Some(Num::from_int(i128::from(u)))
        } else if let Some(i) = n.as_i64() {
            Some(Num::from_int(i128::from(i)))
        } else {
            n.as_f64().filter(|x| !x.is_nan()).map(Num::from_f64)
        }
    }
}

/// A value a field is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A number (integers included), compared by value, exactly.
    Num(Num),
    /// A string, compared exactly.
    Str(String),
    /// A bool.
    Bool(bool),
}

/// What a [`Range`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeKind {
    /// Number values.
    Number,
    /// Date strings, as seconds since the Unix epoch (see [`parse_date`]).
    Date,
}

/// One end of a [`Range`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// The bound: a number, or a date as seconds since the Unix epoch.
    pub value: Num,
    /// Whether the bound itself is in the range (`gte` / `lte`).
    pub inclusive: bool,
}

/// A range of numbers or dates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Numbers or dates.
    pub kind: RangeKind,
    /// The lower end, if any.
    pub lower: Option<Limit>,
    /// The upper end, if any.
    pub upper: Option<Limit>,
}

impl Range {
    /// Whether `x` (a number, or a date in epoch seconds) lies in the range.
    pub fn contains(&self, x: Num) -> bool {
        self.lower.is_none_or(|l| {
            if l.inclusive {
                x >= l.value
            } else {
                x > l.value
            }
        }) && self.upper.is_none_or(|u| {
            if u.inclusive {
                x <= u.value
            } else {
                x < u.value
            }
        })
    }

    /// Whether the metadata value `v` lies in the range.
    fn matches_value(&self, v: &Value) -> bool {
        match (self.kind, v) {
            (RangeKind::Number, Value::Number(n)) => {
                Num::from_json(n).is_some_and(|x| self.contains(x))
            }
            (RangeKind::Date, Value::String(s)) => {
                parse_date(s).is_some_and(|t| self.contains(Num::from_f64(t)))
            }
            _ => false,
        }
    }
}

impl Scalar {
    /// Whether the metadata value `v` equals this one.
    fn matches_value(&self, v: &Value) -> bool {
        match (self, v) {
            (Scalar::Num(x), Value::Number(n)) => Num::from_json(n) == Some(*x),
            (Scalar::Str(s), Value::String(t)) => s == t,
            (Scalar::Bool(b), Value::Bool(c)) => b == c,
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parsing.

/// Parses a filter in either dialect (see the [module documentation](self)). The error
/// says what was wrong, where, and what was expected.
pub fn parse(v: &Value) -> Result<Filter, String> {
    Parser { terms: 0 }.filter(v, 1, "filter")
}

const FIELD_OPERATORS: &str = "$eq $ne $in $nin $gt $gte $lt $lte $exists $not";

/// The keys that make an object with `key` a Qdrant field condition.
const QDRANT_CONDITIONS: [&str; 6] = [
    "match",
    "range",
    "values_count",
    "geo_radius",
    "geo_bounding_box",
    "geo_polygon",
];

struct Parser {
    terms: usize,
}

impl Parser {
    fn count(&mut self, n: usize) -> Result<(), String> {
        self.terms = self.terms.saturating_add(n);
        if self.terms > MAX_TERMS {
            Err(format!(
                "filter too large: more than {MAX_TERMS} conditions and listed values"
            ))
        } else {
            Ok(())
        }
    }

    fn filter(&mut self, v: &Value, depth: usize, at: &str) -> Result<Filter, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "filter nested too deeply at {at}: at most {MAX_DEPTH} levels"
            ));
        }
        self.count(1)?;
        let Value::Object(obj) = v else {
            return Err(format!(
                "expected a filter object at {at}, got {}",
                describe(v)
            ));
        };
        if obj.contains_key("key") && QDRANT_CONDITIONS.iter().any(|k| obj.contains_key(*k)) {
            return self.qdrant_field(obj, at);
        }
        let mut parts = Vec::new();
        for (k, val) in obj {
            let here = format!("{at}.{k}");
            match k.as_str() {
                "$and" => parts.push(and(self.list(val, depth, &here)?)),
                "$or" => {
                    let fs = self.list(val, depth, &here)?;
                    if fs.is_empty() {
                        return Err(format!(
                            "\"$or\" at {at} needs at least one filter (an empty \"$or\" \
                             would match nothing)"
                        ));
                    }
                    parts.push(or(fs));
                }
                "$not" => parts.push(not(self.filter(val, depth + 1, &here)?)),
                "must" => {
                    if let Some(fs) = self.clause(val, depth, &here)? {
                        parts.push(and(fs));
                    }
                }
                "should" => {
                    if let Some(fs) = self.clause(val, depth, &here)?
                        && !fs.is_empty()
                    {
                        parts.push(or(fs));
                    }
                }
                "must_not" => {
                    if let Some(fs) = self.clause(val, depth, &here)?
                        && !fs.is_empty()
                    {
                        parts.push(not(or(fs)));
                    }
                }
                "is_empty" | "is_null" if val.get("key").is_some() => {
                    parts.push(self.qdrant_emptiness(k, val, at)?);
                }
                "has_id" | "min_should" | "nested" | "has_vector" => {
                    return Err(format!(
                        "Qdrant's \"{k}\" is not supported (at {at}); expected \"must\", \
                         \"should\", \"must_not\" or a condition"
                    ));
                }
                _ if k.starts_with('$') => {
                    return Err(format!(
                        "unknown operator {} at {at}; expected $and, $or or $not here, or a \
                         field name (field operators go inside a field: \
                         {{\"price\": {{\"$gt\": 5}}}})",
                        quote(k)
                    ));
                }
                _ => parts.push(self.field(k, val, depth)?),
            }
        }
        Ok(and(parts))
    }

    /// An array of filters (may be empty).
    fn list(&mut self, v: &Value, depth: usize, at: &str) -> Result<Vec<Filter>, String> {
        let Value::Array(items) = v else {
            return Err(format!(
                "{at} must be an array of filters, got {}",
                describe(v)
            ));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, f)| self.filter(f, depth + 1, &format!("{at}[{i}]")))
            .collect()
    }

    /// A Qdrant clause: an array of conditions, one condition, or null (absent).
    fn clause(&mut self, v: &Value, depth: usize, at: &str) -> Result<Option<Vec<Filter>>, String> {
        match v {
            Value::Null => Ok(None),
            Value::Array(_) => self.list(v, depth, at).map(Some),
            Value::Object(_) => Ok(Some(vec![self.filter(v, depth + 1, at)?])),
            _ => Err(format!(
                "{at} must be an array of conditions, got {}",
                describe(v)
            )),
        }
    }

    /// `{"key": "f", "match": …}` / `{"key": "f", "range": …}`.
    fn qdrant_field(&mut self, obj: &Map<String, Value>, at: &str) -> Result<Filter, String> {
        let path = match obj.get("key") {
            Some(Value::String(s)) => check_path(&s.replace("[]", ""))?,
            other => {
                return Err(format!(
                    "\"key\" at {at} must be a field name, got {}",
                    other.map_or("nothing", describe)
                ));
            }
        };
        let mut parts = Vec::new();
        for (k, v) in obj {
            match k.as_str() {
                "key" => {}
                "match" => parts.push(self.qdrant_match(&path, v)?),
                "range" => parts.push(field(&path, Cond::Range(self.qdrant_range(&path, v)?))),
                "values_count" | "geo_radius" | "geo_bounding_box" | "geo_polygon" => {
                    return Err(format!(
                        "condition \"{k}\" on {} is not supported; expected \"match\" or \
                         \"range\"",
                        quote(&path)
                    ));
                }
                _ => {
                    return Err(format!(
                        "unknown key {} in the condition on {}; expected \"key\" with \
                         \"match\" or \"range\"",
                        quote(k),
                        quote(&path)
                    ));
                }
            }
        }
        Ok(and(parts))
    }

    fn qdrant_match(&mut self, path: &str, v: &Value) -> Result<Filter, String> {
        let expected = "expected {\"value\": v}, {\"any\": [v, …]} or {\"except\": [v, …]}";
        let Value::Object(m) = v else {
            return Err(format!(
                "\"match\" on {} must be an object, got {}; {expected}",
                quote(path),
                describe(v)
            ));
        };
        let mut entries = m.iter();
        let (Some((k, x)), None) = (entries.next(), entries.next()) else {
            return Err(format!(
                "\"match\" on {} needs exactly one key; {expected}",
                quote(path)
            ));
        };
        self.count(1)?;
        match k.as_str() {
            "value" => Ok(field(path, Cond::Eq(scalar(path, "match.value", x)?))),
            "any" => Ok(field(path, Cond::In(self.scalars(path, "match.any", x)?))),
            "except" => Ok(not(field(
                path,
                Cond::In(self.scalars(path, "match.except", x)?),
            ))),
            "text" | "text_any" | "phrase" => Err(format!(
                "full-text \"match.{k}\" on {} is not supported; {expected}",
                quote(path)
            )),
            _ => Err(format!(
                "unknown \"match\" key {} on {}; {expected}",
                quote(k),
                quote(path)
            )),
        }
    }

    fn qdrant_range(&mut self, path: &str, v: &Value) -> Result<Range, String> {
        let Value::Object(m) = v else {
            return Err(format!(
                "\"range\" on {} must be an object such as {{\"gte\": 1, \"lt\": 10}}, got {}",
                quote(path),
                describe(v)
            ));
        };
        let mut range = RangeBuilder::default();
        for (k, x) in m {
            self.count(1)?;
            if !matches!(k.as_str(), "gt" | "gte" | "lt" | "lte") {
                return Err(format!(
                    "unknown \"range\" key {} on {}; expected gt gte lt lte",
                    quote(k),
                    quote(path)
                ));
            }
            if !x.is_null() {
                range.add(path, k, x)?;
            }
        }
        range.finish().ok_or_else(|| {
            format!(
                "\"range\" on {} needs at least one of gt gte lt lte",
                quote(path)
            )
        })
    }

    /// `{"is_empty": {"key": "f"}}` / `{"is_null": {"key": "f"}}`.
    fn qdrant_emptiness(&mut self, which: &str, v: &Value, at: &str) -> Result<Filter, String> {
        let cond = if which == "is_empty" {
            Cond::IsEmpty
        } else {
            Cond::IsNull
        };
        match v {
            Value::Object(m) if m.len() == 1 => match m.get("key") {
                Some(Value::String(s)) => Ok(field(&check_path(&s.replace("[]", ""))?, cond)),
                other => Err(format!(
                    "\"{which}.key\" at {at} must be a field name, got {}",
                    other.map_or("nothing", describe)
                )),
            },
            _ => Err(format!(
                "\"{which}\" at {at} must be {{\"key\": \"field\"}} and nothing else"
            )),
        }
    }

    /// `"f": v` or `"f": {"$op": …, …}`.
    fn field(&mut self, name: &str, v: &Value, depth: usize) -> Result<Filter, String> {
        let path = check_path(name)?;
        match v {
            Value::Null => Err(format!(
                "null value for {p}: equality with null is not supported; use {{{p}: \
                 {{\"$exists\": false}}}} (missing or null) or {{\"is_null\": {{\"key\": \
                 {p}}}}} (null)",
                p = quote(&path)
            )),
            Value::Array(_) => Err(format!(
                "array value for {p}: equality with an array is not supported; use {{{p}: \
                 {{\"$in\": [...]}}}} to match any of several values",
                p = quote(&path)
            )),
            Value::Object(m) if m.is_empty() => Err(format!(
                "empty operator object for {}; expected one of {FIELD_OPERATORS}",
                quote(&path)
            )),
            Value::Object(m) => match m.keys().find(|k| !k.starts_with('$')) {
                Some(k) => Err(format!(
                    "object value for {}: equality with an object is not supported; \
                     address nested fields with a dotted path such as {}, or use \
                     operators: {FIELD_OPERATORS}",
                    quote(&path),
                    quote(&format!("{path}.{k}"))
                )),
                None => self.operators(&path, m, depth),
            },
            _ => Ok(field(&path, Cond::Eq(scalar(&path, "the value", v)?))),
        }
    }

    /// `{"$op": …, …}` on the field `path`.
    fn operators(
        &mut self,
        path: &str,
        ops: &Map<String, Value>,
        depth: usize,
    ) -> Result<Filter, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "filter nested too deeply at {}: at most {MAX_DEPTH} levels",
                quote(path)
            ));
        }
        let mut parts = Vec::new();
        let mut range = RangeBuilder::default();
        for (op, v) in ops {
            self.count(1)?;
            match op.as_str() {
                "$eq" => parts.push(field(path, Cond::Eq(scalar(path, op, v)?))),
                "$ne" => parts.push(not(field(path, Cond::Eq(scalar(path, op, v)?)))),
                "$in" => parts.push(field(path, Cond::In(self.scalars(path, op, v)?))),
                "$nin" => parts.push(not(field(path, Cond::In(self.scalars(path, op, v)?)))),
                "$gt" | "$gte" | "$lt" | "$lte" => range.add(path, op, v)?,
                "$exists" => match v {
                    Value::Bool(true) => parts.push(field(path, Cond::Exists)),
                    Value::Bool(false) => parts.push(not(field(path, Cond::Exists))),
                    _ => {
                        return Err(format!(
                            "\"$exists\" at {} must be true or false, got {}",
                            quote(path),
                            describe(v)
                        ));
                    }
                },
                "$not" => match v {
                    Value::Object(inner)
                        if !inner.is_empty() && inner.keys().all(|k| k.starts_with('$')) =>
                    {
                        parts.push(not(self.operators(path, inner, depth + 1)?));
                    }
                    _ => {
                        return Err(format!(
                            "\"$not\" at {} must be an object of operators such as \
                             {{\"$gt\": 5}}, got {}; to negate a whole filter write \
                             {{\"$not\": {{…}}}} beside the fields",
                            quote(path),
                            describe(v)
                        ));
                    }
                },
                _ => {
                    return Err(format!(
                        "unknown operator {} at {}; expected one of {FIELD_OPERATORS}",
                        quote(op),
                        quote(path)
                    ));
                }
            }
        }
        if let Some(r) = range.finish() {
            parts.push(field(path, Cond::Range(r)));
        }
        Ok(and(parts))
    }

    /// An array of values for `$in`, `$nin`, `any`, `except`.
    fn scalars(&mut self, path: &str, op: &str, v: &Value) -> Result<Vec<Scalar>, String> {
        let Value::Array(items) = v else {
            return Err(format!(
                "{op} at {} must be an array of numbers, strings or bools, got {}",
                quote(path),
                describe(v)
            ));
        };
        self.count(items.len())?;
        items.iter().map(|x| scalar(path, op, x)).collect()
    }
}

/// A value to compare with: a number, string or bool.
fn scalar(path: &str, op: &str, v: &Value) -> Result<Scalar, String> {
    match v {
        Value::Number(n) => Num::from_json(n)
            .map(Scalar::Num)
            .ok_or_else(|| format!("the number for {op} at {} is out of range", quote(path))),
        Value::String(s) => Ok(Scalar::Str(s.clone())),
        Value::Bool(b) => Ok(Scalar::Bool(*b)),
        Value::Null => Err(format!(
            "{op} at {p} is null: a null can't be compared; use {{{p}: {{\"$exists\": \
             false}}}} (missing or null) or {{\"is_null\": {{\"key\": {p}}}}} (null)",
            p = quote(path)
        )),
        _ => Err(format!(
            "{op} at {} must be a number, string or bool, got {}",
            quote(path),
            describe(v)
        )),
    }
}

/// Bounds of one range, tightened as they come.
#[derive(Default)]
struct RangeBuilder {
    kind: Option<RangeKind>,
    lower: Option<Limit>,
    upper: Option<Limit>,
}

impl RangeBuilder {
    /// Adds the bound `op` (`gt`, `$gte`, …) of value `v`.
    fn add(&mut self, path: &str, op: &str, v: &Value) -> Result<(), String> {
        let (is_lower, inclusive) = match op.trim_start_matches('$') {
            "gt" => (true, false),
            "gte" => (true, true),
            "lt" => (false, false),
            "lte" => (false, true),
            _ => return Err(format!("unknown range operator {}", quote(op))),
        };
        let (kind, value) = match v {
            Value::Number(n) => match Num::from_json(n) {
                Some(x) => (RangeKind::Number, x),
                None => {
                    return Err(format!(
                        "the number for {op} at {} is out of range",
                        quote(path)
                    ));
                }
            },
            Value::String(s) => match parse_date(s) {
                Some(t) => (RangeKind::Date, Num::from_f64(t)),
                None => {
                    return Err(format!(
                        "{op} at {} must be a number or a date such as \"2024-05-01\" or \
                         \"2024-05-01T12:00:00Z\" (RFC 3339), got the string {}",
                        quote(path),
                        quote(s)
                    ));
                }
            },
            _ => {
                return Err(format!(
                    "{op} at {} must be a number or a date string, got {}",
                    quote(path),
                    describe(v)
                ));
            }
        };
        if self.kind.is_some_and(|k| k != kind) {
            return Err(format!(
                "the range on {} mixes number and date bounds; expected all numbers or all \
                 dates",
                quote(path)
            ));
        }
        self.kind = Some(kind);
        let new = Limit { value, inclusive };
        if is_lower {
            self.lower = Some(match self.lower {
                Some(old) if old.value > value || (old.value == value && !old.inclusive) => old,
                _ => new,
            });
        } else {
            self.upper = Some(match self.upper {
                Some(old) if old.value < value || (old.value == value && !old.inclusive) => old,
                _ => new,
            });
        }
        Ok(())
    }

    fn finish(self) -> Option<Range> {
        Some(Range {
            kind: self.kind?,
            lower: self.lower,
            upper: self.upper,
        })
    }
}

/// A field path checked: non-empty parts, not too many.
fn check_path(p: &str) -> Result<String, String> {
    if p.is_empty() {
        return Err("empty field name; expected a field such as \"price\" or \"a.b\"".into());
    }
    if p.split('.').any(str::is_empty) {
        return Err(format!(
            "field path {} has an empty part; expected parts separated by single dots, \
             such as \"a.b\"",
            quote(p)
        ));
    }
    if p.split('.').count() > MAX_PATH_SEGMENTS {
        return Err(format!(
            "field path {} is too deep: at most {MAX_PATH_SEGMENTS} parts",
            quote(p)
        ));
    }
    Ok(p.to_string())
}

fn field(path: &str, cond: Cond) -> Filter {
    Filter::Field {
        path: path.to_string(),
        cond,
    }
}

fn and(mut parts: Vec<Filter>) -> Filter {
    parts.retain(|f| *f != Filter::All);
    match parts.len() {
        0 => Filter::All,
        1 => parts.pop().unwrap_or(Filter::All),
        _ => Filter::And(parts),
    }
}

fn or(mut parts: Vec<Filter>) -> Filter {
    if parts.len() == 1 {
        parts.pop().unwrap_or(Filter::All)
    } else {
        Filter::Or(parts)
    }
}

fn not(f: Filter) -> Filter {
    Filter::Not(Box::new(f))
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `s` quoted for a message, cut short when long.
fn quote(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut:?}…")
    } else {
        format!("{s:?}")
    }
}

// ---------------------------------------------------------------------------------------
// Dates.

/// Parses a date (`2024-05-01`, midnight UTC) or date-time (`2024-05-01T12:00:00Z`,
/// `2024-05-01T12:00:00.250+02:00`, `2024-05-01 12:00`; without a zone: UTC) in the RFC
/// 3339 / ISO 8601 form to seconds since the Unix epoch; `None` for anything else
/// (including impossible dates such as `2023-02-29`). Zones are `Z`, `±HH:MM` or `±HHMM`.
pub fn parse_date(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let num = |from: usize, to: usize| -> Option<u32> {
        let digits = b.get(from..to)?;
        digits.iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() < 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day) as f64;
    if b.len() == 10 {
        return Some(days * 86_400.0);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    let (hour, minute) = (num(11, 13)?, num(14, 16)?);
    if hour > 23 || minute > 59 {
        return None;
    }
    let mut i = 16;
    let mut second = 0.0;
    if b.get(i) == Some(&b':') {
        let s = num(i + 1, i + 3)?;
        if s > 60 {
            return None;
        }
        second = f64::from(s);
        i += 3;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            let mut scale = 0.1;
            while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
                second += f64::from(c - b'0') * scale;
                scale /= 10.0;
                i += 1;
            }
            if i == start {
                return None;
            }
        }
    }
    let offset = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = num(i + 1, i + 3)?;
            i += 3;
            if b.get(i) == Some(&b':') {
                i += 1;
            }
            let om = num(i, i + 2)?;
            i += 2;
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = i64::from(oh * 3600 + om * 60);
            if sign == b'-' { -secs } else { secs }
        }
        Some(_) => return None,
    };
    if i != b.len() {
        return None;
    }
    let clock = i64::from(hour * 3600 + minute * 60) - offset;
    Some(days * 86_400.0 + clock as f64 + second)
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// ---------------------------------------------------------------------------------------
// Row-wise evaluation.

/// Whether one item's metadata `meta` passes `f`, evaluated on the JSON itself (a
/// non-object `meta` has no fields). [`Payloads::evaluate`] gives the same answers for
/// every stored item.
pub fn matches(f: &Filter, meta: &Value) -> bool {
    match f {
        Filter::All => true,
        Filter::And(fs) => fs.iter().all(|f| matches(f, meta)),
        Filter::Or(fs) => fs.iter().any(|f| matches(f, meta)),
        Filter::Not(f) => !matches(f, meta),
        Filter::Field { path, cond } => {
            let segments: Vec<&str> = path.split('.').collect();
            let mut leaves = Vec::new();
            if meta.is_object() && segments.len() <= MAX_PATH_SEGMENTS {
                resolve(meta, &segments, &mut leaves);
            }
            cond_holds(cond, &leaves)
        }
    }
}

/// The values at `segments` below `node`, passing through arrays of objects.
fn resolve<'a>(node: &'a Value, segments: &[&str], out: &mut Vec<&'a Value>) {
    let Some((first, rest)) = segments.split_first() else {
        out.push(node);
        return;
    };
    match node {
        Value::Object(m) => {
            if let Some(c) = m.get(*first) {
                resolve(c, rest, out);
            }
        }
        Value::Array(items) => {
            for c in items.iter().filter_map(|e| e.as_object()?.get(*first)) {
                resolve(c, rest, out);
            }
        }
        _ => {}
    }
}

fn cond_holds(cond: &Cond, leaves: &[&Value]) -> bool {
    let mut values = leaves.iter().flat_map(|v| match v {
        Value::Array(items) => items.as_slice(),
        other => std::slice::from_ref(*other),
    });
    match cond {
        Cond::Eq(s) => values.any(|v| s.matches_value(v)),
        Cond::In(list) => values.any(|v| list.iter().any(|s| s.matches_value(v))),
        Cond::Range(r) => values.any(|v| r.matches_value(v)),
        Cond::Exists => leaves.iter().any(|v| !v.is_null()),
        Cond::IsNull => leaves.iter().any(|v| v.is_null()),
        Cond::IsEmpty => !leaves.iter().any(|v| is_filled(v)),
    }
}

/// Neither null nor an empty array.
fn is_filled(v: &Value) -> bool {
    !(v.is_null() || v.as_array().is_some_and(Vec::is_empty))
}

// ---------------------------------------------------------------------------------------
// Id sets.

/// A set of ids as a bitmap (one bit per id up to the largest; memory grows with the
/// largest id, so it suits the dense ids a collection assigns). Negative ids are never
/// members.
#[derive(Debug, Clone, Default)]
pub struct IdBitmap {
    words: Vec<u64>,
}

impl IdBitmap {
    /// An empty set.
    pub fn new() -> IdBitmap {
        IdBitmap::default()
    }

    fn zeros(words: usize) -> IdBitmap {
        IdBitmap {
            words: vec![0; words],
        }
    }

    fn slot(id: Idx) -> Option<(usize, u64)> {
        let i = usize::try_from(id).ok()?;
        Some((i / 64, 1u64 << (i % 64)))
    }

    /// Adds `id` (a negative one is ignored).
    pub fn insert(&mut self, id: Idx) {
        if let Some((w, bit)) = Self::slot(id) {
            if w >= self.words.len() {
                self.words.resize(w + 1, 0);
            }
            self.words[w] |= bit;
        }
    }

    /// Removes `id`.
    pub fn remove(&mut self, id: Idx) {
        if let Some((w, bit)) = Self::slot(id)
            && let Some(word) = self.words.get_mut(w)
        {
            *word &= !bit;
        }
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: Idx) -> bool {
        Self::slot(id).is_some_and(|(w, bit)| self.words.get(w).is_some_and(|x| x & bit != 0))
    }

    /// How many ids the set holds.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The ids, ascending.
    pub fn iter(&self) -> impl Iterator<Item = Idx> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some((w * 64 + b) as Idx)
            })
        })
    }

    fn and_with(&mut self, other: &IdBitmap) {
        for (i, w) in self.words.iter_mut().enumerate() {
            *w &= other.words.get(i).copied().unwrap_or(0);
        }
    }

    fn or_with(&mut self, other: &IdBitmap) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (w, x) in self.words.iter_mut().zip(&other.words) {
            *w |= x;
        }
    }

    fn and_not_with(&mut self, other: &IdBitmap) {
        for (w, x) in self.words.iter_mut().zip(&other.words) {
            *w &= !x;
        }
    }
}

impl PartialEq for IdBitmap {
    fn eq(&self, other: &IdBitmap) -> bool {
        let n = self.words.len().max(other.words.len());
        (0..n).all(|i| self.words.get(i).unwrap_or(&0) == other.words.get(i).unwrap_or(&0))
    }
}

impl Eq for IdBitmap {}

impl FromIterator<Idx> for IdBitmap {
    fn from_iter<I: IntoIterator<Item = Idx>>(ids: I) -> IdBitmap {
        let mut b = IdBitmap::new();
        for id in ids {
            b.insert(id);
        }
        b
    }
}

impl IdSelector for IdBitmap {
    fn is_member(&self, id: Idx) -> bool {
        self.contains(id)
    }
}

// ---------------------------------------------------------------------------------------
// The column store.

/// One entry of a column: what an item has at a path. Ordered so that each kind of
/// entry is one contiguous run of a column (and numbers / dates ascend within theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Key {
    /// A null value.
    Null,
    /// An empty array.
    Empty,
    /// Any other value (present, not null, not `[]`).
    Filled,
    Bool(bool),
    /// A number.
    Num(Num),
    /// A date string's instant.
    Date(Num),
    /// A string, by its number in [`Strings`].
    Str(u32),
}

/// The bits of `x` as an integer that sorts like `x` (`-0.0` as `0.0`).
fn ordered(x: f64) -> u64 {
    let bits = if x == 0.0 { 0 } else { x.to_bits() };
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// Interned strings with reference counts.
#[derive(Debug, Clone, Default)]
struct Strings {
    ids: HashMap<Box<str>, u32>,
    slots: Vec<(Box<str>, usize)>,
    free: Vec<u32>,
}

impl Strings {
    /// The number of `s`, made up (with no references yet) when new.
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = (s.into(), 0);
                i
            }
            None => {
                self.slots.push((s.into(), 0));
                (self.slots.len() - 1) as u32
            }
        };
        self.ids.insert(s.into(), i);
        i
    }

    fn retain(&mut self, i: u32) {
        if let Some(slot) = self.slots.get_mut(i as usize) {
            slot.1 += 1;
        }
    }

    fn release(&mut self, i: u32) {
        if let Some(slot) = self.slots.get_mut(i as usize) {
            slot.1 = slot.1.saturating_sub(1);
            if slot.1 == 0 {
                let s = std::mem::take(&mut slot.0);
                self.ids.remove(&s);
                self.free.push(i);
            }
        }
    }
}

/// The metadata of a collection's live items, column by column, for filters.
///
/// Every path of the items' metadata (`a`, `a.b`, … up to [`MAX_PATH_SEGMENTS`] parts,
/// through arrays of objects too) is a column: an ordered set of (value, id) entries —
/// numbers, date instants (for strings that are dates), strings (interned), bools, and
/// markers for null, `[]` and any other value. Equality and range conditions are range
/// look-ups in the ordered set (they cost the matching entries, not the column's size);
/// `$exists`, `is_null` and `is_empty` read the markers. Each item also keeps the list of
/// its entries, so that removing it costs its own size. A filter's answer is a bitmap
/// over the ids up to the largest, built with word-wise and / or / and-not.
///
/// Memory: about 60 bytes per entry (its place in the column and in the item's list; a
/// scalar field takes two entries, its marker and its value), each distinct string once,
/// and a bit per id up to the largest. Columns of paths no item has any more stay, empty.
#[derive(Debug, Clone, Default)]
pub struct Payloads {
    live: IdBitmap,
    count: usize,
    paths: HashMap<String, u32>,
    columns: Vec<BTreeSet<(Key, Idx)>>,
    rows: Vec<Box<[(u32, Key)]>>,
    strings: Strings,
}

impl Payloads {
    /// An empty store.
    pub fn new() -> Payloads {
        Payloads::default()
    }

    /// Stores the metadata of item `id` (replacing what it had). `meta` is normally an
    /// object; anything else counts as an object without fields. A negative id is
    /// ignored. Memory grows with the largest id, which should be a dense internal id.
    pub fn insert(&mut self, id: Idx, meta: &Value) {
        let Ok(row) = usize::try_from(id) else {
            return;
        };
        self.remove(id);
        let mut entries = Vec::new();
        if let Value::Object(m) = meta {
            let mut path = String::new();
            for (k, c) in m {
                if addressable(k) {
                    path.clear();
                    path.push_str(k);
                    self.index_node(c, &mut path, 1, &mut entries);
                }
            }
        }
        entries.sort_unstable();
        entries.dedup();
        for &(col, key) in &entries {
            if let Key::Str(s) = key {
                self.strings.retain(s);
            }
            self.columns[col as usize].insert((key, id));
        }
        if row >= self.rows.len() {
            self.rows.resize_with(row + 1, Default::default);
        }
        self.rows[row] = entries.into_boxed_slice();
        self.live.insert(id);
        self.count += 1;
    }

    /// Forgets item `id` (nothing happens when it isn't stored).
    pub fn remove(&mut self, id: Idx) {
        if !self.live.contains(id) {
            return;
        }
        let Some(row) = usize::try_from(id).ok().and_then(|i| self.rows.get_mut(i)) else {
            return;
        };
        for &(col, key) in std::mem::take(row).iter() {
            if let Some(c) = self.columns.get_mut(col as usize) {
                c.remove(&(key, id));
            }
            if let Key::Str(s) = key {
                self.strings.release(s);
            }
        }
        self.live.remove(id);
        self.count -= 1;
    }

    /// How many items are stored.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no item is stored.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether item `id` is stored.
    pub fn contains(&self, id: Idx) -> bool {
        self.live.contains(id)
    }

    /// The stored ids.
    pub fn ids(&self) -> &IdBitmap {
        &self.live
    }

    /// The stored items that pass `f` (the same as [`matches()`] on each one's metadata).
    pub fn evaluate(&self, f: &Filter) -> IdBitmap {
        match f {
            Filter::All => self.live.clone(),
            Filter::And(fs) => {
                let mut acc = self.live.clone();
                for f in fs {
                    if acc.is_empty() {
                        break;
                    }
                    acc.and_with(&self.evaluate(f));
                }
                acc
            }
            Filter::Or(fs) => {
                let mut acc = self.none();
                for f in fs {
                    acc.or_with(&self.evaluate(f));
                }
                acc
            }
            Filter::Not(f) => {
                let mut acc = self.live.clone();
                acc.and_not_with(&self.evaluate(f));
                acc
            }
            Filter::Field { path, cond } => self.evaluate_field(path, cond),
        }
    }

    fn none(&self) -> IdBitmap {
        IdBitmap::zeros(self.live.words.len())
    }

    fn evaluate_field(&self, path: &str, cond: &Cond) -> IdBitmap {
        let mut out = self.none();
        let Some(col) = self
            .paths
            .get(path)
            .and_then(|&c| self.columns.get(c as usize))
        else {
            return if *cond == Cond::IsEmpty {
                self.live.clone()
            } else {
                out
            };
        };
        match cond {
            Cond::Eq(s) => self.scan_value(col, s, &mut out),
            Cond::In(list) => {
                for s in list {
                    self.scan_value(col, s, &mut out);
                }
            }
            Cond::Range(r) => {
                let wrap = match r.kind {
                    RangeKind::Number => Key::Num,
                    RangeKind::Date => Key::Date,
                };
                let lo = match r.lower {
                    None => Bound::Included((wrap(Num::MIN), Idx::MIN)),
                    Some(l) if l.inclusive => Bound::Included((wrap(l.value), Idx::MIN)),
                    Some(l) => Bound::Excluded((wrap(l.value), Idx::MAX)),
                };
                let hi = match r.upper {
                    None => Bound::Included((wrap(Num::MAX), Idx::MAX)),
                    Some(u) if u.inclusive => Bound::Included((wrap(u.value), Idx::MAX)),
                    Some(u) => Bound::Excluded((wrap(u.value), Idx::MIN)),
                };
                scan(col, lo, hi, &mut out);
            }
            Cond::Exists => scan(col, run(Key::Empty).0, run(Key::Filled).1, &mut out),
            Cond::IsNull => scan(col, run(Key::Null).0, run(Key::Null).1, &mut out),
            Cond::IsEmpty => {
                let (lo, hi) = run(Key::Filled);
                scan(col, lo, hi, &mut out);
                let mut empty = self.live.clone();
                empty.and_not_with(&out);
                return empty;
            }
        }
        out
    }

    /// Adds to `out` the ids whose value in `col` equals `s`.
    fn scan_value(&self, col: &BTreeSet<(Key, Idx)>, s: &Scalar, out: &mut IdBitmap) {
        let key = match s {
            Scalar::Num(x) => Key::Num(*x),
            Scalar::Bool(b) => Key::Bool(*b),
            Scalar::Str(s) => match self.strings.ids.get(s.as_str()) {
                Some(&i) => Key::Str(i),
                None => return,
            },
        };
        let (lo, hi) = run(key);
        scan(col, lo, hi, out);
    }

    /// The number of the column of `path`, made when new.
    fn column(&mut self, path: &str) -> u32 {
        if let Some(&c) = self.paths.get(path) {
            return c;
        }
        let c = self.columns.len() as u32;
        self.columns.push(BTreeSet::new());
        self.paths.insert(path.to_string(), c);
        c
    }

    /// Records into `entries` the value `node` found at `path` (`depth` parts) and what
    /// lies below it.
    fn index_node(
        &mut self,
        node: &Value,
        path: &mut String,
        depth: usize,
        entries: &mut Vec<(u32, Key)>,
    ) {
        let col = self.column(path);
        entries.push((
            col,
            match node {
                Value::Null => Key::Null,
                Value::Array(a) if a.is_empty() => Key::Empty,
                _ => Key::Filled,
            },
        ));
        match node {
            Value::Array(items) => {
                for v in items {
                    self.index_scalar(col, v, entries);
                }
            }
            v => self.index_scalar(col, v, entries),
        }
        if depth >= MAX_PATH_SEGMENTS {
            return;
        }
        let objects: Vec<&Map<String, Value>> = match node {
            Value::Object(m) => vec![m],
            Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
            _ => return,
        };
        for m in objects {
            for (k, c) in m {
                if addressable(k) {
                    let len = path.len();
                    path.push('.');
                    path.push_str(k);
                    self.index_node(c, path, depth + 1, entries);
                    path.truncate(len);
                }
            }
        }
    }

    fn index_scalar(&mut self, col: u32, v: &Value, entries: &mut Vec<(u32, Key)>) {
        match v {
            Value::Bool(b) => entries.push((col, Key::Bool(*b))),
            Value::Number(n) => {
                if let Some(x) = Num::from_json(n) {
                    entries.push((col, Key::Num(x)));
                }
            }
            Value::String(s) => {
                entries.push((col, Key::Str(self.strings.intern(s))));
                if let Some(t) = parse_date(s) {
                    entries.push((col, Key::Date(Num::from_f64(t))));
                }
            }
            _ => {}
        }
    }
}

/// Whether a metadata key can be reached by a path.
fn addressable(k: &str) -> bool {
    !k.is_empty() && !k.contains('.')
}

/// A bound on a column's entries.
type Edge = Bound<(Key, Idx)>;

/// The bounds of the run of entries with key `k`.
fn run(k: Key) -> (Edge, Edge) {
    (
        Bound::Included((k, Idx::MIN)),
        Bound::Included((k, Idx::MAX)),
    )
}

/// Adds to `out` the ids of the entries of `col` between `lo` and `hi` (nothing when the
/// bounds are crossed).
fn scan(col: &BTreeSet<(Key, Idx)>, lo: Edge, hi: Edge, out: &mut IdBitmap) {
    let ends = |b: &Edge| match b {
        Bound::Included(k) => Some((*k, true)),
        Bound::Excluded(k) => Some((*k, false)),
        Bound::Unbounded => None,
    };
    if let (Some((a, a_in)), Some((b, b_in))) = (ends(&lo), ends(&hi))
        && (a > b || (a == b && !(a_in && b_in)))
    {
        return;
    }
    for &(_, id) in col.range((lo, hi)) {
        out.insert(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Filter {
        match parse(&v) {
            Ok(f) => f,
            Err(e) => panic!("{v} should parse: {e}"),
        }
    }

    fn err(v: Value) -> String {
        match parse(&v) {
            Ok(f) => panic!("{v} should not parse, got {f:?}"),
            Err(e) => e,
        }
    }

    fn num(x: f64) -> Scalar {
        Scalar::Num(Num::from_f64(x))
    }

    fn s(x: &str) -> Scalar {
        Scalar::Str(x.into())
    }

    fn range(kind: RangeKind, lower: Option<(f64, bool)>, upper: Option<(f64, bool)>) -> Cond {
        let limit = |l: Option<(f64, bool)>| {
            l.map(|(value, inclusive)| Limit {
                value: Num::from_f64(value),
                inclusive,
            })
        };
        Cond::Range(Range {
            kind,
            lower: limit(lower),
            upper: limit(upper),
        })
    }

    #[test]
    fn parses_mongo_operators() {
        assert_eq!(p(json!({})), Filter::All);
        assert_eq!(p(json!({"price": 5})), field("price", Cond::Eq(num(5.0))));
        assert_eq!(p(json!({"price": 5.5})), field("price", Cond::Eq(num(5.5))));
        assert_eq!(p(json!({"c": "x"})), field("c", Cond::Eq(s("x"))));
        assert_eq!(
            p(json!({"f": true})),
            field("f", Cond::Eq(Scalar::Bool(true)))
        );
        assert_eq!(p(json!({"c": {"$eq": "x"}})), field("c", Cond::Eq(s("x"))));
        assert_eq!(
            p(json!({"c": {"$ne": "x"}})),
            not(field("c", Cond::Eq(s("x"))))
        );
        assert_eq!(
            p(json!({"c": {"$in": ["x", 1, false]}})),
            field("c", Cond::In(vec![s("x"), num(1.0), Scalar::Bool(false)]))
        );
        assert_eq!(
            p(json!({"c": {"$nin": []}})),
            not(field("c", Cond::In(vec![])))
        );
        assert_eq!(
            p(json!({"p": {"$gt": 1}})),
            field("p", range(RangeKind::Number, Some((1.0, false)), None))
        );
        assert_eq!(
            p(json!({"p": {"$gte": 1}})),
            field("p", range(RangeKind::Number, Some((1.0, true)), None))
        );
        assert_eq!(
            p(json!({"p": {"$lt": 1}})),
            field("p", range(RangeKind::Number, None, Some((1.0, false))))
        );
        assert_eq!(
            p(json!({"p": {"$lte": 1.5}})),
            field("p", range(RangeKind::Number, None, Some((1.5, true))))
        );
        // Several bounds form one range, the tightest of each end.
        assert_eq!(
            p(json!({"p": {"$gte": 1, "$gt": 1, "$lt": 9, "$lte": 8}})),
            field(
                "p",
                range(RangeKind::Number, Some((1.0, false)), Some((8.0, true)))
            )
        );
        assert_eq!(
            p(json!({"p": {"$gt": 1, "$ne": 3}})),
            Filter::And(vec![
                not(field("p", Cond::Eq(num(3.0)))),
                field("p", range(RangeKind::Number, Some((1.0, false)), None)),
            ])
        );
        assert_eq!(p(json!({"p": {"$exists": true}})), field("p", Cond::Exists));
        assert_eq!(
            p(json!({"p": {"$exists": false}})),
            not(field("p", Cond::Exists))
        );
        assert_eq!(
            p(json!({"p": {"$not": {"$lt": 3}}})),
            not(field(
                "p",
                range(RangeKind::Number, None, Some((3.0, false)))
            ))
        );
        assert_eq!(
            p(json!({"$and": [{"a": 1}, {"b": 2}]})),
            Filter::And(vec![
                field("a", Cond::Eq(num(1.0))),
                field("b", Cond::Eq(num(2.0)))
            ])
        );
        assert_eq!(p(json!({"$and": []})), Filter::All);
        assert_eq!(
            p(json!({"$or": [{"a": 1}, {"b": 2}]})),
            Filter::Or(vec![
                field("a", Cond::Eq(num(1.0))),
                field("b", Cond::Eq(num(2.0)))
            ])
        );
        assert_eq!(
            p(json!({"$or": [{"a": 1}]})),
            field("a", Cond::Eq(num(1.0)))
        );
        assert_eq!(
            p(json!({"$not": {"a": 1}})),
            not(field("a", Cond::Eq(num(1.0))))
        );
        assert_eq!(
            p(json!({"a": 1, "b.c": "x"})),
            Filter::And(vec![
                field("a", Cond::Eq(num(1.0))),
                field("b.c", Cond::Eq(s("x")))
            ])
        );
        assert_eq!(
            p(json!({"when": {"$gte": "2024-05-01"}})),
            field(
                "when",
                range(RangeKind::Date, Some((1_714_521_600.0, true)), None)
            )
        );
    }

    #[test]
    fn parses_qdrant_conditions() {
        assert_eq!(
            p(json!({"key": "c", "match": {"value": "x"}})),
            field("c", Cond::Eq(s("x")))
        );
        assert_eq!(
            p(json!({"key": "c", "match": {"any": ["x", "y"]}})),
            field("c", Cond::In(vec![s("x"), s("y")]))
        );
        assert_eq!(
            p(json!({"key": "c", "match": {"except": [1]}})),
            not(field("c", Cond::In(vec![num(1.0)])))
        );
        assert_eq!(
            p(json!({"key": "p", "range": {"gt": 1, "lte": 5, "lt": null}})),
            field(
                "p",
                range(RangeKind::Number, Some((1.0, false)), Some((5.0, true)))
            )
        );
        assert_eq!(
            p(json!({"key": "w", "range": {"lt": "2024-05-01T00:00:00Z"}})),
            field(
                "w",
                range(RangeKind::Date, None, Some((1_714_521_600.0, false)))
            )
        );
        assert_eq!(
            p(json!({"is_empty": {"key": "t"}})),
            field("t", Cond::IsEmpty)
        );
        assert_eq!(
            p(json!({"is_null": {"key": "t"}})),
            field("t", Cond::IsNull)
        );
        assert_eq!(
            p(json!({"key": "a[].b", "match": {"value": 1}})),
            field("a.b", Cond::Eq(num(1.0)))
        );
        let a = || field("a", Cond::Eq(num(1.0)));
        let b = || field("b", Cond::Eq(num(2.0)));
        let qa = json!({"key": "a", "match": {"value": 1}});
        let qb = json!({"key": "b", "match": {"value": 2}});
        assert_eq!(p(json!({"must": [qa, qb]})), Filter::And(vec![a(), b()]));
        assert_eq!(p(json!({"must": []})), Filter::All);
        assert_eq!(p(json!({"should": [qa, qb]})), Filter::Or(vec![a(), b()]));
        assert_eq!(p(json!({"should": []})), Filter::All);
        assert_eq!(
            p(json!({"must_not": [qa, qb]})),
            not(Filter::Or(vec![a(), b()]))
        );
        assert_eq!(p(json!({"must_not": []})), Filter::All);
        assert_eq!(p(json!({"must": qa, "should": null})), a());
        // The parts of one object combine in the map's order (sorted or as written).
        let Filter::And(parts) = p(json!({"must": [qa], "should": [qa, qb], "must_not": [qb]}))
        else {
            panic!("not an and");
        };
        assert_eq!(parts.len(), 3);
        for want in [a(), Filter::Or(vec![a(), b()]), not(b())] {
            assert!(parts.contains(&want), "{want:?} missing from {parts:?}");
        }
        // Mixed: Mongo inside Qdrant, Qdrant inside Mongo, both in one object.
        assert_eq!(
            p(json!({"must": [{"a": 1}, qb]})),
            Filter::And(vec![a(), b()])
        );
        assert_eq!(
            p(json!({"$or": [qa, {"b": 2}]})),
            Filter::Or(vec![a(), b()])
        );
        assert_eq!(
            p(json!({"a": 1, "must_not": [{"b": {"$eq": 2}}]})),
            Filter::And(vec![a(), not(b())])
        );
        // A field named "key" without match / range is an ordinary field.
        assert_eq!(p(json!({"key": "k"})), field("key", Cond::Eq(s("k"))));
    }

    #[test]
    fn explains_bad_filters() {
        let e = err(json!({"price": {"$gtx": 5}}));
        assert_eq!(
            e,
            "unknown operator \"$gtx\" at \"price\"; expected one of $eq $ne $in $nin $gt \
             $gte $lt $lte $exists $not"
        );
        assert!(err(json!({"$xor": []})).contains("unknown operator \"$xor\" at filter"));
        let e = err(json!({"price": null}));
        assert!(e.contains("null") && e.contains("$exists"), "{e}");
        let e = err(json!({"price": {"$eq": null}}));
        assert!(
            e.contains("$eq at \"price\" is null") && e.contains("$exists"),
            "{e}"
        );
        let e = err(json!({"tags": ["a"]}));
        assert!(
            e.contains("array value for \"tags\"") && e.contains("$in"),
            "{e}"
        );
        let e = err(json!({"a": {"b": 1}}));
        assert!(
            e.contains("object value for \"a\"") && e.contains("\"a.b\""),
            "{e}"
        );
        let e = err(json!({"c": {"$eq": [1]}}));
        assert_eq!(
            e,
            "$eq at \"c\" must be a number, string or bool, got an array"
        );
        let e = err(json!({"c": {"$in": "x"}}));
        assert!(e.contains("$in at \"c\" must be an array"), "{e}");
        let e = err(json!({"c": {"$in": [{"x": 1}]}}));
        assert!(e.contains("got an object"), "{e}");
        let e = err(json!({"c": {"$in": [null]}}));
        assert!(e.contains("null"), "{e}");
        let e = err(json!({"c": {"$gt": "soon"}}));
        assert!(
            e.contains("number or a date") && e.contains("\"soon\""),
            "{e}"
        );
        let e = err(json!({"c": {"$gt": true}}));
        assert!(e.contains("got a bool"), "{e}");
        let e = err(json!({"c": {"$gt": 1, "$lt": "2024-01-01"}}));
        assert!(e.contains("mixes number and date"), "{e}");
        let e = err(json!({"c": {"$exists": 1}}));
        assert!(e.contains("true or false"), "{e}");
        assert!(err(json!({"c": {}})).contains("empty operator object"));
        assert!(err(json!({"$or": []})).contains("at least one filter"));
        assert!(err(json!({"$and": {"a": 1}})).contains("must be an array of filters"));
        assert!(err(json!({"$and": [1]})).contains("expected a filter object at filter.$and[0]"));
        assert!(err(json!([])).contains("expected a filter object"));
        assert!(err(json!({"a..b": 1})).contains("empty part"));
        assert!(err(json!({"": 1})).contains("empty field name"));
        let e = err(json!({"key": "c", "match": {"value": 1, "any": [1]}}));
        assert!(e.contains("exactly one key"), "{e}");
        let e = err(json!({"key": "c", "match": {"text": "x"}}));
        assert!(e.contains("not supported"), "{e}");
        let e = err(json!({"key": "c", "match": {"value": null}}));
        assert!(e.contains("null"), "{e}");
        let e = err(json!({"key": "c", "range": {"gte": "x"}}));
        assert!(e.contains("gte at \"c\" must be a number or a date"), "{e}");
        let e = err(json!({"key": "c", "range": {"from": 1}}));
        assert!(e.contains("unknown \"range\" key \"from\""), "{e}");
        assert!(err(json!({"key": "c", "range": {}})).contains("at least one of"));
        let e = err(json!({"key": "c", "match": {"value": 1}, "other": 2}));
        assert!(e.contains("unknown key \"other\""), "{e}");
        assert!(err(json!({"key": 3, "match": {"value": 1}})).contains("must be a field name"));
        assert!(err(json!({"key": "g", "geo_radius": {}})).contains("not supported"));
        assert!(err(json!({"has_id": [1]})).contains("not supported"));
        assert!(err(json!({"must": 3})).contains("array of conditions"));
        assert!(err(json!({"is_empty": {"key": "a", "x": 1}})).contains("nothing else"));
        assert!(err(json!({"p": {"$not": 3}})).contains("\"$not\" at \"p\""));
        // Long user strings are cut short in messages.
        let long = "x".repeat(1000);
        assert!(err(json!({ long.clone(): {"$bad": 1} })).len() < 300);
    }

    #[test]
    fn bounds_depth_and_size() {
        let mut f = json!({"a": 1});
        for _ in 0..MAX_DEPTH - 1 {
            f = json!({ "$not": f });
        }
        assert!(parse(&f).is_ok());
        let f = json!({ "$not": f });
        assert!(err(f).contains("nested too deeply"));
        let mut f = json!({"a": 1});
        for _ in 0..100 {
            f = json!({ "must": [f] });
        }
        assert!(err(f).contains("nested too deeply"));
        let mut ops = json!({"$gt": 1});
        for _ in 0..100 {
            ops = json!({ "$not": ops });
        }
        assert!(err(json!({ "p": ops })).contains("nested too deeply"));
        // serde_json stops at 128 levels when parsing text; a built value can go deeper.
        // (`json!` would copy the value at each step.)
        let mut deep = json!(1);
        for _ in 0..100_000 {
            let mut m = Map::new();
            m.insert("$and".into(), Value::Array(vec![deep]));
            deep = Value::Object(m);
        }
        assert!(parse(&deep).is_err());
        // Dropping the value recurses: keep it from blowing the test's stack.
        std::mem::forget(deep);
        let many: Vec<Value> = (0..MAX_TERMS as i64).map(Value::from).collect();
        assert!(err(json!({"a": {"$in": many}})).contains("too large"));
        let many: Vec<Value> = (0..MAX_TERMS).map(|i| json!({ "a": i })).collect();
        assert!(err(json!({ "$or": many })).contains("too large"));
        let path = vec!["a"; MAX_PATH_SEGMENTS + 1].join(".");
        assert!(err(json!({ path: 1 })).contains("too deep"));
    }

    #[test]
    fn parses_dates() {
        let day = 1_714_521_600.0; // 2024-05-01T00:00:00Z
        for (text, want) in [
            ("2024-05-01", Some(day)),
            ("2024-05-01T00:00:00Z", Some(day)),
            ("2024-05-01t00:00:00z", Some(day)),
            ("2024-05-01T00:00:00", Some(day)),
            ("2024-05-01 00:00", Some(day)),
            ("2024-05-01T12:00:00Z", Some(day + 43_200.0)),
            ("2024-05-01T12:00:00.250+02:00", Some(day + 36_000.25)),
            ("2024-05-01T12:00:00-0130", Some(day + 48_600.0)),
            ("2024-05-01T00:00:00+02:00", Some(day - 7_200.0)),
            ("1970-01-01T00:00:00Z", Some(0.0)),
            ("1969-12-31T23:59:59Z", Some(-1.0)),
            ("2000-02-29", Some(951_782_400.0)),
            ("2024-02-29", Some(1_709_164_800.0)),
            ("2023-02-29", None),
            ("1900-02-29", None),
            ("2024-04-31", None),
            ("2024-13-01", None),
            ("2024-00-10", None),
            ("2024-05-00", None),
            ("2024-05-01T24:00:00Z", None),
            ("2024-05-01T12:60:00Z", None),
            ("2024-05-01T12:00:61Z", None),
            ("2024-05-01T12:00:00.Z", None),
            ("2024-05-01T12:00:00+25:00", None),
            ("2024-05-01T12:00:00+02", None),
            ("2024-05-01T12:00:00Zjunk", None),
            ("2024-05-01T12", None),
            ("2024-05-01X12:00:00", None),
            ("2024/05/01", None),
            ("2024-5-1", None),
            ("+024-05-01", None),
            ("soon", None),
            ("", None),
            (
                "2024-05-01T12:00:00.1234567890123456789Z",
                Some(day + 43_200.123_456_789),
            ),
        ] {
            let got = parse_date(text);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-6, "{text}: {g} != {w}"),
                _ => assert_eq!(got, want, "{text}"),
            }
        }
        // Every prefix of a valid date-time parses or is refused, without panicking.
        let full = "2024-05-01T12:00:00.250+02:00";
        for i in 0..=full.len() {
            let _ = parse_date(&full[..i]);
        }
        let _ = parse_date("2024-05-01T12:00:00.2é");
        let _ = parse_date("éééééééééééé");
    }

    #[test]
    fn compares_dates_as_instants() {
        // 2024-05-01T00:00:00+02:00 is 2024-04-30T22:00:00Z: an hour *before* 23:00Z.
        let mut store = Payloads::new();
        store.insert(0, &json!({"when": "2024-05-01T00:00:00+02:00"}));
        store.insert(1, &json!({"when": "2024-04-30T23:00:00Z"}));
        store.insert(2, &json!({"when": "2024-05-01"}));
        store.insert(3, &json!({"when": "2024-04-30T22:00:00.000Z"}));
        store.insert(4, &json!({"when": "yesterday"}));
        store.insert(5, &json!({"when": 1_714_521_600}));
        store.insert(6, &json!({"when": ["2023-01-01", "2025-01-01"]}));
        let ids = |f: Value| {
            let f = p(f);
            let got: Vec<Idx> = store.evaluate(&f).iter().collect();
            for id in 0..7 {
                let meta = &[
                    json!({"when": "2024-05-01T00:00:00+02:00"}),
                    json!({"when": "2024-04-30T23:00:00Z"}),
                    json!({"when": "2024-05-01"}),
                    json!({"when": "2024-04-30T22:00:00.000Z"}),
                    json!({"when": "yesterday"}),
                    json!({"when": 1_714_521_600}),
                    json!({"when": ["2023-01-01", "2025-01-01"]}),
                ][id as usize];
                assert_eq!(matches(&f, meta), got.contains(&id), "{f:?} on {meta}");
            }
            got
        };
        assert_eq!(
            ids(json!({"when": {"$lt": "2024-04-30T23:00:00Z"}})),
            vec![0, 3, 6]
        );
        assert_eq!(
            ids(json!({"when": {"$gte": "2024-04-30T23:00:00Z"}})),
            vec![1, 2, 6]
        );
        assert_eq!(
            ids(json!({"when": {"$gt": "2024-04-30T23:00:00Z"}})),
            vec![2, 6]
        );
        assert_eq!(
            ids(json!({"when": {"$lte": "2024-04-30T22:00:00Z"}})),
            vec![0, 3, 6]
        );
        assert_eq!(
            ids(json!({"when": {"$gte": "2024-04-30T22:00:00Z", "$lte": "2024-04-30T22:00:00Z"}})),
            vec![0, 3]
        );
        assert_eq!(
            ids(
                json!({"key": "when", "range": {"gt": "2024-04-30T21:59:59.999Z", "lt": "2024-05-01T00:00:00.001Z"}})
            ),
            vec![0, 1, 2, 3]
        );
        // One element must lie in the range: 2023 and 2025 straddle 2024.
        assert_eq!(
            ids(json!({"when": {"$gt": "2024-01-01", "$lt": "2024-12-31"}})),
            vec![0, 1, 2, 3]
        );
        // Equality is on the text, not the instant.
        assert_eq!(
            ids(json!({"when": "2024-05-01T00:00:00Z"})),
            Vec::<Idx>::new()
        );
        assert_eq!(ids(json!({"when": "2024-05-01"})), vec![2]);
        // Number ranges see numbers only.
        assert_eq!(ids(json!({"when": {"$gt": 0}})), vec![5]);
        // Crossed or empty ranges match nothing (and don't panic).
        assert_eq!(
            ids(json!({"when": {"$gt": "2025-01-01", "$lt": "2023-01-01"}})),
            Vec::<Idx>::new()
        );
        assert_eq!(
            ids(json!({"when": {"$gt": "2023-01-01", "$lt": "2023-01-01"}})),
            Vec::<Idx>::new()
        );
        assert_eq!(
            ids(json!({"when": {"$gte": "2023-01-01", "$lt": "2023-01-01"}})),
            Vec::<Idx>::new()
        );
        assert_eq!(
            ids(json!({"when": {"$gte": "2023-01-01", "$lte": "2023-01-01"}})),
            vec![6]
        );
    }

    #[test]
    fn arrays_missing_fields_and_nulls() {
        let metas = [
            json!({"tags": ["red", "blue"], "n": [1, 5]}),
            json!({"tags": [], "n": []}),
            json!({"tags": null, "n": null}),
            json!({}),
            json!({"tags": "red", "n": 1.0}),
            json!({"tags": [null], "n": [[1]]}),
            json!({"tags": {"red": 1}, "n": "1"}),
            json!({"items": [{"sku": "a", "q": 1}, {"sku": "b"}, 3, {"sku": null}]}),
            json!("not an object"),
            json!({"n": -0.0, "b": true}),
        ];
        let mut store = Payloads::new();
        for (i, m) in metas.iter().enumerate() {
            store.insert(i as Idx, m);
        }
        assert_eq!(store.len(), metas.len());
        let ids = |f: Value| {
            let f = p(f);
            let got: Vec<Idx> = store.evaluate(&f).iter().collect();
            let want: Vec<Idx> = (0..metas.len() as Idx)
                .filter(|&i| matches(&f, &metas[i as usize]))
                .collect();
            assert_eq!(got, want, "{f:?}");
            got
        };
        assert_eq!(ids(json!({"tags": "red"})), vec![0, 4]);
        assert_eq!(
            ids(json!({"tags": {"$ne": "red"}})),
            vec![1, 2, 3, 5, 6, 7, 8, 9]
        );
        assert_eq!(ids(json!({"tags": {"$in": ["blue", "green"]}})), vec![0]);
        assert_eq!(
            ids(json!({"tags": {"$nin": ["blue", "red"]}})),
            vec![1, 2, 3, 5, 6, 7, 8, 9]
        );
        assert_eq!(ids(json!({"tags": {"$exists": true}})), vec![0, 1, 4, 5, 6]);
        assert_eq!(
            ids(json!({"tags": {"$exists": false}})),
            vec![2, 3, 7, 8, 9]
        );
        assert_eq!(
            ids(json!({"is_empty": {"key": "tags"}})),
            vec![1, 2, 3, 7, 8, 9]
        );
        assert_eq!(ids(json!({"is_null": {"key": "tags"}})), vec![2]);
        assert_eq!(ids(json!({"tags.red": 1})), vec![6]);
        assert_eq!(ids(json!({"n": 1})), vec![0, 4]);
        assert_eq!(ids(json!({"n": 0})), vec![9]);
        assert_eq!(ids(json!({"n": {"$gt": 2}})), vec![0]);
        assert_eq!(ids(json!({"n": {"$gt": 2, "$lt": 4}})), Vec::<Idx>::new());
        assert_eq!(ids(json!({"n": {"$gte": -0.0, "$lte": 0}})), vec![9]);
        assert_eq!(ids(json!({"b": 1})), Vec::<Idx>::new());
        assert_eq!(ids(json!({"b": true})), vec![9]);
        assert_eq!(ids(json!({"n": "1"})), vec![6]);
        assert_eq!(ids(json!({"items.sku": "b"})), vec![7]);
        assert_eq!(
            ids(json!({"key": "items[].sku", "match": {"any": ["a"]}})),
            vec![7]
        );
        assert_eq!(ids(json!({"items.q": {"$gte": 1}})), vec![7]);
        assert_eq!(ids(json!({"is_null": {"key": "items.sku"}})), vec![7]);
        assert_eq!(ids(json!({"items.sku": {"$exists": true}})), vec![7]);
        assert_eq!(ids(json!({"items": {"$exists": true}})), vec![7]);
        assert_eq!(
            ids(json!({"nothing": {"$exists": false}})).len(),
            metas.len()
        );
        assert_eq!(
            ids(json!({"is_empty": {"key": "nothing"}})).len(),
            metas.len()
        );
        assert_eq!(ids(json!({"nothing": 1})), Vec::<Idx>::new());
        assert_eq!(ids(json!({"nothing": {"$ne": 1}})).len(), metas.len());
    }

    #[test]
    fn stores_replaces_and_removes() {
        let mut store = Payloads::new();
        assert!(store.is_empty());
        store.insert(3, &json!({"c": "x", "d": "2024-01-01"}));
        store.insert(70, &json!({"c": "x"}));
        store.insert(-1, &json!({"c": "x"}));
        assert_eq!(store.len(), 2);
        assert!(store.contains(3) && store.contains(70) && !store.contains(-1));
        let x = p(json!({"c": "x"}));
        assert_eq!(store.evaluate(&x).iter().collect::<Vec<_>>(), vec![3, 70]);
        // Replacing an item's metadata drops its old values.
        store.insert(3, &json!({"c": "y"}));
        assert_eq!(store.len(), 2);
        assert_eq!(store.evaluate(&x).iter().collect::<Vec<_>>(), vec![70]);
        assert!(
            store
                .evaluate(&p(json!({"d": {"$exists": true}})))
                .is_empty()
        );
        store.remove(70);
        store.remove(70);
        store.remove(1_000_000);
        store.remove(-5);
        assert_eq!(store.len(), 1);
        assert!(store.evaluate(&x).is_empty());
        assert_eq!(
            store.evaluate(&Filter::All).iter().collect::<Vec<_>>(),
            vec![3]
        );
        assert_eq!(store.evaluate(&p(json!({"c": {"$ne": "x"}}))).count(), 1);
        // Strings no item holds any more are forgotten.
        assert_eq!(store.strings.ids.len(), 1);
        store.remove(3);
        assert!(store.strings.ids.is_empty());
        assert!(store.columns.iter().all(BTreeSet::is_empty));
        assert!(store.evaluate(&Filter::All).is_empty());
    }

    #[test]
    fn bitmap_is_a_selector() {
        let b: IdBitmap = [5, 64, 0, 200, 64, -3].into_iter().collect();
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0, 5, 64, 200]);
        assert_eq!(b.count(), 4);
        let sel: &dyn IdSelector = &b;
        assert!(sel.is_member(64) && !sel.is_member(63) && !sel.is_member(-3));
        assert!(!sel.is_member(1 << 40));
        let mut c = b.clone();
        c.words.resize(100, 0);
        assert_eq!(b, c);
        c.remove(200);
        assert_ne!(b, c);
        assert!(IdBitmap::new().is_empty());
    }

    /// Numbers compare by value, exactly: 64-bit integers beyond 2^53 stay apart, an
    /// integer equals the float of the same value, and ranges order them all — in the
    /// column store and in the one-item matcher alike.
    #[test]
    fn numbers_compare_exactly_beyond_two_to_the_53() {
        let values = [
            json!(9007199254740992u64),
            json!(9007199254740993u64),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.0),
            json!(1),
            json!(0.1),
            json!(-0.0),
            json!(0),
            json!(1e308),
            json!(u64::MAX - 1),
            json!(-9223372036854775807i64),
            json!(18446744073709551616.0),
        ];
        let mut store = Payloads::new();
        for (i, v) in values.iter().enumerate() {
            store.insert(i as Idx, &json!({ "n": v }));
        }
        let cases = [
            (json!({"n": 9007199254740993u64}), vec![1]),
            (json!({"n": 9007199254740992u64}), vec![0]),
            (
                json!({"n": {"$gt": 9007199254740992u64}}),
                vec![1, 2, 9, 10, 12],
            ),
            (
                json!({"n": {"$gte": 9007199254740993u64}}),
                vec![1, 2, 9, 10, 12],
            ),
            (json!({"n": u64::MAX}), vec![2]),
            (json!({"n": {"$gt": u64::MAX - 1}}), vec![2, 9, 12]),
            (json!({"n": {"$lt": -9223372036854775807i64}}), vec![3]),
            (json!({"n": {"$lte": -9223372036854775807i64}}), vec![3, 11]),
            (json!({"n": 1}), vec![4, 5]),
            (json!({"n": 1.0}), vec![4, 5]),
            (json!({"n": 0}), vec![7, 8]),
            (json!({"n": {"$gt": 0, "$lt": 1}}), vec![6]),
            (json!({"n": 18446744073709551616.0}), vec![12]),
            (
                json!({"n": {"$gt": u64::MAX, "$lte": 18446744073709551616.0}}),
                vec![12],
            ),
            (
                json!({"key": "n", "range": {"gt": 9007199254740992u64}}),
                vec![1, 2, 9, 10, 12],
            ),
            (
                json!({"key": "n", "match": {"value": 9007199254740993u64}}),
                vec![1],
            ),
            (json!({"n": {"$in": [i64::MIN, u64::MAX]}}), vec![2, 3]),
        ];
        for (f, want) in cases {
            let got: Vec<Idx> = store.evaluate(&p(f.clone())).iter().collect();
            assert_eq!(got, want, "{f}");
            let one_by_one: Vec<Idx> = (0..values.len() as Idx)
                .filter(|&i| matches(&p(f.clone()), &json!({ "n": values[i as usize] })))
                .collect();
            assert_eq!(one_by_one, want, "{f}, item by item");
        }
    }

    #[test]
    fn equality_on_a_large_column_reads_only_its_matches() {
        let mut store = Payloads::new();
        for i in 0..200_000 {
            store.insert(
                i,
                &json!({"c": if i % 1000 == 0 { "rare" } else { "common" }, "n": i}),
            );
        }
        let t = std::time::Instant::now();
        for _ in 0..100 {
            assert_eq!(store.evaluate(&p(json!({"c": "rare"}))).count(), 200);
            assert_eq!(
                store
                    .evaluate(&p(json!({"n": {"$gte": 1000, "$lt": 1100}})))
                    .count(),
                100
            );
        }
        // 200 look-ups; a scan of 200k entries each would take far longer.
        assert!(t.elapsed().as_secs_f64() < 2.0, "{:?}", t.elapsed());
    }

    // -----------------------------------------------------------------------------------
    // Randomised comparison with an independent reference.

    /// SplitMix64.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
        fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
            &xs[self.below(xs.len() as u64) as usize]
        }
    }

    const CATEGORIES: [&str; 4] = ["books", "music", "film", "games"];
    const TAGS: [&str; 6] = ["red", "green", "blue", "new", "sale", "old"];

    /// A filter as the test knows it, rendered to JSON in either dialect.
    #[derive(Debug, Clone)]
    enum T {
        And(Vec<T>),
        Or(Vec<T>),
        Not(Box<T>),
        Eq(&'static str, Value),
        Ne(&'static str, Value),
        In(&'static str, Vec<Value>),
        Nin(&'static str, Vec<Value>),
        Range(&'static str, Vec<(&'static str, Value)>),
        Exists(&'static str, bool),
        IsEmpty(&'static str),
        IsNull(&'static str),
    }

    fn leap(y: i64) -> bool {
        y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
    }

    fn month_days(y: i64, m: i64) -> i64 {
        [
            31,
            if leap(y) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ][(m - 1) as usize]
    }

    /// Seconds since 1970 (≥ 0) as local calendar fields, by counting.
    fn civil(mut secs: i64) -> (i64, i64, i64, i64, i64, i64) {
        let (mut y, mut m) = (1970, 1);
        let mut days = secs.div_euclid(86_400);
        secs = secs.rem_euclid(86_400);
        while days >= if leap(y) { 366 } else { 365 } {
            days -= if leap(y) { 366 } else { 365 };
            y += 1;
        }
        while days >= month_days(y, m) {
            days -= month_days(y, m);
            m += 1;
        }
        (y, m, days + 1, secs / 3600, secs / 60 % 60, secs % 60)
    }

    /// A date string of the instant `secs` + `ms` milliseconds, in a random form, with
    /// the instant it stands for.
    fn date_string(rng: &mut Rng, secs: i64, ms: i64) -> (String, f64) {
        match rng.below(5) {
            0 => {
                let (y, m, d, ..) = civil(secs);
                let midnight = secs - secs.rem_euclid(86_400);
                (format!("{y:04}-{m:02}-{d:02}"), midnight as f64)
            }
            1 => {
                let (y, m, d, h, mi, s) = civil(secs);
                (
                    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
                    secs as f64,
                )
            }
            2 => {
                let (y, m, d, h, mi, s) = civil(secs);
                (
                    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}"),
                    secs as f64,
                )
            }
            3 => {
                let (y, m, d, h, mi, s) = civil(secs);
                let t = secs as f64 + ms as f64 / 1000.0;
                (
                    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z"),
                    t,
                )
            }
            _ => {
                let off = *rng.pick(&[-300i64, -60, 60, 120, 330, 600]);
                let (y, m, d, h, mi, s) = civil(secs + off * 60);
                let sign = if off < 0 { '-' } else { '+' };
                let (oh, om) = (off.abs() / 60, off.abs() % 60);
                (
                    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}{sign}{oh:02}:{om:02}"),
                    secs as f64,
                )
            }
        }
    }

    /// An instant in one of two 10-day windows — across a new year, and across 2024's
    /// leap day — so that zone offsets and calendar arithmetic decide many comparisons.
    fn instant(rng: &mut Rng) -> i64 {
        let start = if rng.chance(50) {
            1_703_635_200 // 2023-12-27
        } else {
            1_708_819_200 // 2024-02-25
        };
        start + rng.below(10 * 86_400) as i64
    }

    /// The reference's date reader: only the forms [`date_string`] writes (and rejects
    /// the broken ones the items hold), by counting days.
    fn ref_date(s: &str) -> Option<f64> {
        let digits = |t: &str| -> Option<i64> {
            if !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()) {
                t.parse().ok()
            } else {
                None
            }
        };
        let y = digits(s.get(0..4)?)?;
        let m = digits(s.get(5..7)?)?;
        let d = digits(s.get(8..10)?)?;
        if s.get(4..5)? != "-"
            || s.get(7..8)? != "-"
            || !(1..=12).contains(&m)
            || d < 1
            || d > month_days(y, m)
        {
            return None;
        }
        let mut days = d - 1;
        for yy in 1970..y {
            days += if leap(yy) { 366 } else { 365 };
        }
        for mm in 1..m {
            days += month_days(y, mm);
        }
        let mut t = (days * 86_400) as f64;
        let rest = &s[10..];
        if rest.is_empty() {
            return Some(t);
        }
        let rest = rest.strip_prefix('T')?;
        let h = digits(rest.get(0..2)?)?;
        let mi = digits(rest.get(3..5)?)?;
        let sec = digits(rest.get(6..8)?)?;
        if h > 23 || mi > 59 || sec > 59 || rest.get(2..3)? != ":" || rest.get(5..6)? != ":" {
            return None;
        }
        t += (h * 3600 + mi * 60 + sec) as f64;
        let mut zone = &rest[8..];
        if let Some(frac) = zone.strip_prefix('.') {
            let ms = digits(frac.get(0..3)?)?;
            t += ms as f64 / 1000.0;
            zone = &frac[3..];
        }
        match zone {
            "" | "Z" => Some(t),
            _ => {
                let sign = match zone.get(0..1)? {
                    "+" => 1,
                    "-" => -1,
                    _ => return None,
                };
                let oh = digits(zone.get(1..3)?)?;
                let om = digits(zone.get(4..6)?)?;
                (zone.len() == 6 && zone.get(3..4)? == ":")
                    .then_some(t - (sign * (oh * 3600 + om * 60)) as f64)
            }
        }
    }

    fn random_item(rng: &mut Rng) -> Value {
        let mut m = Map::new();
        match rng.below(20) {
            0..=13 => m.insert("price".into(), json!(rng.below(101))),
            14 => m.insert("price".into(), json!(*rng.pick(&[12.5, 50.0, 99.99]))),
            15 => m.insert("price".into(), json!("50")),
            16 => m.insert("price".into(), Value::Null),
            _ => None,
        };
        if rng.chance(80) {
            m.insert("score".into(), json!(rng.below(21) as f64 / 20.0));
        }
        match rng.below(20) {
            0..=16 => m.insert("category".into(), json!(rng.pick(&CATEGORIES))),
            17 => m.insert("category".into(), Value::Null),
            _ => None,
        };
        match rng.below(10) {
            0..=7 => m.insert("flag".into(), json!(rng.chance(50))),
            8 => m.insert("flag".into(), json!("true")),
            _ => None,
        };
        match rng.below(20) {
            0..=11 => {
                let n = 1 + rng.below(4);
                let tags: Vec<&str> = (0..n).map(|_| *rng.pick(&TAGS)).collect();
                m.insert("tags".into(), json!(tags))
            }
            12 | 13 => m.insert("tags".into(), json!([])),
            14 => m.insert("tags".into(), Value::Null),
            15 => m.insert("tags".into(), json!(rng.pick(&TAGS))),
            16 => m.insert("tags".into(), json!([null, rng.pick(&TAGS), 3])),
            _ => None,
        };
        match rng.below(20) {
            0..=13 => {
                let (secs, ms) = (instant(rng), rng.below(1000) as i64);
                m.insert("when".into(), json!(date_string(rng, secs, ms).0))
            }
            14 => m.insert(
                "when".into(),
                json!(rng.pick(&[
                    "soon",
                    "2024-02-30",
                    "2023-13-01T00:00:00Z",
                    "2024-05-01T25:00:00Z"
                ])),
            ),
            15 => m.insert("when".into(), json!(instant(rng))),
            16 => {
                let (a, b) = (instant(rng), instant(rng));
                m.insert(
                    "when".into(),
                    json!([date_string(rng, a, 0).0, date_string(rng, b, 0).0]),
                )
            }
            _ => None,
        };
        match rng.below(20) {
            0..=7 => m.insert("a".into(), json!({"b": rng.below(10)})),
            8..=9 => m.insert("a".into(), json!({"b": rng.pick(&["x", "y"])})),
            10 => m.insert("a".into(), json!({"b": [rng.below(10), rng.below(10)]})),
            11..=12 => m.insert(
                "a".into(),
                json!([{"b": rng.below(10)}, {"b": rng.below(10)}, {"c": 1}]),
            ),
            13 => m.insert("a".into(), json!({})),
            14 => m.insert("a".into(), Value::Null),
            15 => m.insert("a".into(), json!({"b": null})),
            _ => None,
        };
        Value::Object(m)
    }

    const PATHS: [&str; 9] = [
        "price", "score", "category", "flag", "tags", "when", "a.b", "a", "nope",
    ];

    /// A value to compare the field `path` with.
    fn random_value(rng: &mut Rng, path: &str) -> Value {
        match (path, rng.below(10)) {
            (_, 0) => rng
                .pick(&[json!("50"), json!(true), json!(50), json!("x")])
                .clone(),
            ("price", 1) => json!(*rng.pick(&[12.5, 50.0, 99.99])),
            ("price", _) => json!(rng.below(101)),
            ("score", _) => json!(rng.below(21) as f64 / 20.0),
            ("category", _) => json!(rng.pick(&CATEGORIES)),
            ("flag", _) => json!(rng.chance(50)),
            ("tags", _) => json!(rng.pick(&TAGS)),
            ("a.b", _) => json!(rng.below(10)),
            _ => json!(rng.below(10)),
        }
    }

    fn random_bound(rng: &mut Rng, path: &str) -> Value {
        match path {
            "when" => {
                let (secs, ms) = (instant(rng), rng.below(1000) as i64);
                json!(date_string(rng, secs, ms).0)
            }
            "score" => json!(rng.below(21) as f64 / 20.0),
            "a.b" => json!(rng.below(10)),
            _ => json!(rng.below(110) as f64 - if rng.chance(20) { 0.5 } else { 0.0 }),
        }
    }

    fn random_leaf(rng: &mut Rng) -> T {
        let path = *rng.pick(&PATHS);
        match rng.below(11) {
            0 => T::Eq(path, random_value(rng, path)),
            1 => T::Ne(path, random_value(rng, path)),
            2 => T::In(
                path,
                (0..rng.below(4)).map(|_| random_value(rng, path)).collect(),
            ),
            3 => T::Nin(
                path,
                (0..rng.below(4)).map(|_| random_value(rng, path)).collect(),
            ),
            4..=6 => {
                let mut ops = Vec::new();
                for op in ["gt", "gte", "lt", "lte"] {
                    if rng.chance(40) {
                        ops.push((op, random_bound(rng, path)));
                    }
                }
                if ops.is_empty() {
                    ops.push((
                        *rng.pick(&["gt", "gte", "lt", "lte"]),
                        random_bound(rng, path),
                    ));
                }
                T::Range(
                    if path == "a" || path == "nope" {
                        "when"
                    } else {
                        path
                    },
                    ops,
                )
            }
            7 | 8 => T::Exists(path, rng.chance(50)),
            9 => T::IsEmpty(path),
            _ => T::IsNull(path),
        }
    }

    fn random_filter(rng: &mut Rng, depth: u32) -> T {
        if depth == 0 || rng.chance(35) {
            return random_leaf(rng);
        }
        let n = rng.below(4) as usize;
        match rng.below(3) {
            0 => T::And((0..n).map(|_| random_filter(rng, depth - 1)).collect()),
            1 => T::Or(
                (0..n.max(1))
                    .map(|_| random_filter(rng, depth - 1))
                    .collect(),
            ),
            _ => T::Not(Box::new(random_filter(rng, depth - 1))),
        }
    }

    /// `t` as JSON, each node in a randomly chosen dialect; `seen` collects the forms.
    fn render(t: &T, rng: &mut Rng, seen: &mut std::collections::BTreeSet<&'static str>) -> Value {
        let mut form = |name: &'static str| {
            seen.insert(name);
        };
        let mongo = rng.chance(50);
        match t {
            T::And(fs) => {
                let parts: Vec<Value> = fs.iter().map(|f| render(f, rng, seen)).collect();
                let mut seen_form = |n| {
                    seen.insert(n);
                };
                // Merge into one object when the keys don't clash.
                let mut merged = Map::new();
                let mergeable = rng.chance(40)
                    && parts.iter().all(|p| {
                        p.as_object().is_some_and(|o| {
                            !o.contains_key("key")
                                && o.iter()
                                    .all(|(k, v)| merged.insert(k.clone(), v.clone()).is_none())
                        })
                    });
                if mergeable {
                    seen_form("merged object");
                    Value::Object(merged)
                } else if mongo {
                    seen_form("$and");
                    json!({ "$and": parts })
                } else {
                    seen_form("must");
                    json!({ "must": parts })
                }
            }
            T::Or(fs) => {
                let parts: Vec<Value> = fs.iter().map(|f| render(f, rng, seen)).collect();
                if mongo {
                    seen.insert("$or");
                    json!({ "$or": parts })
                } else {
                    seen.insert("should");
                    json!({ "should": parts })
                }
            }
            T::Not(f) => {
                let inner = render(f, rng, seen);
                if mongo {
                    seen.insert("$not");
                    json!({ "$not": inner })
                } else {
                    seen.insert("must_not");
                    json!({ "must_not": [inner] })
                }
            }
            T::Eq(p, v) => match rng.below(3) {
                0 => {
                    form("implicit $eq");
                    json!({ *p: v })
                }
                1 => {
                    form("$eq");
                    json!({ *p: {"$eq": v} })
                }
                _ => {
                    form("match.value");
                    json!({"key": p, "match": {"value": v}})
                }
            },
            T::Ne(p, v) => {
                if mongo {
                    form("$ne");
                    json!({ *p: {"$ne": v} })
                } else {
                    form("must_not match.value");
                    json!({"must_not": [{"key": p, "match": {"value": v}}]})
                }
            }
            T::In(p, vs) => {
                if mongo {
                    form("$in");
                    json!({ *p: {"$in": vs} })
                } else {
                    form("match.any");
                    json!({"key": p, "match": {"any": vs}})
                }
            }
            T::Nin(p, vs) => {
                if mongo {
                    form("$nin");
                    json!({ *p: {"$nin": vs} })
                } else {
                    form("match.except");
                    json!({"key": p, "match": {"except": vs}})
                }
            }
            T::Range(p, ops) => {
                if mongo {
                    let mut m = Map::new();
                    for (op, v) in ops {
                        form(match *op {
                            "gt" => "$gt",
                            "gte" => "$gte",
                            "lt" => "$lt",
                            _ => "$lte",
                        });
                        m.insert(format!("${op}"), v.clone());
                    }
                    if *p == "when" {
                        form("date range");
                    }
                    json!({ *p: m })
                } else {
                    form("range");
                    let m: Map<String, Value> = ops
                        .iter()
                        .map(|(op, v)| (op.to_string(), v.clone()))
                        .collect();
                    json!({"key": p, "range": m})
                }
            }
            T::Exists(p, b) => {
                form(if *b { "$exists true" } else { "$exists false" });
                json!({ *p: {"$exists": b} })
            }
            T::IsEmpty(p) => {
                form("is_empty");
                json!({"is_empty": {"key": p}})
            }
            T::IsNull(p) => {
                form("is_null");
                json!({"is_null": {"key": p}})
            }
        }
    }

    /// The values at `path` in `item`: through objects, and through arrays of objects.
    fn ref_leaves<'a>(item: &'a Value, path: &str) -> Vec<&'a Value> {
        let mut cur = vec![item];
        for part in path.split('.') {
            let mut next = Vec::new();
            for v in cur {
                match v {
                    Value::Object(m) => next.extend(m.get(part)),
                    Value::Array(items) => next.extend(items.iter().filter_map(|e| e.get(part))),
                    _ => {}
                }
            }
            cur = next;
        }
        cur
    }

    /// The leaves, with arrays opened one level.
    fn ref_values<'a>(item: &'a Value, path: &str) -> Vec<&'a Value> {
        let mut out = Vec::new();
        for v in ref_leaves(item, path) {
            match v {
                Value::Array(items) => out.extend(items.iter()),
                v => out.push(v),
            }
        }
        out
    }

    fn ref_equal(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
            (Value::String(x), Value::String(y)) => x == y,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            _ => false,
        }
    }

    fn ref_compare(v: &Value, op: &str, bound: &Value) -> bool {
        let (x, b) = match (v, bound) {
            (Value::Number(x), Value::Number(b)) => (x.as_f64().unwrap(), b.as_f64().unwrap()),
            (Value::String(x), Value::String(b)) => match (ref_date(x), ref_date(b)) {
                (Some(x), Some(b)) => (x, b),
                _ => return false,
            },
            _ => return false,
        };
        match op {
            "gt" => x > b,
            "gte" => x >= b,
            "lt" => x < b,
            _ => x <= b,
        }
    }

    fn reference(t: &T, item: &Value) -> bool {
        match t {
            T::And(fs) => fs.iter().all(|f| reference(f, item)),
            T::Or(fs) => fs.iter().any(|f| reference(f, item)),
            T::Not(f) => !reference(f, item),
            T::Eq(p, v) => ref_values(item, p).iter().any(|x| ref_equal(x, v)),
            T::Ne(p, v) => !ref_values(item, p).iter().any(|x| ref_equal(x, v)),
            T::In(p, vs) => ref_values(item, p)
                .iter()
                .any(|x| vs.iter().any(|v| ref_equal(x, v))),
            T::Nin(p, vs) => !ref_values(item, p)
                .iter()
                .any(|x| vs.iter().any(|v| ref_equal(x, v))),
            T::Range(p, ops) => ref_values(item, p)
                .iter()
                .any(|x| ops.iter().all(|(op, b)| ref_compare(x, op, b))),
            T::Exists(p, want) => ref_leaves(item, p).iter().any(|v| !v.is_null()) == *want,
            T::IsEmpty(p) => ref_leaves(item, p)
                .iter()
                .all(|v| v.is_null() || v.as_array().is_some_and(|a| a.is_empty())),
            T::IsNull(p) => ref_leaves(item, p).iter().any(|v| v.is_null()),
        }
    }

    #[test]
    fn reference_dates_agree_with_the_generator() {
        let mut rng = Rng(7);
        for _ in 0..5000 {
            let (secs, ms) = (instant(&mut rng), rng.below(1000) as i64);
            let (text, t) = date_string(&mut rng, secs, ms);
            assert_eq!(ref_date(&text), Some(t), "{text}");
            let got = parse_date(&text).unwrap();
            assert!((got - t).abs() < 1e-6, "{text}: {got} != {t}");
        }
    }

    #[test]
    fn evaluate_agrees_with_a_brute_force_reference() {
        let mut rng = Rng(0x5EED);
        let mut items: Vec<Option<Value>> =
            (0..2000).map(|_| Some(random_item(&mut rng))).collect();
        let mut store = Payloads::new();
        for (id, item) in items.iter().enumerate() {
            store.insert(id as Idx, item.as_ref().unwrap());
        }
        // Remove some, replace some, add a few more.
        let mut removed = Vec::new();
        for _ in 0..300 {
            let id = rng.below(items.len() as u64) as usize;
            store.remove(id as Idx);
            items[id] = None;
            removed.push(id as Idx);
        }
        for _ in 0..200 {
            let id = rng.below(items.len() as u64) as usize;
            if items[id].is_some() {
                let item = random_item(&mut rng);
                store.insert(id as Idx, &item);
                items[id] = Some(item);
            }
        }
        for _ in 0..100 {
            let item = random_item(&mut rng);
            store.insert(items.len() as Idx, &item);
            items.push(Some(item));
        }
        let live = items.iter().filter(|i| i.is_some()).count();
        assert_eq!(store.len(), live);

        let mut seen = std::collections::BTreeSet::new();
        let mut partial = 0;
        for round in 0..400 {
            let t = random_filter(&mut rng, 3);
            let json = render(&t, &mut rng, &mut seen);
            let f = match parse(&json) {
                Ok(f) => f,
                Err(e) => panic!("round {round}: {json} doesn't parse: {e}"),
            };
            let got = store.evaluate(&f);
            let mut want = 0;
            for (id, item) in items.iter().enumerate() {
                let id = id as Idx;
                let Some(item) = item else {
                    assert!(
                        !got.contains(id),
                        "round {round}: removed id {id} in {json}"
                    );
                    continue;
                };
                let expected = reference(&t, item);
                want += usize::from(expected);
                assert_eq!(
                    got.contains(id),
                    expected,
                    "round {round}: {json} on {item}"
                );
                assert_eq!(
                    matches(&f, item),
                    expected,
                    "round {round}: matches: {json} on {item}"
                );
            }
            assert_eq!(got.count(), want);
            assert!(got.iter().all(|id| id >= 0 && (id as usize) < items.len()));
            if want > 0 && want < live {
                partial += 1;
            }
        }
        for id in removed {
            if items[id as usize].is_none() {
                assert!(!store.contains(id));
            }
        }
        // The filters were not trivial and used every form.
        assert!(
            partial > 200,
            "only {partial} filters matched some but not all items"
        );
        for form in [
            "$and",
            "must",
            "merged object",
            "$or",
            "should",
            "$not",
            "must_not",
            "implicit $eq",
            "$eq",
            "match.value",
            "$ne",
            "must_not match.value",
            "$in",
            "match.any",
            "$nin",
            "match.except",
            "$gt",
            "$gte",
            "$lt",
            "$lte",
            "range",
            "date range",
            "$exists true",
            "$exists false",
            "is_empty",
            "is_null",
        ] {
            assert!(seen.contains(form), "no filter used {form}");
        }
    }
}
