//! Messages: the sync's templates, compiled once per run, rendered per row (or per digest)
//! into Slack's `{"text", "blocks"}` body.

use indexmap::IndexMap;
use serde_json::{json, Value as Json};

use super::config::SlackTarget;
use crate::destinations::{parse_settings, RowOp, Target};
use crate::template::{context, row_context, Templates};

/// What a per-row template can use besides the row's fields.
const ROW_EXTRAS: [&str; 2] = ["_sync", "_op"];
/// What a digest template can use.
const DIGEST_NAMES: [&str; 5] = ["sync", "run_id", "count", "rows", "more"];

const DEFAULT_DIGEST: &str = "*{{ sync }}*: {{ count }} new or changed row(s)\
{% for row in rows %}\n• {% for name, value in row | items %}{{ name }}: {{ value }}{% if not loop.last %}, {% endif %}{% endfor %}{% endfor %}\
{% if more %}\n… and {{ more }} more{% endif %}";

/// Slack's limits on a message (Block Kit reference; chat.postMessage for `text`): past them
/// Slack refuses the message (`invalid_blocks`) or cuts its text silently.
const MAX_BLOCKS: usize = 50;
const MAX_TEXT: usize = 40_000;
const MAX_SECTION_TEXT: usize = 3_000;
const MAX_HEADER_TEXT: usize = 150;
const MAX_FIELDS: usize = 10;
const MAX_FIELD_TEXT: usize = 2_000;

/// A rendered message: its body, and what had to be cut to fit Slack's limits (for a warning).
pub struct Rendered {
    pub body: Vec<u8>,
    pub cut: Vec<String>,
}

/// A sync's compiled message.
pub struct Message {
    templates: Templates,
    has_text: bool,
    /// The blocks with each string replaced by the name of its template.
    blocks: Option<Json>,
    pub digest: bool,
    pub digest_rows: usize,
}

impl Message {
    /// Reads and compiles the sync's `[target]`; the error names the setting at fault.
    pub fn compile(target: &Target) -> Result<Message, String> {
        let settings: SlackTarget = parse_settings(&target.settings).map_err(|e| format!("[target]: {e}"))?;
        let mut known: Vec<&str> = if settings.digest { DIGEST_NAMES.to_vec() } else { target.fields.iter().map(String::as_str).collect() };
        if !settings.digest {
            known.extend(ROW_EXTRAS);
        }
        // Values are escaped: a row's data never turns into a mention, a link or markup.
        let mut templates = Templates::slack();
        let text = match (&settings.text, settings.digest, &settings.blocks) {
            (Some(text), _, _) => Some(text.as_str()),
            (None, true, None) => Some(DEFAULT_DIGEST),
            (None, false, None) => {
                return Err("[target] needs `text`, a template over the row's fields (e.g. text = \"{{ name }} churn risk {{ score }}\"), \
                            or `blocks`, or digest = true"
                    .into())
            }
            (None, _, Some(_)) => None,
        };
        if let Some(text) = text {
            templates.add("text", text, &known).map_err(|e| format!("[target] text: {e}"))?;
        }
        let blocks = match &settings.blocks {
            None => None,
            Some(raw) => {
                let parsed: Json = match raw {
                    toml::Value::String(s) => serde_json::from_str(s)
                        .map_err(|e| format!("[target] blocks: not valid JSON ({e}); put templates only inside JSON strings"))?,
                    other => serde_json::to_value(other).map_err(|e| format!("[target] blocks: {e}"))?,
                };
                if !parsed.as_array().is_some_and(|a| a.iter().all(Json::is_object)) {
                    return Err("[target] blocks: must be an array of Block Kit blocks (tables or JSON objects)".into());
                }
                let n = parsed.as_array().map_or(0, Vec::len);
                if n > MAX_BLOCKS {
                    return Err(format!("[target] blocks: {n} blocks; a Slack message holds at most {MAX_BLOCKS}"));
                }
                let mut n = 0;
                Some(compile_strings(parsed, &mut templates, &known, &mut n)?)
            }
        };
        Ok(Message { templates, has_text: text.is_some(), blocks, digest: settings.digest, digest_rows: settings.digest_rows })
    }

    /// The body for one row's message, cut to Slack's limits where it must be.
    pub fn row(&self, target: &Target, op: &RowOp) -> Result<Rendered, String> {
        let mut ctx = row_context(&target.fields, &op.fields);
        ctx.insert("_sync".into(), json!(target.sync));
        ctx.insert("_op".into(), json!(op.op.as_str()));
        let mut body = self.body(&context(&ctx), &target.sync)?;
        let cut = fit(&mut body);
        Ok(Rendered { body: Json::Object(body).to_string().into_bytes(), cut })
    }

    /// The body for one digest message over `batch`: the first `digest_rows` rows, or as many
    /// of them as Slack's limits let the message hold (the rest counted in `more`).
    pub fn digest(&self, target: &Target, batch: &[RowOp]) -> Result<Rendered, String> {
        let wanted = batch.len().min(self.digest_rows);
        let render = |shown: usize| self.digest_of(target, batch, shown);
        let mut body = render(wanted)?;
        let mut cut = Vec::new();
        if !fits(&body) {
            // The most rows that fit: fewer rows, never a cut row.
            let (mut low, mut high) = (0, wanted);
            while low < high {
                let mid = (low + high).div_ceil(2);
                if fits(&render(mid)?) {
                    low = mid;
                } else {
                    high = mid - 1;
                }
            }
            body = render(low)?;
            cut.push(format!("the digest lists {low} of the {} rows it would have shown: a Slack message holds no more", wanted));
            cut.extend(fit(&mut body));
        }
        Ok(Rendered { body: Json::Object(body).to_string().into_bytes(), cut })
    }

    fn digest_of(&self, target: &Target, batch: &[RowOp], shown: usize) -> Result<serde_json::Map<String, Json>, String> {
        #[derive(serde::Serialize)]
        struct Digest<'a> {
            sync: &'a str,
            run_id: &'a str,
            count: usize,
            rows: Vec<IndexMap<String, Json>>,
            more: usize,
        }
        let rows = batch[..shown].iter().map(|op| row_context(&target.fields, &op.fields)).collect();
        let ctx = Digest { sync: &target.sync, run_id: &target.run_id, count: batch.len(), rows, more: batch.len() - shown };
        self.body(&context(&ctx), &target.sync)
    }

    fn body(&self, ctx: &minijinja::Value, sync: &str) -> Result<serde_json::Map<String, Json>, String> {
        let mut body = serde_json::Map::new();
        let text = if self.has_text { self.templates.render("text", ctx)? } else { format!("{sync}: a row changed") };
        body.insert("text".into(), Json::String(text));
        if let Some(blocks) = &self.blocks {
            body.insert("blocks".into(), render_strings(blocks, &self.templates, ctx)?);
        }
        Ok(body)
    }
}

/// Whether a message is within Slack's limits as it is.
fn fits(body: &serde_json::Map<String, Json>) -> bool {
    fit(&mut body.clone()).is_empty()
}

/// Cuts what a message has past Slack's limits: its text, a section's or a header's text, a
/// section's fields. Says what was cut.
fn fit(body: &mut serde_json::Map<String, Json>) -> Vec<String> {
    let mut cut = Vec::new();
    if let Some(Json::String(text)) = body.get_mut("text") {
        if shorten(text, MAX_TEXT) {
            cut.push(format!("the message text was cut to Slack's {MAX_TEXT} characters"));
        }
    }
    for (i, block) in body.get_mut("blocks").and_then(Json::as_array_mut).into_iter().flatten().enumerate() {
        let kind = block["type"].as_str().unwrap_or_default().to_string();
        let limit = match kind.as_str() {
            "section" => MAX_SECTION_TEXT,
            "header" => MAX_HEADER_TEXT,
            _ => continue,
        };
        if let Some(Json::String(text)) = block.get_mut("text").and_then(|t| t.get_mut("text")) {
            if shorten(text, limit) {
                cut.push(format!("block {} ({kind}) text was cut to Slack's {limit} characters", i + 1));
            }
        }
        if let Some(fields) = block.get_mut("fields").and_then(Json::as_array_mut) {
            if fields.len() > MAX_FIELDS {
                fields.truncate(MAX_FIELDS);
                cut.push(format!("block {} kept Slack's {MAX_FIELDS} fields at most", i + 1));
            }
            for field in fields.iter_mut() {
                if let Some(Json::String(text)) = field.get_mut("text") {
                    if shorten(text, MAX_FIELD_TEXT) {
                        cut.push(format!("a field of block {} was cut to Slack's {MAX_FIELD_TEXT} characters", i + 1));
                    }
                }
            }
        }
    }
    cut
}

/// Cuts `text` to `max` characters ending in `…`, not inside an escape (`&amp;`); whether it did.
fn shorten(text: &mut String, max: usize) -> bool {
    if text.chars().count() <= max {
        return false;
    }
    let mut kept: String = text.chars().take(max - 1).collect();
    if let Some(amp) = kept.rfind('&') {
        if !kept[amp..].contains(';') {
            kept.truncate(amp);
        }
    }
    kept.push('…');
    *text = kept;
    true
}

/// Compiles every string in `value` as a template, replacing it by the template's name.
fn compile_strings(value: Json, templates: &mut Templates, known: &[&str], n: &mut usize) -> Result<Json, String> {
    Ok(match value {
        Json::String(source) => {
            let name = format!("blocks#{n}");
            *n += 1;
            templates.add(&name, &source, known).map_err(|e| format!("[target] blocks, in \"{source}\": {e}"))?;
            Json::String(name)
        }
        Json::Array(items) => Json::Array(items.into_iter().map(|v| compile_strings(v, templates, known, n)).collect::<Result<_, _>>()?),
        Json::Object(map) => {
            Json::Object(map.into_iter().map(|(k, v)| Ok((k, compile_strings(v, templates, known, n)?))).collect::<Result<_, String>>()?)
        }
        other => other,
    })
}

/// The blocks with each template rendered: values land inside JSON strings, so quotes or
/// newlines in a value can never break the JSON.
fn render_strings(value: &Json, templates: &Templates, ctx: &minijinja::Value) -> Result<Json, String> {
    Ok(match value {
        Json::String(name) => Json::String(templates.render(name, ctx)?),
        Json::Array(items) => Json::Array(items.iter().map(|v| render_strings(v, templates, ctx)).collect::<Result<_, _>>()?),
        Json::Object(map) => {
            Json::Object(map.iter().map(|(k, v)| Ok((k.clone(), render_strings(v, templates, ctx)?))).collect::<Result<_, String>>()?)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destinations::Op;
    use crate::project::Mode;
    use crate::value::{Value, ValueType};

    fn target(settings: &str) -> Target {
        Target {
            sync: "churn".into(),
            run_id: "r1".into(),
            mode: Mode::Upsert,
            settings: toml::from_str(settings).unwrap(),
            key_columns: vec!["id".into()],
            fields: vec!["id".into(), "name".into(), "score".into()],
            key_fields: vec![Some(0)],
            key_types: vec![ValueType::Int],
            field_types: vec![ValueType::Int, ValueType::Text, ValueType::Float],
            skip_nulls: false,
            if_empty: vec![false; 3],
        }
    }

    fn op(id: i64, name: &str) -> RowOp {
        RowOp {
            op: Op::Upsert,
            key: vec![Value::Int(id)],
            fields: vec![Value::Int(id), Value::Text(name.into()), Value::Float(0.9)],
            destination_id: None,
        }
    }

    #[test]
    fn blocks_render_values_inside_json_strings() {
        let t = target("text = \"{{ name }} at {{ score }}\"\nblocks = '[{\"type\": \"section\", \"text\": {\"type\": \"mrkdwn\", \"text\": \"*{{ name }}* ({{ _op }})\"}}]'");
        let m = Message::compile(&t).unwrap();
        let body: Json = serde_json::from_slice(&m.row(&t, &op(1, "Ann \"the\" Co\n")).unwrap().body).unwrap();
        assert_eq!(body["text"], "Ann \"the\" Co\n at 0.9");
        assert_eq!(body["blocks"][0]["text"]["text"], "*Ann \"the\" Co\n* (upsert)");
    }

    #[test]
    fn the_default_digest_lists_the_first_rows_and_counts_the_rest() {
        let t = target("digest = true\ndigest_rows = 2");
        let m = Message::compile(&t).unwrap();
        let body: Json = serde_json::from_slice(&m.digest(&t, &[op(1, "a"), op(2, "b"), op(3, "c")]).unwrap().body).unwrap();
        assert_eq!(
            body["text"],
            "*churn*: 3 new or changed row(s)\n• id: 1, name: a, score: 0.9\n• id: 2, name: b, score: 0.9\n… and 1 more"
        );
    }

    #[test]
    fn bad_targets_are_refused_with_the_setting_named() {
        let e = Message::compile(&target("")).err().unwrap();
        assert!(e.contains("needs `text`"), "{e}");
        let e = Message::compile(&target("text = \"{{ nme }}\"")).err().unwrap();
        assert!(e.contains("[target] text") && e.contains("did you mean `name`?"), "{e}");
        let e = Message::compile(&target("blocks = '[{\"type\": {{ name }}}]'")).err().unwrap();
        assert!(e.contains("not valid JSON"), "{e}");
    }
}
