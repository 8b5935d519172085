//! Key templates: `"product:{id}"`, `"user:{user.id}:{page}"`, `"{self.tenant}:{id:05}"`.
//!
//! A placeholder names an argument (or `self`), optionally followed by fields
//! (`.name`, `.0`) and a format spec after `:`; it is rendered with `Display` (the spec
//! as `format!` reads it). `{{` and `}}` are literal braces. A placeholder naming
//! something that is not an argument is a compile error spanned on the template that
//! lists the arguments.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Expr, LitStr};

use crate::signature::FnInfo;

/// A parsed template: the `format!` string and the expression of each placeholder.
pub struct Template {
    lit: LitStr,
    format: String,
    args: Vec<Expr>,
    /// The template in order, for [`render_into`](Template::render_into).
    parts: Vec<Part>,
}

/// A piece of a template.
enum Part {
    /// Literal text (braces unescaped).
    Text(String),
    /// A placeholder: `args[index]`, with its format spec (`05` in `{id:05}`).
    Arg { index: usize, spec: Option<String> },
}

impl Template {
    /// Parses `lit`, checking every placeholder against the arguments of `fn_name`.
    pub fn parse(lit: &LitStr, info: &FnInfo, fn_name: &str) -> syn::Result<Template> {
        Self::parse_as(lit, info, fn_name, "key")
    }

    /// [`parse`](Self::parse) of a template that is a `what` (`key`, `tag`), for messages.
    pub fn parse_as(
        lit: &LitStr,
        info: &FnInfo,
        fn_name: &str,
        what: &str,
    ) -> syn::Result<Template> {
        let text = lit.value();
        let err = |msg: String| syn::Error::new_spanned(lit, msg);
        let mut format = String::with_capacity(text.len());
        let mut args = Vec::new();
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, c)| c) == Some('{') => {
                    chars.next();
                    format.push_str("{{");
                    literal.push('{');
                }
                '}' if chars.peek().map(|&(_, c)| c) == Some('}') => {
                    chars.next();
                    format.push_str("}}");
                    literal.push('}');
                }
                '}' => {
                    return Err(err(format!(
                        "unmatched `}}` at byte {i} of the {what} template; write `}}}}` for a literal brace"
                    )))
                }
                '{' => {
                    let mut inner = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        inner.push(c);
                    }
                    if !closed {
                        return Err(err(format!(
                            "unclosed `{{` at byte {i} of the {what} template; write `{{{{` for a literal brace"
                        )));
                    }
                    let (path, spec) = match inner.split_once(':') {
                        Some((p, s)) => (p.trim(), Some(s)),
                        None => (inner.trim(), None),
                    };
                    let expr = placeholder(path, info, fn_name, what).map_err(err)?;
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Arg {
                        index: args.len(),
                        spec: spec.map(str::to_owned),
                    });
                    args.push(expr);
                    format.push('{');
                    if let Some(spec) = spec {
                        format.push(':');
                        format.push_str(spec);
                    }
                    format.push('}');
                }
                c => {
                    format.push(c);
                    literal.push(c);
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template {
            lit: lit.clone(),
            format,
            args,
            parts,
        })
    }

    /// A closure `|out: &mut String| -> Result<(), ArgKeyError>` appending the rendered
    /// key to `out`: the text as is, and each placeholder as `Display` writes it. A
    /// placeholder without a format spec goes through `KeyPart`, which writes integers
    /// and strings without the formatting machinery (the same text) and anything else
    /// with `Display`; one with a spec goes through `format_args!` as written.
    pub fn render_into(&self) -> TokenStream {
        let p = quote!(::cached_kit::__private);
        // Whether the text is printable ASCII without spaces: then only what the
        // placeholders write decides whether the key rule must look at each character.
        let text_plain = self.parts.iter().all(|part| match part {
            Part::Text(text) => text.bytes().all(|b| b.is_ascii_graphic()),
            Part::Arg { .. } => true,
        });
        let steps = self.parts.iter().map(|part| match part {
            Part::Text(text) => quote! {
                #p::std::string::String::push_str(__cache_out, #text);
            },
            Part::Arg { index, spec: None } => {
                let arg = &self.args[*index];
                quote! {
                    __cache_plain &= (&#p::KeyPart(&(#arg))).push_key(__cache_out)?;
                }
            }
            Part::Arg {
                index,
                spec: Some(spec),
            } => {
                let arg = &self.args[*index];
                let format = LitStr::new(&format!("{{:{spec}}}"), self.lit.span());
                quote! {
                    #p::std::fmt::Write::write_fmt(__cache_out, #p::std::format_args!(#format, #arg))
                        .map_err(#p::ArgKeyError::new)?;
                    __cache_plain &= false;
                }
            }
        });
        quote! {
            |__cache_out: &mut #p::std::string::String| -> #p::std::result::Result<#p::std::primitive::bool, #p::ArgKeyError> {
                #[allow(unused_imports)]
                use #p::{KeyPartDisplay as _, KeyPartPlain as _};
                #[allow(unused_mut)]
                let mut __cache_plain: #p::std::primitive::bool = #text_plain;
                #(#steps)*
                #p::std::result::Result::Ok(__cache_plain)
            }
        }
    }

    /// An expression of type `String`: the rendered key.
    pub fn render(&self) -> TokenStream {
        let format = LitStr::new(&self.format, self.lit.span());
        let args = &self.args;
        if args.is_empty() {
            return quote! { ::cached_kit::__private::std::string::String::from(#format) };
        }
        quote! { ::cached_kit::__private::std::format!(#format, #(#args),*) }
    }
}

/// The expression for a placeholder's path (`user.id`), after checking its root.
fn placeholder(path: &str, info: &FnInfo, fn_name: &str, what: &str) -> Result<Expr, String> {
    if path.is_empty() {
        return Err(format!(
            "an empty `{{}}` in the {what} template: name an argument of `{fn_name}`, e.g. `{{{}}}`; {}",
            info.params.first().map_or("id".to_owned(), |p| p.ident.to_string()),
            info.names()
        ));
    }
    let mut segments = path.split('.');
    let root = segments.next().unwrap_or_default();
    let valid_root = root == "self" || syn::parse_str::<syn::Ident>(root).is_ok();
    if !valid_root || !info.has(root) {
        return Err(format!(
            "`{{{path}}}` in the {what} template does not name an argument of `{fn_name}`: {}",
            info.names()
        ));
    }
    for seg in segments {
        let ok = syn::parse_str::<syn::Ident>(seg).is_ok() || seg.parse::<u32>().is_ok();
        if !ok {
            return Err(format!(
                "`{{{path}}}` in the {what} template: `{seg}` is not a field name; placeholders are `{{arg}}` or `{{arg.field}}`"
            ));
        }
    }
    syn::parse_str::<Expr>(path)
        .map_err(|e| format!("`{{{path}}}` in the {what} template is not a field path: {e}"))
}
