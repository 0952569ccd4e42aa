//! Message templates (minijinja, Jinja syntax) over a row's fields: Slack messages and alert
//! texts, and computed mapping fields. Templates are compiled once, when a sync's target is
//! read, and checked against the names they may use, so a typo fails `sluice check` instead of
//! the first message. Slack's templates escape the values they print ([`Templates::slack`]).

use std::collections::BTreeSet;

use indexmap::IndexMap;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use crate::value::Value;

/// A set of named templates, compiled.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

/// The escaping of [`Templates::slack`].
const SLACK: &str = "slack";

impl Templates {
    /// Templates whose output is plain text (mapping fields): values are printed as they are.
    pub fn new() -> Templates {
        Self::escaping(AutoEscape::None)
    }

    /// Templates for Slack's mrkdwn: `&`, `<` and `>` in a printed value become `&amp;`, `&lt;`
    /// and `&gt;` (api.slack.com/reference/surfaces/formatting#escaping), so data never
    /// becomes a mention (`<!channel>`, `<@U1>`), a link or markup. The template's own text is
    /// the author's, and `{{ field | safe }}` prints a field the author trusts as mrkdwn.
    pub fn slack() -> Templates {
        Self::escaping(AutoEscape::Custom(SLACK.into()))
    }

    fn escaping(escape: AutoEscape) -> Templates {
        let mut env = Environment::new();
        // A misspelt name fails when the template is compiled (`add` checks every name it uses),
        // so at render time an undefined value is a NULL field, left out of the context: it
        // renders as nothing and filters take it as empty (`{{ last | upper }}`, `default`).
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_auto_escape_callback(move |_| escape.clone());
        // A NULL renders as nothing, not "none" (filters still see it as none: `default` works).
        env.set_formatter(|out, state, value| {
            if value.is_none() {
                return Ok(());
            }
            match state.auto_escape() {
                AutoEscape::Custom(name) if name == SLACK && !value.is_safe() => {
                    out.write_str(&slack_escape(&value.to_string())).map_err(minijinja::Error::from)
                }
                _ => minijinja::escape_formatter(out, state, value),
            }
        });
        Templates { env }
    }

    /// Compiles `source` under `name`. `known` are the names a context will hold: a template
    /// that uses any other top-level name is refused, with the names it may use.
    pub fn add(&mut self, name: &str, source: &str, known: &[&str]) -> Result<(), String> {
        self.env.add_template_owned(name.to_string(), source.to_string()).map_err(|e| describe(&e))?;
        let template = self.env.get_template(name).map_err(|e| describe(&e))?;
        let unknown: BTreeSet<String> =
            template.undeclared_variables(false).into_iter().filter(|v| !known.contains(&v.as_str()) && !is_global(v)).collect();
        if let Some(first) = unknown.iter().next() {
            let hint =
                crate::project::did_you_mean(first, known.iter().copied()).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
            return Err(format!(
                "the template uses `{}`{hint}, which is not a field here; it can use: {}",
                unknown.iter().cloned().collect::<Vec<_>>().join("`, `"),
                known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(())
    }

    /// Renders a compiled template. The error says what went wrong (a filter on the wrong
    /// type, say), never the values.
    pub fn render(&self, name: &str, context: &minijinja::Value) -> Result<String, String> {
        let template = self.env.get_template(name).map_err(|e| describe(&e))?;
        template.render(context).map_err(|e| describe(&e))
    }
}

/// Text as Slack shows it literally: its three control characters as entities, `&` first.
pub fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Names minijinja itself provides to every template (functions such as `range`).
fn is_global(name: &str) -> bool {
    matches!(name, "range" | "dict" | "namespace" | "debug" | "loop")
}

fn describe(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    if let Some(line) = e.line() {
        if !text.contains("line") {
            text.push_str(&format!(" (template line {line})"));
        }
    }
    text
}

/// A row's fields as a template context: `{ field: value, ... }` in mapping order, values as
/// their JSON form (numbers stay numbers, so `{{ score | round(2) }}` works). NULL fields are
/// left out: undefined renders as nothing.
pub fn row_context<'a>(names: impl IntoIterator<Item = &'a String>, values: &[Value]) -> IndexMap<String, serde_json::Value> {
    names.into_iter().zip(values).filter(|(_, v)| !v.is_null()).map(|(n, v)| (n.clone(), v.to_json())).collect()
}

/// Any serialisable value as a template context.
pub fn context(value: &impl serde::Serialize) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fields_and_refuses_unknown_names() {
        let mut t = Templates::new();
        t.add("m", "{{ name }} churn risk {{ score | round(1) }}", &["name", "score"]).unwrap();
        let ctx = row_context(&["name".to_string(), "score".to_string()], &[Value::Text("Ann & Co".into()), Value::Float(0.8123)]);
        assert_eq!(t.render("m", &context(&ctx)).unwrap(), "Ann & Co churn risk 0.8");
        t.add("n", "{{ name }}|{{ name | upper }}|{{ name | default('?') }}", &["name"]).unwrap();
        let null = row_context(&["name".to_string()], &[Value::Null]);
        assert_eq!(t.render("n", &context(&null)).unwrap(), "||?", "a NULL renders as nothing, and `default` sees it");
        let e = t.add("bad", "{{ nmae }}", &["name", "score"]).unwrap_err();
        assert!(e.contains("`nmae`") && e.contains("did you mean `name`?"), "{e}");
        let e = t.add("syntax", "{{ name", &["name"]).unwrap_err();
        assert!(e.contains("syntax"), "{e}");
    }

    #[test]
    fn slack_templates_escape_values_but_not_their_own_text_or_trusted_fields() {
        let mut t = Templates::slack();
        t.add("m", "<!here> *{{ name }}* {{ score }} {{ link | safe }}", &["name", "score", "link"]).unwrap();
        let names = ["name".to_string(), "score".to_string(), "link".to_string()];
        let values = [Value::Text("<!channel> & <@U123|boss>".into()), Value::Float(0.5), Value::Text("<https://x.test|x>".into())];
        let ctx = row_context(&names, &values);
        assert_eq!(t.render("m", &context(&ctx)).unwrap(), "<!here> *&lt;!channel&gt; &amp; &lt;@U123|boss&gt;* 0.5 <https://x.test|x>");
        let mut plain = Templates::new();
        plain.add("m", "{{ name }}", &["name"]).unwrap();
        assert_eq!(plain.render("m", &context(&ctx)).unwrap(), "<!channel> & <@U123|boss>", "mapping fields are not mrkdwn");
    }
}
