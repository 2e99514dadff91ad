//! Reading `#[autopilot(...)]` and the `kind` of `#[kube(...)]` into a checked [`Model`].

use proc_macro2::{Span, TokenStream};
use syn::{DeriveInput, Ident, LitStr, Path, Token, parenthesized, parse::ParseStream};

/// One declared phase and its role.
pub struct PhaseDecl {
    pub name: Ident,
    pub initial: bool,
    pub final_: bool,
    pub failure: bool,
    pub finalizer: bool,
    /// Where each role was written, for errors about it.
    pub role_spans: Vec<(&'static str, Span)>,
}

/// Everything the code generator needs, already validated.
pub struct Model {
    pub spec: Ident,
    pub vis: syn::Visibility,
    pub kind: Ident,
    pub krate: Path,
    pub fields: Option<Path>,
    pub phases: Vec<PhaseDecl>,
    /// `#[kube(namespaced)]`: objects live in namespaces.
    pub namespaced: bool,
}

impl Model {
    pub fn from_input(input: &DeriveInput) -> syn::Result<Self> {
        if !matches!(input.data, syn::Data::Struct(_)) {
            return Err(syn::Error::new(
                input.ident.span(),
                "#[derive(Autopilot)] goes on the spec struct of a kube `CustomResource`",
            ));
        }
        let mut kind: Option<LitStr> = None;
        let mut krate: Option<Path> = None;
        let mut fields: Option<Path> = None;
        let mut phases: Option<(Span, Vec<PhaseDecl>)> = None;
        let mut kube_kind: Option<LitStr> = None;
        let mut namespaced = false;

        for attr in &input.attrs {
            if attr.path().is_ident("kube") {
                // Only `kind` matters here; everything else belongs to kube's derive.
                let _ = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("kind") {
                        kube_kind = Some(meta.value()?.parse()?);
                    } else if meta.path.is_ident("namespaced") {
                        namespaced = true;
                    } else {
                        skip_meta_value(meta.input)?;
                    }
                    Ok(())
                });
                continue;
            }
            if !attr.path().is_ident("autopilot") {
                continue;
            }
            attr.parse_nested_meta(|meta| {
                let key = meta.path.get_ident().cloned().ok_or_else(|| {
                    meta.error("expected `phases(...)`, `kind = \"..\"`, `fields = Type` or `crate = \"..\"`")
                })?;
                match key.to_string().as_str() {
                    "phases" => {
                        if phases.is_some() {
                            return Err(syn::Error::new(key.span(), "`phases` is declared twice"));
                        }
                        let content;
                        parenthesized!(content in meta.input);
                        phases = Some((key.span(), parse_phases(&content)?));
                    }
                    "kind" => set_once(&mut kind, &key, meta.value()?.parse()?)?,
                    "fields" => set_once(&mut fields, &key, meta.value()?.parse()?)?,
                    "crate" => {
                        let lit: LitStr = meta.value()?.parse()?;
                        set_once(&mut krate, &key, lit.parse()?)?;
                    }
                    other => {
                        return Err(syn::Error::new(
                            key.span(),
                            format!(
                                "unknown autopilot option `{other}`; expected `phases(...)`, `kind = \"..\"`, \
                                 `fields = Type` or `crate = \"..\"`"
                            ),
                        ));
                    }
                }
                Ok(())
            })?;
        }

        let Some((phases_span, phases)) = phases else {
            return Err(syn::Error::new(
                input.ident.span(),
                "missing `#[autopilot(phases(...))]`, e.g. \
                 #[autopilot(phases(Pending(initial), Running, Done(final)))]",
            ));
        };
        check_phases(phases_span, &phases)?;
        let kind = kind.or(kube_kind).ok_or_else(|| {
            syn::Error::new(
                input.ident.span(),
                "cannot tell the resource kind: add `#[kube(kind = \"..\")]` or `#[autopilot(kind = \"..\")]`",
            )
        })?;
        let kind = syn::parse_str::<Ident>(&kind.value())
            .map_err(|_| syn::Error::new(kind.span(), "the kind must be a Rust identifier"))?;
        Ok(Self {
            spec: input.ident.clone(),
            vis: input.vis.clone(),
            kind,
            krate: krate.unwrap_or_else(|| syn::parse_quote!(::autopilot)),
            fields,
            phases,
            namespaced,
        })
    }
}

fn set_once<T>(slot: &mut Option<T>, key: &Ident, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            key.span(),
            format!("`{key}` is declared twice"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// Consumes `= expr` or `(...)` after a key we do not interpret.
fn skip_meta_value(input: ParseStream<'_>) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        input.parse::<syn::Expr>()?;
    } else if input.peek(syn::token::Paren) {
        let content;
        parenthesized!(content in input);
        content.parse::<TokenStream>()?;
    }
    Ok(())
}

/// `Name`, `Name(initial)`, `Name(final, failure)`, separated by commas.
fn parse_phases(input: ParseStream<'_>) -> syn::Result<Vec<PhaseDecl>> {
    let mut out: Vec<PhaseDecl> = Vec::new();
    while !input.is_empty() {
        let name: Ident = input.call(syn::ext::IdentExt::parse_any)?;
        if let Some(previous) = out.iter().find(|p| p.name == name) {
            let mut err = syn::Error::new(name.span(), format!("phase `{name}` is declared twice"));
            err.combine(syn::Error::new(previous.name.span(), "first declared here"));
            return Err(err);
        }
        let mut decl = PhaseDecl {
            name,
            initial: false,
            final_: false,
            failure: false,
            finalizer: false,
            role_spans: Vec::new(),
        };
        if input.peek(syn::token::Paren) {
            let content;
            parenthesized!(content in input);
            let options = content.parse_terminated(
                |s: ParseStream<'_>| s.call(syn::ext::IdentExt::parse_any),
                Token![,],
            )?;
            for option in options {
                apply_option(&mut decl, &option)?;
            }
        }
        out.push(decl);
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(out)
}

fn apply_option(decl: &mut PhaseDecl, option: &Ident) -> syn::Result<()> {
    let (role, flag) = match option.to_string().as_str() {
        "initial" => ("initial", &mut decl.initial),
        "final" => ("final", &mut decl.final_),
        "failure" => ("failure", &mut decl.failure),
        "finalizer" => ("finalizer", &mut decl.finalizer),
        other => {
            return Err(syn::Error::new(
                option.span(),
                format!(
                    "unknown phase option `{other}`; expected `initial`, `final`, `failure` or `finalizer`"
                ),
            ));
        }
    };
    if *flag {
        return Err(syn::Error::new(
            option.span(),
            format!("`{option}` is given twice"),
        ));
    }
    *flag = true;
    decl.role_spans.push((role, option.span()));
    if decl.failure {
        decl.final_ = true;
    }
    let clash = if decl.initial && decl.final_ {
        Some("an initial phase cannot be final")
    } else if decl.finalizer && (decl.initial || decl.final_) {
        Some("the finalizer phase runs on deletion only: it cannot be initial or final")
    } else {
        None
    };
    match clash {
        Some(message) => Err(syn::Error::new(option.span(), message)),
        None => Ok(()),
    }
}

fn check_phases(span: Span, phases: &[PhaseDecl]) -> syn::Result<()> {
    let only_one = |role: &'static str| -> syn::Result<()> {
        let mut marked = phases.iter().filter_map(|p| {
            p.role_spans
                .iter()
                .find(|(r, _)| *r == role)
                .map(|(_, s)| (p, *s))
        });
        if let (Some((first, first_at)), Some((second, second_at))) = (marked.next(), marked.next())
        {
            let mut err = syn::Error::new(
                second_at,
                format!("two {role} phases: `{}` and `{}`", first.name, second.name),
            );
            err.combine(syn::Error::new(first_at, "first one here"));
            return Err(err);
        }
        Ok(())
    };
    only_one("initial")?;
    only_one("failure")?;
    only_one("finalizer")?;
    if !phases.iter().any(|p| p.initial) {
        return Err(syn::Error::new(
            span,
            "no initial phase: mark one with `(initial)`, e.g. phases(Pending(initial), Done(final))",
        ));
    }
    Ok(())
}

/// `Evaluating` → `evaluating`, `WaitingPromotion` → `waiting_promotion`.
pub fn snake_case(ident: &Ident) -> Ident {
    let name = ident.to_string();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    let mut snake =
        syn::parse_str::<Ident>(&out).unwrap_or_else(|_| Ident::new_raw(&out, ident.span()));
    snake.set_span(ident.span());
    snake
}
