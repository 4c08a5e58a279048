//! `ccmanagerctl call METHOD [PARAMS]`: any method, params as JSON text, the
//! result printed as JSON (with or without `--json`).

use serde_json::{json, Value};

use crate::output::{print_json, usage, Ctl, Failure};

pub fn run(ctl: &mut Ctl, method: &str, params: Option<&str>) -> Result<(), Failure> {
    let params: Value = match params {
        Some(p) => {
            serde_json::from_str(p).map_err(|e| usage(format!("params are not valid JSON: {e}")))?
        }
        None => json!({}),
    };
    print_json(&ctl.client.call(method, params)?);
    Ok(())
}
