//! The expansion of `#[cache_view]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ReturnType};

use super::args::Args;
use crate::ctxt::Ctxt;
use crate::item::MaybeItemFn;
use crate::signature::contains_impl_trait;

/// The handler with a `RequestHead` first argument, a cache lookup before its body and
/// a store after it.
///
/// The body is one closure, `move || async move { body }`, built before the lookup: it
/// takes the extracted arguments, so on a miss it runs in line and on a stale hit (with
/// `stale`) it moves into the background refresh.
pub fn expand(cx: &Ctxt, args: Args, func: MaybeItemFn) -> TokenStream {
    let MaybeItemFn {
        outer_attrs,
        inner_attrs,
        vis,
        ..
    } = &func;
    let mut sig = func.sig.clone();
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            "#[cache_view] goes on an axum handler, which is an `async fn`: write `async fn`",
        );
    }
    if let Some(FnArg::Receiver(r)) = sig.inputs.first() {
        cx.error_spanned_by(
            r,
            "#[cache_view] goes on an axum handler, which takes no `self`: make it a free function or an associated function",
        );
    }
    if cx.has_errors() {
        return TokenStream::new();
    }
    let p = quote!(::cached_kit::__private);
    let name = sig.ident.to_string();

    let mut layer = quote! {
        #p::http::CacheLayer::new()
    };
    if let Some(alias) = args.cache.get() {
        layer = quote! { #layer.cache(#alias) };
    }
    layer = quote! {
        #layer
            .resolver(#p::slot_get)
            .namespace(#p::std::concat!(#p::std::module_path!(), "::", #name))
    };
    if let Some(vary) = args.vary.get() {
        layer = quote! { #layer.vary([#(#vary),*]) };
    }
    if let Some((shared, _)) = args.shared.get() {
        layer = quote! { #layer.shared(#shared) };
    }
    if let Some(max) = args.max_body.get() {
        layer = quote_spanned! {max.span()=>
            #layer.max_body(#p::std::convert::identity::<#p::std::primitive::usize>(#max))
        };
    }
    if let Some(ttl) = args.ttl.get() {
        layer = quote! { #layer.ttl(#ttl) };
    }
    if let Some((_, stale)) = args.stale.get() {
        layer = quote! { #layer.stale(#stale) };
    }
    if let Some(tags) = args.tags.get() {
        layer = quote! { #layer.tags([#(#tags),*]) };
    }

    // Fix the body's type to the written return type, so that `?` and `return` inside
    // it behave as written (tracing's fake return edge). `impl Trait` cannot be named.
    let fake_return = match &sig.output {
        ReturnType::Type(_, ty) if !contains_impl_trait(ty) => quote_spanned! {ty.span()=>
            #[allow(
                unknown_lints,
                unreachable_code,
                clippy::diverging_sub_expression,
                clippy::let_unit_value,
                clippy::empty_loop
            )]
            if false {
                let __cache_view_fake: #ty = loop {};
                return __cache_view_fake;
            }
        },
        // Keep the written `impl Trait` named, so its imports stay used once the return
        // type becomes `Response` (in argument position, where `impl Trait` is allowed;
        // not for generic handlers, whose parameters a nested fn cannot see).
        ReturnType::Type(_, ty) if sig.generics.params.is_empty() => quote_spanned! {ty.span()=>
            #[allow(dead_code, non_snake_case, clippy::all)]
            fn __cache_view_return_type(_: #ty) {}
        },
        _ => quote!(),
    };

    // With `stale`, the refresh moves the arguments into a spawned task: each one is
    // checked, with a readable error on its type.
    let (stale_checks, on_stale) = match args.stale.get() {
        Some((kw, _)) => {
            let checks = sig.inputs.iter().filter_map(|input| match input {
                FnArg::Typed(pt) if !contains_impl_trait(&pt.ty) => {
                    let ty = &pt.ty;
                    Some(quote_spanned! {ty.span()=> #p::http::stale_view_arg::<#ty>();})
                }
                _ => None,
            });
            let checks: TokenStream = checks.collect();
            let on_stale = quote_spanned! {kw.span()=>
                __cache_view_stale.revalidate(__cache_view_body)
            };
            (checks, on_stale)
        }
        // Never stale without a window; answered as it is, should it happen.
        None => (quote!(), quote!(__cache_view_stale.serve())),
    };

    let head = format_ident!("__cache_view_head");
    sig.inputs
        .insert(0, syn::parse_quote!(#head: #p::http::RequestHead));
    sig.output = syn::parse_quote!(-> #p::http::Response);
    let stmts = func.stmts();

    quote! {
        #(#outer_attrs)*
        #vis #sig {
            // Inner attributes apply to the function, body included, as written.
            #(#inner_attrs)*
            ::cached_kit::__cache_view_requires_axum!();
            static __CACHE_VIEW: #p::http::ViewSlot = #p::http::ViewSlot::new(|| #layer);
            #stale_checks
            let __cache_view_body = move || async move {
                #fake_return
                #stmts
            };
            match __CACHE_VIEW.lookup(#head).await {
                #p::http::Lookup::Hit(__cache_view_hit) => __cache_view_hit,
                #p::http::Lookup::Stale(__cache_view_stale) => #on_stale,
                #p::http::Lookup::Miss(__cache_view_exchange) => {
                    __cache_view_exchange.finish(__cache_view_body().await).await
                }
            }
        }
    }
}
