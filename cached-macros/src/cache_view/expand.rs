//! The expansion of `#[cache_view]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType};

use super::args::ViewArgs;
use crate::common::contains_impl_trait;

/// The handler with a `RequestHead` first argument, a cache lookup before its body and
/// a store after it.
pub fn expand(args: ViewArgs, func: ItemFn) -> syn::Result<TokenStream> {
    let ItemFn {
        attrs,
        vis,
        mut sig,
        block,
    } = func;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            "#[cache_view] goes on an axum handler, which is an `async fn`: write `async fn`",
        ));
    }
    if let Some(FnArg::Receiver(r)) = sig.inputs.first() {
        return Err(syn::Error::new_spanned(
            r,
            "#[cache_view] goes on an axum handler, which takes no `self`: make it a free function or an associated function",
        ));
    }
    let p = quote!(::cached_kit::__private);
    let name = sig.ident.to_string();

    let mut layer = quote! {
        #p::http::CacheLayer::new()
    };
    if let Some(alias) = &args.cache {
        layer = quote! { #layer.cache(#alias) };
    }
    layer = quote! {
        #layer
            .resolver(#p::slot_get)
            .namespace(#p::std::concat!(#p::std::module_path!(), "::", #name))
    };
    if !args.vary.is_empty() {
        let vary = &args.vary;
        layer = quote! { #layer.vary([#(#vary),*]) };
    }
    if let Some(shared) = args.shared {
        layer = quote! { #layer.shared(#shared) };
    }
    if let Some(max) = &args.max_body {
        layer = quote_spanned! {max.span()=> #layer.max_body({ let __cache_max_body: usize = #max; __cache_max_body }) };
    }
    let ttl = match &args.ttl {
        Some(ttl) => quote! {
            match #ttl {
                #p::std::option::Option::Some(__cache_ttl) => __cache_layer.ttl(__cache_ttl),
                #p::std::option::Option::None => __cache_layer,
            }
        },
        None => quote!(__cache_layer),
    };

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

    let head = format_ident!("__cache_view_head");
    sig.inputs
        .insert(0, syn::parse_quote!(#head: #p::http::RequestHead));
    sig.output = syn::parse_quote!(-> #p::http::Response);

    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            ::cached_kit::__cache_view_requires_axum!();
            static __CACHE_VIEW: #p::http::ViewSlot = #p::http::ViewSlot::new(|| {
                let __cache_layer = #layer;
                #ttl
            });
            let __cache_view_exchange = match __CACHE_VIEW.begin(#head).await {
                #p::std::result::Result::Ok(__cache_view_hit) => return __cache_view_hit,
                #p::std::result::Result::Err(__cache_view_exchange) => __cache_view_exchange,
            };
            let __cache_view_response = async move {
                #fake_return
                #block
            }
            .await;
            __cache_view_exchange.finish(__cache_view_response).await
        }
    })
}
