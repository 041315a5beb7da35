//! `fraiseql_core_rs`: the compiled core of fraiseql-fastapi.
//!
//! Everything lives in the `subscriptions` submodule; the same classes are also exposed at the
//! top level so `from fraiseql_core_rs import PySubscriptionExecutor` works as well.

pub mod subscriptions;

use pyo3::prelude::*;

#[pymodule]
fn fraiseql_core_rs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let sub = PyModule::new(py, "fraiseql_core_rs.subscriptions")?;
    subscriptions::bindings::init_subscriptions(&sub)?;
    subscriptions::bindings::init_subscriptions(m)?;
    m.add_submodule(&sub)?;
    // `add_submodule` does not make `import fraiseql_core_rs.subscriptions` work; sys.modules does.
    py.import("sys")?
        .getattr("modules")?
        .set_item("fraiseql_core_rs.subscriptions", &sub)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
