//! The two declaration macros of the bindings (a leaf: its expansions name `$crate::runtime`,
//! `$crate::ctx::Op` and `$crate::convert`, and what the expansion site has in scope).
//!
//! - [`service_methods!`]: an operation is declared once, as the future it runs, with its
//!   Python signature (`as stub("params" -> "return type")`); the macro emits the blocking
//!   method (GIL released), its `<name>_async` twin (an asyncio awaitable) with the same
//!   signature, and the class's `STUBS` table, from which `make python-stubs`
//!   (scripts/gen-stubs.py, through the hidden `_native._stubs()`) writes both twins' lines in
//!   the generated sections of _native.pyi; `make test-python` fails when they are stale.
//!   [`function_twins!`] does the same for module functions (a module-level `STUBS`).
//! - [`view_methods!`]: the read-only properties of a result class that wraps a facade value
//!   in `inner`, one line each, plus `to_dict()`.
//!
//! Both emit the class's one `#[pymethods]` block; methods written out by hand go in its
//! `methods { ... }` part (their stub lines are written by hand too).

/// Where a stub line goes: a method (`self` first), a `@staticmethod`, a module function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StubKind {
    Method,
    Static,
    Function,
}

/// One operation's Python signature, declared next to it: `params` without `self` (as in a
/// `def`, with types and defaults), `returns` the blocking twin's return type; the `_async`
/// twin takes the same parameters and returns `Future[returns]`.
#[derive(Clone, Copy, Debug)]
pub struct Stub {
    pub kind: StubKind,
    pub name: &'static str,
    pub params: &'static str,
    pub returns: &'static str,
}

impl StubKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StubKind::Method => "method",
            StubKind::Static => "static",
            StubKind::Function => "function",
        }
    }
}

/// ```ignore
/// service_methods! {
///     impl PyTraining {
///         ops {
///             /// Docs and #[pyo3(signature = ...)] go on both twins.
///             fn get(&self, id: i64) -> PyRun as stub("id: int" -> "Run") { self.ctx.op(...) }
///         }
///         static_ops {
///             fn open(dir: PathBuf) -> PyPlatform as stub("dir: str" -> "Platform") { ... }
///         }
///         methods {
///             fn __repr__(&self) -> String { ... }
///         }
///     }
/// }
/// ```
/// An op's body is evaluated before the call blocks or the awaitable is made, so argument
/// checks (`?`) raise synchronously in both; it yields a future of `Result<T>`.
macro_rules! service_methods {
    (
        impl $ty:ident {
            ops {
                $(
                    $(#[$meta:meta])*
                    fn $name:ident(&$self_:ident $(, $arg:ident : $argty:ty)* $(,)?) -> $ret:ty
                        as stub($pyargs:literal -> $pyret:literal) $body:block
                )*
            }
            $(
                static_ops {
                    $(
                        $(#[$smeta:meta])*
                        fn $sname:ident($($sarg:ident : $sargty:ty),* $(,)?) -> $sret:ty
                            as stub($spyargs:literal -> $spyret:literal) $sbody:block
                    )*
                }
            )?
            $(methods { $($rest:tt)* })?
        }
    ) => {
        impl $ty {
            /// The stub lines of the twins (see [`Stub`](crate::macros::Stub)).
            pub(crate) const STUBS: &'static [$crate::macros::Stub] = &[
                $($crate::macros::Stub {
                    kind: $crate::macros::StubKind::Method,
                    name: stringify!($name),
                    params: $pyargs,
                    returns: $pyret,
                },)*
                $($($crate::macros::Stub {
                    kind: $crate::macros::StubKind::Static,
                    name: stringify!($sname),
                    params: $spyargs,
                    returns: $spyret,
                },)*)?
            ];
        }

        paste::paste! {
            #[pymethods]
            impl $ty {
                $(
                    $(#[$meta])*
                    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
                    fn $name(&$self_, py: Python<'_> $(, $arg: $argty)*) -> PyResult<$ret> {
                        let op: $crate::ctx::Op<$ret> = $body;
                        $crate::runtime::block(py, op)
                    }

                    $(#[$meta])*
                    #[allow(clippy::too_many_arguments)]
                    fn [<$name _async>]<'py>(
                        &$self_,
                        py: Python<'py>
                        $(, $arg: $argty)*
                    ) -> PyResult<Bound<'py, PyAny>> {
                        let op: $crate::ctx::Op<$ret> = $body;
                        $crate::runtime::awaitable(py, op)
                    }
                )*
                $($(
                    #[staticmethod]
                    $(#[$smeta])*
                    fn $sname(py: Python<'_> $(, $sarg: $sargty)*) -> PyResult<$sret> {
                        let op: $crate::ctx::Op<$sret> = $sbody;
                        $crate::runtime::block(py, op)
                    }

                    #[staticmethod]
                    $(#[$smeta])*
                    fn [<$sname _async>]<'py>(
                        py: Python<'py>
                        $(, $sarg: $sargty)*
                    ) -> PyResult<Bound<'py, PyAny>> {
                        let op: $crate::ctx::Op<$sret> = $sbody;
                        $crate::runtime::awaitable(py, op)
                    }
                )*)?
                $($($rest)*)?
            }
        }
    };
}

/// The free-function form of [`service_methods!`]: each `fn name(args) -> T as stub(..) { future }`
/// becomes the `#[pyfunction]`s `name` (blocking) and `name_async` (awaitable).
macro_rules! function_twins {
    ($(
        $(#[$meta:meta])*
        fn $name:ident($($arg:ident : $argty:ty),* $(,)?) -> $ret:ty
            as stub($pyargs:literal -> $pyret:literal) $body:block
    )*) => {
        /// The stub lines of this module's twins (see [`Stub`](crate::macros::Stub)).
        pub(crate) const STUBS: &[$crate::macros::Stub] = &[$(
            $crate::macros::Stub {
                kind: $crate::macros::StubKind::Function,
                name: stringify!($name),
                params: $pyargs,
                returns: $pyret,
            },
        )*];

        paste::paste! {$(
            #[pyfunction]
            $(#[$meta])*
            pub fn $name(py: Python<'_> $(, $arg: $argty)*) -> PyResult<$ret> {
                let op: $crate::ctx::Op<$ret> = $body;
                $crate::runtime::block(py, op)
            }

            #[pyfunction]
            $(#[$meta])*
            pub fn [<$name _async>]<'py>(
                py: Python<'py>
                $(, $arg: $argty)*
            ) -> PyResult<Bound<'py, PyAny>> {
                let op: $crate::ctx::Op<$ret> = $body;
                $crate::runtime::awaitable(py, op)
            }
        )*}
    };
}

/// ```ignore
/// view_methods! {
///     impl PyRegistryEvent(e) {
///         get {
///             id: i64 = e.id;
///             /// Docs go on the property.
///             name: &str = &e.name;
///         }
///         dict {
///             /// A property that is a JSON-shaped value, as a dict/list.
///             metrics = &e.metrics;
///         }
///         from_dict("registry_event" $(, field: value)*);   // optional
///         eq(PyRegistryEvent);                              // optional
///         repr(RegistryEvent { name = pyq(&e.name), at = e.at });  // optional: __repr__
///         methods { fn _repr_html_(&self) -> String { ... } }
///     }
/// }
/// ```
/// `e` is `&self.inner` in the value expressions (`impl PyX(self as e)`: `self`). `to_dict()` is always emitted; `from_dict`
/// (a classmethod over `to_dict()` output), `__eq__` (on `inner`) and `__repr__` (`Name(key=value,
/// ...)`, each value as its Display writes it) when asked for.
macro_rules! view_methods {
    (impl $ty:ident(self as $v:ident) { $($body:tt)* }) => {
        view_methods!(@bind whole impl $ty($v) { $($body)* });
    };
    (impl $ty:ident($v:ident) { $($body:tt)* }) => {
        view_methods!(@bind inner impl $ty($v) { $($body)* });
    };
    (@get $s:ident whole) => { $s };
    (@get $s:ident inner) => { &$s.inner };
    (
        @bind $bind:ident
        impl $ty:ident($v:ident) {
            get {
                $(
                    $(#[doc = $doc:literal])*
                    $field:ident : $fty:ty = $val:expr;
                )*
            }
            $(
                dict {
                    $(
                        $(#[doc = $jdoc:literal])*
                        $jfield:ident = $jval:expr;
                    )*
                }
            )?
            $(from_dict($what:literal $(, $extra:ident : $extraval:expr)*);)?
            $(eq($eqty:ident);)?
            $(repr($rname:ident { $($rk:ident = $rv:expr),* $(,)? });)?
            $(methods { $($rest:tt)* })?
        }
    ) => {
        #[pymethods]
        impl $ty {
            $(
                $(#[doc = $doc])*
                #[getter]
                fn $field(&self) -> $fty {
                    let $v = view_methods!(@get self $bind);
                    $val
                }
            )*
            $($(
                $(#[doc = $jdoc])*
                #[getter]
                fn $jfield<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                    let $v = view_methods!(@get self $bind);
                    $crate::convert::to_py(py, $jval)
                }
            )*)?

            /// Every field, JSON-shaped (datetimes as RFC 3339 strings).
            fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                $crate::convert::to_py(py, &self.inner)
            }

            $(
                /// The object of a `to_dict()` output.
                #[classmethod]
                fn from_dict(
                    _cls: &Bound<'_, pyo3::types::PyType>,
                    data: &Bound<'_, PyAny>,
                ) -> PyResult<Self> {
                    Ok(Self {
                        inner: $crate::convert::from_py($what, data)?,
                        $($extra: $extraval,)*
                    })
                }
            )?

            $(
                fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
                    other
                        .cast::<$eqty>()
                        .is_ok_and(|o| o.get().inner == self.inner)
                }
            )?

            $(
                fn __repr__(&self) -> String {
                    let $v = view_methods!(@get self $bind);
                    let fields = [$(format!(concat!(stringify!($rk), "={}"), $rv)),*];
                    format!(concat!(stringify!($rname), "({})"), fields.join(", "))
                }
            )?

            $($($rest)*)?
        }
    };
}
