//! Data forms, both ways; no event of their own.
//!
//! - Rendered: a form as `{title?, instructions?, fields:[...]}`, in the callback of
//!   `xmpp.muc.room.config.get` and `xmpp.muc.register.info`, and as a XEP-0128 entry of
//!   `xmpp.discover.info`.
//! - Requested: the submit forms of `xmpp.muc.room.config.set`, `xmpp.muc.register` and
//!   `xmpp.mam.query`.
//!
//! XEP-0004 (data forms), XEP-0068 (`FORM_TYPE`).

use super::common::{
    Obj, R, attr, child_text, el, invalid, kids, opt_array, opt_str, put, req, req_str, text,
};
use crate::xml::ns::DATA as NS_DATA;
use crate::xml::stanza::Stanza;
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Stanza → JSON

/// A data form: `{title?, instructions?, fields:[...]}`.
pub(super) fn data_form(st: &Stanza, x: usize) -> Value {
    let mut o = Obj::new();
    put(&mut o, "title", child_text(st, x, "title", NS_DATA));
    let instructions: Vec<_> = kids(st, x, "instructions", NS_DATA)
        .map(|i| st.text(i))
        .collect();
    if !instructions.is_empty() {
        o.insert("instructions".into(), instructions.join("\n").into());
    }
    let fields: Vec<Value> = kids(st, x, "field", NS_DATA)
        .filter_map(|f| form_field(st, f))
        .collect();
    o.insert("fields".into(), fields.into());
    Value::Object(o)
}

/// One form field: `{var, type?, label?, required, value?, options?}`; `None` without a
/// var (fixed text has nothing to submit).
fn form_field(st: &Stanza, f: usize) -> Option<Value> {
    let mut o = Obj::new();
    o.insert("var".into(), attr(st, f, "var")?.into());
    let ty = attr(st, f, "type");
    let multi = matches!(
        ty.as_deref(),
        Some("list-multi" | "jid-multi" | "text-multi")
    );
    put(&mut o, "type", ty);
    put(&mut o, "label", attr(st, f, "label"));
    let required = st.child(f, "required", NS_DATA).is_some();
    o.insert("required".into(), required.into());
    let mut values = kids(st, f, "value", NS_DATA).map(|v| Value::from(st.text(v)));
    if multi {
        o.insert("value".into(), values.collect::<Vec<_>>().into());
    } else {
        put(&mut o, "value", values.next());
    }
    let options: Vec<Value> = kids(st, f, "option", NS_DATA)
        .filter_map(|opt| {
            let mut o = Obj::new();
            put(&mut o, "label", attr(st, opt, "label"));
            o.insert(
                "value".into(),
                child_text(st, opt, "value", NS_DATA)?.into(),
            );
            Some(Value::Object(o))
        })
        .collect();
    if !options.is_empty() {
        o.insert("options".into(), options.into());
    }
    Some(Value::Object(o))
}

// ---------------------------------------------------------------------------------------
// JSON → stanza

/// A submit form: hidden `FORM_TYPE`, then `(var, type, values)` fields.
pub(super) fn submit_form(form_type: &str, fields: &[Field]) -> String {
    let mut inner = el(
        "field",
        &[("var", Some("FORM_TYPE")), ("type", Some("hidden"))],
        &text("value", form_type),
    );
    for (var, ty, values) in fields {
        let vals: String = values.iter().map(|v| text("value", v)).collect();
        inner += &el(
            "field",
            &[("var", Some(var)), ("type", ty.as_deref())],
            &vals,
        );
    }
    el(
        "x",
        &[("xmlns", Some(NS_DATA)), ("type", Some("submit"))],
        &inner,
    )
}

/// One field to submit: `(var, type, values)`.
pub(super) type Field = (String, Option<String>, Vec<String>);

/// The `form` of a payload: `[{var, type?, value?}...]`, as fields to submit.
pub(super) fn submitted_fields(m: &Obj) -> R<Vec<Field>> {
    let mut fields = vec![];
    for f in req(opt_array(m, "form")?, "form")? {
        let Some(f) = f.as_object() else {
            return invalid("form");
        };
        let var = req_str(f, "var")?;
        fields.push((var, opt_str(f, "type")?, field_values(f.get("value"))?));
    }
    Ok(fields)
}

/// The values of a form field: a string, number, bool (`1`/`0`) or an array of those.
pub(super) fn field_values(v: Option<&Value>) -> R<Vec<String>> {
    fn one(v: &Value) -> R<String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(if *b { "1" } else { "0" }.into()),
            _ => invalid("value"),
        }
    }
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a.iter().map(one).collect(),
        Some(v) => one(v).map(|s| vec![s]),
    }
}
