//! Declarative argument filters: a subscription declares that a field of the event data must
//! relate to one of its variables (or a constant), and dispatch evaluates it in Rust per event.

use serde_json::{Map, Value};
use std::cmp::Ordering;

/// A comparison between a field of the event data and an operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    Ne,
    In,
    NotIn,
    Gt,
    Gte,
    Lt,
    Lte,
    Contains,
}

impl FilterOp {
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "in" => Self::In,
            "not_in" => Self::NotIn,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "contains" => Self::Contains,
            other => {
                return Err(format!(
                "Unknown filter operator \"{other}\" (expected one of eq, ne, in, not_in, gt, gte, lt, lte, contains)"
            ))
            }
        })
    }
}

/// Where the operand of a filter comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// The subscription's variable of this name. A missing or null variable disables the
    /// filter: an optional argument left out means "no restriction".
    Variable(String),
    Value(Value),
}

/// A filter as declared, before the subscription's variables are known.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterSpec {
    /// Dotted path into the event data, e.g. `"room_id"` or `"author.id"`.
    pub field: String,
    pub op: FilterOp,
    pub operand: Operand,
}

/// A filter bound to one subscription's variables, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgFilter {
    path: Box<[Box<str>]>,
    op: FilterOp,
    operand: Value,
}

impl FilterSpec {
    /// Binds the filter to `variables`; `Ok(None)` when its variable is absent or null.
    pub fn bind(&self, variables: &Map<String, Value>) -> Result<Option<ArgFilter>, String> {
        if self.field.is_empty() || self.field.split('.').any(str::is_empty) {
            return Err(format!(
                "Filter field \"{}\" is not a valid dotted path",
                self.field
            ));
        }
        let operand = match &self.operand {
            Operand::Variable(name) => match variables.get(name) {
                None | Some(Value::Null) => return Ok(None),
                Some(v) => v.clone(),
            },
            Operand::Value(v) => v.clone(),
        };
        if matches!(self.op, FilterOp::In | FilterOp::NotIn) && !operand.is_array() {
            return Err(format!(
                "Filter on \"{}\" with operator in/not_in needs a list operand",
                self.field
            ));
        }
        Ok(Some(ArgFilter {
            path: self.field.split('.').map(Box::from).collect(),
            op: self.op,
            operand,
        }))
    }
}

impl ArgFilter {
    /// True when the event data passes this filter.
    pub fn matches(&self, data: &Value) -> bool {
        let mut current = Some(data);
        for key in self.path.iter() {
            current = current.and_then(|v| v.get(&**key));
        }
        let value = current.unwrap_or(&Value::Null);
        match self.op {
            FilterOp::Eq => json_eq(value, &self.operand),
            FilterOp::Ne => !json_eq(value, &self.operand),
            FilterOp::In => self.operand_items().any(|o| json_eq(value, o)),
            FilterOp::NotIn => !self.operand_items().any(|o| json_eq(value, o)),
            FilterOp::Gt => compare(value, &self.operand) == Some(Ordering::Greater),
            FilterOp::Gte => matches!(
                compare(value, &self.operand),
                Some(Ordering::Greater | Ordering::Equal)
            ),
            FilterOp::Lt => compare(value, &self.operand) == Some(Ordering::Less),
            FilterOp::Lte => matches!(
                compare(value, &self.operand),
                Some(Ordering::Less | Ordering::Equal)
            ),
            FilterOp::Contains => match (value, &self.operand) {
                (Value::Array(items), o) => items.iter().any(|i| json_eq(i, o)),
                (Value::String(s), Value::String(o)) => s.contains(o.as_str()),
                _ => false,
            },
        }
    }

    fn operand_items(&self) -> impl Iterator<Item = &Value> {
        self.operand.as_array().into_iter().flatten()
    }
}

/// Equality with numbers compared by value (`1` equals `1.0`), everything else structurally.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare(a, b) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Orders numbers by value and strings lexicographically; other pairs are unordered.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(p), Some(q)) = (x.as_i64(), y.as_i64()) {
                return Some(p.cmp(&q));
            }
            if let (Some(p), Some(q)) = (x.as_u64(), y.as_u64()) {
                return Some(p.cmp(&q));
            }
            x.as_f64()?.partial_cmp(&y.as_f64()?)
        }
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bound(field: &str, op: &str, operand: Operand, vars: Value) -> Option<ArgFilter> {
        let spec = FilterSpec {
            field: field.into(),
            op: FilterOp::parse(op).unwrap_or(FilterOp::Eq),
            operand,
        };
        let vars = vars.as_object().cloned().unwrap_or_default();
        spec.bind(&vars).unwrap_or(None)
    }

    #[test]
    fn variable_equality_and_missing_variable() {
        let f = bound(
            "room_id",
            "eq",
            Operand::Variable("roomId".into()),
            json!({"roomId": "42"}),
        );
        let f = f.map(|f| {
            (
                f.matches(&json!({"room_id": "42"})),
                f.matches(&json!({"room_id": "7"})),
                f.matches(&json!({})),
            )
        });
        assert_eq!(f, Some((true, false, false)));
        assert!(bound(
            "room_id",
            "eq",
            Operand::Variable("roomId".into()),
            json!({})
        )
        .is_none());
    }

    #[test]
    fn operators() {
        let data = json!({"n": 5, "s": "hello", "tags": ["a", "b"], "nested": {"id": 1}});
        let cases = [
            ("n", "gt", json!(4), true),
            ("n", "gt", json!(5), false),
            ("n", "gte", json!(5.0), true),
            ("n", "lt", json!(5.5), true),
            ("n", "lte", json!(4), false),
            ("n", "eq", json!(5.0), true),
            ("n", "ne", json!(5), false),
            ("n", "in", json!([1, 5]), true),
            ("n", "not_in", json!([1, 5]), false),
            ("s", "contains", json!("ell"), true),
            ("tags", "contains", json!("b"), true),
            ("tags", "contains", json!("c"), false),
            ("nested.id", "eq", json!(1), true),
            ("s", "gt", json!(3), false),
        ];
        for (field, op, operand, want) in cases {
            let f = bound(field, op, Operand::Value(operand.clone()), json!({}));
            assert_eq!(
                f.map(|f| f.matches(&data)),
                Some(want),
                "{field} {op} {operand}"
            );
        }
    }

    #[test]
    fn bad_specs_are_errors() {
        assert!(FilterOp::parse("like").is_err());
        let spec = FilterSpec {
            field: "a..b".into(),
            op: FilterOp::Eq,
            operand: Operand::Value(json!(1)),
        };
        assert!(spec.bind(&Map::new()).is_err());
        let spec = FilterSpec {
            field: "a".into(),
            op: FilterOp::In,
            operand: Operand::Value(json!(1)),
        };
        assert!(spec.bind(&Map::new()).is_err());
    }
}
