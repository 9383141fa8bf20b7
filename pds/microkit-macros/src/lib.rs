//! `#[protection_domain]`: declares a PD's `init` function to the vcpos PD runtime.
//!
//! `#[protection_domain]` or `#[protection_domain(heap_size = N, stack_size = N)]` on
//! `fn init() -> impl Handler` keeps the function and adds
//! `<runtime>::declare_protection_domain!(init = init, ...)`, where `<runtime>` is the
//! path under which the PD crate depends on the `vcpos-microkit` package: found with
//! `proc-macro-crate`, so it works whether the dependency is named `vcpos-microkit` or
//! renamed to `sel4-microkit` for porting.
#![forbid(unsafe_code)]

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, ItemFn, MetaNameValue, Token};

/// The runtime's package name.
const RUNTIME_PACKAGE: &str = "vcpos-microkit";

/// Declares the PD's `init` function: see the crate docs.
#[proc_macro_attribute]
pub fn protection_domain(attr: proc_macro::TokenStream, item: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let runtime = runtime_path();
    expand(attr.into(), item.into(), runtime)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// The path to the runtime crate as the calling crate names it.
fn runtime_path() -> TokenStream {
    use proc_macro_crate::{crate_name, FoundCrate};
    match crate_name(RUNTIME_PACKAGE) {
        Ok(FoundCrate::Itself) => quote!(crate),
        Ok(FoundCrate::Name(name)) => {
            let ident = Ident::new(&name, Span::call_site());
            quote!(::#ident)
        }
        // Not found in the manifest (e.g. a build outside Cargo): assume the plain name.
        Err(_) => quote!(::vcpos_microkit),
    }
}

/// The macro's options.
#[derive(Default)]
struct Options {
    heap_size: Option<Expr>,
    stack_size: Option<Expr>,
}

fn parse_options(attr: TokenStream) -> syn::Result<Options> {
    let args = Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse2(attr)?;
    let mut options = Options::default();
    for arg in args {
        let slot = if arg.path.is_ident("heap_size") {
            &mut options.heap_size
        } else if arg.path.is_ident("stack_size") {
            &mut options.stack_size
        } else {
            return Err(syn::Error::new_spanned(
                &arg.path,
                "unknown protection_domain option (expected `heap_size` or `stack_size`)",
            ));
        };
        if slot.is_some() {
            return Err(syn::Error::new_spanned(&arg.path, "option given twice"));
        }
        *slot = Some(arg.value);
    }
    Ok(options)
}

fn expand(attr: TokenStream, item: TokenStream, runtime: TokenStream) -> syn::Result<TokenStream> {
    let options = parse_options(attr)?;
    let func: ItemFn = syn::parse2(item)?;
    if !func.sig.inputs.is_empty() {
        return Err(syn::Error::new_spanned(
            &func.sig.inputs,
            "the init function takes no arguments",
        ));
    }
    let name = &func.sig.ident;
    let heap = options.heap_size.map(|e| quote!(, heap_size = #e));
    let stack = options.stack_size.map(|e| quote!(, stack_size = #e));
    Ok(quote! {
        #func
        #runtime::declare_protection_domain!(init = #name #heap #stack);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(attr: &str, item: &str) -> Result<String, String> {
        let attr: TokenStream = attr.parse().unwrap();
        let item: TokenStream = item.parse().unwrap();
        expand(attr, item, quote!(::sel4_microkit))
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn plain_attribute_declares_init() {
        let out = expand_str("", "fn init() -> impl Handler { NullHandler::new() }").unwrap();
        assert!(out.starts_with("fn init () -> impl Handler"), "{out}");
        assert!(
            out.ends_with(":: sel4_microkit :: declare_protection_domain ! (init = init) ;"),
            "{out}"
        );
    }

    #[test]
    fn sizes_are_passed_through_in_order() {
        let out = expand_str("stack_size = 0x4000, heap_size = 64 * 1024", "fn start() -> H { H }").unwrap();
        assert!(
            out.ends_with("declare_protection_domain ! (init = start , heap_size = 64 * 1024 , stack_size = 0x4000) ;"),
            "{out}"
        );
    }

    #[test]
    fn bad_options_are_errors() {
        assert_eq!(
            expand_str("heap = 4", "fn init() -> H { H }").unwrap_err(),
            "unknown protection_domain option (expected `heap_size` or `stack_size`)"
        );
        assert_eq!(
            expand_str("heap_size = 1, heap_size = 2", "fn init() -> H { H }").unwrap_err(),
            "option given twice"
        );
        assert_eq!(
            expand_str("", "fn init(x: u32) -> H { H }").unwrap_err(),
            "the init function takes no arguments"
        );
        assert!(expand_str("", "struct NotAFunction;").is_err());
    }
}
