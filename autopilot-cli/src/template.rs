//! `{{name}}` placeholder substitution for the project templates.
//!
//! The templates are Rust, TOML, Markdown and Dockerfile text that must read as what they produce, so the
//! syntax is the smallest that cannot clash with them: `{{` + a lowercase name + `}}`. Every placeholder must
//! have a value; a missing one is an error rather than an empty string.

/// A placeholder without a value.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("template `{template}` uses `{{{{{placeholder}}}}}`, which has no value")]
pub struct MissingValue {
    /// The template's file name.
    pub template: &'static str,
    /// The placeholder's name.
    pub placeholder: String,
}

/// A template file, included in the binary.
#[derive(Clone, Copy, Debug)]
pub struct Template {
    /// The file name under `templates/`.
    pub name: &'static str,
    /// Its text.
    pub text: &'static str,
}

/// Includes `templates/<file>` as a [`Template`].
macro_rules! template {
    ($file:literal) => {
        $crate::template::Template {
            name: $file,
            text: include_str!(concat!("../templates/", $file)),
        }
    };
}
pub(crate) use template;

impl Template {
    /// The text with every `{{name}}` replaced by its value in `values`.
    ///
    /// # Errors
    /// [`MissingValue`] for the first placeholder `values` has no entry for.
    pub fn render(&self, values: &[(&str, &str)]) -> Result<String, MissingValue> {
        let mut out = String::with_capacity(self.text.len() + 256);
        let mut rest = self.text;
        while let Some(open) = rest.find("{{") {
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                break;
            };
            let key = &after[..close];
            out.push_str(&rest[..open]);
            if is_placeholder(key) {
                let value = values
                    .iter()
                    .find(|(name, _)| *name == key)
                    .map(|(_, value)| *value)
                    .ok_or_else(|| MissingValue {
                        template: self.name,
                        placeholder: key.to_owned(),
                    })?;
                out.push_str(value);
            } else {
                // Not ours (e.g. `{{` in a format string): keep it as written.
                out.push_str(&rest[open..open + 2 + close + 2]);
            }
            rest = &after[close + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn is_placeholder(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREETING: Template = Template {
        name: "greeting",
        text: "hello {{who}}, {{who}}! {{ not ours }} {{}} {{unclosed",
    };

    #[test]
    fn placeholders_are_replaced_and_other_braces_kept() {
        let text = GREETING.render(&[("who", "world")]).unwrap();
        assert_eq!(text, "hello world, world! {{ not ours }} {{}} {{unclosed");
    }

    #[test]
    fn a_missing_value_is_an_error_naming_it() {
        let err = GREETING.render(&[]).unwrap_err();
        assert_eq!(err.placeholder, "who");
        assert_eq!(
            err.to_string(),
            "template `greeting` uses `{{who}}`, which has no value"
        );
    }
}
