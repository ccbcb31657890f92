//! `cargo xtask codegen [--check]`: writes crates/fathom-py/python/fathom/__init__.pyi, the type stubs of
//! the Python module, from its binding definitions — the `#[pyclass]` structs (names,
//! bases, `#[pyo3(get)]` fields), `#[pymethods]` (constructors, methods, properties,
//! class attributes, with the `#[pyo3(signature = …)]` defaults), `#[pyfunction]`s, the
//! `create_exception!` errors and the `&[(&str, i64)]` constant tables, each with its doc
//! comment. Rust types map to Python ones through a fixed table; a type outside it is an
//! error, so the stubs cannot silently drift from the bindings. `--check` fails when the
//! committed file differs (a unit test below runs the same check in `cargo test`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use quote::ToTokens;
use syn::{
    Attribute, Expr, FnArg, GenericArgument, ImplItem, Item, Lit, Pat, PathArguments, ReturnType,
    Type,
};

/// The bindings' sources and the stub file they produce.
pub fn paths(root: &Path) -> (PathBuf, PathBuf) {
    let krate = root.join("crates/fathom-py");
    (krate.join("src"), krate.join("python/fathom/__init__.pyi"))
}

/// Runs the subcommand: writes the stubs, or with `--check` compares them.
pub fn codegen(check: bool, root: &Path) -> Result<(), String> {
    let (src, out) = paths(root);
    let stubs = python_stubs(&src)?;
    if check {
        let current = std::fs::read_to_string(&out).unwrap_or_default();
        if current != stubs {
            return Err(format!(
                "{} is stale: run `cargo xtask codegen` and commit the result",
                out.display()
            ));
        }
        println!("{} is up to date", out.display());
    } else {
        std::fs::write(&out, &stubs).map_err(|e| format!("{}: {e}", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

struct Class {
    rust: String,
    py: String,
    base: Option<String>,
    doc: String,
    order: usize,
    members: Vec<String>,
}

struct Function {
    py: String,
    text: String,
}

/// The stub text for the bindings under `src`.
pub fn python_stubs(src: &Path) -> Result<String, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(src)
        .map_err(|e| format!("{}: {e}", src.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    let mut parsed = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let file = syn::parse_file(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        parsed.push(file);
    }

    let mut classes: BTreeMap<String, Class> = BTreeMap::new();
    let mut functions = Vec::new();
    let mut constants = Vec::new();
    let mut exceptions = Vec::new();
    let mut order = 0;
    // Pass 1: the classes, so that types can name them.
    for file in &parsed {
        for item in &file.items {
            if let Item::Struct(s) = item
                && let Some(args) = attr_args(&s.attrs, "pyclass")
            {
                let rust = s.ident.to_string();
                let py = arg_value(&args, "name").unwrap_or_else(|| rust.clone());
                let base = arg_value(&args, "extends");
                order += 1;
                classes.insert(
                    rust.clone(),
                    Class {
                        rust,
                        py,
                        base,
                        doc: doc(&s.attrs),
                        order,
                        members: Vec::new(),
                    },
                );
            }
        }
    }
    let names: BTreeMap<String, String> = classes
        .values()
        .map(|c| (c.rust.clone(), c.py.clone()))
        .collect();
    // Pass 2: fields, methods, functions, constants, exceptions.
    for file in &parsed {
        for item in &file.items {
            match item {
                Item::Struct(s) if classes.contains_key(&s.ident.to_string()) => {
                    for f in &s.fields {
                        let args = attr_args(&f.attrs, "pyo3");
                        let gets = args.as_ref().is_some_and(|a| a.contains("get"));
                        if let (true, Some(id)) = (gets, &f.ident) {
                            let ty = py_type(&f.ty, &names, "")?;
                            // `#[pyo3(get, name = "useFloat16")]` renames the attribute.
                            let py_name = args
                                .as_ref()
                                .and_then(|a| arg_value(a, "name"))
                                .unwrap_or_else(|| id.to_string());
                            let member = property(&py_name, &ty, &doc(&f.attrs), false);
                            let class = classes.get_mut(&s.ident.to_string()).expect("a class");
                            class.members.push(member);
                        }
                    }
                }
                Item::Impl(imp) if has_attr(&imp.attrs, "pymethods") => {
                    let rust = imp.self_ty.to_token_stream().to_string();
                    let class_py = names
                        .get(&rust)
                        .ok_or_else(|| format!("#[pymethods] on {rust}, which is no #[pyclass]"))?
                        .clone();
                    let members = methods(imp, &names, &class_py)?;
                    classes
                        .get_mut(&rust)
                        .expect("checked above")
                        .members
                        .extend(members);
                }
                Item::Fn(f) if has_attr(&f.attrs, "pyfunction") => {
                    let py = attr_args(&f.attrs, "pyo3")
                        .and_then(|a| arg_value(&a, "name"))
                        .unwrap_or_else(|| f.sig.ident.to_string());
                    let text = def(&py, &f.sig, &f.attrs, &names, "", false)?;
                    functions.push(Function { py, text });
                }
                Item::Const(c) if is_constant_table(&c.ty) => {
                    constants.extend(constant_table(&c.expr)?);
                }
                Item::Macro(m) if m.mac.path.is_ident("create_exception") => {
                    exceptions.push(exception(&m.mac)?);
                }
                _ => {}
            }
        }
    }
    functions.sort_by(|a, b| a.py.cmp(&b.py));

    let mut out = String::new();
    out.push_str(
        "# Type stubs of the `fathom` Python module. Generated by `cargo xtask codegen` from\n\
         # crates/fathom-py/src; do not edit by hand (`cargo xtask codegen --check` fails when\n\
         # this file is stale).\n\n\
         import os\nfrom typing import Any\n\nimport numpy as np\nimport numpy.typing as npt\n\
         from numpy.typing import NDArray\n\n__version__: str\n\n",
    );
    for (name, _) in &constants {
        writeln!(out, "{name}: int").expect("write to String");
    }
    out.push('\n');
    for (name, base, text) in &exceptions {
        writeln!(out, "\nclass {name}({base}):\n{}", docstring(text, 1)).expect("write");
    }
    // Bases before the classes that extend them.
    let mut ordered: Vec<&Class> = classes.values().collect();
    ordered.sort_by_key(|c| (depth(c, &classes), c.order));
    for c in ordered {
        let base = match &c.base {
            Some(b) => names
                .get(b)
                .cloned()
                .ok_or_else(|| format!("{} extends unknown {b}", c.rust))?,
            None => String::new(),
        };
        let head = if base.is_empty() {
            format!("class {}:", c.py)
        } else {
            format!("class {}({base}):", c.py)
        };
        writeln!(out, "\n{head}\n{}", docstring(&c.doc, 1)).expect("write");
        for m in &c.members {
            out.push_str(m);
        }
    }
    for f in &functions {
        out.push('\n');
        out.push_str(&f.text);
    }
    Ok(out)
}

fn depth(c: &Class, all: &BTreeMap<String, Class>) -> usize {
    match c.base.as_ref().and_then(|b| all.get(b)) {
        Some(b) => 1 + depth(b, all),
        None => 0,
    }
}

fn has_attr(attrs: &[Attribute], name: &str) -> bool {
    attrs.iter().any(|a| a.path().is_ident(name))
}

/// The tokens inside `#[name(...)]`, as text ("" for a bare `#[name]`).
fn attr_args(attrs: &[Attribute], name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.path().is_ident(name))
        .map(|a| match &a.meta {
            syn::Meta::List(l) => l.tokens.to_string(),
            _ => String::new(),
        })
}

/// Every `#[name(...)]` of an item, as text.
fn all_attr_args(attrs: &[Attribute], name: &str) -> Vec<String> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident(name))
        .map(|a| match &a.meta {
            syn::Meta::List(l) => l.tokens.to_string(),
            _ => String::new(),
        })
        .collect()
}

/// `key = value` from a comma-separated attribute argument list (quotes removed).
fn arg_value(args: &str, key: &str) -> Option<String> {
    split_top(args).into_iter().find_map(|part| {
        let (k, v) = part.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Splits at commas outside brackets.
fn split_top(s: &str) -> Vec<String> {
    let (mut parts, mut cur, mut depth) = (Vec::new(), String::new(), 0i32);
    for ch in s.chars() {
        match ch {
            '(' | '[' | '<' | '{' => depth += 1,
            ')' | ']' | '>' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    parts.into_iter().map(|p| p.trim().to_string()).collect()
}

fn doc(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(l) => match &l.lit {
                    Lit::Str(s) => Some(s.value()),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        })
        .map(|l| l.strip_prefix(' ').unwrap_or(&l).to_string())
        .collect();
    lines.join("\n").trim().to_string()
}

fn docstring(text: &str, indent: usize) -> String {
    let pad = "    ".repeat(indent);
    if text.is_empty() {
        return format!("{pad}...");
    }
    let body = text.replace('\\', "\\\\").replace("\"\"\"", "\\\"\\\"\\\"");
    let lines: Vec<String> = body
        .lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect();
    if lines.len() == 1 {
        format!("{pad}\"\"\"{}\"\"\"", body.trim())
    } else {
        format!("{pad}\"\"\"{}\n{pad}\"\"\"", lines.join("\n").trim_start())
    }
}

fn property(name: &str, ty: &str, docs: &str, settable: bool) -> String {
    let mut s = format!(
        "    @property\n    def {name}(self) -> {ty}:\n{}\n",
        docstring(docs, 2)
    );
    if settable {
        write!(
            s,
            "    @{name}.setter\n    def {name}(self, value: {ty}) -> None: ...\n"
        )
        .expect("write");
    }
    s
}

fn methods(
    imp: &syn::ItemImpl,
    names: &BTreeMap<String, String>,
    class_py: &str,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    // Setters first, so each getter knows whether it is settable.
    let mut setters: BTreeMap<String, ()> = BTreeMap::new();
    for item in &imp.items {
        if let ImplItem::Fn(f) = item
            && let Some(args) = attr_args(&f.attrs, "setter")
        {
            let name = if args.is_empty() {
                let n = f.sig.ident.to_string();
                n.strip_prefix("set_").unwrap_or(&n).to_string()
            } else {
                args
            };
            setters.insert(name, ());
        }
    }
    for item in &imp.items {
        match item {
            ImplItem::Const(c) if has_attr(&c.attrs, "classattr") => {
                let ty = py_type(&c.ty, names, class_py)?;
                out.push(format!(
                    "    {}: {ty}\n{}\n",
                    c.ident,
                    docstring(&doc(&c.attrs), 1)
                ));
            }
            ImplItem::Fn(f) => {
                if has_attr(&f.attrs, "setter") {
                    continue;
                }
                if let Some(args) = attr_args(&f.attrs, "getter") {
                    // pyo3 names a getter after its function, less a `get_` prefix.
                    let name = if args.is_empty() {
                        let n = f.sig.ident.to_string();
                        n.strip_prefix("get_").unwrap_or(&n).to_string()
                    } else {
                        args
                    };
                    let ty = match &f.sig.output {
                        ReturnType::Type(_, t) => py_type(t, names, class_py)?,
                        ReturnType::Default => "None".into(),
                    };
                    let settable = setters.contains_key(&name);
                    out.push(property(&name, &ty, &doc(&f.attrs), settable));
                    continue;
                }
                let is_new = has_attr(&f.attrs, "new");
                let py = if is_new {
                    "__init__".to_string()
                } else {
                    all_attr_args(&f.attrs, "pyo3")
                        .iter()
                        .find_map(|a| arg_value(a, "name"))
                        .unwrap_or_else(|| f.sig.ident.to_string())
                };
                out.push(def(&py, &f.sig, &f.attrs, names, class_py, true)?);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A `def` line (with its docstring) for a function or method.
fn def(
    py: &str,
    sig: &syn::Signature,
    attrs: &[Attribute],
    names: &BTreeMap<String, String>,
    class_py: &str,
    method: bool,
) -> Result<String, String> {
    let is_new = py == "__init__";
    // The Python-visible parameters and their types.
    let mut typed: Vec<(String, String)> = Vec::new();
    for input in &sig.inputs {
        let FnArg::Typed(pt) = input else { continue };
        let Pat::Ident(id) = &*pt.pat else { continue };
        let name = id.ident.to_string();
        let ty = pt.ty.to_token_stream().to_string().replace(' ', "");
        if name == "slf" || ty.starts_with("Python<") {
            continue;
        }
        let pyty = if ty.contains("PyDict") {
            "Any".to_string()
        } else {
            py_type(&pt.ty, names, class_py)?
        };
        typed.push((name, pyty));
    }
    let signature = all_attr_args(attrs, "pyo3").iter().find_map(|a| {
        let a = a.replace(' ', "");
        let start = a.find("signature=(")? + "signature=(".len();
        let inner = &a[start..];
        // The signature's closing parenthesis.
        let mut depth = 1;
        let end = inner.char_indices().find_map(|(i, c)| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(i)
        })?;
        Some(inner[..end].to_string())
    });
    let mut params: Vec<String> = Vec::new();
    if method {
        params.push("self".into());
    }
    match signature {
        Some(sig_text) => {
            for part in split_top(&sig_text) {
                if part == "*" {
                    params.push("*".into());
                    continue;
                }
                if let Some(kw) = part.strip_prefix("**") {
                    params.push(format!("**{kw}: Any"));
                    continue;
                }
                let (name, default) = match part.split_once('=') {
                    Some((n, d)) => (n.to_string(), Some(py_default(d))),
                    None => (part.clone(), None),
                };
                let ty = typed
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, t)| t.clone())
                    .ok_or_else(|| {
                        format!("{py}: signature names {name}, which is no parameter")
                    })?;
                params.push(match default {
                    Some(d) => format!("{name}: {ty} = {d}"),
                    None => format!("{name}: {ty}"),
                });
            }
        }
        None => params.extend(typed.iter().map(|(n, t)| format!("{n}: {t}"))),
    }
    let ret = if is_new {
        "None".to_string()
    } else {
        match &sig.output {
            ReturnType::Type(_, t) => py_type(t, names, class_py)?,
            ReturnType::Default => "None".into(),
        }
    };
    let indent = usize::from(method);
    let pad = "    ".repeat(indent);
    Ok(format!(
        "{pad}def {py}({}) -> {ret}:\n{}\n",
        params.join(", "),
        docstring(&doc(attrs), indent + 1)
    ))
}

fn py_default(rust: &str) -> String {
    match rust {
        "true" => "True".into(),
        "false" => "False".into(),
        "None" => "None".into(),
        other => other.replace('_', ""),
    }
}

/// The Python type of a Rust binding type.
fn py_type(ty: &Type, names: &BTreeMap<String, String>, class_py: &str) -> Result<String, String> {
    match ty {
        Type::Reference(r) => py_type(&r.elem, names, class_py),
        Type::Tuple(t) if t.elems.is_empty() => Ok("None".into()),
        Type::Tuple(t) => {
            let parts: Result<Vec<_>, _> = t
                .elems
                .iter()
                .map(|e| py_type(e, names, class_py))
                .collect();
            Ok(format!("tuple[{}]", parts?.join(", ")))
        }
        Type::Path(p) => {
            let seg = p.path.segments.last().ok_or("empty type path")?;
            let ident = seg.ident.to_string();
            let args: Vec<&Type> = match &seg.arguments {
                PathArguments::AngleBracketed(a) => a
                    .args
                    .iter()
                    .filter_map(|g| match g {
                        GenericArgument::Type(t) => Some(t),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let inner = |i: usize| -> Result<String, String> {
                args.get(i)
                    .ok_or_else(|| format!("{ident} without a type argument"))
                    .and_then(|t| py_type(t, names, class_py))
            };
            let array = |elem: &Type| -> Result<String, String> {
                let e = elem.to_token_stream().to_string();
                let np = match e.as_str() {
                    "f32" => "float32",
                    "f64" => "float64",
                    "i64" => "int64",
                    "i32" => "int32",
                    "u64" => "uint64",
                    "u8" => "uint8",
                    other => return Err(format!("no numpy dtype for {other}")),
                };
                Ok(format!("NDArray[np.{np}]"))
            };
            Ok(match ident.as_str() {
                "PyResult" | "Result" => inner(0)?,
                "Option" => format!("{} | None", inner(0)?),
                "Vec" => format!("list[{}]", inner(0)?),
                "Bound" | "Py" | "PyRef" => inner(0)?,
                "PyClassInitializer" => "None".into(),
                "PyAny" => "Any".into(),
                "PyDict" => "dict[str, Any]".into(),
                "PyTuple" => "tuple[Any, ...]".into(),
                "ArrayLike" => "npt.ArrayLike".into(),
                "F32Matrix" | "F32Vector" => "NDArray[np.float32]".into(),
                "F64Vector" => "NDArray[np.float64]".into(),
                "I64Matrix" | "I64Vector" => "NDArray[np.int64]".into(),
                "I32Matrix" | "I32Vector" => "NDArray[np.int32]".into(),
                "U8Matrix" | "U8Vector" => "NDArray[np.uint8]".into(),
                "U64Vector" => "NDArray[np.uint64]".into(),
                "PyArray1" | "PyArray2" | "PyArray3" => {
                    array(args.first().ok_or("array without dtype")?)?
                }
                "i64" | "i32" | "u32" | "u64" | "usize" => "int".into(),
                "f32" | "f64" => "float".into(),
                "bool" => "bool".into(),
                "String" | "str" => "str".into(),
                "PathBuf" => "str | os.PathLike[str]".into(),
                "Self" => class_py.into(),
                other => names
                    .get(other)
                    .cloned()
                    .ok_or_else(|| format!("no Python type for the Rust type {other}"))?,
            })
        }
        other => Err(format!("no Python type for {}", other.to_token_stream())),
    }
}

fn is_constant_table(ty: &Type) -> bool {
    ty.to_token_stream().to_string().replace(' ', "") == "&[(&str,i64)]"
}

fn constant_table(expr: &Expr) -> Result<Vec<(String, String)>, String> {
    let Expr::Reference(r) = expr else {
        return Err("a constant table must be &[...]".into());
    };
    let Expr::Array(a) = &*r.expr else {
        return Err("a constant table must be an array literal".into());
    };
    a.elems
        .iter()
        .map(|e| match e {
            Expr::Tuple(t) if t.elems.len() == 2 => match &t.elems[0] {
                Expr::Lit(l) => match &l.lit {
                    Lit::Str(s) => Ok((s.value(), t.elems[1].to_token_stream().to_string())),
                    _ => Err("a constant's name must be a string".into()),
                },
                _ => Err("a constant's name must be a string literal".into()),
            },
            _ => Err("constant table entries are (name, value)".into()),
        })
        .collect()
}

fn exception(mac: &syn::Macro) -> Result<(String, String, String), String> {
    let parts = split_top(&mac.tokens.to_string());
    let name = parts
        .get(1)
        .ok_or("create_exception! without a name")?
        .clone();
    let base = match parts.get(2).map(String::as_str) {
        Some("PyRuntimeError") => "RuntimeError",
        Some("PyValueError") => "ValueError",
        Some("PyException") => "Exception",
        other => return Err(format!("unknown exception base {other:?}")),
    };
    let text: String = parts[3..]
        .iter()
        .map(|p| {
            p.trim()
                .trim_matches('"')
                .replace("\\\n", "")
                .replace("    ", " ")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok((name, base.into(), text))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CI's staleness check: the committed stubs are what the bindings generate.
    #[test]
    fn committed_python_stubs_are_current() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let (src, out) = paths(&root);
        let want = python_stubs(&src).expect("the bindings parse");
        let have = std::fs::read_to_string(&out).unwrap_or_default();
        assert!(
            have == want,
            "{} is stale: run `cargo xtask codegen` and commit the result",
            out.display()
        );
    }

    #[test]
    fn types_map_to_python() {
        let names = BTreeMap::from([("PyIndex".to_string(), "Index".to_string())]);
        let t = |s: &str| py_type(&syn::parse_str::<Type>(s).unwrap(), &names, "X").unwrap();
        assert_eq!(t("PyResult<Option<usize>>"), "int | None");
        assert_eq!(
            t("PyResult<(F32Matrix<'py>, I64Matrix<'py>)>"),
            "tuple[NDArray[np.float32], NDArray[np.int64]]"
        );
        assert_eq!(t("&Bound<'_, PyIndex>"), "Index");
        assert_eq!(t("Bound<'py, PyArray1<i64>>"), "NDArray[np.int64]");
        assert_eq!(t("PathBuf"), "str | os.PathLike[str]");
        assert!(
            py_type(
                &syn::parse_str::<Type>("HashMap<u8, u8>").unwrap(),
                &names,
                "X"
            )
            .is_err()
        );
    }

    #[test]
    fn signatures_keep_defaults_and_keyword_markers() {
        let f: syn::ItemFn = syn::parse_str(
            "/// Searches.\n#[pyo3(signature = (x, k, *, params = None, flag = true))]\n\
             fn search(py: Python<'_>, x: &ArrayLike<'_>, k: i64, params: Option<&Bound<'_, PyIndex>>, flag: bool) -> PyResult<usize> { Ok(0) }",
        )
        .unwrap();
        let names = BTreeMap::from([("PyIndex".to_string(), "Index".to_string())]);
        let text = def("search", &f.sig, &f.attrs, &names, "Index", true).unwrap();
        assert_eq!(
            text,
            "    def search(self, x: npt.ArrayLike, k: int, *, params: Index | None = None, flag: bool = True) -> int:\n        \"\"\"Searches.\"\"\"\n"
        );
    }
}
