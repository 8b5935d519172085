//! The expansion of `#[cache_evict]`: run the body, then delete the rendered keys and
//! invalidate the rendered tags.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::LitStr;

use super::args::Args;
use crate::ctxt::Ctxt;
use crate::item::MaybeItemFn;
use crate::signature::{contains_impl_trait, return_kind, return_type, FnInfo, ReturnKind};
use crate::template::Template;

pub fn expand(cx: &Ctxt, args: Args, func: MaybeItemFn) -> TokenStream {
    let sig = &func.sig;
    // Evicting never skips the body, so `&mut self` is fine here.
    let info = FnInfo::new(sig, "cache_evict", false, cx);
    // `unraw`: `r#type` is keyed and named as `type`.
    let fn_name = syn::ext::IdentExt::unraw(&sig.ident).to_string();
    let Args {
        key,
        cache,
        version,
        tags,
    } = args;
    let mut keys = Vec::new();
    if !key.is_set() && !tags.is_set() {
        cx.error_at(
            Span::call_site(),
            "#[cache_evict] needs the keys to delete or the tags to invalidate: `#[cache_evict(key = \"product:{id}\")]`, `key = [\"a:{x}\", \"b:{y}\"]` or `tags = [\"product:{id}\"]`",
        );
    }
    for lit in key.take().unwrap_or_default() {
        match Template::parse(&lit, &info, &fn_name) {
            Ok(t) => keys.push(t.render()),
            Err(e) => cx.syn_error(e),
        }
    }
    let mut tag_list = Vec::new();
    for lit in tags.take().unwrap_or_default() {
        match Template::parse_as(&lit, &info, &fn_name, "tag") {
            Ok(t) => tag_list.push(t.render()),
            Err(e) => cx.syn_error(e),
        }
    }
    if cx.has_errors() {
        return TokenStream::new();
    }
    let alias = cache
        .take()
        .unwrap_or_else(|| LitStr::new("default", Span::call_site()));
    let std = quote!(::cached_kit::__private::std);
    let version = match version.take() {
        Some(v) => quote!(#std::option::Option::Some(#v)),
        None => quote!(#std::option::Option::None),
    };

    let ret = return_type(sig);
    let is_result = matches!(return_kind(&ret), ReturnKind::Result { .. });
    let name_lit = LitStr::new(&fn_name, sig.ident.span());
    let asyncness = sig.asyncness.is_some();
    let stmts = func.stmts();
    // The body in its own async block or closure, so that `return` and `?` end the body,
    // not the eviction after it; its type pinned to the return type (tracing's fake
    // return edge) so that inference inside sees it. `impl Trait` cannot be named.
    let run_body = if asyncness {
        let fake_return = (!contains_impl_trait(&ret)).then(|| {
            quote! {
                #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::needless_return, clippy::empty_loop)]
                if false {
                    let __cache_fake_return: #ret = loop {};
                    return __cache_fake_return;
                }
            }
        });
        quote! {
            async move {
                #fake_return
                #stmts
            }.await
        }
    } else {
        quote! { (move || -> #ret { #stmts })() }
    };
    let evict = quote! {
        ::cached_kit::__private::evict(
            ::cached_kit::__private::slot_get(&__CACHE_SLOT),
            &__cache_keys,
            &__cache_tags,
            #std::concat!(#std::module_path!(), "::", #name_lit),
            #version,
        )
    };
    let evict = if asyncness {
        quote!(#evict.await;)
    } else {
        quote!(::cached_kit::__private::block_on(#evict);)
    };
    let evict = if is_result {
        quote! {
            if ::cached_kit::__private::succeeded(&__cache_result) {
                #evict
            }
        }
    } else {
        evict
    };
    let (n_keys, n_tags) = (keys.len(), tag_list.len());
    let outer_attrs = &func.outer_attrs;
    let inner_attrs = &func.inner_attrs;
    let vis = &func.vis;
    let result_ty = if contains_impl_trait(&ret) {
        quote!()
    } else {
        quote!(: #ret)
    };
    quote! {
        #(#outer_attrs)*
        #vis #sig {
            // Inner attributes apply to the function, body included, as written.
            #(#inner_attrs)*
            static __CACHE_SLOT: ::cached_kit::__private::CacheSlot = ::cached_kit::__private::CacheSlot::new(#alias);
            // Rendered before the body runs: the body may consume the arguments.
            let __cache_keys: [::cached_kit::__private::std::string::String; #n_keys] = [#(#keys),*];
            let __cache_tags: [::cached_kit::__private::std::string::String; #n_tags] = [#(#tag_list),*];
            let __cache_result #result_ty = #run_body;
            #evict
            __cache_result
        }
    }
}
