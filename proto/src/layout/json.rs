//! Reading fields out of `serde_json` values with the field path at hand, so
//! every type error names where it is; and the attribute order Nix uses.

use serde_json::{Map, Value};

use super::error::LayoutError;

pub(super) type Obj = Map<String, Value>;

pub(super) fn err(path: &str, msg: impl Into<String>) -> LayoutError {
    LayoutError::new(path, msg)
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(super) fn as_obj<'a>(v: &'a Value, path: &str) -> Result<&'a Obj, LayoutError> {
    v.as_object().ok_or_else(|| {
        err(
            path,
            format!("expected an attribute set, found {}", kind(v)),
        )
    })
}

/// Entries in the byte order of their names (Nix's attribute order), whatever
/// order serde_json's map keeps.
pub(super) fn sorted(o: &Obj) -> Vec<(&String, &Value)> {
    let mut v: Vec<_> = o.iter().collect();
    v.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    v
}

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an attribute set",
    }
}

/// A string field; absent or null gives `None`.
pub(super) fn opt_str<'a>(
    o: &'a Obj,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, LayoutError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(err(
            &join(path, key),
            format!("expected a string, found {}", kind(v)),
        )),
    }
}

pub(super) fn opt_int(o: &Obj, key: &str, path: &str) -> Result<Option<i64>, LayoutError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            err(
                &join(path, key),
                format!("expected an integer, found {}", kind(v)),
            )
        }),
    }
}

pub(super) fn opt_bool(o: &Obj, key: &str, path: &str) -> Result<Option<bool>, LayoutError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(err(
            &join(path, key),
            format!("expected a boolean, found {}", kind(v)),
        )),
    }
}

pub(super) fn str_list(o: &Obj, key: &str, path: &str) -> Result<Option<Vec<String>>, LayoutError> {
    let p = join(path, key);
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    err(
                        &format!("{p}.{i}"),
                        format!("expected a string, found {}", kind(v)),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(err(
            &p,
            format!("expected a list of strings, found {}", kind(v)),
        )),
    }
}

/// Hooks are shell code disko runs; landfall runs none, so a non-empty one is refused.
pub(super) fn no_hooks(o: &Obj, path: &str) -> Result<(), LayoutError> {
    for (k, v) in o {
        if k.ends_with("Hook") && !matches!(v, Value::Null) && v.as_str() != Some("") {
            return Err(err(
                &join(path, k),
                "hooks (shell commands) are not supported by landfall",
            ));
        }
    }
    Ok(())
}
