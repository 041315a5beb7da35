//! What the core knows of the GraphQL schema: for each type its kind, its fields' types and the
//! key each field is read from in the data, and the possible types of interfaces and unions.
//! The Python layer builds the schema (graphql-core) and hands this description over once; plans
//! compiled with it send `__typename`, coerce scalars and bubble nulls as GraphQL requires.

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

/// A type reference such as `[Message!]!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeRef {
    Named(String),
    List(Box<TypeRef>),
    NonNull(Box<TypeRef>),
}

impl TypeRef {
    /// Parses SDL type text: `Int`, `[Int!]`, `[[String]!]!`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Some(inner) = t.strip_suffix('!') {
            let inner = Self::parse(inner)?;
            if matches!(inner, Self::NonNull(_)) {
                return Err(format!("Invalid type reference \"{text}\""));
            }
            return Ok(Self::NonNull(Box::new(inner)));
        }
        if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            return Ok(Self::List(Box::new(Self::parse(inner)?)));
        }
        let valid = !t.is_empty()
            && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !t.starts_with(|c: char| c.is_ascii_digit());
        if valid {
            Ok(Self::Named(t.to_owned()))
        } else {
            Err(format!("Invalid type reference \"{text}\""))
        }
    }

    pub fn named(&self) -> &str {
        match self {
            Self::Named(n) => n,
            Self::List(inner) | Self::NonNull(inner) => inner.named(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeKind {
    Object,
    Interface,
    Union,
    Enum,
    Scalar,
}

#[derive(Debug, Clone)]
pub struct FieldInfo {
    pub ty: TypeRef,
    /// The key of this field in the resolver's result or the event data.
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct TypeInfo {
    pub kind: TypeKind,
    pub fields: FxHashMap<String, FieldInfo>,
    pub possible_types: Vec<String>,
    pub enum_values: Vec<String>,
}

/// The schema as the core sees it.
#[derive(Debug, Clone)]
pub struct SchemaInfo {
    pub subscription_type: String,
    pub types: FxHashMap<String, TypeInfo>,
}

const BUILTIN_SCALARS: [&str; 5] = ["Int", "Float", "String", "Boolean", "ID"];

impl SchemaInfo {
    /// Reads the description produced by the Python layer (see the stub for its shape).
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let root = value
            .as_object()
            .ok_or("the schema description must be a dict")?;
        let subscription_type = root
            .get("subscription_type")
            .and_then(Value::as_str)
            .ok_or("the schema description needs a \"subscription_type\" string")?
            .to_owned();
        let types_json = root
            .get("types")
            .and_then(Value::as_object)
            .ok_or("the schema description needs a \"types\" dict")?;
        let mut types = FxHashMap::default();
        for (name, t) in types_json {
            types.insert(name.clone(), type_info(name, t)?);
        }
        let info = Self {
            subscription_type,
            types,
        };
        info.check_references()?;
        Ok(info)
    }

    fn check_references(&self) -> Result<(), String> {
        if !self.types.contains_key(&self.subscription_type) {
            return Err(format!(
                "the subscription type \"{}\" is not described",
                self.subscription_type
            ));
        }
        for (type_name, t) in &self.types {
            for (field_name, f) in &t.fields {
                let named = f.ty.named();
                if !self.is_known(named) {
                    return Err(format!(
                        "{type_name}.{field_name} refers to the undescribed type \"{named}\""
                    ));
                }
            }
            for p in &t.possible_types {
                if self.kind(p) != Some(TypeKind::Object) {
                    return Err(format!(
                        "{type_name} lists \"{p}\" as a possible type, but it is not an object type"
                    ));
                }
            }
        }
        Ok(())
    }

    fn is_known(&self, name: &str) -> bool {
        BUILTIN_SCALARS.contains(&name) || self.types.contains_key(name)
    }

    pub fn kind(&self, name: &str) -> Option<TypeKind> {
        if BUILTIN_SCALARS.contains(&name) {
            return Some(TypeKind::Scalar);
        }
        self.types.get(name).map(|t| t.kind)
    }

    pub fn field(&self, type_name: &str, field: &str) -> Option<&FieldInfo> {
        self.types.get(type_name)?.fields.get(field)
    }

    /// The object types a fragment on `name` applies to.
    pub fn possible_types(&self, name: &str) -> Vec<String> {
        match self.types.get(name) {
            Some(t) if t.kind == TypeKind::Object => vec![name.to_owned()],
            Some(t) => t.possible_types.clone(),
            None => vec![name.to_owned()],
        }
    }
}

fn type_info(name: &str, value: &Value) -> Result<TypeInfo, String> {
    let obj = value
        .as_object()
        .ok_or_else(|| format!("type \"{name}\" must be described by a dict"))?;
    let kind = match obj.get("kind").and_then(Value::as_str) {
        Some("OBJECT") => TypeKind::Object,
        Some("INTERFACE") => TypeKind::Interface,
        Some("UNION") => TypeKind::Union,
        Some("ENUM") => TypeKind::Enum,
        Some("SCALAR") => TypeKind::Scalar,
        other => {
            return Err(format!(
                "type \"{name}\" has an unknown kind {other:?} (expected OBJECT, INTERFACE, UNION, ENUM or SCALAR)"
            ))
        }
    };
    let mut fields = FxHashMap::default();
    if let Some(fields_json) = obj.get("fields") {
        let fields_json = fields_json
            .as_object()
            .ok_or_else(|| format!("the fields of \"{name}\" must be a dict"))?;
        for (field_name, f) in fields_json {
            fields.insert(field_name.clone(), field_info(name, field_name, f)?);
        }
    }
    Ok(TypeInfo {
        kind,
        fields,
        possible_types: strings(obj, "possible_types", name)?,
        enum_values: strings(obj, "values", name)?,
    })
}

fn field_info(type_name: &str, field: &str, value: &Value) -> Result<FieldInfo, String> {
    let obj: &Map<String, Value> = value
        .as_object()
        .ok_or_else(|| format!("field {type_name}.{field} must be described by a dict"))?;
    let ty = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("field {type_name}.{field} needs a \"type\" string"))?;
    let source = match obj.get("source") {
        None | Some(Value::Null) => field.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(format!(
                "field {type_name}.{field}: \"source\" must be a string"
            ))
        }
    };
    Ok(FieldInfo {
        ty: TypeRef::parse(ty).map_err(|e| format!("field {type_name}.{field}: {e}"))?,
        source,
    })
}

fn strings(obj: &Map<String, Value>, key: &str, type_name: &str) -> Result<Vec<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("\"{key}\" of \"{type_name}\" must be a list of str"))
            })
            .collect(),
        Some(_) => Err(format!(
            "\"{key}\" of \"{type_name}\" must be a list of str"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_refs_parse() {
        let t = TypeRef::parse("[[Int!]]!");
        let want = TypeRef::NonNull(Box::new(TypeRef::List(Box::new(TypeRef::List(Box::new(
            TypeRef::NonNull(Box::new(TypeRef::Named("Int".into()))),
        ))))));
        assert_eq!(t, Ok(want));
        for bad in ["", "[Int", "Int!!", "1x", "[]"] {
            assert!(TypeRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn descriptions_are_checked() {
        let good = json!({"subscription_type": "S", "types": {
            "S": {"kind": "OBJECT", "fields": {"m": {"type": "M!", "source": "m"}}},
            "M": {"kind": "OBJECT", "fields": {"roomId": {"type": "String", "source": "room_id"}}},
            "N": {"kind": "INTERFACE", "fields": {}, "possible_types": ["M"]}
        }});
        let info = SchemaInfo::from_json(&good).map_err(|e| e.to_string());
        let source = info
            .as_ref()
            .ok()
            .and_then(|i| i.field("M", "roomId"))
            .map(|f| f.source.clone());
        assert_eq!(source.as_deref(), Some("room_id"));
        assert_eq!(
            info.map(|i| i.possible_types("N")),
            Ok(vec!["M".to_owned()])
        );
        let bad = json!({"subscription_type": "S", "types": {
            "S": {"kind": "OBJECT", "fields": {"m": {"type": "Missing"}}}}});
        assert!(SchemaInfo::from_json(&bad).is_err());
        assert!(SchemaInfo::from_json(&json!({"types": {}})).is_err());
    }
}
