//! [`MaybeItemFn`]: the function an attribute sits on, with its outer and inner
//! attributes apart (tracing-attributes' `MaybeItemFn`), and the error path that keeps
//! the function visible to the IDE (tokio's `token_stream_with_error`).

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Signature, Stmt, Visibility};

/// A function: `#[outer] vis sig { #![inner] stmts }`.
pub struct MaybeItemFn {
    /// The attributes before the function (docs, `#[allow]`, `#[cfg]`, ...).
    pub outer_attrs: Vec<Attribute>,
    /// The attributes at the top of the body (`#![allow(..)]`): they belong to the body.
    pub inner_attrs: Vec<Attribute>,
    /// The visibility.
    pub vis: Visibility,
    /// The signature.
    pub sig: Signature,
    /// The body's braces.
    pub brace: syn::token::Brace,
    /// The body's statements, after the inner attributes.
    pub stmts: Vec<Stmt>,
}

impl Parse for MaybeItemFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let outer_attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let content;
        let brace = syn::braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let stmts = content.call(syn::Block::parse_within)?;
        Ok(MaybeItemFn {
            outer_attrs,
            inner_attrs,
            vis,
            sig,
            brace,
            stmts,
        })
    }
}

impl MaybeItemFn {
    /// Parses `item`, or says which macro goes on functions only.
    pub fn parse_for(item: TokenStream, macro_name: &str) -> syn::Result<Self> {
        syn::parse2(item).map_err(|e| {
            syn::Error::new(e.span(), format!("#[{macro_name}] goes on a function: {e}"))
        })
    }

    /// The body as written: `{ #![inner] stmts }`, in its own braces (their spans kept).
    pub fn body(&self) -> TokenStream {
        let mut tokens = TokenStream::new();
        self.brace.surround(&mut tokens, |tokens| {
            for attr in &self.inner_attrs {
                attr.to_tokens(tokens);
            }
            for stmt in &self.stmts {
                stmt.to_tokens(tokens);
            }
        });
        tokens
    }

    /// The statements without braces or inner attributes.
    pub fn stmts(&self) -> TokenStream {
        let stmts = &self.stmts;
        quote!(#(#stmts)*)
    }
}

/// The item as written plus the errors, so that the IDE still sees the function and
/// completes inside it while the attribute is wrong.
pub fn token_stream_with_error(item: TokenStream, err: syn::Error) -> TokenStream {
    let err = err.into_compile_error();
    quote! { #item #err }
}

/// Attributes that must also go on every item generated beside the function: `cfg`,
/// so that the companions exist exactly when the function does.
pub fn is_cfg(attr: &Attribute) -> bool {
    attr.path().is_ident("cfg")
}

/// Lint attributes (`allow`, `expect`, `warn`, `deny`, `forbid`).
pub fn is_lint(attr: &Attribute) -> bool {
    ["allow", "expect", "warn", "deny", "forbid"]
        .iter()
        .any(|name| attr.path().is_ident(name))
}

/// Expands one attribute macro: parses its arguments as `A` and the item as a function,
/// runs `expand` with one [`Ctxt`](crate::ctxt::Ctxt), and on any error returns the
/// item as written plus every error.
pub fn expand_attribute<A: crate::attr::Args>(
    args: TokenStream,
    item: TokenStream,
    expand: fn(&crate::ctxt::Ctxt, A, MaybeItemFn) -> TokenStream,
) -> TokenStream {
    let func = match MaybeItemFn::parse_for(item.clone(), A::MACRO) {
        Ok(func) => func,
        Err(err) => return token_stream_with_error(item, err),
    };
    let cx = crate::ctxt::Ctxt::default();
    let tokens = match crate::attr::parse::<A>(&cx, args) {
        Some(args) => expand(&cx, args, func),
        None => TokenStream::new(),
    };
    match cx.check() {
        Ok(()) => tokens,
        Err(err) => token_stream_with_error(item, err),
    }
}
