//! Parsing shared by every macro of this crate: error collection, `ttl`, literal
//! helpers, and the analysis of a function's signature (arguments, receiver, return kind).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{
    Expr, ExprLit, FnArg, GenericArgument, Ident, Lit, LitStr, Pat, PathArguments, ReturnType,
    Signature, Type,
};

/// Collects errors so that one expansion reports every mistake at once (serde's `Ctxt`).
#[derive(Default)]
pub struct Errors {
    errors: Option<syn::Error>,
}

impl Errors {
    /// Records `err`.
    pub fn push(&mut self, err: syn::Error) {
        match &mut self.errors {
            Some(all) => all.combine(err),
            None => self.errors = Some(err),
        }
    }

    /// Records an error on `tokens`' span.
    pub fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records the error of `result`, if any, and returns its value.
    pub fn take<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(e);
                None
            }
        }
    }

    /// All errors combined, or `Ok` when there were none.
    pub fn finish(self) -> syn::Result<()> {
        match self.errors {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The item as written plus the error, so that the IDE still sees the function
/// (tokio's `token_stream_with_error`).
pub fn item_with_error(item: TokenStream, err: syn::Error) -> TokenStream {
    let err = err.into_compile_error();
    quote! { #item #err }
}

/// A `key = value` argument's value that must be a string literal.
pub fn expect_str(expr: &Expr, what: &str) -> syn::Result<LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.clone()),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!("`{what}` takes a string literal, e.g. `{what} = \"...\"`"),
        )),
    }
}

/// A `key = value` argument's value that must be `true` or `false`.
pub fn expect_bool(expr: &Expr, what: &str) -> syn::Result<bool> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!("`{what}` takes `true` or `false`"),
        )),
    }
}

/// `ttl = 600` (an integer literal: whole seconds) or `ttl = <expression of type
/// std::time::Duration>`. Returns an expression of type `Option<Duration>`.
///
/// A string, a float or a negative number is a compile error that says what to write.
pub fn parse_ttl(expr: &Expr) -> syn::Result<TokenStream> {
    const HELP: &str = "write whole seconds (`ttl = 600`) or a `std::time::Duration` (`ttl = Duration::from_secs(600)`)";
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => {
            let secs: u64 = int.base10_parse().map_err(|_| {
                syn::Error::new_spanned(
                    int,
                    format!("`ttl` is not a whole number of seconds: {HELP}"),
                )
            })?;
            if !matches!(int.suffix(), "" | "u64" | "u32" | "u16" | "u8" | "usize") {
                return Err(syn::Error::new_spanned(
                    int,
                    format!("`ttl` seconds take no `{}` suffix: {HELP}", int.suffix()),
                ));
            }
            Ok(quote_spanned! {int.span()=>
                ::cached_kit::__private::std::option::Option::Some(
                    ::cached_kit::__private::std::time::Duration::from_secs(#secs)
                )
            })
        }
        Expr::Lit(ExprLit { lit, .. }) => {
            let found = match lit {
                Lit::Str(_) => "a string",
                Lit::Float(_) => "a fractional number",
                Lit::Bool(_) => "a boolean",
                _ => "this literal",
            };
            Err(syn::Error::new_spanned(
                lit,
                format!("`ttl` cannot be {found}: {HELP}"),
            ))
        }
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr: inner,
            ..
        }) if matches!(&**inner, Expr::Lit(_)) => Err(syn::Error::new_spanned(
            expr,
            format!("`ttl` cannot be negative: {HELP}"),
        )),
        other => {
            // Any other expression must be a `Duration`; spanned on it, so that a type
            // error points at the user's expression.
            Ok(quote_spanned! {other.span()=>
                ::cached_kit::__private::std::option::Option::Some(::cached_kit::__private::ttl(#other))
            })
        }
    }
}

/// `version = 2` or an expression of type `u32`. Returns an `Option<u32>` expression.
pub fn parse_version(expr: &Expr) -> syn::Result<TokenStream> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => {
            let v: u32 = int.base10_parse().map_err(|_| {
                syn::Error::new_spanned(int, "`version` is a whole number from 0 to 4294967295")
            })?;
            Ok(quote! { ::cached_kit::__private::std::option::Option::Some(#v) })
        }
        Expr::Lit(lit) => Err(syn::Error::new_spanned(
            lit,
            "`version` is a whole number (`version = 2`) or an expression of type `u32`",
        )),
        other => Ok(quote_spanned! {other.span()=>
            ::cached_kit::__private::std::option::Option::Some({
                let __cache_version: u32 = #other;
                __cache_version
            })
        }),
    }
}

/// One named argument of the function.
pub struct Param {
    /// Its name.
    pub ident: Ident,
    /// Its type.
    pub ty: Type,
}

/// What a macro needs to know about a function's signature.
pub struct FnInfo {
    /// The named arguments, in order (the receiver is not among them).
    pub params: Vec<Param>,
    /// Whether the function takes `self` (in any form).
    pub has_self: bool,
}

impl FnInfo {
    /// Analyses `sig`. `macro_name` is used in messages; `&mut self` is rejected when
    /// `reject_mut_self` (a cached call would skip the body's changes to `self`).
    pub fn new(
        sig: &Signature,
        macro_name: &str,
        reject_mut_self: bool,
        errors: &mut Errors,
    ) -> Self {
        let mut params = Vec::new();
        let mut has_self = false;
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(r) => {
                    has_self = true;
                    let mutable = match &*r.ty {
                        Type::Reference(reference) => reference.mutability.is_some(),
                        _ => false,
                    };
                    if mutable && reject_mut_self {
                        errors.spanned(
                            r,
                            format!(
                                "#[{macro_name}] cannot memoize a `&mut self` method: a cached call would skip the body's changes to `self`; \
                                 take `&self` (with interior mutability where needed), or move the cached part into a `&self` method or a free function"
                            ),
                        );
                    }
                }
                FnArg::Typed(pt) => match &*pt.pat {
                    Pat::Ident(pi) if pi.subpat.is_none() => params.push(Param {
                        ident: pi.ident.clone(),
                        ty: (*pt.ty).clone(),
                    }),
                    other => errors.spanned(
                        other,
                        format!(
                            "#[{macro_name}] needs a plain name for every argument (`name: Type`), so that the key can name it; destructure it inside the body"
                        ),
                    ),
                },
            }
        }
        FnInfo { params, has_self }
    }

    /// Whether an argument (or `self`) of this name exists.
    pub fn has(&self, name: &str) -> bool {
        (name == "self" && self.has_self) || self.params.iter().any(|p| p.ident == name)
    }

    /// The argument names, for error messages: "`a`, `b`" (or "none").
    pub fn names(&self) -> String {
        let mut names: Vec<String> = Vec::new();
        if self.has_self {
            names.push("`self`".into());
        }
        names.extend(self.params.iter().map(|p| format!("`{}`", p.ident)));
        if names.is_empty() {
            "it takes no arguments".into()
        } else {
            format!("its arguments are {}", names.join(", "))
        }
    }
}

/// What a function returns, as far as caching is concerned.
pub enum ReturnKind {
    /// Any other type: stored as is.
    Plain,
    /// `Option<T>`: stored as is; `None` too unless `cache_none = false`.
    Option,
    /// `Result<T, E>` (or an alias such as `io::Result<T>`): only `Ok(T)` is stored.
    Result {
        /// The `Ok` type.
        ok: Box<Type>,
        /// Whether `ok` is itself an `Option`.
        ok_is_option: bool,
    },
}

/// The return type of `sig` (`()` when none is written).
pub fn return_type(sig: &Signature) -> Type {
    match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    }
}

/// Classifies a return type by its last path segment: `Result<..>` with generic
/// arguments is a result, `Option<T>` an option. This is syntactic: a return type
/// named `Result` must be `std::result::Result` or an alias of it.
pub fn return_kind(ty: &Type) -> ReturnKind {
    match generic_args(ty) {
        Some((name, args)) if name == "Result" => match args.first() {
            Some(ok) => ReturnKind::Result {
                ok_is_option: matches!(generic_args(ok), Some((n, a)) if n == "Option" && a.len() == 1),
                ok: Box::new(ok.clone()),
            },
            None => ReturnKind::Plain,
        },
        Some((name, args)) if name == "Option" && args.len() == 1 => ReturnKind::Option,
        _ => ReturnKind::Plain,
    }
}

/// The last segment's name and type arguments of a path type, if it has any.
fn generic_args(ty: &Type) -> Option<(String, Vec<Type>)> {
    let Type::Path(tp) = ty else { return None };
    if tp.qself.is_some() {
        return None;
    }
    let last = tp.path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let types: Vec<Type> = args
        .args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    if types.is_empty() {
        return None;
    }
    Some((last.ident.to_string(), types))
}

/// Whether `ty` mentions `impl Trait` anywhere (such a type cannot be named in a body).
pub fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut f = Finder(false);
    syn::visit::visit_type(&mut f, ty);
    f.0
}

/// An "unknown argument" error listing the valid ones, for a `lookahead1` that
/// matched none (`macro_name` is `cache_fn`, `valid` the names in order).
pub fn unknown_argument(
    input: syn::parse::ParseStream<'_>,
    macro_name: &str,
    valid: &[&str],
) -> syn::Error {
    let list = valid
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match input.call(<syn::Ident as syn::ext::IdentExt>::parse_any) {
        Ok(ident) => syn::Error::new_spanned(
            &ident,
            format!("unknown argument `{ident}`: #[{macro_name}] takes {list}"),
        ),
        Err(_) => syn::Error::new(
            input.span(),
            format!("#[{macro_name}] takes {list}, as `name = value`"),
        ),
    }
}

/// The span to blame for a return-type problem.
pub fn return_span(sig: &Signature) -> Span {
    match &sig.output {
        ReturnType::Default => sig.ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    }
}
