//! Python objects <-> JSON values, with precise errors: the path of the offending value and its
//! type. Integers of any size stay exact (serde_json's `arbitrary_precision`); NaN, infinities,
//! lone surrogates and non-string keys are refused because they have no JSON form.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};
use std::fmt::Write as _;

/// Deepest nesting of lists and dicts accepted from Python: serde_json parses at most this
/// depth, so whatever Python gives can also travel as JSON text (buses, round trips).
pub const MAX_DEPTH: usize = 127;

/// Most path segments named in an error message.
const MAX_PATH_SHOWN: usize = 8;

enum Segment {
    Key(String),
    Index(usize),
}

struct ConversionError {
    path: Vec<Segment>,
    message: String,
    is_type_error: bool,
}

impl ConversionError {
    fn type_error(message: String) -> Self {
        Self {
            path: Vec::new(),
            message,
            is_type_error: true,
        }
    }

    fn value_error(message: String) -> Self {
        Self {
            path: Vec::new(),
            message,
            is_type_error: false,
        }
    }

    fn at(mut self, segment: Segment) -> Self {
        self.path.push(segment);
        self
    }

    fn into_py_err(self, what: &str) -> PyErr {
        let mut location = what.to_owned();
        // A runaway path (a self-referencing list) is cut: its start says enough.
        let shown = self.path.len().min(MAX_PATH_SHOWN);
        for segment in self.path.iter().rev().take(shown) {
            let _ = match segment {
                Segment::Key(k) => write!(
                    location,
                    "['{}']",
                    k.replace('\\', "\\\\").replace('\'', "\\'")
                ),
                Segment::Index(i) => write!(location, "[{i}]"),
            };
        }
        if self.path.len() > shown {
            location.push_str("...");
        }
        let message = format!("{location}: {}", self.message);
        if self.is_type_error {
            PyTypeError::new_err(message)
        } else {
            PyValueError::new_err(message)
        }
    }
}

/// Converts a JSON-compatible Python value; `what` names it in errors (e.g. `"data"`).
pub fn to_json(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    to_json_limited(obj, what, MAX_DEPTH)
}

/// As `to_json`, with at most `max_depth` levels of nesting (for values that will sit inside
/// another JSON document).
pub fn to_json_limited(obj: &Bound<'_, PyAny>, what: &str, max_depth: usize) -> PyResult<Value> {
    convert(obj, max_depth).map_err(|e| e.into_py_err(what))
}

/// Converts a Python mapping with string keys (`None` gives an empty map).
pub fn to_json_map(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Map<String, Value>> {
    match obj {
        None => Ok(Map::new()),
        Some(o) if o.is_none() => Ok(Map::new()),
        Some(o) => match to_json(o, what)? {
            Value::Object(map) => Ok(map),
            _ => Err(PyTypeError::new_err(format!(
                "{what} must be a dict, not {}",
                type_name(o)
            ))),
        },
    }
}

/// The Python type name of `obj`, for error messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_owned())
}

/// `depth_left`: how many more levels of lists and dicts may open.
fn convert(obj: &Bound<'_, PyAny>, depth_left: usize) -> Result<Value, ConversionError> {
    if let Ok(s) = obj.cast::<PyString>() {
        return match s.to_str() {
            Ok(text) => Ok(Value::String(text.to_owned())),
            Err(_) => Err(ConversionError::value_error(
                "string is not valid Unicode (it contains a lone surrogate)".into(),
            )),
        };
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        if let Ok(v) = i.extract::<i64>() {
            return Ok(Value::Number(v.into()));
        }
        if let Ok(v) = i.extract::<u64>() {
            return Ok(Value::Number(v.into()));
        }
        // int.__str__ rather than str(): a subclass (IntEnum) may override __str__.
        let text: String = obj
            .py()
            .get_type::<PyInt>()
            .call_method1("__str__", (obj,))
            .and_then(|s| s.extract())
            .map_err(|e| ConversionError::value_error(e.to_string()))?;
        return serde_json::from_str::<Number>(&text)
            .map(Value::Number)
            .map_err(|e| {
                ConversionError::value_error(format!("integer {text} has no JSON form: {e}"))
            });
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        return Number::from_f64(v).map(Value::Number).ok_or_else(|| {
            let text = if v.is_nan() {
                "nan"
            } else if v > 0.0 {
                "inf"
            } else {
                "-inf"
            };
            ConversionError::value_error(format!("float {text} has no JSON form"))
        });
    }
    let is_container = obj.is_instance_of::<PyDict>()
        || obj.is_instance_of::<PyList>()
        || obj.is_instance_of::<PyTuple>();
    if is_container && depth_left == 0 {
        return Err(ConversionError::value_error(format!(
            "nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in dict.iter() {
            let key = match k.cast::<PyString>() {
                Ok(s) => s
                    .to_str()
                    .map(str::to_owned)
                    .map_err(|_| ConversionError::value_error("key is not valid Unicode".into()))?,
                Err(_) => {
                    return Err(ConversionError::type_error(format!(
                        "dict keys must be str, not {}",
                        type_name(&k)
                    )))
                }
            };
            let value = convert(&v, depth_left - 1).map_err(|e| e.at(Segment::Key(key.clone())))?;
            map.insert(key, value);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(list) = obj.cast::<PyList>() {
        return convert_items(list.iter(), list.len(), depth_left);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return convert_items(tuple.iter(), tuple.len(), depth_left);
    }
    Err(ConversionError::type_error(format!(
        "value of type {} is not JSON-serializable (use str, int, float, bool, None, list or dict)",
        type_name(obj)
    )))
}

fn convert_items<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    len: usize,
    depth_left: usize,
) -> Result<Value, ConversionError> {
    let mut out = Vec::with_capacity(len);
    for (i, item) in items.enumerate() {
        out.push(convert(&item, depth_left - 1).map_err(|e| e.at(Segment::Index(i)))?);
    }
    Ok(Value::Array(out))
}

/// Converts a JSON value into Python objects (dict, list, str, int, float, bool, None).
pub fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => number_to_py(py, n)?,
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

fn number_to_py<'py>(py: Python<'py>, n: &Number) -> PyResult<Bound<'py, PyAny>> {
    if let Some(i) = n.as_i64() {
        return Ok(i.into_pyobject(py)?.into_any());
    }
    if let Some(u) = n.as_u64() {
        return Ok(u.into_pyobject(py)?.into_any());
    }
    let text = n.as_str();
    if !text.contains(['.', 'e', 'E']) {
        // Beyond 64 bits: arbitrary_precision kept the digits, so Python's int() keeps them exact.
        return py.get_type::<PyInt>().call1((text,));
    }
    // Out-of-range literals such as 1e400 become +-inf, as with Python's json module.
    let float: f64 = text
        .parse()
        .map_err(|_| PyValueError::new_err(format!("invalid JSON number {text}")))?;
    Ok(PyFloat::new(py, float).into_any())
}
