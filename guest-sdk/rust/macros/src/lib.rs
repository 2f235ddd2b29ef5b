//! Attribute macros of prism's Rust guest SDK. Use them through the `prism`
//! crate (`#[prism::remote]`), which re-exports them.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote};
use syn::{FnArg, GenericArgument, ItemFn, Pat, PathArguments, ReturnType, Type, parse_macro_input};

/// Makes a function a prism task, as `@ray.remote` does in Ray.
///
/// ```ignore
/// #[prism::remote]
/// fn square(x: i64) -> i64 { x * x }
///
/// let r: prism::ObjectRef<i64> = square::remote(3);
/// ```
///
/// The function stays callable as is. Next to it a module of the same name
/// gets `remote(args…)` and `remote_with(&options, args…)`, each taking every
/// argument either by value or as an `ObjectRef` of its type. Arguments must
/// be owned and (de)serializable; a function returning `Result<T, E>` fails
/// the task with `E`'s message on `Err`.
#[proc_macro_attribute]
pub fn remote(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(
            Span::call_site(),
            "`#[prism::remote]` takes no arguments; pass options with `<fn>::remote_with(&prism::Options…, args…)`",
        )
        .to_compile_error()
        .into();
    }
    let func = parse_macro_input!(item as ItemFn);
    match expand(func) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn expand(func: ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let sig = &func.sig;
    if !sig.generics.params.is_empty() || sig.asyncness.is_some() {
        return Err(syn::Error::new_spanned(sig, "a prism task must be a plain, non-generic, non-async function"));
    }
    let name = &sig.ident;
    let name_str = name.to_string();
    let vis = &func.vis;

    let mut params = Vec::new();
    for input in &sig.inputs {
        let FnArg::Typed(pat) = input else {
            return Err(syn::Error::new_spanned(input, "a prism task cannot take `self`"));
        };
        let Pat::Ident(ident) = &*pat.pat else {
            return Err(syn::Error::new_spanned(&pat.pat, "task parameters must be plain names"));
        };
        if let Type::Reference(_) = &*pat.ty {
            return Err(syn::Error::new_spanned(
                &pat.ty,
                "task arguments cross a sandbox boundary: take them by value (e.g. `String`, not `&str`)",
            ));
        }
        params.push((ident.ident.clone(), (*pat.ty).clone()));
    }

    let (output_ty, fallible) = match &sig.output {
        ReturnType::Default => (syn::parse_quote!(()), false),
        ReturnType::Type(_, ty) => match result_ok_type(ty) {
            Some(ok) => (ok, true),
            None => ((**ty).clone(), false),
        },
    };

    let arity = params.len();
    let names: Vec<_> = params.iter().map(|(n, _)| n.clone()).collect();
    let types: Vec<_> = params.iter().map(|(_, t)| t.clone()).collect();
    let indexes: Vec<_> = (0..arity).collect();
    let arg_names: Vec<_> = names.iter().map(|n| n.to_string()).collect();
    let call = quote!(super::#name(#(#names),*));
    let finish =
        if fallible { quote!(#call.map_err(|e| ::std::string::ToString::to_string(&e))?) } else { quote!(#call) };
    let runner = format_ident!("__prism_run");

    Ok(quote! {
        #func

        #[doc = concat!("Runs [`", #name_str, "`] as a prism task.")]
        #[allow(non_snake_case, reason = "the module is named after the task function")]
        #vis mod #name {
            #[allow(unused_imports, reason = "argument types may name items of the parent module")]
            use super::*;

            #[doc = concat!("Schedules `", #name_str, "` and returns the ref of its result at once.")]
            pub fn remote(#(#names: impl ::prism::IntoArg<#types>),*) -> ::prism::ObjectRef<#output_ty> {
                remote_with(&::prism::Options::default(), #(#names),*)
            }

            #[doc = concat!("Schedules `", #name_str, "` with `options` (retries, cpus).")]
            pub fn remote_with(
                options: &::prism::Options,
                #(#names: impl ::prism::IntoArg<#types>),*
            ) -> ::prism::ObjectRef<#output_ty> {
                ::prism::__private::remote(#name_str, ::std::vec![#(::prism::IntoArg::into_arg(#names)),*], options)
            }

            fn #runner(args: &[::std::vec::Vec<u8>]) -> ::std::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                if args.len() != #arity {
                    return Err(::std::format!(
                        "`{}` takes {} argument(s), got {}", #name_str, #arity, args.len()
                    ));
                }
                #(
                    let #names: #types = ::prism::__private::decode_arg(#name_str, #arg_names, &args[#indexes])?;
                )*
                let output: #output_ty = #finish;
                ::prism::__private::encode_result(#name_str, &output)
            }

            ::prism::__private::inventory::submit! {
                ::prism::__private::TaskFn { name: #name_str, run: #runner }
            }
        }
    })
}

/// `Result<T, E>` (or any `…::Result<T>` alias) gives `Some(T)`.
fn result_ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    }
}
