//! "This week's question": adding, changing, moving and removing the question
//! and message nodes of a campaign file from the web app, as edits of the file
//! a broadcaster could have made by hand (`toml_edit`: every other line, and
//! the comments above and beside the node, stay as they were).
//!
//! A node is placed in the flow with `after`: the node named there leads to it
//! (its `next`, and its `on_fail` where that named the same node), and it leads
//! where that node led. Moving a node takes it out of the flow first: what led
//! to it leads where it led. Removing a node does the same, so removing a
//! question from a chain of questions keeps the chain. The file order follows
//! the flow order (the order results show questions in). Whatever the change
//! gives is then judged by the loader of `kuma check` (a dangling `next`, a
//! duplicate key, an unknown node…), never here, so the words are the same.

use serde::{Deserialize, Serialize};
use toml_edit::{Array, DocumentMut, Item, Table, Value};

use super::edit::{FieldError, set};

/// The body of `PUT /api/campaigns/{id}/nodes/{node}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEdit {
    /// `question` or `message`.
    pub kind: String,
    /// One prompt name, or several played in order.
    pub prompt: Prompts,
    /// A question's choices, in the order analysts see them.
    #[serde(default)]
    pub choices: Vec<ChoiceEdit>,
    /// Where the flow goes next; with `after` and without `next`, where the
    /// node named by `after` led.
    #[serde(default)]
    pub next: Option<String>,
    /// A question's node when nobody answers (`null`: carry on at `next`).
    #[serde(default)]
    pub on_fail: Option<String>,
    /// Place the node in the flow (and the file) right after this node.
    #[serde(default)]
    pub after: Option<String>,
}

/// One prompt name or several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Prompts {
    One(String),
    Several(Vec<String>),
}

impl Prompts {
    fn value(&self) -> Value {
        match self {
            Prompts::One(p) => Value::from(p.trim()),
            Prompts::Several(ps) if ps.len() == 1 => {
                Value::from(ps.first().map_or("", |p| p.trim()))
            }
            Prompts::Several(ps) => Value::Array(ps.iter().map(|p| p.trim()).collect::<Array>()),
        }
    }
}

/// A key of the keypad and the choice id it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChoiceEdit {
    pub key: String,
    pub id: String,
}

fn field_error(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// A node id a broadcaster may give a new node.
pub fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse(text: &str) -> Result<DocumentMut, FieldError> {
    text.parse()
        .map_err(|e: toml_edit::TomlError| field_error("source", e.message().to_string()))
}

fn nodes_mut(doc: &mut DocumentMut) -> Result<&mut toml_edit::ArrayOfTables, FieldError> {
    doc.get_mut("node")
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(|| field_error("source", "the file has no `[[node]]` list"))
}

fn id_of(t: &Table) -> Option<&str> {
    t.get("id").and_then(Item::as_str)
}

fn index_of(nodes: &toml_edit::ArrayOfTables, id: &str) -> Option<usize> {
    nodes.iter().position(|t| id_of(t) == Some(id))
}

/// Every reference to node `from` (`start`, the schedule's `closed`, each
/// node's `next`, `on_fail` and menu `options`) made to name `to` instead.
fn redirect(doc: &mut DocumentMut, from: &str, to: &str) {
    let retarget = |v: &mut Value| {
        if v.as_str() == Some(from) {
            let decor = v.decor().clone();
            *v = Value::from(to);
            *v.decor_mut() = decor;
        }
    };
    if let Some(Item::Value(v)) = doc.get_mut("start") {
        retarget(v);
    }
    if let Some(Item::Value(v)) = doc
        .get_mut("schedule")
        .and_then(Item::as_table_like_mut)
        .and_then(|s| s.get_mut("closed"))
    {
        retarget(v);
    }
    let Some(nodes) = doc.get_mut("node").and_then(Item::as_array_of_tables_mut) else {
        return;
    };
    for t in nodes.iter_mut() {
        for key in ["next", "on_fail"] {
            if let Some(Item::Value(v)) = t.get_mut(key) {
                retarget(v);
            }
        }
        if let Some(options) = t.get_mut("options").and_then(Item::as_table_like_mut) {
            for (_, item) in options.iter_mut() {
                if let Item::Value(v) = item {
                    retarget(v);
                }
            }
        }
    }
}

/// The `next` of node `id`, as written.
fn next_of(doc: &DocumentMut, id: &str) -> Option<String> {
    let nodes = doc.get("node").and_then(Item::as_array_of_tables)?;
    let t = nodes.iter().find(|t| id_of(t) == Some(id))?;
    t.get("next").and_then(Item::as_str).map(str::to_string)
}

/// The choices as an inline table, `{ "1" = "yes", "2" = "no" }`. Two choices
/// on one key cannot be one TOML table: they are written as typed and left to
/// the loader, which names the duplicate key and its line.
fn choices_value(choices: &[ChoiceEdit]) -> Result<Value, String> {
    let quoted = |s: &str| Value::from(s.trim()).to_string();
    let text = format!(
        "{{ {} }}",
        choices
            .iter()
            .map(|c| format!("{} = {}", quoted(&c.key), quoted(&c.id)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    match text.parse::<Value>() {
        Ok(Value::InlineTable(t)) => Ok(Value::InlineTable(t)),
        _ => Err(text),
    }
}

/// A mark no campaign contains, replaced by raw text after rendering.
const RAW: &str = "__kuma_raw_choices__";

/// The text of the file with node `id` set to `edit` (added when it is new),
/// and what changed in a few words for the history.
pub fn set_node(text: &str, id: &str, edit: &NodeEdit) -> Result<(String, String), FieldError> {
    let kind = edit.kind.trim();
    if !matches!(kind, "question" | "message") {
        return Err(field_error(
            "kind",
            format!(
                "`{kind}`: only question and message nodes are edited here (the others in the source)"
            ),
        ));
    }
    if kind == "question" && edit.choices.is_empty() {
        return Err(field_error(
            "choices",
            "a question needs choices: a key of the keypad and a choice id each",
        ));
    }
    let mut doc = parse(text)?;
    let nodes = nodes_mut(&mut doc)?;
    let existing = index_of(nodes, id);
    let mut what = Vec::new();
    let old_next = match existing {
        Some(i) => {
            let t = nodes
                .get(i)
                .ok_or_else(|| field_error("id", "no such node"))?;
            let old_kind = t.get("kind").and_then(Item::as_str).unwrap_or("");
            if !matches!(old_kind, "question" | "message") {
                return Err(field_error(
                    "kind",
                    format!(
                        "node `{id}` is a {old_kind} node: only question and message nodes are edited here (the others in the source)"
                    ),
                ));
            }
            t.get("next").and_then(Item::as_str).map(str::to_string)
        }
        None => {
            if !valid_node_id(id) {
                return Err(field_error(
                    "id",
                    format!("`{id}` is not a node id: use letters, digits, `-` and `_` only"),
                ));
            }
            None
        }
    };
    // Into the flow after another node: what that node led to.
    let mut spliced = None;
    if let Some(after) = edit.after.as_deref().map(str::trim) {
        if after == id {
            return Err(field_error("after", "a node cannot come after itself"));
        }
        let Some(after_next) = next_of(&doc, after) else {
            return Err(field_error(
                "after",
                format!("no node `{after}` with a `next` to come after"),
            ));
        };
        if after_next != id {
            if existing.is_some() {
                // Out of its old place first: what led to it leads where it led.
                if let Some(n) = &old_next {
                    redirect(&mut doc, id, n);
                }
            }
            let after_next = next_of(&doc, after).unwrap_or(after_next);
            let nodes = nodes_mut(&mut doc)?;
            if let Some(x) = index_of(nodes, after).and_then(|i| nodes.get_mut(i)) {
                let fail_too = x.get("on_fail").and_then(Item::as_str) == Some(&after_next);
                set(x, "next", Value::from(id));
                if fail_too {
                    set(x, "on_fail", Value::from(id));
                }
            }
            spliced = Some(after_next);
            what.push(format!(
                "{} after {after}",
                if existing.is_some() {
                    "moved"
                } else {
                    "placed"
                }
            ));
        }
    }
    let next = edit
        .next
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .or_else(|| spliced.clone())
        .or_else(|| old_next.clone())
        .ok_or_else(|| field_error("next", "missing: the node the flow goes to next"))?;
    // A node moved without a new `next` takes its `on_fail` along when it
    // named its old `next` (the usual "no answer: carry on").
    let on_fail = match edit.on_fail.as_deref().map(str::trim) {
        Some("") | None => None,
        Some(f) if edit.next.is_none() && old_next.as_deref() == Some(f) => Some(next.clone()),
        Some(f) => Some(f.to_string()),
    };
    let (choices, raw) = if kind == "question" {
        match choices_value(&edit.choices) {
            Ok(v) => (Some(v), None),
            Err(raw) => (Some(Value::from(RAW)), Some(raw)),
        }
    } else {
        (None, None)
    };

    let nodes = nodes_mut(&mut doc)?;
    let mut table = match existing.and_then(|i| index_of(nodes, id).map(|j| (i, j))) {
        Some((_, j)) if spliced.is_some() => nodes.remove(j),
        Some((_, j)) => nodes.get(j).cloned().unwrap_or_default(),
        None => {
            let mut t = Table::new();
            t.decor_mut().set_prefix("\n");
            t.insert("id", Item::Value(Value::from(id)));
            t
        }
    };
    // What changed besides the links a move rewires.
    let plain = |t: &Table| {
        let mut t = t.clone();
        if spliced.is_some() {
            t.remove("next");
            t.remove("on_fail");
        }
        t.to_string()
    };
    let before = plain(&table);
    set(&mut table, "kind", Value::from(kind));
    set(&mut table, "prompt", edit.prompt.value());
    match choices {
        Some(v) => set(&mut table, "choices", v),
        None => {
            table.remove("choices");
            table.remove("subscribe");
        }
    }
    set(&mut table, "next", Value::from(next.as_str()));
    match (&on_fail, kind) {
        (Some(f), "question") => set(&mut table, "on_fail", Value::from(f.as_str())),
        _ => {
            table.remove("on_fail");
        }
    }
    if existing.is_none() {
        what.insert(0, "added".into());
    } else if plain(&table) != before {
        what.insert(0, "changed".into());
    }
    match (existing, &spliced, edit.after.as_deref()) {
        // A new or moved node goes right after `after` in the file too.
        (_, Some(_), Some(after)) | (None, None, Some(after)) => {
            let at = index_of(nodes, after.trim()).map_or(nodes.len(), |i| i + 1);
            table.set_position(None);
            nodes.insert(at, table);
        }
        (None, _, None) => {
            table.set_position(None);
            nodes.push(table);
        }
        (Some(_), _, _) => {
            if let Some(j) = index_of(nodes, id) {
                nodes.replace(j, table);
            }
        }
    }
    let mut out = doc.to_string();
    if let Some(raw) = raw {
        out = out.replacen(&Value::from(RAW).to_string(), &raw, 1);
    }
    Ok((out, format!("node {id}: {}", what.join(", "))))
}

/// The text of the file without node `id`: what led to it leads where it led.
pub fn remove_node(text: &str, id: &str) -> Result<(String, String), FieldError> {
    let mut doc = parse(text)?;
    let nodes = nodes_mut(&mut doc)?;
    let Some(i) = index_of(nodes, id) else {
        return Err(field_error("id", format!("no node `{id}`")));
    };
    let t = nodes
        .get(i)
        .ok_or_else(|| field_error("id", "no such node"))?;
    let kind = t.get("kind").and_then(Item::as_str).unwrap_or("");
    if !matches!(kind, "question" | "message") {
        return Err(field_error(
            "kind",
            format!(
                "node `{id}` is a {kind} node: only question and message nodes are removed here (the others in the source)"
            ),
        ));
    }
    let next = t.get("next").and_then(Item::as_str).map(str::to_string);
    nodes.remove(i);
    let mut what = format!("node {id}: removed");
    if let Some(n) = next {
        redirect(&mut doc, id, &n);
        what.push_str(&format!(" (what led to it leads to {n})"));
    }
    Ok((doc.to_string(), what))
}

/// Which field of the node editor a loader message about line `line` of
/// `text` points at (`next`, `choices`, `prompt`…): the key of a node written
/// on that line.
pub fn node_field_at(text: &str, line: usize) -> Option<String> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let line_of = |offset: usize| {
        text.as_bytes()
            .get(..offset)
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count() + 1)
    };
    let DeValue::Array(nodes) = doc.get_ref().get("node")?.get_ref() else {
        return None;
    };
    for node in nodes {
        let DeValue::Table(t) = node.get_ref() else {
            continue;
        };
        for (key, v) in t.iter() {
            if line_of(key.span().start) <= line && line <= line_of(v.span().end) {
                return Some(key.get_ref().to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# Header comment.
title = "T"
languages = ["fr"]
audio = "audio"

[[node]]
id = "poll"
kind = "message"
prompt = "poll_intro"
next = "q1"

# First question.
[[node]]
id = "q1"
kind = "question"
prompt = "q1" # asked first
choices = { "1" = "yes", "2" = "no" }
next = "q2"
on_fail = "q2"

[[node]]
id = "q2"
kind = "question"
prompt = "q2"
choices = { "1" = "yes", "2" = "no" }
next = "bye"
on_fail = "bye"

# The end.
[[node]]
id = "bye"
kind = "hangup"
prompt = "goodbye"
"#;

    fn question(prompt: &str, keys: &[(&str, &str)]) -> NodeEdit {
        NodeEdit {
            kind: "question".into(),
            prompt: Prompts::One(prompt.into()),
            choices: keys
                .iter()
                .map(|(k, id)| ChoiceEdit {
                    key: k.to_string(),
                    id: id.to_string(),
                })
                .collect(),
            next: None,
            on_fail: None,
            after: None,
        }
    }

    fn order(text: &str) -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("id = \""))
            .map(|l| l.split('"').next().unwrap().to_string())
            .collect()
    }

    fn comments(text: &str) -> Vec<&str> {
        text.lines().filter(|l| l.contains('#')).collect()
    }

    #[test]
    fn a_new_question_goes_into_the_flow_after_another() {
        let mut q = question("q_week", &[("1", "yes"), ("2", "no"), ("3", "not_sure")]);
        q.after = Some("q2".into());
        q.on_fail = Some("bye".into());
        let (out, what) = set_node(FILE, "q_week", &q).unwrap();
        assert_eq!(what, "node q_week: added, placed after q2");
        assert_eq!(order(&out), ["poll", "q1", "q2", "q_week", "bye"]);
        assert!(out.contains(
            "id = \"q2\"\nkind = \"question\"\nprompt = \"q2\"\nchoices = { \"1\" = \"yes\", \"2\" = \"no\" }\nnext = \"q_week\"\non_fail = \"q_week\"\n"
        ), "{out}");
        assert!(out.contains("\n[[node]]\nid = \"q_week\"\nkind = \"question\"\nprompt = \"q_week\"\nchoices = { \"1\" = \"yes\", \"2\" = \"no\", \"3\" = \"not_sure\" }\nnext = \"bye\"\non_fail = \"bye\"\n\n# The end.\n"), "{out}");
        assert_eq!(comments(&out), comments(FILE));
    }

    #[test]
    fn a_change_keeps_the_comments_and_touches_only_its_lines() {
        let mut q = question("q1", &[("1", "yes"), ("2", "no"), ("9", "maybe")]);
        q.next = Some("q2".into());
        q.on_fail = Some("q2".into());
        let (out, what) = set_node(FILE, "q1", &q).unwrap();
        assert_eq!(what, "node q1: changed");
        assert_eq!(
            out,
            FILE.replacen(
                "choices = { \"1\" = \"yes\", \"2\" = \"no\" }",
                "choices = { \"1\" = \"yes\", \"2\" = \"no\", \"9\" = \"maybe\" }",
                1
            )
        );
        // The same again: nothing changes.
        let (again, _) = set_node(&out, "q1", &q).unwrap();
        assert_eq!(again, out);
    }

    #[test]
    fn moving_a_question_rewires_the_chain_and_the_file_order() {
        // q2 before q1: after `poll`, keeping its "no answer: carry on".
        let mut q = question("q2", &[("1", "yes"), ("2", "no")]);
        q.after = Some("poll".into());
        q.on_fail = Some("bye".into());
        let (out, what) = set_node(FILE, "q2", &q).unwrap();
        assert_eq!(what, "node q2: moved after poll");
        assert_eq!(order(&out), ["poll", "q2", "q1", "bye"]);
        let node = |id: &str| {
            let start = out.find(&format!("id = \"{id}\"")).unwrap();
            out[start..].split("[[node]]").next().unwrap().to_string()
        };
        assert!(node("poll").contains("next = \"q2\""));
        assert!(
            node("q2").contains("next = \"q1\"\non_fail = \"q1\""),
            "{out}"
        );
        assert!(
            node("q1").contains("next = \"bye\"\non_fail = \"bye\""),
            "{out}"
        );
        // The comment above q1 and beside its prompt stay with q1.
        assert_eq!(comments(&out), comments(FILE));
        assert!(node("q1").contains("prompt = \"q1\" # asked first"));
    }

    #[test]
    fn removing_a_question_keeps_the_chain() {
        let (out, what) = remove_node(FILE, "q1").unwrap();
        assert_eq!(what, "node q1: removed (what led to it leads to q2)");
        assert_eq!(order(&out), ["poll", "q2", "bye"]);
        assert!(out.contains("next = \"q2\"\n"));
        assert!(!out.contains("First question"));
        assert!(remove_node(FILE, "bye").is_err());
        assert!(remove_node(FILE, "nope").is_err());
    }

    #[test]
    fn mistakes_are_left_to_the_loader_with_its_words() {
        // A duplicate key is written as typed: the loader names it.
        let mut q = question("q1", &[("1", "yes"), ("1", "no")]);
        q.next = Some("q2".into());
        let (out, _) = set_node(FILE, "q1", &q).unwrap();
        assert!(
            out.contains("choices = { \"1\" = \"yes\", \"1\" = \"no\" }"),
            "{out}"
        );
        let err =
            crate::campaign::load_campaign_text(std::path::Path::new("c.toml"), &out).unwrap_err();
        assert!(err[0].message.contains("duplicate key"), "{err:?}");
        assert_eq!(err[0].line, 17, "{err:?}");
        // A dangling `next` is pointed at in the editor.
        q.choices.pop();
        q.next = Some("nowhere".into());
        let (out, _) = set_node(FILE, "q1", &q).unwrap();
        let err =
            crate::campaign::load_campaign_text(std::path::Path::new("c.toml"), &out).unwrap_err();
        assert!(err[0].message.contains("`nowhere`"), "{err:?}");
        assert_eq!(node_field_at(&out, err[0].line).as_deref(), Some("next"));
        assert_eq!(node_field_at(&out, 17).as_deref(), Some("choices"));
        assert_eq!(node_field_at(&out, 1), None);
        // Other kinds are not edited here; ids must be plain.
        let menu = question("x", &[("1", "a")]);
        assert_eq!(set_node(FILE, "bye", &menu).unwrap_err().field, "kind");
        assert_eq!(set_node(FILE, "a b", &menu).unwrap_err().field, "id");
        let mut bad_after = menu.clone();
        bad_after.after = Some("nope".into());
        assert_eq!(set_node(FILE, "x", &bad_after).unwrap_err().field, "after");
    }
}
