//! Image templates applied when an instance is created or copied.
//!
//! Incus renders Pongo2 templates; this engine supports the subset images use for identity:
//! `{{ instance.name }}`, `{{ container.name }}`, `{{ instance.project }}` and
//! `{{ instance.type }}`. Other tags are left as they are (a template using them renders
//! partially rather than failing the create).

/// Renders `text` for an instance.
pub fn render(text: &str, name: &str, project: &str) -> String {
    let mut out = text.to_string();
    for (tag, value) in [
        ("instance.name", name),
        ("container.name", name),
        ("instance.project", project),
        ("container.project", project),
        ("instance.type", "container"),
    ] {
        for form in [format!("{{{{ {tag} }}}}"), format!("{{{{{tag}}}}}")] {
            out = out.replace(&form, value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_names() {
        assert_eq!(
            super::render("{{ container.name }}\n", "c1", "default"),
            "c1\n"
        );
        assert_eq!(
            super::render("{{instance.name}}.{{ instance.project }} {{ x }}", "a", "p"),
            "a.p {{ x }}"
        );
    }
}
