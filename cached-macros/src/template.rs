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
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, c)| c) == Some('{') => {
                    chars.next();
                    format.push_str("{{");
                }
                '}' if chars.peek().map(|&(_, c)| c) == Some('}') => {
                    chars.next();
                    format.push_str("}}");
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
                    args.push(expr);
                    format.push('{');
                    if let Some(spec) = spec {
                        format.push(':');
                        format.push_str(spec);
                    }
                    format.push('}');
                }
                c => format.push(c),
            }
        }
        Ok(Template {
            lit: lit.clone(),
            format,
            args,
        })
    }

    /// An expression of type `fmt::Arguments`: the key, not yet rendered (for use
    /// inline, as an argument of a call).
    pub fn render_args(&self) -> TokenStream {
        let format = LitStr::new(&self.format, self.lit.span());
        let args = &self.args;
        quote! { ::cached_kit::__private::std::format_args!(#format, #(#args),*) }
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
