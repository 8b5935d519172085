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
    let stmts = func.stmts();

    quote! {
        #(#outer_attrs)*
        #vis #sig {
            // Inner attributes apply to the function, body included, as written.
            #(#inner_attrs)*
            ::cached_kit::__cache_view_requires_axum!();
            static __CACHE_VIEW: #p::http::ViewSlot = #p::http::ViewSlot::new(|| #layer);
            let __cache_view_exchange = match __CACHE_VIEW.begin(#head).await {
                #p::std::result::Result::Ok(__cache_view_hit) => return __cache_view_hit,
                #p::std::result::Result::Err(__cache_view_exchange) => __cache_view_exchange,
            };
            let __cache_view_response = async move {
                #fake_return
                #stmts
            }
            .await;
            __cache_view_exchange.finish(__cache_view_response).await
        }
    }
}
