//! Tenant and user isolation, failing closed: an event that names a tenant or user reaches only
//! subscriptions of that tenant or user, and a subscription may not ask (through its variables)
//! for another tenant's or user's data.

use serde_json::{Map, Value};

/// Who a subscription acts for, as established by authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SecurityContext {
    pub user_id: Option<Box<str>>,
    pub tenant_id: Option<Box<str>>,
}

/// Why an event was not delivered to a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Tenant,
    User,
}

impl SecurityContext {
    /// Checks an event's tenant and user against this context. A subscription with no tenant
    /// (or user) never receives an event addressed to one.
    #[inline]
    pub fn admits(&self, tenant_id: Option<&str>, user_id: Option<&str>) -> Result<(), Refusal> {
        if let Some(t) = tenant_id {
            if self.tenant_id.as_deref() != Some(t) {
                return Err(Refusal::Tenant);
            }
        }
        if let Some(u) = user_id {
            if self.user_id.as_deref() != Some(u) {
                return Err(Refusal::User);
            }
        }
        Ok(())
    }

    /// Refuses variables that name a user or tenant other than this context's own, at any depth
    /// (input objects included).
    pub fn check_variables(&self, variables: &Map<String, Value>) -> Result<(), String> {
        for (name, value) in variables {
            let own = match name.as_str() {
                "userId" | "user_id" => Some(("user", self.user_id.as_deref())),
                "tenantId" | "tenant_id" => Some(("tenant", self.tenant_id.as_deref())),
                _ => None,
            };
            if let Some((what, own)) = own {
                if !value.is_null() && !same_id(value, own) {
                    return Err(format!(
                        "Variable \"{name}\" names a {what} other than the authenticated one"
                    ));
                }
            }
            match value {
                Value::Object(inner) => self.check_variables(inner)?,
                Value::Array(items) => {
                    for item in items {
                        if let Value::Object(inner) = item {
                            self.check_variables(inner)?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// An id given as a string or a number equals the context's id when their texts are equal.
fn same_id(value: &Value, own: Option<&str>) -> bool {
    let Some(own) = own else { return false };
    match value {
        Value::String(s) => s == own,
        Value::Number(n) => n.to_string() == own,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(user: Option<&str>, tenant: Option<&str>) -> SecurityContext {
        SecurityContext {
            user_id: user.map(Into::into),
            tenant_id: tenant.map(Into::into),
        }
    }

    #[test]
    fn events_fail_closed() {
        let c = ctx(Some("u1"), Some("t1"));
        assert_eq!(c.admits(None, None), Ok(()));
        assert_eq!(c.admits(Some("t1"), Some("u1")), Ok(()));
        assert_eq!(c.admits(Some("t2"), None), Err(Refusal::Tenant));
        assert_eq!(c.admits(None, Some("u2")), Err(Refusal::User));
        let anonymous = ctx(None, None);
        assert_eq!(anonymous.admits(Some("t1"), None), Err(Refusal::Tenant));
        assert_eq!(anonymous.admits(None, Some("u1")), Err(Refusal::User));
    }

    #[test]
    fn variables_naming_others_are_refused() {
        let c = ctx(Some("7"), Some("t1"));
        let ok = json!({"userId": 7, "tenant_id": "t1", "other": {"user_id": "7"}});
        assert!(c
            .check_variables(ok.as_object().unwrap_or(&Map::new()))
            .is_ok());
        for bad in [
            json!({"userId": "8"}),
            json!({"filter": {"tenantId": "t2"}}),
            json!({"list": [{"user_id": "x"}]}),
        ] {
            assert!(
                c.check_variables(bad.as_object().unwrap_or(&Map::new()))
                    .is_err(),
                "{bad}"
            );
        }
        assert!(ctx(None, None)
            .check_variables(json!({"userId": "1"}).as_object().unwrap_or(&Map::new()))
            .is_err());
    }
}
