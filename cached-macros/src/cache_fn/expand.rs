//! The expansion of `#[cache_fn]`: the user's body once, as a hidden inner function, and
//! the functions that call it: the memoized function itself and `name_refresh`; beside
//! them `name_invalidate`.
//!
//! ```text
//! #[attrs] vis fn name(args) -> R {          // the cache around one call of the body
//!     read the entry, or run `__cache_fn_body_name(args)` (single-flight) and store it
//! }
//! #[doc(hidden)] fn __cache_fn_body_name(args) -> R { #![inner attrs] body as written }
//! vis fn name_invalidate(args) -> Result<bool, CacheError> { delete the entry }
//! vis fn name_refresh(args) -> R { run `__cache_fn_body_name(args)`, store the value }
//! ```
//!
//! With `tags` or `stale` (the [`Fresh`] plan), the memoized function calls
//! `memoize_tagged` or `memoize_stale` instead of `memoize`, with one `prepare` closure
//! that owns the arguments and returns the rendered tags and the body's call; the
//! runtime calls it only on a miss, a stale hit, or a remote read. With `stale` the
//! arguments must be owned `Send + 'static` values (the refresh outlives the call), and
//! the store predicate is owned too.
//!
//! The body being one function, a `static` in it is one static, `return` and `?` behave
//! as written, and the return type is inferred as the signature says. The inner function
//! sits beside the memoized one (in its module or `impl` block); it is reached as
//! `Self::__cache_fn_body_name` when the function takes `self` or names `Self` (so it
//! is in an `impl` block), else by its bare name.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, GenericParam, LitStr, Pat, Signature, Type};

use super::args::Args;
use crate::ctxt::Ctxt;
use crate::item::{is_cfg, is_lint, MaybeItemFn};
use crate::signature::{
    contains_impl_trait, names_self_type, return_kind, return_span, return_type, FnInfo, ReturnKind,
};
use crate::template::Template;

/// Everything the generated functions share.
struct Plan<'a> {
    func: &'a MaybeItemFn,
    /// `static __CACHE_SLOT`, `__cache_spec`: the common preamble.
    preamble: TokenStream,
    /// The key as a `KeySource` expression, for `lookup` (the memoized call): it
    /// renders the key into the buffer it is given.
    key_source: TokenStream,
    /// The key as a `Result<String, ArgKeyError>` expression (the companions).
    key: TokenStream,
    /// `__cache_store_if`'s definition (empty when everything is stored).
    store_if_def: TokenStream,
    /// The expression passed as `store_if`.
    store_if: TokenStream,
    /// The return type as written (`()` when none is).
    ret: Type,
    /// The type stored: the return type, or the `Ok` type of a `Result`.
    stored: Type,
    /// Whether the function returns a `Result` (so `memoize` returns its own result).
    is_result: bool,
    /// The call of the inner function with the arguments, moved.
    call_body: TokenStream,
    /// `tags` and `stale`, when either is given.
    fresh: Option<Fresh>,
    /// The expression passed as `store_if` to `name_refresh`'s runtime.
    refresh_store_if: TokenStream,
}

/// What `tags` and `stale` add.
struct Fresh {
    /// Each tag, an expression of type `String` over the arguments.
    tags: Vec<TokenStream>,
    /// Whether `stale` is given (the background refresh).
    stale: bool,
    /// `stale_arg(&arg);` for each argument, spanned on it (with `stale`).
    assert_args: TokenStream,
}

pub fn expand(cx: &Ctxt, args: Args, func: MaybeItemFn) -> TokenStream {
    let sig = &func.sig;
    if let Some(c) = &sig.constness {
        cx.error_spanned_by(
            c,
            "#[cache_fn] cannot go on a `const fn`: a cached call reads the cache at run time",
        );
    }
    let info = FnInfo::new(sig, "cache_fn", true, cx);
    // `unraw`: `r#type` is keyed and named as `type`.
    let fn_name = syn::ext::IdentExt::unraw(&sig.ident).to_string();
    let ret = return_type(sig);
    if contains_impl_trait(&ret) {
        cx.error_spanned_by(
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

    let Args {
        ttl,
        key,
        cache,
        skip,
        version,
        unless,
        cache_none,
        lock,
        lock_ttl,
        stale,
        tags,
    } = args;
    let Some((key_source, key)) = key_expr(cx, key.take(), skip.take(), sig, &info, &fn_name)
    else {
        return TokenStream::new();
    };
    let std = quote!(::cached_kit::__private::std);
    let some_or_none = |value: Option<TokenStream>| match value {
        Some(v) => quote!(#std::option::Option::Some(#v)),
        None => quote!(#std::option::Option::None),
    };
    let lock_on = matches!(lock.get(), Some((true, _)));
    if let Some((kw, _)) = lock_ttl.get() {
        // An invalid `lock` was reported already.
        if !lock_on && (!lock.is_set() || lock.get().is_some()) {
            cx.error_spanned_by(
                kw,
                "`lock_ttl` is how long the cross-process lock of `lock = true` is held, and there is no lock here: add `lock = true`, or remove `lock_ttl`",
            );
        }
    }
    let alias = cache
        .take()
        .unwrap_or_else(|| LitStr::new("default", Span::call_site()));

    let mut conditions = Vec::new();
    if let Some((cache_none, span)) = cache_none.take() {
        if !can_be_none {
            cx.error_at(
                span,
                format!("`cache_none` only applies to functions returning `Option<T>` or `Result<Option<T>, E>`, and `{fn_name}` returns neither"),
            );
        } else if !cache_none {
            conditions.push(quote!(::cached_kit::__private::is_some(__v)));
        }
    }
    let stale_on = stale.get().is_some();
    if stale_on {
        check_stale_arguments(cx, sig);
    }
    let mut tag_templates = Vec::new();
    for lit in tags.take().unwrap_or_default() {
        match Template::parse_as(&lit, &info, &fn_name, "tag") {
            Ok(t) => tag_templates.push(t.render()),
            Err(e) => cx.syn_error(e),
        }
    }
    let mut store_if_def = TokenStream::new();
    if stale_on {
        // Owned: a background refresh decides whether to store after the call returned.
        if let Some(unless) = unless.take() {
            store_if_def = quote_spanned! {unless.span()=>
                let __cache_unless = ::cached_kit::__private::predicate::<#stored, _>(#unless);
            };
            conditions.push(quote!(!__cache_unless(__v)));
        }
    } else if let Some(unless) = unless.take() {
        store_if_def = quote_spanned! {unless.span()=>
            let __cache_unless: &(dyn ::cached_kit::__private::std::ops::Fn(&#stored) -> ::cached_kit::__private::std::primitive::bool
                + ::cached_kit::__private::std::marker::Send + ::cached_kit::__private::std::marker::Sync) = &(#unless);
        };
        conditions.push(quote!(!__cache_unless(__v)));
    }
    let (store_if, refresh_store_if) = if stale_on {
        if conditions.is_empty() {
            store_if_def.extend(quote! {
                let __cache_store_if = ::cached_kit::__private::no_store_if::<#stored>();
            });
        } else {
            store_if_def.extend(quote! {
                let __cache_store_if = #std::option::Option::Some(
                    move |__v: &#stored| -> ::cached_kit::__private::std::primitive::bool { #(#conditions)&&* }
                );
            });
        }
        (
            quote!(__cache_store_if),
            quote!(::cached_kit::__private::borrow_store_if(&__cache_store_if)),
        )
    } else if conditions.is_empty() {
        let none = quote!(#std::option::Option::None);
        (none.clone(), none)
    } else {
        store_if_def.extend(quote! {
            let __cache_store_if = |__v: &#stored| -> ::cached_kit::__private::std::primitive::bool { #(#conditions)&&* };
        });
        let some = quote!(#std::option::Option::Some(&__cache_store_if));
        (some.clone(), some)
    };
    if cx.has_errors() {
        return TokenStream::new();
    }

    let name_lit = LitStr::new(&fn_name, sig.ident.span());
    let version = some_or_none(version.take());
    let ttl = some_or_none(ttl.take());
    let lock_ttl = some_or_none(lock_ttl.take().map(|(_, ttl)| ttl));
    let stale = some_or_none(stale.take().map(|(_, stale)| stale));
    let fresh = (stale_on || !tag_templates.is_empty()).then(|| Fresh {
        tags: tag_templates,
        stale: stale_on,
        assert_args: if stale_on {
            assert_stale_args(sig, &info)
        } else {
            TokenStream::new()
        },
    });
    let imports = if fresh.is_some() {
        quote!(
            use ::cached_kit::__private::{
                Uncached as _, UncachedFresh as _, ViaCache as _, ViaCacheFresh as _,
            };
        )
    } else {
        quote!(
            use ::cached_kit::__private::{Uncached as _, ViaCache as _};
        )
    };
    let preamble = quote! {
        #[allow(unused_imports)]
        #imports
        static __CACHE_SLOT: ::cached_kit::__private::CacheSlot = ::cached_kit::__private::CacheSlot::new(#alias);
        let __cache_spec = ::cached_kit::__private::Spec {
            name: #std::concat!(#std::module_path!(), "::", #name_lit),
            version: #version,
            ttl: #ttl,
            lock: #lock_on,
            lock_ttl: #lock_ttl,
            stale: #stale,
        };
    };
    let plan = Plan {
        func: &func,
        preamble,
        key_source,
        key,
        store_if_def,
        store_if,
        ret,
        stored,
        is_result: matches!(kind, ReturnKind::Result { .. }),
        call_body: call_body(&func, &info),
        fresh,
        refresh_store_if,
    };

    let memoized = memoized_fn(&plan);
    let body = body_fn(&plan);
    let invalidate = invalidate_fn(&plan);
    let refresh = refresh_fn(&plan);
    quote! {
        #memoized
        #body
        #invalidate
        #refresh
    }
}

/// The name of the inner function holding the body.
fn body_ident(sig: &Signature) -> syn::Ident {
    format_ident!(
        "__cache_fn_body_{}",
        syn::ext::IdentExt::unraw(&sig.ident),
        span = sig.ident.span()
    )
}

/// `sig` with its arguments' `mut` removed: the generated functions only pass them on
/// (the inner function keeps the signature as written).
fn passing_sig(sig: &Signature) -> Signature {
    let mut sig = sig.clone();
    for input in &mut sig.inputs {
        if let FnArg::Typed(pt) = input {
            if let Pat::Ident(pi) = &mut *pt.pat {
                pi.mutability = None;
            }
        }
    }
    sig
}

/// The call of the inner function: `Self::__cache_fn_body_f::<T, N>(self, a, b)`.
fn call_body(func: &MaybeItemFn, info: &FnInfo) -> TokenStream {
    let sig = &func.sig;
    let ident = body_ident(sig);
    let in_impl = info.has_self || names_self_type(sig, &func.stmts);
    let path = if in_impl {
        quote_spanned!(sig.ident.span()=> Self::#ident)
    } else {
        quote!(#ident)
    };
    // Type and const parameters by name (a type used only in the return type cannot be
    // inferred); lifetimes are late-bound and left out.
    let generics: Vec<&syn::Ident> = sig
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(&t.ident),
            GenericParam::Const(c) => Some(&c.ident),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    let turbofish = if generics.is_empty() {
        quote!()
    } else {
        quote!(::<#(#generics),*>)
    };
    let receiver = info.has_self.then(|| quote!(self));
    let args = receiver.into_iter().chain(info.params.iter().map(|p| {
        let ident = &p.ident;
        quote!(#ident)
    }));
    let call = quote!(#path #turbofish (#(#args),*));
    if sig.unsafety.is_some() {
        quote!(unsafe { #call })
    } else {
        call
    }
}

/// The memoized function: the signature as written, the cache around the body's call.
fn memoized_fn(plan: &Plan<'_>) -> TokenStream {
    let Plan {
        func,
        preamble,
        key_source,
        store_if_def,
        store_if,
        ret,
        stored,
        is_result,
        call_body,
        ..
    } = plan;
    let sig = &func.sig;
    // Spanned on the return type: a type that cannot be cached is reported there, once.
    let assert_cacheable = quote_spanned! {return_span(sig)=>
        ::cached_kit::__private::assert_cacheable::<#stored>();
    };
    let probe = quote_spanned! {return_span(sig)=>
        (&::cached_kit::__private::Probe::<#stored>::new())
    };
    let hit = if *is_result {
        quote!(::cached_kit::__private::std::result::Result::Ok(
            __cache_value
        ))
    } else {
        quote!(__cache_value)
    };
    // The hit path: the key rendered into a reused buffer and read without a future;
    // a hit returns here, before any future of the cache's is made.
    let lookup = if plan.fresh.as_ref().is_some_and(|f| f.stale) {
        // Stale: the fresh runtime reads the entry itself (an envelope whose freshness
        // decides between a hit, a stale hit that starts a refresh, and a miss).
        quote! {
            let __cache = ::cached_kit::__private::slot_get(&__CACHE_SLOT);
            let __cache_key = ::cached_kit::__private::stored_key(&__cache, &__cache_spec, #key_source);
        }
    } else {
        quote! {
            let __cache_missed = match #probe.lookup(&__CACHE_SLOT, &__cache_spec, #key_source) {
                ::cached_kit::__private::Lookup::Hit(__cache_value) => return #hit,
                ::cached_kit::__private::Lookup::Miss(__cache_missed) => __cache_missed,
            };
        }
    };
    let call = |f: TokenStream| {
        quote! {
            #probe.memoize(
                __cache_missed,
                &__cache_spec,
                #store_if,
                #f,
            )
        }
    };
    let run = match (sig.asyncness.is_some(), *is_result) {
        // Tags or stale: the fresh runtime, with one `prepare` closure.
        _ if plan.fresh.is_some() => fresh_run(plan),
        (true, true) => {
            let c = call(quote!(move || #call_body));
            quote!(#c.await)
        }
        (true, false) => {
            let c = call(quote! {
                move || async move {
                    ::cached_kit::__private::std::result::Result::Ok::<#ret, ::cached_kit::__private::Infallible>(#call_body.await)
                }
            });
            quote!(::cached_kit::__private::infallible(#c.await))
        }
        (false, true) => {
            let c = call(quote!(move || ::cached_kit::__private::ready(#call_body)));
            quote!(::cached_kit::__private::block_on(#c))
        }
        (false, false) => {
            let c = call(quote!(move || ::cached_kit::__private::ready_ok(#call_body)));
            quote!(::cached_kit::__private::infallible(::cached_kit::__private::block_on(#c)))
        }
    };
    // The user's attributes as written, except that an `#[expect(lint)]` becomes
    // `#[allow(lint)]`: the lint it expects is in the body, which is elsewhere now.
    let attrs = func.outer_attrs.iter().map(|attr| {
        if attr.path().is_ident("expect") {
            let mut attr = attr.clone();
            if let syn::Meta::List(list) = &mut attr.meta {
                list.path = syn::parse_quote_spanned!(list.path.span()=> allow);
            }
            quote!(#attr)
        } else {
            quote!(#attr)
        }
    });
    let unsafe_allow = sig.unsafety.map(|_| quote!(#[allow(unused_unsafe)]));
    let vis = &func.vis;
    let sig = passing_sig(sig);
    quote! {
        #(#attrs)*
        #unsafe_allow
        #vis #sig {
            #assert_cacheable
            #preamble
            #lookup
            #store_if_def
            #run
        }
    }
}

/// The inner function: the signature as written (renamed) and the body as written,
/// inner attributes included, under the function's `cfg` and lint attributes.
fn body_fn(plan: &Plan<'_>) -> TokenStream {
    let func = plan.func;
    let mut sig = func.sig.clone();
    sig.ident = body_ident(&func.sig);
    let attrs = func.outer_attrs.iter().filter(|a| is_cfg(a) || is_lint(a));
    let body = func.body();
    quote! {
        #(#attrs)*
        #[doc(hidden)]
        #[allow(dead_code, clippy::too_many_arguments)]
        #sig #body
    }
}

/// `cfg` attributes, which companions must share with the function.
fn cfg_attrs(func: &MaybeItemFn) -> impl Iterator<Item = &syn::Attribute> {
    func.outer_attrs.iter().filter(|a| is_cfg(a))
}

/// `name_invalidate(same arguments) -> Result<bool, CacheError>`.
fn invalidate_fn(plan: &Plan<'_>) -> TokenStream {
    let func = plan.func;
    let mut sig = passing_sig(&func.sig);
    let name = func.sig.ident.clone();
    sig.ident = format_ident!("{}_invalidate", syn::ext::IdentExt::unraw(&name));
    sig.output = syn::parse_quote! {
        -> ::cached_kit::__private::std::result::Result<::cached_kit::__private::std::primitive::bool, ::cached_kit::__private::CacheError>
    };
    // Arguments the key does not use are still used.
    let mut touch = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Typed(pt) => {
                if let Pat::Ident(pi) = &*pt.pat {
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
    let cfgs = cfg_attrs(func);
    let vis = &func.vis;
    quote! {
        #(#cfgs)*
        #[doc = #doc]
        #[allow(dead_code, clippy::too_many_arguments, clippy::used_underscore_binding)]
        #vis #sig {
            #(#touch)*
            #preamble
            let __cache_key = #key;
            #run
        }
    }
}

/// `name_refresh(same arguments) -> same return type`: runs the body and stores its value.
fn refresh_fn(plan: &Plan<'_>) -> TokenStream {
    let Plan {
        func,
        preamble,
        key,
        store_if_def,
        ret,
        stored,
        is_result,
        call_body,
        ..
    } = plan;
    let mut sig = passing_sig(&func.sig);
    let name = func.sig.ident.clone();
    sig.ident = format_ident!("{}_refresh", syn::ext::IdentExt::unraw(&name));
    let (refresh, tags_def, tags_arg) = match &plan.fresh {
        Some(fresh) => {
            let tags = &fresh.tags;
            (
                quote_spanned! {return_span(&func.sig)=>
                    (&::cached_kit::__private::Probe::<#stored>::new()).refresh_fresh
                },
                // Rendered before the body takes the arguments.
                quote! {
                    let __cache_tags: ::cached_kit::__private::std::vec::Vec<::cached_kit::__private::std::string::String> =
                        ::cached_kit::__private::std::vec![#(#tags),*];
                },
                quote!(__cache_tags,),
            )
        }
        None => (
            quote_spanned! {return_span(&func.sig)=>
                (&::cached_kit::__private::Probe::<#stored>::new()).refresh
            },
            TokenStream::new(),
            TokenStream::new(),
        ),
    };
    let store_if = &plan.refresh_store_if;
    let call = |value: TokenStream| {
        quote! {
            #refresh(
                ::cached_kit::__private::slot_get(&__CACHE_SLOT),
                __cache_key,
                &__cache_spec,
                #store_if,
                #tags_arg
                #value,
            )
        }
    };
    let run = match (sig.asyncness.is_some(), *is_result) {
        (true, true) => {
            let c = call(quote!(#call_body));
            quote!(#c.await)
        }
        (true, false) => {
            let c = call(quote! {
                async move {
                    ::cached_kit::__private::std::result::Result::Ok::<#ret, ::cached_kit::__private::Infallible>(#call_body.await)
                }
            });
            quote!(::cached_kit::__private::infallible(#c.await))
        }
        (false, true) => {
            let c = call(quote!(::cached_kit::__private::ready(#call_body)));
            quote!(::cached_kit::__private::block_on(#c))
        }
        (false, false) => {
            let c = call(quote!(::cached_kit::__private::ready_ok(#call_body)));
            quote!(::cached_kit::__private::infallible(::cached_kit::__private::block_on(#c)))
        }
    };
    let doc = format!(
        "Runs `{name}`'s body for these arguments and stores its value (subject to the same rules), \
         whatever the cache held; returns the value.\n\nGenerated by `#[cache_fn]`."
    );
    let cfgs = cfg_attrs(func);
    let unsafe_allow = sig.unsafety.map(|_| quote!(#[allow(unused_unsafe)]));
    let vis = &func.vis;
    quote! {
        #(#cfgs)*
        #[doc = #doc]
        #[allow(dead_code, clippy::too_many_arguments)]
        #unsafe_allow
        #vis #sig {
            #preamble
            let __cache_key = #key;
            #store_if_def
            #tags_def
            #run
        }
    }
}

/// The memoized call of a function with `tags` or `stale`: `memoize_tagged` or
/// `memoize_stale` with a `prepare` closure that owns the arguments.
fn fresh_run(plan: &Plan<'_>) -> TokenStream {
    let Plan {
        func,
        store_if,
        ret,
        stored,
        is_result,
        call_body,
        fresh,
        ..
    } = plan;
    let Some(fresh) = fresh else {
        return TokenStream::new();
    };
    let sig = &func.sig;
    // Tags only: the plain hit path ran first (it checks an in-process entry's tags),
    // and a miss continues from it. Stale: the fresh runtime does the reading too.
    let (method, target) = if fresh.stale {
        (quote!(memoize_stale), quote!(__cache, __cache_key,))
    } else {
        (quote!(memoize_tagged_missed), quote!(__cache_missed,))
    };
    let memoize = quote_spanned! {return_span(sig)=>
        (&::cached_kit::__private::Probe::<#stored>::new()).#method
    };
    let f = match (sig.asyncness.is_some(), *is_result) {
        (true, true) => quote!(move || #call_body),
        (true, false) => quote! {
            move || async move {
                ::cached_kit::__private::std::result::Result::Ok::<#ret, ::cached_kit::__private::Infallible>(#call_body.await)
            }
        },
        (false, true) => quote!(move || ::cached_kit::__private::ready(#call_body)),
        (false, false) => quote!(move || ::cached_kit::__private::ready_ok(#call_body)),
    };
    let tags = &fresh.tags;
    let assert_args = &fresh.assert_args;
    // The tags are rendered first, from the arguments the closure owns, which then
    // move into the body's call.
    let c = quote! {
        #memoize(
            #target
            &__cache_spec,
            #store_if,
            move || (::cached_kit::__private::std::vec![#(#tags),*], #f),
        )
    };
    let run = match (sig.asyncness.is_some(), *is_result) {
        (true, true) => quote!(#c.await),
        (true, false) => quote!(::cached_kit::__private::infallible(#c.await)),
        (false, true) => quote!(::cached_kit::__private::block_on(#c)),
        (false, false) => {
            quote!(::cached_kit::__private::infallible(::cached_kit::__private::block_on(#c)))
        }
    };
    quote! {
        #assert_args
        #run
    }
}

/// With `stale`, a refresh runs after the call returned, with the arguments moved into
/// it: a borrowed argument (or `&self`) is a compile error that says what to take.
fn check_stale_arguments(cx: &Ctxt, sig: &Signature) {
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) if r.reference.is_some() || matches!(*r.ty, Type::Reference(_)) => {
                cx.error_spanned_by(
                    r,
                    "`stale` refreshes in the background after this call has returned, so the refresh takes `self` with it, and `&self` is borrowed: \
                     take `self: Arc<Self>` (or `self` of a `Send + 'static` type), or cache a free function of owned arguments",
                );
            }
            FnArg::Typed(pt) => {
                let name = match &*pt.pat {
                    Pat::Ident(pi) => pi.ident.to_string(),
                    _ => "this argument".to_owned(),
                };
                if let Some(what) = borrowed(&pt.ty) {
                    cx.error_spanned_by(
                        pt,
                        format!(
                            "`stale` refreshes in the background after this call has returned, so every argument moves into the refresh, and `{name}` {what}: \
                             take it owned (`String` for `&str`, `Vec<T>` for `&[T]`, `Arc<T>` for a shared `&T`)"
                        ),
                    );
                }
            }
            FnArg::Receiver(_) => {}
        }
    }
}

/// Why a type cannot move into a `'static` refresh, if it visibly borrows.
fn borrowed(ty: &Type) -> Option<&'static str> {
    struct Lifetimes(bool);
    impl<'ast> syn::visit::Visit<'ast> for Lifetimes {
        fn visit_lifetime(&mut self, lt: &'ast syn::Lifetime) {
            if lt.ident != "static" {
                self.0 = true;
            }
        }
    }
    if matches!(ty, Type::Reference(r) if r.lifetime.as_ref().is_none_or(|lt| lt.ident != "static"))
    {
        return Some("is a reference");
    }
    let mut found = Lifetimes(false);
    syn::visit::Visit::visit_type(&mut found, ty);
    found.0.then_some("borrows (it names a lifetime)")
}

/// `stale_arg(&arg);` for every argument, spanned on its type: an argument that is not
/// `Send + 'static` is reported there, with why.
fn assert_stale_args(sig: &Signature, info: &FnInfo) -> TokenStream {
    let mut out = TokenStream::new();
    for input in &sig.inputs {
        if let FnArg::Receiver(r) = input {
            out.extend(quote_spanned!(r.span()=> ::cached_kit::__private::stale_arg(&self);));
        }
    }
    for param in &info.params {
        let ident = &param.ident;
        out.extend(quote_spanned!(param.ty.span()=> ::cached_kit::__private::stale_arg(&#ident);));
    }
    out
}

/// The call's key: an expression of a `KeySource` type, to pass inline to `lookup` (a
/// template's `format_args!`, or a closure appending the default key to a buffer), and
/// one of type `Result<String, ArgKeyError>` (for the companions).
fn key_expr(
    cx: &Ctxt,
    template: Option<LitStr>,
    skip: Option<(syn::Ident, Vec<syn::Ident>)>,
    sig: &Signature,
    info: &FnInfo,
    fn_name: &str,
) -> Option<(TokenStream, TokenStream)> {
    if let Some(lit) = &template {
        if let Some((kw, _)) = &skip {
            cx.error_spanned_by(
                kw,
                "`skip` only shapes the default key; with `key = \"...\"` the key holds exactly what the template names, so remove `skip(...)`",
            );
        }
        let template = match Template::parse(lit, info, fn_name) {
            Ok(t) => t,
            Err(e) => {
                cx.syn_error(e);
                return None;
            }
        };
        let rendered = template.render();
        return Some((
            template.render_into(),
            quote!(::cached_kit::__private::std::result::Result::Ok(#rendered)),
        ));
    }
    let skipped: Vec<syn::Ident> = skip.map(|(_, names)| names).unwrap_or_default();
    for name in &skipped {
        if name == "self" {
            cx.error_spanned_by(
                name,
                "`self` is never part of the default key; there is no need to skip it",
            );
        } else if !info.has(&name.to_string()) {
            cx.error_spanned_by(
                name,
                format!(
                    "`skip({name})`: `{name}` is not an argument of `{fn_name}`; {}",
                    info.names()
                ),
            );
        }
    }
    let name_lit = LitStr::new(fn_name, sig.ident.span());
    let path = quote! {
        ::cached_kit::__private::std::concat!(::cached_kit::__private::std::module_path!(), "::", #name_lit)
    };
    let (start, append) = if info.has_self {
        (
            quote!(::cached_kit::__private::ArgKey::method::<Self>(#name_lit)),
            quote!(::cached_kit::__private::ArgKey::method_append_to::<Self>(__cache_out, #name_lit)),
        )
    } else {
        (
            quote!(::cached_kit::__private::ArgKey::new(#path)),
            quote!(::cached_kit::__private::ArgKey::append_to(__cache_out, #path)),
        )
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
    for param in info.params.iter().filter(|p| !skipped.contains(&p.ident)) {
        let ident = &param.ident;
        if matches!(param.ty, Type::ImplTrait(_)) {
            types.push(quote!(__cache_key.type_of(&#ident);));
        }
        values.push(quote_spanned! {param.ty.span()=>
            ::cached_kit::__private::key_arg(&mut __cache_key, &#ident);
        });
    }
    let owned = quote! {{
        let mut __cache_key = #start;
        #(#types)*
        #(#consts)*
        #(#values)*
        __cache_key.finish()
    }};
    // Appends the key to the buffer `lookup` renders the stored key in.
    let appended = quote! {
        |__cache_out: &mut ::cached_kit::__private::std::string::String| {
            let mut __cache_key = #append;
            #(#types)*
            #(#consts)*
            #(#values)*
            __cache_key.end()
        }
    };
    Some((appended, owned))
}

#[cfg(test)]
mod tests {
    use quote::quote;

    /// The `Spec { .. }` the expansion builds, as a string without spaces.
    fn spec_of(args: proc_macro2::TokenStream) -> String {
        let item = quote! { fn f(x: u32) -> u32 { x } };
        let out = super::super::cache_fn(args, item)
            .to_string()
            .replace(' ', "");
        let start = out.find("Spec{").expect("a Spec");
        let end = start + out[start..].find('}').expect("its end");
        out[start..=end].to_owned()
    }

    #[test]
    fn lock_ttl_reaches_the_spec() {
        assert!(spec_of(quote!(lock = true, lock_ttl = 30)).contains(
            "lock:true,lock_ttl:::cached_kit::__private::std::option::Option::Some(::cached_kit::__private::std::time::Duration::from_secs(30u64))"
        ));
        assert!(spec_of(quote!(lock = true, lock_ttl = std::time::Duration::from_millis(1500)))
            .contains("lock_ttl:::cached_kit::__private::std::option::Option::Some(::cached_kit::__private::ttl(std::time::Duration::from_millis(1500)))"));
        assert!(spec_of(quote!(lock = true))
            .contains("lock_ttl:::cached_kit::__private::std::option::Option::None"));
    }
}
