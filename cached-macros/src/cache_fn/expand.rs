//! The expansion of `#[cache_fn]`: the memoized function and its companions.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, GenericParam, ItemFn, LitStr, Pat, Signature, Type};

use super::args::Args;
use crate::common::{
    contains_impl_trait, parse_ttl, parse_version, return_kind, return_span, return_type, Errors,
    FnInfo, ReturnKind,
};
use crate::template::Template;

/// Everything the generated functions share.
struct Plan {
    /// `static __CACHE_SLOT`, `__cache_spec`: the common preamble.
    preamble: TokenStream,
    /// The key as a `KeySource` expression, for `stored_key` (the memoized call).
    key_source: TokenStream,
    /// The key as a `Result<String, ArgKeyError>` expression (the companions).
    key: TokenStream,
    /// `__cache_store_if`'s definition (empty when everything is stored).
    store_if_def: TokenStream,
    /// The expression passed as `store_if`.
    store_if: TokenStream,
    ret: Type,
    /// The type stored: the return type, or the `Ok` type of a `Result`.
    stored: Type,
    /// Whether the function returns a `Result` (so `memoize` returns its own result).
    is_result: bool,
}

pub fn expand(mut args: Args, func: ItemFn) -> syn::Result<TokenStream> {
    let mut errors = std::mem::take(&mut args.errors);
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    if let Some(c) = &sig.constness {
        errors.spanned(
            c,
            "#[cache_fn] cannot go on a `const fn`: a cached call reads the cache at run time",
        );
    }
    let info = FnInfo::new(&sig, "cache_fn", true, &mut errors);
    // `unraw`: `r#type` is keyed and named as `type`.
    let fn_name = syn::ext::IdentExt::unraw(&sig.ident).to_string();
    let ret = return_type(&sig);
    if contains_impl_trait(&ret) {
        errors.spanned(
            &ret,
            "#[cache_fn] stores the returned value, so it needs its concrete type: write the type instead of `impl Trait`",
        );
    }
    let kind = return_kind(&ret);
    let (stored, can_be_none) = match &kind {
        ReturnKind::Plain => (ret.clone(), false),
        ReturnKind::Option => (ret.clone(), true),
        ReturnKind::Result { ok, ok_is_option } => ((**ok).clone(), *ok_is_option),
    };

    let key = key_expr(&args, &sig, &info, &fn_name, &mut errors);
    let ttl = match &args.ttl {
        Some(expr) => errors.take(parse_ttl(expr)),
        None => Some(quote!(::cached_kit::__private::std::option::Option::None)),
    };
    let version = match &args.version {
        Some(expr) => errors.take(parse_version(expr)),
        None => Some(quote!(::cached_kit::__private::std::option::Option::None)),
    };
    let alias = match &args.cache {
        Some(lit) if lit.value().is_empty() => {
            errors.spanned(
                lit,
                "`cache` names a cache alias, e.g. `cache = \"shared\"`; it cannot be empty",
            );
            None
        }
        Some(lit) => Some(lit.clone()),
        None => Some(LitStr::new("default", Span::call_site())),
    };
    let mut conditions = Vec::new();
    if let Some((cache_none, span)) = args.cache_none {
        if !can_be_none {
            errors.push(syn::Error::new(
                span,
                format!("`cache_none` only applies to functions returning `Option<T>` or `Result<Option<T>, E>`, and `{fn_name}` returns neither"),
            ));
        } else if !cache_none {
            conditions.push(quote!(::cached_kit::__private::is_some(__v)));
        }
    }
    let mut store_if_def = TokenStream::new();
    if let Some(unless) = &args.unless {
        store_if_def = quote_spanned! {unless.span()=>
            let __cache_unless: &(dyn ::cached_kit::__private::std::ops::Fn(&#stored) -> ::cached_kit::__private::std::primitive::bool
                + ::cached_kit::__private::std::marker::Send + ::cached_kit::__private::std::marker::Sync) = &(#unless);
        };
        conditions.push(quote!(!__cache_unless(__v)));
    }
    let store_if = if conditions.is_empty() {
        quote!(::cached_kit::__private::std::option::Option::None)
    } else {
        store_if_def.extend(quote! {
            let __cache_store_if = |__v: &#stored| -> ::cached_kit::__private::std::primitive::bool { #(#conditions)&&* };
        });
        quote!(::cached_kit::__private::std::option::Option::Some(
            &__cache_store_if
        ))
    };
    errors.finish()?;
    let (Some(key), Some(ttl), Some(version), Some(alias)) = (key, ttl, version, alias) else {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[cache_fn]: invalid arguments",
        ));
    };

    let lock = args.lock.unwrap_or(false);
    let name_lit = LitStr::new(&fn_name, sig.ident.span());
    // First, so that a type that cannot be cached is reported on the return type first.
    let assert_cacheable = quote_spanned! {return_span(&sig)=>
        ::cached_kit::__private::assert_cacheable::<#stored>();
    };
    let preamble = quote! {
        #[allow(unused_imports)]
        use ::cached_kit::__private::{Uncached as _, ViaCache as _};
        static __CACHE_SLOT: ::cached_kit::__private::CacheSlot = ::cached_kit::__private::CacheSlot::new(#alias);
        let __cache_spec = ::cached_kit::__private::Spec {
            name: ::cached_kit::__private::std::concat!(::cached_kit::__private::std::module_path!(), "::", #name_lit),
            version: #version,
            ttl: #ttl,
            lock: #lock,
            lock_ttl: ::cached_kit::__private::std::option::Option::None,
        };
    };
    let (key_source, key) = key;
    let plan = Plan {
        preamble,
        key_source,
        key,
        store_if_def,
        store_if,
        ret,
        stored: stored.clone(),
        is_result: matches!(kind, ReturnKind::Result { .. }),
    };

    let cached_body = cached_body(&plan, &sig, &block);
    let invalidate = invalidate_fn(&plan, &attrs, &vis, &sig);
    let refresh = refresh_fn(&plan, &attrs, &vis, &sig, &block);
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #assert_cacheable
            #cached_body
        }
        #invalidate
        #refresh
    })
}

/// The call's key: an expression of a `KeySource` type, to pass inline to
/// `stored_key` (a template's `format_args!`), and one of type
/// `Result<String, ArgKeyError>` (for the companions).
fn key_expr(
    args: &Args,
    sig: &Signature,
    info: &FnInfo,
    fn_name: &str,
    errors: &mut Errors,
) -> Option<(TokenStream, TokenStream)> {
    if let Some(lit) = &args.key {
        if let Some((span, _)) = &args.skip {
            errors.push(syn::Error::new(
                *span,
                "`skip` only shapes the default key; with `key = \"...\"` the key holds exactly what the template names, so remove `skip(...)`",
            ));
        }
        let template = errors.take(Template::parse(lit, info, fn_name))?;
        let rendered = template.render();
        return Some((
            template.render_args(),
            quote!(::cached_kit::__private::std::result::Result::Ok(#rendered)),
        ));
    }
    let skipped: Vec<&syn::Ident> = match &args.skip {
        Some((_, names)) => names.iter().collect(),
        None => Vec::new(),
    };
    for name in &skipped {
        if *name == "self" {
            errors.spanned(
                name,
                "`self` is never part of the default key; there is no need to skip it",
            );
        } else if !info.has(&name.to_string()) {
            errors.spanned(
                name,
                format!(
                    "`skip({name})`: `{name}` is not an argument of `{fn_name}`; {}",
                    info.names()
                ),
            );
        }
    }
    let name_lit = LitStr::new(fn_name, sig.ident.span());
    let start = if info.has_self {
        quote!(::cached_kit::__private::ArgKey::method::<Self>(#name_lit))
    } else {
        quote!(::cached_kit::__private::ArgKey::new(
            ::cached_kit::__private::std::concat!(::cached_kit::__private::std::module_path!(), "::", #name_lit)
        ))
    };
    let mut types = Vec::new();
    let mut consts = Vec::new();
    for param in &sig.generics.params {
        match param {
            GenericParam::Type(t) => {
                let ident = &t.ident;
                types.push(quote!(__cache_key.ty::<#ident>();));
            }
            GenericParam::Const(c) => {
                let ident = &c.ident;
                consts.push(quote!(::cached_kit::__private::key_arg(&mut __cache_key, &#ident);));
            }
            GenericParam::Lifetime(_) => {}
        }
    }
    let mut values = Vec::new();
    for param in info
        .params
        .iter()
        .filter(|p| !skipped.iter().any(|s| **s == p.ident))
    {
        let ident = &param.ident;
        if matches!(param.ty, Type::ImplTrait(_)) {
            types.push(quote!(__cache_key.type_of(&#ident);));
        }
        values.push(quote_spanned! {param.ty.span()=>
            ::cached_kit::__private::key_arg(&mut __cache_key, &#ident);
        });
    }
    let key = quote! {{
        let mut __cache_key = #start;
        #(#types)*
        #(#consts)*
        #(#values)*
        __cache_key.finish()
    }};
    Some((key.clone(), key))
}

/// The async block or closure holding the user's body, with the return type pinned
/// (tracing's fake return edge) so that `?` and `return` behave as written.
fn body_closure(plan: &Plan, sig: &Signature, block: &syn::Block) -> TokenStream {
    let ret = &plan.ret;
    if sig.asyncness.is_some() {
        quote! {
            move || async move {
                #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::needless_return)]
                if false {
                    let __cache_fake_return: #ret = loop {};
                    return __cache_fake_return;
                }
                #block
            }
        }
    } else {
        quote! { move || -> #ret #block }
    }
}

/// The body of the memoized function.
fn cached_body(plan: &Plan, sig: &Signature, block: &syn::Block) -> TokenStream {
    let Plan {
        preamble,
        key_source,
        store_if_def,
        store_if,
        ret,
        stored,
        is_result,
        ..
    } = plan;
    let body = body_closure(plan, sig, block);
    // Spanned on the return type: a type that cannot be cached is reported there.
    let memoize = quote_spanned! {return_span(sig)=>
        (&::cached_kit::__private::Probe::<#stored>::new()).memoize
    };
    let call = |f: TokenStream| {
        quote! {
            #memoize(
                __cache,
                __cache_key,
                &__cache_spec,
                #store_if,
                #f,
            )
        }
    };
    let run = match (sig.asyncness.is_some(), *is_result) {
        (true, true) => {
            let c = call(quote!(__cache_body));
            quote!(#c.await)
        }
        (true, false) => {
            let c = call(quote! {
                move || async move {
                    ::cached_kit::__private::std::result::Result::Ok::<#ret, ::cached_kit::__private::Infallible>(__cache_body().await)
                }
            });
            quote!(::cached_kit::__private::infallible(#c.await))
        }
        (false, true) => {
            let c = call(quote!(move || ::cached_kit::__private::ready(
                __cache_body()
            )));
            quote!(::cached_kit::__private::block_on(#c))
        }
        (false, false) => {
            let c = call(quote!(move || ::cached_kit::__private::ready_ok(
                __cache_body()
            )));
            quote!(::cached_kit::__private::infallible(::cached_kit::__private::block_on(#c)))
        }
    };
    quote! {
        #preamble
        let __cache = ::cached_kit::__private::slot_get(&__CACHE_SLOT);
        // The stored key, rendered once, straight after the cache's key head.
        let __cache_key = ::cached_kit::__private::stored_key(&__cache, &__cache_spec, #key_source);
        #store_if_def
        // `mut`: a sync body that changes a `mut` argument makes the closure `FnMut`.
        #[allow(unused_mut)]
        let mut __cache_body = #body;
        #run
    }
}

/// `cfg` attributes, which companions must share with the function.
fn cfg_attrs(attrs: &[syn::Attribute]) -> impl Iterator<Item = &syn::Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("cfg"))
}

/// `name_invalidate(same arguments) -> Result<bool, CacheError>`.
fn invalidate_fn(
    plan: &Plan,
    attrs: &[syn::Attribute],
    vis: &syn::Visibility,
    sig: &Signature,
) -> TokenStream {
    let mut sig = sig.clone();
    let name = sig.ident.clone();
    sig.ident = format_ident!("{}_invalidate", syn::ext::IdentExt::unraw(&name));
    sig.output = syn::parse_quote! {
        -> ::cached_kit::__private::std::result::Result<::cached_kit::__private::std::primitive::bool, ::cached_kit::__private::CacheError>
    };
    let mut touch = Vec::new();
    for input in &mut sig.inputs {
        match input {
            FnArg::Typed(pt) => {
                if let Pat::Ident(pi) = &mut *pt.pat {
                    pi.mutability = None;
                    let ident = &pi.ident;
                    touch.push(quote!(let _ = &#ident;));
                }
            }
            FnArg::Receiver(_) => touch.push(quote!(let _ = &self;)),
        }
    }
    let preamble = &plan.preamble;
    let key = &plan.key;
    let call = quote! {
        ::cached_kit::__private::invalidate(
            ::cached_kit::__private::slot_get(&__CACHE_SLOT),
            __cache_key,
            &__cache_spec,
        )
    };
    let run = match sig.asyncness {
        Some(_) => quote!(#call.await),
        None => quote!(::cached_kit::__private::block_on(#call)),
    };
    let doc = format!(
        "Deletes the entry that `{name}` cached for these arguments; returns whether one existed.\n\n\
         Generated by `#[cache_fn]`. A backend failure is returned (and counted in the cache's stats)."
    );
    let cfgs = cfg_attrs(attrs);
    quote! {
        #(#cfgs)*
        #[doc = #doc]
        #[allow(clippy::too_many_arguments, clippy::used_underscore_binding)]
        #vis #sig {
            #(#touch)*
            #preamble
            let __cache_key = #key;
            #run
        }
    }
}

/// `name_refresh(same arguments) -> same return type`: runs the body and stores its value.
fn refresh_fn(
    plan: &Plan,
    attrs: &[syn::Attribute],
    vis: &syn::Visibility,
    sig: &Signature,
    block: &syn::Block,
) -> TokenStream {
    let Plan {
        preamble,
        key,
        store_if_def,
        store_if,
        ret,
        stored,
        is_result,
        ..
    } = plan;
    let mut refresh_sig = sig.clone();
    let name = sig.ident.clone();
    refresh_sig.ident = format_ident!("{}_refresh", syn::ext::IdentExt::unraw(&name));
    let body = body_closure(plan, sig, block);
    let refresh = quote_spanned! {return_span(sig)=>
        (&::cached_kit::__private::Probe::<#stored>::new()).refresh
    };
    let call = |value: TokenStream| {
        quote! {
            #refresh(
                ::cached_kit::__private::slot_get(&__CACHE_SLOT),
                __cache_key,
                &__cache_spec,
                #store_if,
                #value,
            )
        }
    };
    let run = match (sig.asyncness.is_some(), *is_result) {
        (true, true) => {
            let c = call(quote!(__cache_body()));
            quote!(#c.await)
        }
        (true, false) => {
            let c = call(quote! {
                async move {
                    ::cached_kit::__private::std::result::Result::Ok::<#ret, ::cached_kit::__private::Infallible>(__cache_body().await)
                }
            });
            quote!(::cached_kit::__private::infallible(#c.await))
        }
        (false, true) => {
            let c = call(quote!(::cached_kit::__private::ready(__cache_body())));
            quote!(::cached_kit::__private::block_on(#c))
        }
        (false, false) => {
            let c = call(quote!(::cached_kit::__private::ready_ok(__cache_body())));
            quote!(::cached_kit::__private::infallible(::cached_kit::__private::block_on(#c)))
        }
    };
    let doc = format!(
        "Runs `{name}`'s body for these arguments and stores its value (subject to the same rules), \
         whatever the cache held; returns the value.\n\nGenerated by `#[cache_fn]`."
    );
    let cfgs = cfg_attrs(attrs);
    quote! {
        #(#cfgs)*
        #[doc = #doc]
        #[allow(clippy::too_many_arguments)]
        #vis #refresh_sig {
            #preamble
            let __cache_key = #key;
            #store_if_def
            // `mut`: a sync body that changes a `mut` argument makes the closure `FnMut`.
        #[allow(unused_mut)]
        let mut __cache_body = #body;
            #run
        }
    }
}
