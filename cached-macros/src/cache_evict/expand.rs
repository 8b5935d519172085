//! The expansion of `#[cache_evict]`: run the body, then delete the rendered keys.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{ItemFn, LitStr};

use super::args::Args;
use crate::common::{return_kind, return_type, FnInfo, ReturnKind};
use crate::template::Template;

pub fn expand(mut args: Args, func: ItemFn) -> syn::Result<TokenStream> {
    let mut errors = std::mem::take(&mut args.errors);
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    // Evicting never skips the body, so `&mut self` is fine here.
    let info = FnInfo::new(&sig, "cache_evict", false, &mut errors);
    // `unraw`: `r#type` is keyed and named as `type`.
    let fn_name = syn::ext::IdentExt::unraw(&sig.ident).to_string();
    let mut keys = Vec::new();
    match &args.keys {
        None => errors.push(syn::Error::new(
            Span::call_site(),
            "#[cache_evict] needs the keys to delete: `#[cache_evict(key = \"product:{id}\")]` or `key = [\"a:{x}\", \"b:{y}\"]`",
        )),
        Some(lits) => {
            for lit in lits {
                if let Some(t) = errors.take(Template::parse(lit, &info, &fn_name)) {
                    keys.push(t.render());
                }
            }
        }
    }
    let alias = match &args.cache {
        Some(lit) if lit.value().is_empty() => {
            errors.spanned(
                lit,
                "`cache` names a cache alias, e.g. `cache = \"shared\"`; it cannot be empty",
            );
            lit.clone()
        }
        Some(lit) => lit.clone(),
        None => LitStr::new("default", Span::call_site()),
    };
    errors.finish()?;

    let ret = return_type(&sig);
    let is_result = matches!(return_kind(&ret), ReturnKind::Result { .. });
    let name_lit = LitStr::new(&fn_name, sig.ident.span());
    let asyncness = sig.asyncness.is_some();
    let run_body = if asyncness {
        quote! {
            async move {
                #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::needless_return)]
                if false {
                    let __cache_fake_return: #ret = loop {};
                    return __cache_fake_return;
                }
                #block
            }.await
        }
    } else {
        quote! { (move || -> #ret #block)() }
    };
    let evict = quote! {
        ::cached_kit::__private::evict(
            ::cached_kit::__private::slot_get(&__CACHE_SLOT),
            &__cache_keys,
            ::cached_kit::__private::std::concat!(::cached_kit::__private::std::module_path!(), "::", #name_lit),
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
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            static __CACHE_SLOT: ::cached_kit::__private::CacheSlot = ::cached_kit::__private::CacheSlot::new(#alias);
            // Rendered before the body runs: the body may consume the arguments.
            let __cache_keys = [#(#keys),*];
            let __cache_result: #ret = #run_body;
            #evict
            __cache_result
        }
    })
}
