//! Compiles a GraphQL subscription document into a `ProjectionPlan`: the one root field and, for
//! every object below it, the fields to send, already merged by response key and with fragments
//! resolved, so projecting an event is a walk over plain vectors with no per-event analysis.

use super::schema::{SchemaInfo, TypeKind, TypeRef};
use graphql_parser::query::{
    self as ast, Definition, Directive, Document, OperationDefinition, Selection, TypeCondition,
};
use serde_json::{Map, Value};

/// Deepest selection nesting accepted in a document (also bounds the projection's recursion).
pub const MAX_SELECTION_DEPTH: usize = 64;
/// Most fields a compiled plan may hold: fragments on many types multiply the precomputed
/// selections, so a hostile document is refused here instead of exhausting memory.
pub const MAX_PLAN_FIELDS: usize = 10_000;

/// The compiled selection of one subscription operation.
#[derive(Debug)]
pub struct ProjectionPlan {
    /// The operation's root field; its value is the resolver's result (or the event data).
    pub root: Field,
    /// True when `@skip`/`@include` read variables, so the plan is specific to those variables.
    pub depends_on_variables: bool,
}

impl ProjectionPlan {
    /// Name of the root field (the default channel of the subscription).
    pub fn root_field_name(&self) -> &str {
        &self.root.name
    }
}

/// One field to send. `key_json` is the pre-encoded `"responseKey":` written before the value.
#[derive(Debug)]
pub struct Field {
    pub response_key: String,
    pub name: String,
    pub key_json: Box<[u8]>,
    /// The key the value is read from (the field name unless the schema maps it).
    pub source: String,
    /// `Type.field`, for error messages.
    pub coordinate: String,
    pub output: Output,
    /// `None` for a leaf: its value is written according to `output.leaf`.
    pub selection: Option<SelectionSet>,
}

/// How a value is written: its type's wrappers, outermost first, around what sits inside.
#[derive(Debug, Clone)]
pub struct Output {
    pub wrappers: Box<[Wrapper]>,
    pub leaf: Leaf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapper {
    NonNull,
    List,
}

/// The named type inside a field's wrappers, as far as the plan knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaf {
    /// No schema: sent as it is.
    Any,
    Int,
    Float,
    String,
    Boolean,
    Id,
    /// An enum's values (empty: not checked).
    Enum(Box<[String]>),
    /// A custom scalar: sent as it is.
    Custom,
    /// No schema, but a selection: objects are projected (lists element by element), other
    /// values become null.
    Selection,
    /// `__typename`.
    Typename,
    /// An object, interface or union; `typename` is known statically for object types.
    Composite {
        typename: Option<String>,
    },
}

impl Output {
    fn untyped(composite: bool) -> Self {
        Self {
            wrappers: Box::new([]),
            leaf: if composite {
                Leaf::Selection
            } else {
                Leaf::Any
            },
        }
    }

    fn from_type(ty: &TypeRef, schema: &SchemaInfo) -> Self {
        let mut wrappers = Vec::new();
        let mut current = ty;
        let name = loop {
            match current {
                TypeRef::NonNull(inner) => {
                    wrappers.push(Wrapper::NonNull);
                    current = inner;
                }
                TypeRef::List(inner) => {
                    wrappers.push(Wrapper::List);
                    current = inner;
                }
                TypeRef::Named(name) => break name.as_str(),
            }
        };
        let leaf = match (name, schema.kind(name)) {
            ("Int", _) => Leaf::Int,
            ("Float", _) => Leaf::Float,
            ("String", _) => Leaf::String,
            ("Boolean", _) => Leaf::Boolean,
            ("ID", _) => Leaf::Id,
            (_, Some(TypeKind::Enum)) => Leaf::Enum(
                schema
                    .types
                    .get(name)
                    .map(|t| t.enum_values.clone().into_boxed_slice())
                    .unwrap_or_default(),
            ),
            (_, Some(TypeKind::Object)) => Leaf::Composite {
                typename: Some(name.to_owned()),
            },
            (_, Some(TypeKind::Interface | TypeKind::Union)) => Leaf::Composite { typename: None },
            _ => Leaf::Custom,
        };
        Self {
            wrappers: wrappers.into_boxed_slice(),
            leaf,
        }
    }
}

/// The fields of an object, precomputed for each way its runtime type can decide fragments.
#[derive(Debug, Default)]
pub struct SelectionSet {
    /// When the object's type is known and matches no type condition.
    pub fields: Vec<Field>,
    /// When the type is known and named by some type condition: (type name, fields).
    pub by_type: Vec<(String, Vec<Field>)>,
    /// When the type is not known (no `__typename` in the data): every fragment applies.
    pub unknown_type: Option<Vec<Field>>,
}

impl SelectionSet {
    /// The fields to send for an object whose `__typename` is `typename`.
    #[inline]
    pub fn fields_for(&self, typename: Option<&str>) -> &[Field] {
        if self.by_type.is_empty() {
            return &self.fields;
        }
        match typename {
            Some(t) => self
                .by_type
                .iter()
                .find(|(name, _)| name == t)
                .map_or(&self.fields[..], |(_, f)| &f[..]),
            None => self.unknown_type.as_deref().unwrap_or(&self.fields),
        }
    }
}

/// A selection after fragment expansion: a field with the type condition it is under.
#[derive(Clone)]
struct RawItem<'d> {
    /// `None`: unconditional. `Some(names)`: applies when the runtime type is one of `names`.
    condition: Option<Vec<String>>,
    field: &'d ast::Field<'d, &'d str>,
}

type Doc<'d> = Document<'d, &'d str>;

/// Parses and compiles `query`, selecting `operation_name` (required when the document holds
/// several operations). `variables` decide `@skip`/`@include`; with a `schema`, the plan knows
/// every field's type and source key.
pub fn compile(
    query: &str,
    operation_name: Option<&str>,
    variables: &Map<String, Value>,
    schema: Option<&SchemaInfo>,
) -> Result<ProjectionPlan, String> {
    let doc: Doc<'_> = ast::parse_query::<&str>(query).map_err(|e| {
        let msg = e.to_string();
        format!("Syntax error: {}", msg.trim())
    })?;
    let op = select_operation(&doc, operation_name)?;
    let (selection_set, var_defs) = match op {
        OperationDefinition::Subscription(s) => (&s.selection_set, &s.variable_definitions),
        OperationDefinition::Query(_) | OperationDefinition::SelectionSet(_) => {
            return Err("Only subscription operations can be registered; got a query".into())
        }
        OperationDefinition::Mutation(_) => {
            return Err("Only subscription operations can be registered; got a mutation".into())
        }
    };
    let mut ctx = Compiler {
        doc: &doc,
        variables,
        var_defs,
        depends_on_variables: false,
        fields: 0,
        schema,
    };
    let mut items = Vec::new();
    ctx.expand(selection_set, None, &mut items, &mut Vec::new(), 0)?;
    let mut root_keys: Vec<&str> = Vec::new();
    for item in &items {
        let key = response_key(item.field);
        if !root_keys.contains(&key) {
            root_keys.push(key);
        }
    }
    if root_keys.len() != 1 {
        return Err(format!(
            "A subscription must select exactly one top-level field, got {}",
            root_keys.len()
        ));
    }
    if items[0].field.name.starts_with("__") {
        return Err("A subscription's top-level field cannot be an introspection field".into());
    }
    // The subscription root type is always known, so every fragment on it applies.
    let root_type = schema.map(|s| s.subscription_type.as_str());
    let root = ctx.merge_field(&items, 1, root_type)?;
    Ok(ProjectionPlan {
        root,
        depends_on_variables: ctx.depends_on_variables,
    })
}

fn select_operation<'a, 'd>(
    doc: &'a Doc<'d>,
    operation_name: Option<&str>,
) -> Result<&'a OperationDefinition<'d, &'d str>, String> {
    let ops: Vec<_> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Operation(op) => Some(op),
            Definition::Fragment(_) => None,
        })
        .collect();
    match operation_name {
        Some(wanted) => ops
            .into_iter()
            .find(|op| operation_name_of(op) == Some(wanted))
            .ok_or_else(|| format!("Unknown operation named \"{wanted}\"")),
        None => match ops.as_slice() {
            [op] => Ok(op),
            [] => Err("The document contains no operation".into()),
            _ => Err("Must provide operation name if query contains multiple operations".into()),
        },
    }
}

fn operation_name_of<'d>(op: &OperationDefinition<'d, &'d str>) -> Option<&'d str> {
    match op {
        OperationDefinition::SelectionSet(_) => None,
        OperationDefinition::Query(q) => q.name,
        OperationDefinition::Mutation(m) => m.name,
        OperationDefinition::Subscription(s) => s.name,
    }
}

fn response_key<'d>(field: &ast::Field<'d, &'d str>) -> &'d str {
    field.alias.unwrap_or(field.name)
}

struct Compiler<'a, 'd> {
    doc: &'a Doc<'d>,
    variables: &'a Map<String, Value>,
    var_defs: &'a [ast::VariableDefinition<'d, &'d str>],
    depends_on_variables: bool,
    fields: usize,
    schema: Option<&'a SchemaInfo>,
}

impl<'a, 'd> Compiler<'a, 'd>
where
    'a: 'd,
{
    /// Flattens `set` into fields, inlining fragments and applying `@skip`/`@include`.
    fn expand(
        &mut self,
        set: &'d ast::SelectionSet<'d, &'d str>,
        condition: Option<&[String]>,
        out: &mut Vec<RawItem<'d>>,
        visiting: &mut Vec<&'d str>,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_SELECTION_DEPTH {
            return Err(format!(
                "The selection is nested deeper than {MAX_SELECTION_DEPTH} levels"
            ));
        }
        for selection in &set.items {
            match selection {
                Selection::Field(field) => {
                    if self.included(&field.directives)? {
                        out.push(RawItem {
                            condition: condition.map(<[String]>::to_vec),
                            field,
                        });
                    }
                }
                Selection::InlineFragment(frag) => {
                    if !self.included(&frag.directives)? {
                        continue;
                    }
                    let cond = self.narrow(condition, frag.type_condition.as_ref());
                    self.expand(
                        &frag.selection_set,
                        cond.as_deref(),
                        out,
                        visiting,
                        depth + 1,
                    )?;
                }
                Selection::FragmentSpread(spread) => {
                    if !self.included(&spread.directives)? {
                        continue;
                    }
                    let name = spread.fragment_name;
                    if visiting.contains(&name) {
                        return Err(format!("Cannot spread fragment \"{name}\" within itself"));
                    }
                    let frag = self
                        .doc
                        .definitions
                        .iter()
                        .find_map(|d| match d {
                            Definition::Fragment(f) if f.name == name => Some(f),
                            _ => None,
                        })
                        .ok_or_else(|| format!("Unknown fragment \"{name}\""))?;
                    let cond = self.narrow(condition, Some(&frag.type_condition));
                    visiting.push(name);
                    self.expand(
                        &frag.selection_set,
                        cond.as_deref(),
                        out,
                        visiting,
                        depth + 1,
                    )?;
                    visiting.pop();
                }
            }
        }
        Ok(())
    }

    /// Evaluates `@skip(if:)` and `@include(if:)`.
    fn included(&mut self, directives: &[Directive<'d, &'d str>]) -> Result<bool, String> {
        for d in directives {
            let keep_when = match d.name {
                "skip" => false,
                "include" => true,
                _ => continue,
            };
            let arg = d
                .arguments
                .iter()
                .find(|(name, _)| *name == "if")
                .map(|(_, v)| v)
                .ok_or_else(|| format!("Directive \"@{}\" requires the argument \"if\"", d.name))?;
            let value = match arg {
                ast::Value::Boolean(b) => *b,
                ast::Value::Variable(var) => {
                    self.depends_on_variables = true;
                    self.bool_variable(var)?
                }
                _ => {
                    return Err(format!(
                        "Argument \"if\" of \"@{}\" must be a Boolean",
                        d.name
                    ))
                }
            };
            if value != keep_when {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn bool_variable(&self, var: &str) -> Result<bool, String> {
        match self.variables.get(var) {
            Some(Value::Bool(b)) => return Ok(*b),
            Some(Value::Null) | None => {}
            Some(_) => return Err(format!("Variable \"${var}\" must be a Boolean")),
        }
        let default = self
            .var_defs
            .iter()
            .find(|def| def.name == var)
            .ok_or_else(|| format!("Variable \"${var}\" is not defined"))?
            .default_value
            .as_ref();
        match default {
            Some(ast::Value::Boolean(b)) => Ok(*b),
            _ => Err(format!(
                "Variable \"${var}\" of type Boolean! was not provided"
            )),
        }
    }

    /// Merges the items that share one response key into one `Field` of `parent_type`.
    fn merge_field(
        &mut self,
        items: &[RawItem<'d>],
        depth: usize,
        parent_type: Option<&str>,
    ) -> Result<Field, String> {
        self.fields += 1;
        if self.fields > MAX_PLAN_FIELDS {
            return Err(format!(
                "The selection is too large (over {MAX_PLAN_FIELDS} fields after expanding fragments)"
            ));
        }
        let first = items[0].field;
        let key = response_key(first);
        let info = match (self.schema, parent_type) {
            (Some(schema), Some(parent)) => schema.field(parent, first.name).map(|f| (schema, f)),
            _ => None,
        };
        let leaf = first.selection_set.items.is_empty();
        let (source, output) = match info {
            _ if first.name == "__typename" => (
                first.name.to_owned(),
                Output {
                    wrappers: Box::new([Wrapper::NonNull]),
                    leaf: Leaf::Typename,
                },
            ),
            Some((schema, f)) => (f.source.clone(), Output::from_type(&f.ty, schema)),
            None => (first.name.to_owned(), Output::untyped(!leaf)),
        };
        let child_type = info.map(|(_, f)| f.ty.named().to_owned());
        let selection = if leaf {
            None
        } else {
            let mut children = Vec::new();
            for item in items {
                // Conditions apply to the parent object, so children start unconditional.
                self.expand(
                    &item.field.selection_set,
                    None,
                    &mut children,
                    &mut Vec::new(),
                    depth,
                )?;
            }
            Some(self.selection_set(&children, depth + 1, child_type.as_deref())?)
        };
        Ok(Field {
            response_key: key.to_owned(),
            name: first.name.to_owned(),
            key_json: encode_key(key),
            source,
            coordinate: format!("{}.{}", parent_type.unwrap_or("?"), first.name),
            output,
            selection,
        })
    }

    /// The condition of a fragment nested in `outer`: both must hold. With a schema, a condition
    /// on an interface or union stands for its possible object types.
    fn narrow(
        &self,
        outer: Option<&[String]>,
        inner: Option<&TypeCondition<'d, &'d str>>,
    ) -> Option<Vec<String>> {
        let inner: Option<Vec<String>> = inner.map(|TypeCondition::On(t)| match self.schema {
            Some(schema) => schema.possible_types(t),
            None => vec![(*t).to_owned()],
        });
        match (outer, inner) {
            (None, None) => None,
            (Some(o), None) => Some(o.to_vec()),
            (None, Some(i)) => Some(i),
            (Some(o), Some(i)) => Some(o.iter().filter(|n| i.contains(n)).cloned().collect()),
        }
    }

    fn selection_set(
        &mut self,
        items: &[RawItem<'d>],
        depth: usize,
        parent_type: Option<&str>,
    ) -> Result<SelectionSet, String> {
        let mut type_names: Vec<String> = Vec::new();
        for item in items {
            for name in item.condition.iter().flatten() {
                if !type_names.contains(name) {
                    type_names.push(name.clone());
                }
            }
        }
        let fields = self.fields_matching(items, depth, parent_type, |c| c.is_none())?;
        if type_names.is_empty() {
            return Ok(SelectionSet {
                fields,
                ..SelectionSet::default()
            });
        }
        let mut by_type = Vec::with_capacity(type_names.len());
        for name in type_names {
            // Under a fragment the fields belong to the concrete type.
            let f = self.fields_matching(items, depth, Some(&name), |c| {
                c.is_none_or(|c| c.contains(&name))
            })?;
            by_type.push((name, f));
        }
        let unknown_type = Some(self.fields_matching(items, depth, parent_type, |_| true)?);
        Ok(SelectionSet {
            fields,
            by_type,
            unknown_type,
        })
    }

    fn fields_matching(
        &mut self,
        items: &[RawItem<'d>],
        depth: usize,
        parent_type: Option<&str>,
        applies: impl Fn(Option<&Vec<String>>) -> bool,
    ) -> Result<Vec<Field>, String> {
        let chosen: Vec<&RawItem<'d>> = items
            .iter()
            .filter(|i| applies(i.condition.as_ref()))
            .collect();
        let mut keys: Vec<&str> = Vec::new();
        for item in &chosen {
            let key = response_key(item.field);
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let mut fields = Vec::with_capacity(keys.len());
        for key in keys {
            let same: Vec<RawItem<'d>> = chosen
                .iter()
                .filter(|i| response_key(i.field) == key)
                .map(|i| (*i).clone())
                .collect();
            let conflicting = same.iter().any(|i| i.field.name != same[0].field.name);
            if conflicting {
                return Err(format!(
                    "Fields \"{key}\" conflict because they select different fields; use different aliases"
                ));
            }
            fields.push(self.merge_field(&same, depth, parent_type)?);
        }
        Ok(fields)
    }
}

fn encode_key(key: &str) -> Box<[u8]> {
    let mut out = Vec::with_capacity(key.len() + 3);
    write_json_str(&mut out, key);
    out.push(b':');
    out.into_boxed_slice()
}

/// Writes `s` as a JSON string literal.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's string escaping never fails when writing to a Vec.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(q: &str) -> ProjectionPlan {
        match compile(q, None, &Map::new(), None) {
            Ok(p) => p,
            Err(e) => panic!("compile failed: {e}"),
        }
    }

    fn keys(fields: &[Field]) -> Vec<&str> {
        fields.iter().map(|f| f.response_key.as_str()).collect()
    }

    #[test]
    fn root_field_and_children() {
        let p = plan("subscription { users { id name } }");
        assert_eq!(p.root.name, "users");
        let sel = p.root.selection.as_ref().map(|s| keys(&s.fields));
        assert_eq!(sel, Some(vec!["id", "name"]));
    }

    #[test]
    fn aliases_and_merging() {
        let p = plan("subscription { u: users { id } u: users { name id } }");
        assert_eq!(p.root.response_key, "u");
        let sel = p.root.selection.as_ref().map(|s| keys(&s.fields));
        assert_eq!(sel, Some(vec!["id", "name"]));
    }

    #[test]
    fn named_and_inline_fragments() {
        let p = plan(
            "subscription { node { ...F ... on Post { title } } } fragment F on User { id name }",
        );
        let sel = p.root.selection.as_ref().map(|s| {
            (
                keys(s.fields_for(Some("User"))),
                keys(s.fields_for(Some("Post"))),
                keys(s.fields_for(Some("Other"))),
                keys(s.fields_for(None)),
            )
        });
        assert_eq!(
            sel,
            Some((
                vec!["id", "name"],
                vec!["title"],
                vec![],
                vec!["id", "name", "title"]
            ))
        );
    }

    #[test]
    fn skip_and_include_with_variables() {
        let q = "subscription($x: Boolean!) { users { id @include(if: $x) name @skip(if: true) } }";
        let mut vars = Map::new();
        vars.insert("x".into(), Value::Bool(false));
        let p = compile(q, None, &vars, None).map_err(|e| e.to_string());
        let sel = p.as_ref().map(|p| {
            (
                p.depends_on_variables,
                p.root.selection.as_ref().map(|s| keys(&s.fields)),
            )
        });
        assert_eq!(sel, Ok((true, Some(vec![]))));
    }

    #[test]
    fn errors_are_clear() {
        let cases = [
            ("subscription { a b }", "exactly one top-level field"),
            ("query { a }", "got a query"),
            ("subscription { a { ...X } }", "Unknown fragment \"X\""),
            (
                "subscription { a { ...X } } fragment X on T { ...X }",
                "within itself",
            ),
            ("subscription {", "Syntax error"),
            (
                "subscription A { a } subscription B { b }",
                "operation name",
            ),
            ("subscription { a { x: b x: c } }", "conflict"),
            ("subscription { __typename }", "introspection"),
        ];
        for (q, want) in cases {
            match compile(q, None, &Map::new(), None) {
                Ok(_) => panic!("{q} compiled"),
                Err(e) => assert!(e.contains(want), "{q}: {e}"),
            }
        }
    }

    #[test]
    fn operation_name_selects() {
        let q = "subscription A { a } subscription B { b }";
        let p = compile(q, Some("B"), &Map::new(), None).map(|p| p.root.name);
        assert_eq!(p, Ok("b".to_owned()));
        assert!(compile(q, Some("C"), &Map::new(), None).is_err());
    }

    #[test]
    fn depth_is_bounded() {
        let mut q = String::from("subscription { a ");
        for _ in 0..100 {
            q.push_str("{ a ");
        }
        for _ in 0..101 {
            q.push('}');
        }
        assert!(compile(&q, None, &Map::new(), None).is_err());
    }
}
