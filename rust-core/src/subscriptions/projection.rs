//! Projects a result onto a `ProjectionPlan` and serializes it in one pass, straight into the
//! bytes of a graphql-transport-ws payload: only the selected fields, under their response keys,
//! in selection order, with `null` for absent fields. With a schema, scalars are coerced as
//! graphql-js does and a null (or a failed coercion) in a non-null position bubbles up to the
//! nearest nullable parent, with an entry in `errors` (GraphQL spec, "Handling Field Errors").

use super::executor::FieldError;
use super::plan::{write_json_str, Field, Leaf, ProjectionPlan, SelectionSet, Wrapper};
use serde_json::{Number, Value};

/// This position must be null; the error is already recorded.
struct Bubble;

enum Segment<'p> {
    Key(&'p str),
    Index(usize),
}

struct Projector<'p> {
    path: Vec<Segment<'p>>,
    /// (message, path as JSON)
    errors: Vec<(String, Vec<u8>)>,
}

/// Writes the payload of `value` projected onto `plan`: `{"data":{...}}`, or
/// `{"errors":[...],"data":...}` when fields failed.
pub fn write_payload(out: &mut Vec<u8>, plan: &ProjectionPlan, value: &Value) {
    let start = out.len();
    out.extend_from_slice(b"{\"data\":");
    let data_start = out.len();
    let mut p = Projector {
        path: Vec::with_capacity(8),
        errors: Vec::new(),
    };
    out.push(b'{');
    out.extend_from_slice(&plan.root.key_json);
    p.path.push(Segment::Key(&plan.root.response_key));
    match p.write_value(out, &plan.root, &plan.root.output.wrappers, Some(value)) {
        Ok(()) => out.push(b'}'),
        Err(Bubble) => {
            out.truncate(data_start);
            out.extend_from_slice(b"null");
        }
    }
    out.push(b'}');
    if !p.errors.is_empty() {
        let data = out[data_start..out.len() - 1].to_vec();
        out.truncate(start);
        out.extend_from_slice(b"{\"errors\":[");
        for (i, (message, path)) in p.errors.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_error(out, message, path, None);
        }
        out.extend_from_slice(b"],\"data\":");
        out.extend_from_slice(&data);
        out.push(b'}');
    }
}

/// The payload of an event whose resolver failed: the error at the root field's path and the
/// field null, or `data` null when the field is non-null (GraphQL's null propagation).
pub fn error_payload(plan: &ProjectionPlan, error: &FieldError) -> Vec<u8> {
    let root = &plan.root;
    let mut out = Vec::with_capacity(96 + error.message.len());
    out.extend_from_slice(b"{\"errors\":[");
    write_root_error(&mut out, plan, error);
    out.extend_from_slice(b"],\"data\":");
    if matches!(root.output.wrappers.first(), Some(Wrapper::NonNull)) {
        out.extend_from_slice(b"null");
    } else {
        out.push(b'{');
        out.extend_from_slice(&root.key_json);
        out.extend_from_slice(b"null}");
    }
    out.push(b'}');
    out
}

/// Writes `error` as a GraphQL error object at the root field's path.
pub fn write_root_error(out: &mut Vec<u8>, plan: &ProjectionPlan, error: &FieldError) {
    let mut path = Vec::with_capacity(plan.root.response_key.len() + 4);
    path.push(b'[');
    write_json_str(&mut path, &plan.root.response_key);
    path.push(b']');
    write_error(out, &error.message, &path, error.extensions.as_ref());
}

/// Writes one GraphQL error object, `{"message":…,"path":…,"extensions":…}` (`path`: JSON).
fn write_error(
    out: &mut Vec<u8>,
    message: &str,
    path: &[u8],
    extensions: Option<&serde_json::Map<String, Value>>,
) {
    out.extend_from_slice(b"{\"message\":");
    write_json_str(out, message);
    out.extend_from_slice(b",\"path\":");
    out.extend_from_slice(path);
    if let Some(extensions) = extensions {
        out.extend_from_slice(b",\"extensions\":");
        // A map of JSON values always serializes.
        let _ = serde_json::to_writer(&mut *out, extensions);
    }
    out.push(b'}');
}

/// The payload bytes of `value` projected onto `plan`.
pub fn payload(plan: &ProjectionPlan, value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_payload(&mut out, plan, value);
    out
}

impl<'p> Projector<'p> {
    fn error(&mut self, message: String) -> Bubble {
        let mut path = Vec::with_capacity(16);
        path.push(b'[');
        for (i, segment) in self.path.iter().enumerate() {
            if i > 0 {
                path.push(b',');
            }
            match segment {
                Segment::Key(k) => write_json_str(&mut path, k),
                Segment::Index(n) => path.extend_from_slice(n.to_string().as_bytes()),
            }
        }
        path.push(b']');
        self.errors.push((message, path));
        Bubble
    }

    /// Writes `value` at a position of `field`'s type whose wrappers are `wrappers`.
    fn write_value(
        &mut self,
        out: &mut Vec<u8>,
        field: &'p Field,
        wrappers: &[Wrapper],
        value: Option<&Value>,
    ) -> Result<(), Bubble> {
        let (non_null, rest) = match wrappers.split_first() {
            Some((Wrapper::NonNull, rest)) => (true, rest),
            _ => (false, wrappers),
        };
        let start = out.len();
        let result = match value {
            None | Some(Value::Null) if non_null => Err(self.error(format!(
                "Cannot return null for non-nullable field {}.",
                field.coordinate
            ))),
            None | Some(Value::Null) => {
                out.extend_from_slice(b"null");
                Ok(())
            }
            Some(v) => self.write_present(out, field, rest, v),
        };
        match result {
            Err(bubble) if non_null => Err(bubble),
            Err(Bubble) => {
                out.truncate(start);
                out.extend_from_slice(b"null");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// Writes a non-null `value` (`wrappers` no longer starts with this position's NonNull).
    fn write_present(
        &mut self,
        out: &mut Vec<u8>,
        field: &'p Field,
        wrappers: &[Wrapper],
        value: &Value,
    ) -> Result<(), Bubble> {
        match wrappers.split_first() {
            Some((Wrapper::List, inner)) => {
                let Value::Array(items) = value else {
                    return Err(self.error(format!(
                        "Expected Iterable, but did not find one for field {}.",
                        field.coordinate
                    )));
                };
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.path.push(Segment::Index(i));
                    let r = self.write_value(out, field, inner, Some(item));
                    self.path.pop();
                    r?;
                }
                out.push(b']');
                Ok(())
            }
            Some((Wrapper::NonNull, _)) => self.write_value(out, field, wrappers, Some(value)),
            None => self.write_leaf(out, field, value),
        }
    }

    fn write_leaf(
        &mut self,
        out: &mut Vec<u8>,
        field: &'p Field,
        value: &Value,
    ) -> Result<(), Bubble> {
        let coerced = match &field.output.leaf {
            Leaf::Any | Leaf::Custom => {
                write_json(out, value);
                return Ok(());
            }
            Leaf::Selection => {
                if let Some(selection) = &field.selection {
                    self.write_untyped(out, selection, value);
                } else {
                    write_json(out, value);
                }
                return Ok(());
            }
            Leaf::Composite { typename } => {
                let (Value::Object(map), Some(selection)) = (value, &field.selection) else {
                    return Err(self.error(format!(
                        "Expected an object for field {}.",
                        field.coordinate
                    )));
                };
                let runtime = typename
                    .as_deref()
                    .or_else(|| map.get("__typename").and_then(Value::as_str));
                return self.write_object(out, selection, runtime, map);
            }
            Leaf::Typename => {
                write_json(out, value);
                return Ok(());
            }
            Leaf::Int => coerce_int(value),
            Leaf::Float => coerce_float(value),
            Leaf::String => coerce_string(value),
            Leaf::Boolean => coerce_bool(value),
            Leaf::Id => coerce_id(value),
            Leaf::Enum(values) => match value {
                Value::String(s) if values.is_empty() || values.iter().any(|v| v == s) => {
                    Ok(value.clone())
                }
                _ => Err("Enum cannot represent value"),
            },
        };
        match coerced {
            Ok(v) => {
                write_json(out, &v);
                Ok(())
            }
            Err(what) => Err(self.error(format!("{what}: {value}"))),
        }
    }

    fn write_object(
        &mut self,
        out: &mut Vec<u8>,
        selection: &'p SelectionSet,
        typename: Option<&str>,
        map: &serde_json::Map<String, Value>,
    ) -> Result<(), Bubble> {
        out.push(b'{');
        for (i, field) in selection.fields_for(typename).iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&field.key_json);
            if field.output.leaf == Leaf::Typename {
                match typename {
                    Some(t) => write_json_str(out, t),
                    None => out.extend_from_slice(b"null"),
                }
                continue;
            }
            self.path.push(Segment::Key(&field.response_key));
            let r = self.write_value(out, field, &field.output.wrappers, map.get(&field.source));
            self.path.pop();
            r?;
        }
        out.push(b'}');
        Ok(())
    }

    /// Without a schema: objects are projected, lists element by element, anything else where an
    /// object is expected is null.
    fn write_untyped(&mut self, out: &mut Vec<u8>, selection: &'p SelectionSet, value: &Value) {
        match value {
            Value::Object(map) => {
                let typename = map.get("__typename").and_then(Value::as_str);
                // Untyped fields never bubble: they have no non-null wrappers.
                let _ = self.write_object(out, selection, typename, map);
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.write_untyped(out, selection, item);
                }
                out.push(b']');
            }
            _ => out.extend_from_slice(b"null"),
        }
    }
}

fn write_json(out: &mut Vec<u8>, value: &Value) {
    // Serializing a `Value` into a Vec cannot fail: keys are strings and numbers are valid.
    let _ = serde_json::to_writer(&mut *out, value);
}

type Coerced = Result<Value, &'static str>;

fn coerce_int(value: &Value) -> Coerced {
    const WHAT: &str = "Int cannot represent non 32-bit signed integer value";
    let as_int = |f: f64| -> Coerced {
        if f.fract() != 0.0 || !f.is_finite() {
            return Err("Int cannot represent non-integer value");
        }
        if f < f64::from(i32::MIN) || f > f64::from(i32::MAX) {
            return Err(WHAT);
        }
        Ok(Value::Number(Number::from(f as i64)))
    };
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) if i32::try_from(i).is_ok() => Ok(Value::Number(i.into())),
            Some(_) => Err(WHAT),
            None => n.as_f64().map_or(Err(WHAT), as_int),
        },
        Value::Bool(b) => Ok(Value::Number(i64::from(*b).into())),
        Value::String(s) if !s.trim().is_empty() => s
            .trim()
            .parse::<f64>()
            .map_err(|_| "Int cannot represent non-integer value")
            .and_then(as_int),
        _ => Err("Int cannot represent non-integer value"),
    }
}

fn coerce_float(value: &Value) -> Coerced {
    const WHAT: &str = "Float cannot represent non numeric value";
    match value {
        Value::Number(_) => Ok(value.clone()),
        Value::Bool(b) => Ok(Value::Number(i64::from(*b).into())),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or(WHAT),
        _ => Err(WHAT),
    }
}

fn coerce_string(value: &Value) -> Coerced {
    match value {
        Value::String(_) => Ok(value.clone()),
        Value::Number(n) => Ok(Value::String(n.to_string())),
        Value::Bool(b) => Ok(Value::String(b.to_string())),
        _ => Err("String cannot represent value"),
    }
}

fn coerce_bool(value: &Value) -> Coerced {
    match value {
        Value::Bool(_) => Ok(value.clone()),
        Value::Number(n) => n
            .as_f64()
            .map(|f| Value::Bool(f != 0.0))
            .ok_or("Boolean cannot represent a non boolean value"),
        _ => Err("Boolean cannot represent a non boolean value"),
    }
}

fn coerce_id(value: &Value) -> Coerced {
    match value {
        Value::String(_) => Ok(value.clone()),
        Value::Number(n)
            if n.is_i64() || n.is_u64() || !n.to_string().contains(['.', 'e', 'E']) =>
        {
            Ok(Value::String(n.to_string()))
        }
        _ => Err("ID cannot represent value"),
    }
}

#[cfg(test)]
mod tests;
