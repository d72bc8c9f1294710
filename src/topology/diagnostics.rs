//! Collecting every problem of a topology file, each with its line and key: the walk over
//! the TOML document's spans, typed access to values, and suggestions for misspelt keys.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml_edit::{Item, TableLike, Value};

use super::*;

// ---------------------------------------------------------------------------------------------
// Error collection and value access

pub(super) struct Ctx<'a> {
    pub(super) file: &'a Path,
    /// Byte offset of the start of every line.
    pub(super) line_starts: Vec<usize>,
    pub(super) errors: Vec<ConfigError>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(text: &str, file: &'a Path) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Ctx {
            file,
            line_starts,
            errors: Vec::new(),
        }
    }

    pub(super) fn line_of(&self, span: Option<Range<usize>>) -> Option<usize> {
        span.map(|s| self.line_starts.partition_point(|&start| start <= s.start))
    }

    pub(super) fn error(
        &mut self,
        line: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    pub(super) fn into_errors(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|e| e.line);
        ConfigErrors(self.errors)
    }

    pub(super) fn wrong_type(&mut self, f: &Field<'_>, expected: &str) {
        let found = describe(f.item);
        self.error(
            f.line,
            &f.key,
            format!("expected {expected}, found {found}"),
        );
    }

    pub(super) fn string(&mut self, f: &Field<'_>) -> Option<String> {
        match f.item.as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.wrong_type(f, "a string");
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, f: &Field<'_>) -> Option<bool> {
        let b = f.item.as_bool();
        if b.is_none() {
            self.wrong_type(f, "true or false");
        }
        b
    }

    /// A string turned into a `T` by `parse`, whose error message is reported as is.
    pub(super) fn parsed<T>(
        &mut self,
        f: &Field<'_>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.string(f)?;
        match parse(&s) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(f.line, &f.key, message);
                None
            }
        }
    }

    /// An integer in `min..=max`, converted to `T`.
    pub(super) fn int_in<T: TryFrom<i64>>(
        &mut self,
        f: &Field<'_>,
        min: i64,
        max: i64,
    ) -> Option<T> {
        let Some(n) = f.item.as_integer() else {
            self.wrong_type(f, "an integer");
            return None;
        };
        if n < min || n > max {
            let message = if max == i64::from(i32::MAX) || max == i64::from(u32::MAX) {
                format!("must be at least {min}, found {n}")
            } else {
                format!("must be between {min} and {max}, found {n}")
            };
            self.error(f.line, &f.key, message);
            return None;
        }
        T::try_from(n).ok()
    }

    /// A humantime string (`"10s"`, `"1m 30s"`, `"500ms"`) or a number of seconds.
    pub(super) fn duration(&mut self, f: &Field<'_>) -> Option<Duration> {
        let result = match f.item.as_value() {
            Some(Value::String(s)) => humantime::parse_duration(s.value()).map_err(|e| {
                format!(
                    "invalid duration \"{}\": {e} (write e.g. \"10s\", \"500ms\" or \"1m 30s\")",
                    s.value()
                )
            }),
            Some(Value::Integer(n)) => u64::try_from(*n.value())
                .map(Duration::from_secs)
                .map_err(|_| format!("a duration cannot be negative, found {}", n.value())),
            Some(Value::Float(x)) => Duration::try_from_secs_f64(*x.value())
                .map_err(|_| format!("invalid duration {} seconds", x.value())),
            _ => {
                self.wrong_type(f, "a duration (a string such as \"10s\", or seconds)");
                return None;
            }
        };
        match result {
            Ok(d) => Some(d),
            Err(message) => {
                self.error(f.line, &f.key, message);
                None
            }
        }
    }

    /// A list of strings, each with its line. With `single`, a lone string is a list of one.
    pub(super) fn strings(&mut self, f: &Field<'_>, single: bool) -> Option<Vec<(String, usize)>> {
        if single {
            if let Some(s) = f.item.as_str() {
                return Some(vec![(s.to_owned(), f.line)]);
            }
        }
        let Some(array) = f.item.as_array() else {
            let expected = if single {
                "a string or a list of strings"
            } else {
                "a list of strings"
            };
            self.wrong_type(f, expected);
            return None;
        };
        let mut out = Vec::with_capacity(array.len());
        let mut ok = true;
        for (i, v) in array.iter().enumerate() {
            let line = self.line_of(v.span()).unwrap_or(f.line);
            match v.as_str() {
                Some(s) => out.push((s.to_owned(), line)),
                None => {
                    ok = false;
                    let found = describe_value(v);
                    self.error(
                        line,
                        &f.key,
                        format!("expected a list of strings, but element {i} is {found}"),
                    );
                }
            }
        }
        ok.then_some(out)
    }
}

pub(super) fn describe(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(v) => describe_value(v),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

pub(super) fn describe_value(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "an inline table",
    }
}

pub(super) fn item_span(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::Value(v) => v.span(),
        Item::Table(t) => t.span(),
        Item::ArrayOfTables(a) => a.span(),
        Item::None => None,
    }
}

/// One key's value, with its full key path and line.
pub(super) struct Field<'d> {
    pub(super) item: &'d Item,
    pub(super) key: String,
    pub(super) line: usize,
}

/// A table (standard, inline or dotted) being read.
pub(super) struct Section<'d> {
    pub(super) table: &'d dyn TableLike,
    /// Key path prefix: `forwarder`, `receiver[1]`, `worker "db"`.
    pub(super) path: String,
    /// How messages name it: `[forwarder]`, `receiver[1]`, `worker "db"`.
    pub(super) what: String,
    /// The line of its header (or of its first key when it has none).
    pub(super) line: usize,
}

impl<'d> Section<'d> {
    pub(super) fn new(
        ctx: &Ctx<'_>,
        table: &'d dyn TableLike,
        span: Option<Range<usize>>,
        fallback: usize,
    ) -> Self {
        let line = ctx
            .line_of(span)
            .or_else(|| {
                table
                    .iter()
                    .filter_map(|(k, _)| ctx.line_of(table.key(k).and_then(|k| k.span())))
                    .min()
            })
            .unwrap_or(fallback);
        Section {
            table,
            path: String::new(),
            what: String::new(),
            line,
        }
    }

    pub(super) fn named(mut self, path: String, what: String) -> Self {
        self.path = path;
        self.what = what;
        self
    }

    pub(super) fn key_path(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    pub(super) fn key_line(&self, ctx: &Ctx<'_>, key: &str) -> usize {
        let (k, item) = match self.table.get_key_value(key) {
            Some(kv) => kv,
            None => return self.line,
        };
        ctx.line_of(k.span())
            .or_else(|| ctx.line_of(item_span(item)))
            .unwrap_or(self.line)
    }

    pub(super) fn field(&self, ctx: &Ctx<'_>, key: &str) -> Option<Field<'d>> {
        let item = self.table.get(key)?;
        if item.is_none() {
            return None;
        }
        Some(Field {
            item,
            key: self.key_path(key),
            line: self.key_line(ctx, key),
        })
    }

    /// Reports a required key that is missing.
    pub(super) fn require(&self, ctx: &mut Ctx<'_>, key: &str, example: &str) -> Option<Field<'d>> {
        let f = self.field(ctx, key);
        if f.is_none() {
            ctx.error(
                self.line,
                self.key_path(key),
                format!("missing required key in {} (e.g. {example})", self.what),
            );
        }
        f
    }

    /// Reports every key not in `allowed`.
    pub(super) fn check_keys(&self, ctx: &mut Ctx<'_>, allowed: &[&[&str]]) {
        for (key, _) in self.table.iter() {
            if allowed.iter().any(|keys| keys.contains(&key)) {
                continue;
            }
            let line = self.key_line(ctx, key);
            let candidates = allowed.iter().flat_map(|keys| keys.iter().copied());
            let hint = match (suggest(key, candidates), home_of(key)) {
                (Some(s), _) => format!("; did you mean `{s}`?"),
                (None, Some(home)) => format!("; `{key}` belongs in {home}"),
                (None, None) => String::new(),
            };
            ctx.error(
                line,
                self.key_path(key),
                format!("unknown key `{key}` in {}{hint}", self.what),
            );
        }
    }
}

/// The closest candidate to a misspelt `key`, if it is close enough.
pub(super) fn suggest<'k>(
    key: &str,
    candidates: impl IntoIterator<Item = &'k str>,
) -> Option<&'k str> {
    let limit = (key.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(key, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, by characters.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}
