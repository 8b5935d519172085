//! What the macros need to know about a function's signature: its named arguments,
//! its receiver, and what it returns as far as caching is concerned.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, Pat, PathArguments, ReturnType, Signature, Type};

use crate::ctxt::Ctxt;

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
    pub fn new(sig: &Signature, macro_name: &str, reject_mut_self: bool, cx: &Ctxt) -> Self {
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
                        cx.error_spanned_by(
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
                    other => cx.error_spanned_by(
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

/// The span to blame for a return-type problem.
pub fn return_span(sig: &Signature) -> Span {
    match &sig.output {
        ReturnType::Default => sig.ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    }
}

/// Whether a function with this signature and body names the `Self` type, so that it
/// must be in an `impl` block. Items nested in the body are skipped: their `Self` is
/// their own. Macro arguments are searched token by token.
pub fn names_self_type(sig: &Signature, stmts: &[syn::Stmt]) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_item(&mut self, _: &'ast syn::Item) {}
        fn visit_path(&mut self, path: &'ast syn::Path) {
            if path.segments.iter().any(|s| s.ident == "Self") {
                self.0 = true;
            }
            syn::visit::visit_path(self, path);
        }
        fn visit_macro(&mut self, mac: &'ast syn::Macro) {
            self.0 |= tokens_name_self(mac.tokens.clone());
            syn::visit::visit_macro(self, mac);
        }
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_signature(&mut finder, sig);
    for stmt in stmts {
        syn::visit::Visit::visit_stmt(&mut finder, stmt);
    }
    finder.0
}

fn tokens_name_self(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(ident) => ident == "Self",
        TokenTree::Group(group) => tokens_name_self(group.stream()),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::names_self_type;

    fn names_self(item: &str) -> bool {
        let func: crate::item::MaybeItemFn = syn::parse_str(item).expect("a function");
        names_self_type(&func.sig, &func.stmts)
    }

    #[test]
    fn self_in_the_signature_the_body_or_a_macro_counts() {
        assert!(names_self("fn f() -> Vec<Self> { Vec::new() }"));
        assert!(names_self("fn f(x: u32) -> u32 { Self::BASE + x }"));
        assert!(names_self("fn f() -> u32 { let s = Self { a: 1 }; s.a }"));
        assert!(names_self("fn f() -> Vec<u32> { vec![Self::A] }"));
        assert!(!names_self("fn f(x: u32) -> u32 { x }"));
    }

    #[test]
    fn self_inside_a_nested_item_is_not_the_functions() {
        assert!(!names_self(
            "fn f() -> u32 { struct X; impl X { fn new() -> Self { X } } let _ = X::new(); 1 }"
        ));
    }
}
