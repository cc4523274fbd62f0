//! A user's grants and the one rule that evaluates them.
//!
//! Rule: a user may do `op` on a topic or group if one of its grants covers
//! the resource (exact name or prefix) and holds `op`; `describe` is implied
//! by any operation on the same resource (a producer may look its topic up).
//! Admins are allowed everything before grants are looked at (in
//! [`super::Security::allows`]). There are no deny rules: what is not
//! granted is refused.

use skiff_protocol::messages::{Operation, Operations, ResourceKind, ResourcePattern};

/// Operations granted on one resource pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The topics or groups covered.
    pub resource: ResourcePattern,
    /// What may be done to them (never empty).
    pub operations: Operations,
}

/// Whether `grants` allow `op` on `kind`/`name`.
pub fn allows(grants: &[Grant], op: Operation, kind: ResourceKind, name: &str) -> bool {
    grants.iter().any(|g| {
        g.resource.matches(kind, name) && (g.operations.contains(op) || op == Operation::Describe)
    })
}

/// Adds `operations` on `resource`, merged into an existing grant on the
/// same pattern.
pub fn grant(grants: &mut Vec<Grant>, resource: ResourcePattern, operations: Operations) {
    match grants.iter_mut().find(|g| g.resource == resource) {
        Some(g) => g.operations = g.operations.union(operations),
        None => {
            grants.push(Grant {
                resource,
                operations,
            });
            grants.sort_by(|a, b| a.resource.cmp(&b.resource));
        }
    }
}

/// Removes `operations` from the grant on `resource` (dropping it when
/// nothing is left). Returns false when there was no grant on the pattern.
pub fn revoke(grants: &mut Vec<Grant>, resource: &ResourcePattern, operations: Operations) -> bool {
    let Some(i) = grants.iter().position(|g| &g.resource == resource) else {
        return false;
    };
    let left = grants[i].operations.without(operations);
    if left.is_empty() {
        grants.remove(i);
    } else {
        grants[i].operations = left;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, prefix: bool) -> ResourcePattern {
        ResourcePattern {
            kind: ResourceKind::Topic,
            name: name.into(),
            prefix,
        }
    }

    #[test]
    fn grants_merge_revoke_and_imply_describe() {
        let mut g = Vec::new();
        grant(
            &mut g,
            topic("orders", false),
            Operations::parse("produce").unwrap(),
        );
        grant(
            &mut g,
            topic("orders", false),
            Operations::parse("consume").unwrap(),
        );
        grant(
            &mut g,
            topic("logs.", true),
            Operations::parse("consume").unwrap(),
        );
        assert_eq!(g.len(), 2);
        let t = ResourceKind::Topic;
        assert!(allows(&g, Operation::Produce, t, "orders"));
        assert!(allows(&g, Operation::Describe, t, "orders"));
        assert!(!allows(&g, Operation::Produce, t, "payments"));
        assert!(!allows(&g, Operation::Describe, t, "payments"));
        assert!(allows(&g, Operation::Consume, t, "logs.web"));
        assert!(!allows(&g, Operation::Produce, t, "logs.web"));
        assert!(!allows(
            &g,
            Operation::Consume,
            ResourceKind::Group,
            "logs.web"
        ));

        assert!(revoke(
            &mut g,
            &topic("orders", false),
            Operations::parse("produce").unwrap()
        ));
        assert!(!allows(&g, Operation::Produce, t, "orders"));
        assert!(allows(&g, Operation::Consume, t, "orders"));
        assert!(revoke(&mut g, &topic("orders", false), Operations::ALL));
        assert_eq!(g.len(), 1);
        assert!(!revoke(&mut g, &topic("orders", false), Operations::ALL));
    }
}
