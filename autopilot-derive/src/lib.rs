//! `#[derive(Autopilot)]` for the spec struct of a kube `CustomResource`.
//!
//! The derive reads the phases declared in `#[autopilot(phases(...))]` and generates, for a resource of kind
//! `Canary`:
//! - `CanaryPhase`: the phase enum (serde as the phase names, a JSON schema listing them as an `enum`,
//!   `Display`/`FromStr`, `ALL`, `initial()`, `is_final()`, `as_str()`);
//! - `CanaryStatus`: `autopilot::Status<CanaryPhase, Fields>`, to name in `#[kube(status = "CanaryStatus")]`;
//! - `CanaryHandlers`: a struct with one field per phase that needs a handler, so leaving a handler out is a
//!   compile error naming the missing field;
//! - the `autopilot::Autopilot` impl tying them to `Canary`.
//!
//! The user-facing documentation and examples live on `autopilot::Autopilot` (re-exported by the `autopilot`
//! crate), where they can run as doctests.

mod attrs;

use attrs::{Model, snake_case};
use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::{DeriveInput, parse_macro_input};

/// Generates the phase enum, status alias, handler struct and `Autopilot` impl; see the `autopilot` crate.
#[proc_macro_derive(Autopilot, attributes(autopilot))]
pub fn derive_autopilot(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match Model::from_input(&input) {
        Ok(model) => expand(&model).into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn expand(m: &Model) -> proc_macro2::TokenStream {
    let Model {
        spec,
        vis,
        kind,
        krate,
        fields,
        phases,
        namespaced,
    } = m;
    let api_body = if *namespaced {
        quote! {
            match namespace {
                ::core::option::Option::Some(ns) => #krate::__private::kube::Api::namespaced(client, ns),
                ::core::option::Option::None => #krate::__private::kube::Api::all(client),
            }
        }
    } else {
        quote! {
            let _ = namespace;
            #krate::__private::kube::Api::all(client)
        }
    };
    let phase_ty = format_ident!("{kind}Phase");
    let status_ty = format_ident!("{kind}Status");
    let handlers_ty = format_ident!("{kind}Handlers");
    let fields_ty = fields
        .as_ref()
        .map_or_else(|| quote!(#krate::status::NoFields), |p| quote!(#p));

    let variants: Vec<_> = phases.iter().map(|p| &p.name).collect();
    let names: Vec<String> = variants.iter().map(ToString::to_string).collect();
    let count = variants.len();
    let initial = phases.iter().find(|p| p.initial).map(|p| &p.name);
    let finals: Vec<_> = phases
        .iter()
        .filter(|p| p.final_)
        .map(|p| &p.name)
        .collect();
    let is_final = if finals.is_empty() {
        quote!(false)
    } else {
        quote!(matches!(self, #(Self::#finals)|*))
    };
    let option = |pick: fn(&attrs::PhaseDecl) -> bool| match phases.iter().find(|p| pick(p)) {
        Some(p) => {
            let name = &p.name;
            quote!(::core::option::Option::Some(Self::#name))
        }
        None => quote!(::core::option::Option::None),
    };
    let failure = option(|p| p.failure);
    let finalizer = option(|p| p.finalizer);

    let variant_docs = phases.iter().map(|p| {
        let role = if p.initial {
            "The initial phase."
        } else if p.failure {
            "The final phase entered by `Transition::fail`."
        } else if p.final_ {
            "A final phase: nothing runs until the spec changes."
        } else if p.finalizer {
            "The finalizer phase: cleanup that runs once when the object is deleted."
        } else {
            "A working phase."
        };
        format!("`{}`. {role}", p.name)
    });

    let handled: Vec<_> = phases.iter().filter(|p| !p.final_).collect();
    let handled_variants: Vec<_> = handled.iter().map(|p| &p.name).collect();
    let handled_fields: Vec<_> = handled.iter().map(|p| snake_case(&p.name)).collect();
    let generics: Vec<_> = (0..handled.len()).map(|i| format_ident!("H{i}")).collect();
    let field_docs = handled
        .iter()
        .map(|p| format!("Handler of the `{}` phase.", p.name));

    let enum_doc = format!("The phases of a `{kind}`, as declared on `{spec}`.");
    let status_doc =
        format!("The status of a `{kind}`: phase bookkeeping plus the handlers' own fields.");
    let handlers_doc = format!(
        "One handler per phase of a `{kind}` that runs code: a `Phase<{kind}>` implementation or an \
         `async fn(Arc<{kind}>, Context<{kind}>)`. Leaving one out is a compile error that names the missing \
         phase."
    );

    quote! {
        #[doc = #enum_doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #vis enum #phase_ty {
            #( #[doc = #variant_docs] #variants, )*
        }

        impl #phase_ty {
            /// Every declared phase, in declaration order.
            pub const ALL: [Self; #count] = [#(Self::#variants),*];

            /// The phase a new object (or one whose spec changed) starts in.
            #[must_use]
            pub const fn initial() -> Self {
                Self::#initial
            }

            /// Whether nothing runs in this phase until the spec changes.
            #[must_use]
            pub const fn is_final(self) -> bool {
                #is_final
            }

            /// The phase's name as written in `status.phase`.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    #(Self::#variants => #names,)*
                }
            }
        }

        impl ::core::fmt::Display for #phase_ty {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::core::str::FromStr for #phase_ty {
            type Err = #krate::phase::UnknownPhase;

            fn from_str(s: &str) -> ::core::result::Result<Self, Self::Err> {
                match s {
                    #(#names => ::core::result::Result::Ok(Self::#variants),)*
                    _ => ::core::result::Result::Err(#krate::phase::UnknownPhase::new(
                        s,
                        <Self as #krate::PhaseEnum>::NAMES,
                    )),
                }
            }
        }

        impl #krate::PhaseEnum for #phase_ty {
            const ALL: &'static [Self] = &Self::ALL;
            const NAMES: &'static [&'static str] = &[#(#names),*];

            fn initial() -> Self {
                Self::initial()
            }

            fn is_final(self) -> bool {
                Self::is_final(self)
            }

            fn name(self) -> &'static str {
                self.as_str()
            }

            fn failure() -> ::core::option::Option<Self> {
                #failure
            }

            fn finalizer() -> ::core::option::Option<Self> {
                #finalizer
            }
        }

        impl #krate::__private::serde::Serialize for #phase_ty {
            fn serialize<S>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error>
            where
                S: #krate::__private::serde::Serializer,
            {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> #krate::__private::serde::Deserialize<'de> for #phase_ty {
            fn deserialize<D>(deserializer: D) -> ::core::result::Result<Self, D::Error>
            where
                D: #krate::__private::serde::Deserializer<'de>,
            {
                #krate::phase::deserialize_phase(deserializer)
            }
        }

        impl #krate::__private::schemars::JsonSchema for #phase_ty {
            fn schema_name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(stringify!(#phase_ty))
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(
                _: &mut #krate::__private::schemars::SchemaGenerator,
            ) -> #krate::__private::schemars::Schema {
                #krate::phase::phase_schema(<Self as #krate::PhaseEnum>::NAMES)
            }
        }

        #[doc = #status_doc]
        #vis type #status_ty = #krate::Status<#phase_ty, #fields_ty>;

        #[doc = #handlers_doc]
        #vis struct #handlers_ty<#(#generics),*> {
            #( #[doc = #field_docs] pub #handled_fields: #generics, )*
        }

        impl<#(#generics: #krate::Phase<#kind>),*> #krate::Handlers<#kind> for #handlers_ty<#(#generics),*> {
            fn run(
                &self,
                phase: #phase_ty,
                object: ::std::sync::Arc<#kind>,
                ctx: #krate::Context<#kind>,
            ) -> ::core::option::Option<#krate::phase::HandlerFuture<'_, #phase_ty>> {
                match phase {
                    #(#phase_ty::#handled_variants => ::core::option::Option::Some(
                        #krate::phase::run_phase(&self.#handled_fields, object, ctx)
                    ),)*
                    #[allow(unreachable_patterns)]
                    _ => {
                        let _ = (object, ctx);
                        ::core::option::Option::None
                    }
                }
            }
        }

        impl #krate::Autopilot for #kind {
            type Phase = #phase_ty;
            type Fields = #fields_ty;

            fn api(
                client: #krate::__private::kube::Client,
                namespace: ::core::option::Option<&str>,
            ) -> #krate::__private::kube::Api<Self> {
                #api_body
            }
        }
    }
}
