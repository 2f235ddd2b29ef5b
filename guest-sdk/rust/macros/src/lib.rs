//! Attribute macros of prism's Rust guest SDK. Use them through the `prism`
//! crate (`#[prism::remote]`), which re-exports them.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote};
use syn::{
    FnArg, GenericArgument, ImplItem, Item, ItemFn, ItemImpl, Pat, PathArguments, ReturnType, Type, parse_macro_input,
};

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
///
/// A function returning `impl Iterator<Item = T>` is a streaming generator:
/// `remote` returns a `prism::Generator<T>`, an iterator over the refs of
/// the items, each stored as it is yielded. With `Item = Result<T, E>`, an
/// `Err` item fails the generator there.
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

    if let Some(receiver) = sig.receiver() {
        return Err(syn::Error::new_spanned(
            receiver,
            "a prism task cannot take `self`; use `#[prism::actor]` for methods",
        ));
    }
    let params = typed_params(sig.inputs.iter())?;

    let generator = generator_item(&sig.output);
    let (output_ty, fallible) = match &generator {
        Some(item) => match result_ok_type(item) {
            Some(ok) => (ok, true),
            None => (item.clone(), false),
        },
        None => output_type(&sig.output),
    };

    let names: Vec<_> = params.iter().map(|(n, _)| n.clone()).collect();
    let types: Vec<_> = params.iter().map(|(_, t)| t.clone()).collect();
    let decode = decode_params(&name_str, &params);
    let (param_texts, returns) = (params_text(&params), returns_text(&sig.output));
    let call = quote!(super::#name(#(#names),*));
    let runner = format_ident!("__prism_run");
    let (handle, start, run) = if generator.is_some() {
        let item = if fallible { quote!(item.map_err(::prism::__private::refuse)?) } else { quote!(item) };
        (
            quote!(::prism::Generator<#output_ty>),
            quote!(::prism::__private::remote_generator),
            quote! {
                for item in #call {
                    let item: #output_ty = #item;
                    ::prism::__private::yield_item(#name_str, &item)?;
                }
                ::prism::__private::encode_result(#name_str, ())
            },
        )
    } else {
        let finish = if fallible { quote!(#call.map_err(::prism::__private::refuse)?) } else { quote!(#call) };
        (
            quote!(::prism::ObjectRef<#output_ty>),
            quote!(::prism::__private::remote),
            quote! {
                let output: #output_ty = #finish;
                ::prism::__private::encode_result(#name_str, output)
            },
        )
    };

    Ok(quote! {
        #func

        #[doc = concat!("Runs [`", #name_str, "`] as a prism task.")]
        #[allow(non_snake_case, reason = "the module is named after the task function")]
        #vis mod #name {
            #[allow(unused_imports, reason = "argument types may name items of the parent module")]
            use super::*;

            #[doc = concat!("Schedules `", #name_str, "` and returns the ref of its result (or its generator) at once.")]
            pub fn remote(#(#names: impl ::prism::IntoArg<#types>),*) -> #handle {
                remote_with(&::prism::Options::default(), #(#names),*)
            }

            #[doc = concat!("Schedules `", #name_str, "` with `options` (retries, cpus).")]
            pub fn remote_with(
                options: &::prism::Options,
                #(#names: impl ::prism::IntoArg<#types>),*
            ) -> #handle {
                #start(#name_str, ::std::vec![#(::prism::IntoArg::into_arg(#names)),*], options)
            }

            fn #runner(args: &[::prism::__private::Payload]) -> ::std::result::Result<::std::vec::Vec<u8>, ::prism::__private::CallError> {
                #decode
                #run
            }

            ::prism::__private::inventory::submit! {
                ::prism::__private::TaskFn {
                    name: #name_str,
                    params: #param_texts,
                    returns: #returns,
                    run: #runner,
                }
            }
        }
    })
}

/// Makes a struct an actor class, as `@ray.remote` on a Python class.
///
/// ```ignore
/// #[prism::actor]
/// struct Counter { value: i64 }
///
/// #[prism::actor]
/// impl Counter {
///     fn new() -> Self { Counter { value: 0 } }
///     fn increment(&mut self) -> i64 { self.value += 1; self.value }
/// }
///
/// let counter = Counter::remote();                 // prism::Actor<Counter>
/// let r = counter.increment().remote();            // prism::ObjectRef<i64>
/// ```
///
/// On the struct it only marks it. On the impl block: the one function
/// without `self` that returns `Self` (or `Result<Self, E>`) is the
/// constructor, and `Class::remote(args…)` / `Class::remote_with(&options,
/// args…)` create an actor with it; every `&self`/`&mut self` method can be
/// called on the handle through the generated trait `<Class>Remote`:
/// `handle.method(args…).remote()`. Arguments follow `#[prism::remote]`'s rules.
#[proc_macro_attribute]
pub fn actor(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(
            Span::call_site(),
            "`#[prism::actor]` takes no arguments; pass options with `Class::remote_with(&prism::ActorOptions…, args…)`",
        )
        .to_compile_error()
        .into();
    }
    let expanded = match parse_macro_input!(item as Item) {
        Item::Struct(s) => Ok(quote!(#s)),
        Item::Impl(imp) => expand_actor(imp),
        other => Err(syn::Error::new_spanned(other, "`#[prism::actor]` goes on a struct and on its impl block")),
    };
    expanded.unwrap_or_else(|e| e.to_compile_error()).into()
}

fn expand_actor(imp: ItemImpl) -> syn::Result<proc_macro2::TokenStream> {
    let Type::Path(path) = &*imp.self_ty else {
        return Err(syn::Error::new_spanned(&imp.self_ty, "`#[prism::actor]` goes on the impl block of a struct"));
    };
    if !imp.generics.params.is_empty() || imp.trait_.is_some() {
        return Err(syn::Error::new_spanned(&imp.self_ty, "an actor impl is a plain, non-generic `impl Struct { … }`"));
    }
    let class = &path.path.segments.last().expect("a type path has a segment").ident;
    let class_str = class.to_string();
    let returns_self = |output: &ReturnType| match output {
        ReturnType::Type(_, ty) => {
            let ty = result_ok_type(ty).unwrap_or_else(|| (**ty).clone());
            matches!(&ty, Type::Path(p) if p.path.is_ident("Self") || p.path.is_ident(class))
        }
        ReturnType::Default => false,
    };

    let mut constructor = None;
    let mut methods = Vec::new();
    for item in &imp.items {
        let ImplItem::Fn(f) = item else { continue };
        match f.sig.receiver() {
            None if returns_self(&f.sig.output) && constructor.replace(&f.sig).is_some() => {
                return Err(syn::Error::new_spanned(
                    &f.sig,
                    "an actor has one constructor (a function returning `Self`)",
                ));
            }
            None => {}
            Some(r) if r.reference.is_none() => {
                return Err(syn::Error::new_spanned(
                    r,
                    "actor methods take `&self` or `&mut self`: the actor keeps its state",
                ));
            }
            Some(_) => methods.push(&f.sig),
        }
    }
    let Some(ctor) = constructor else {
        return Err(syn::Error::new_spanned(
            &imp.self_ty,
            "an actor impl needs a constructor: a function without `self` returning `Self`",
        ));
    };

    let ctor_name = &ctor.ident;
    let ctor_params = typed_params(ctor.inputs.iter())?;
    let ctor_label = format!("{class_str}::{ctor_name}");
    let ctor_decode = decode_params(&ctor_label, &ctor_params);
    let (cnames, ctypes): (Vec<_>, Vec<_>) = ctor_params.iter().cloned().unzip();
    let ctor_call = if result_ok_type(match &ctor.output {
        ReturnType::Type(_, ty) => ty,
        ReturnType::Default => unreachable!("a constructor returns Self"),
    })
    .is_some()
    {
        quote!(#class::#ctor_name(#(#cnames),*).map_err(::prism::__private::refuse)?)
    } else {
        quote!(#class::#ctor_name(#(#cnames),*))
    };

    let trait_name = format_ident!("{}Remote", class);
    let mut trait_fns = Vec::new();
    let mut handle_fns = Vec::new();
    let mut arms = Vec::new();
    let mut method_names = Vec::new();
    let mut signatures = Vec::new();
    for sig in &methods {
        if !sig.generics.params.is_empty() || sig.asyncness.is_some() {
            return Err(syn::Error::new_spanned(sig, "actor methods must be plain, non-generic, non-async functions"));
        }
        let name = &sig.ident;
        let name_str = name.to_string();
        let label = format!("{class_str}.{name_str}");
        let params = typed_params(sig.inputs.iter())?;
        let (names, types): (Vec<_>, Vec<_>) = params.iter().cloned().unzip();
        let decode = decode_params(&label, &params);
        let call = quote!(this.#name(#(#names),*));
        let doc = format!("Calls `{class_str}::{name_str}` on the actor; `.remote()` queues it.");
        // A method returning `impl Iterator` is a generator, as a task is.
        let (handle, start, run) = match generator_item(&sig.output) {
            Some(item) => {
                let (item_ty, fallible) = match result_ok_type(&item) {
                    Some(ok) => (ok, true),
                    None => (item, false),
                };
                let item_value =
                    if fallible { quote!(item.map_err(::prism::__private::refuse)?) } else { quote!(item) };
                (
                    quote!(::prism::ActorGeneratorCall<#item_ty>),
                    quote!(call_generator),
                    quote! {
                        for item in #call {
                            let item: #item_ty = #item_value;
                            ::prism::__private::yield_item(#label, &item)?;
                        }
                        ::prism::__private::encode_result(#label, ())
                    },
                )
            }
            None => {
                let (output_ty, fallible) = output_type(&sig.output);
                let finish = if fallible { quote!(#call.map_err(::prism::__private::refuse)?) } else { call };
                (
                    quote!(::prism::ActorCall<#output_ty>),
                    quote!(call),
                    quote! {
                        let output: #output_ty = #finish;
                        ::prism::__private::encode_result(#label, output)
                    },
                )
            }
        };
        trait_fns.push(quote! {
            #[doc = #doc]
            fn #name(&self, #(#names: impl ::prism::IntoArg<#types>),*) -> #handle;
        });
        handle_fns.push(quote! {
            fn #name(&self, #(#names: impl ::prism::IntoArg<#types>),*) -> #handle {
                self.#start(#name_str, ::std::vec![#(::prism::IntoArg::into_arg(#names)),*])
            }
        });
        arms.push(quote! {
            #name_str => {
                #decode
                #run
            }
        });
        method_names.push(format!("`{name_str}`"));
        let (param_texts, returns) = (params_text(&params), returns_text(&sig.output));
        signatures.push(quote! {
            ::prism::__private::Method { name: #name_str, params: #param_texts, returns: #returns }
        });
    }
    let ctor_texts = params_text(&ctor_params);
    let known = method_names.join(", ");
    // With no methods the state is never touched.
    let bind_state = if methods.is_empty() {
        quote!(let _ = state;)
    } else {
        quote!(let this = ::prism::__private::state::<#class>(state);)
    };
    let trait_doc = format!("The methods of a `{class_str}` actor, called through its handle.");

    Ok(quote! {
        #imp

        impl #class {
            #[doc = concat!("Creates a `", #class_str, "` actor with its constructor; returns its handle at once.")]
            pub fn remote(#(#cnames: impl ::prism::IntoArg<#ctypes>),*) -> ::prism::Actor<#class> {
                ::prism::__private::created(Self::remote_with(&::prism::ActorOptions::new(), #(#cnames),*))
            }

            #[doc = concat!("Creates a `", #class_str, "` actor with `options` (name, lifetime, restarts).")]
            pub fn remote_with(
                options: &::prism::ActorOptions,
                #(#cnames: impl ::prism::IntoArg<#ctypes>),*
            ) -> ::prism::Result<::prism::Actor<#class>> {
                ::prism::__private::create_actor(#class_str, ::std::vec![#(::prism::IntoArg::into_arg(#cnames)),*], options)
            }
        }

        #[doc = #trait_doc]
        pub(crate) trait #trait_name {
            #(#trait_fns)*
        }

        impl #trait_name for ::prism::Actor<#class> {
            #(#handle_fns)*
        }

        const _: () = {
            fn construct(args: &[::prism::__private::Payload]) -> ::std::result::Result<::std::boxed::Box<dyn ::std::any::Any>, ::prism::__private::CallError> {
                #ctor_decode
                let state: #class = #ctor_call;
                Ok(::std::boxed::Box::new(state))
            }

            fn call(
                state: &mut dyn ::std::any::Any,
                method: &str,
                args: &[::prism::__private::Payload],
            ) -> ::std::result::Result<::std::vec::Vec<u8>, ::prism::__private::CallError> {
                #bind_state
                match method {
                    #(#arms)*
                    other => Err(::prism::__private::refuse_with(::std::format!("actor class `{}` has no method `{}`; it has {}", #class_str, other, #known))),
                }
            }

            ::prism::__private::inventory::submit! {
                ::prism::__private::ActorClass {
                    name: #class_str,
                    params: #ctor_texts,
                    methods: &[#(#signatures),*],
                    construct,
                    call,
                }
            }
        };
    })
}

/// The named, owned parameters of a task, method or constructor (a receiver
/// is the caller's business).
fn typed_params<'a>(inputs: impl Iterator<Item = &'a FnArg>) -> syn::Result<Vec<(syn::Ident, Type)>> {
    let mut params = Vec::new();
    for input in inputs {
        let FnArg::Typed(pat) = input else { continue };
        let Pat::Ident(ident) = &*pat.pat else {
            return Err(syn::Error::new_spanned(&pat.pat, "parameters of remote functions must be plain names"));
        };
        if let Type::Reference(_) = &*pat.ty {
            return Err(syn::Error::new_spanned(
                &pat.ty,
                "task arguments cross a sandbox boundary: take them by value (e.g. `String`, not `&str`)",
            ));
        }
        params.push((ident.ident.clone(), (*pat.ty).clone()));
    }
    Ok(params)
}

/// The type a call's ref holds, and whether the function returns a `Result`.
fn output_type(output: &ReturnType) -> (Type, bool) {
    match output {
        ReturnType::Default => (syn::parse_quote!(()), false),
        ReturnType::Type(_, ty) => match result_ok_type(ty) {
            Some(ok) => (ok, true),
            None => ((**ty).clone(), false),
        },
    }
}

/// Decodes `params` from `args` (a `&[Payload]`), naming `label` on errors,
/// after checking their number.
fn decode_params(label: &str, params: &[(syn::Ident, Type)]) -> proc_macro2::TokenStream {
    let arity = params.len();
    let decode = params.iter().enumerate().map(|(i, (name, ty))| {
        let arg = name.to_string();
        quote!(let #name: #ty = ::prism::__private::decode_arg(#label, #arg, &args[#i])?;)
    });
    quote! {
        if args.len() != #arity {
            return Err(::prism::__private::refuse_with(::std::format!("`{}` takes {} argument(s), got {}", #label, #arity, args.len())));
        }
        #(#decode)*
    }
}

/// `impl Iterator<Item = T>` gives `Some(T)`: the function is a generator.
fn generator_item(output: &ReturnType) -> Option<Type> {
    let ReturnType::Type(_, ty) = output else { return None };
    let Type::ImplTrait(bounds) = &**ty else { return None };
    bounds.bounds.iter().find_map(|bound| {
        let syn::TypeParamBound::Trait(bound) = bound else { return None };
        let last = bound.path.segments.last().filter(|s| s.ident == "Iterator")?;
        let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
        args.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc) if assoc.ident == "Item" => Some(assoc.ty.clone()),
            _ => None,
        })
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

/// `params`' names and types as the source spells them, as a static slice
/// of pairs: the signature the service shows.
fn params_text(params: &[(syn::Ident, Type)]) -> proc_macro2::TokenStream {
    let names = params.iter().map(|(n, _)| n.to_string());
    let types = params.iter().map(|(_, t)| type_text(t));
    quote!(&[#((#names, #types)),*])
}

/// A return type as the source spells it, `()` for none.
fn returns_text(output: &ReturnType) -> String {
    match output {
        ReturnType::Default => "()".to_string(),
        ReturnType::Type(_, ty) => type_text(ty),
    }
}

/// A type as its source spells it, without the spaces token printing adds.
fn type_text(ty: &Type) -> String {
    let text = quote!(#ty).to_string();
    let mut out = String::with_capacity(text.len());
    for part in text.split(' ') {
        let glue = matches!(part, "<" | ">" | "," | "::" | ")" | "]") || out.ends_with(['<', '&', '(', '[', ':']);
        if !out.is_empty() && !glue {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}
