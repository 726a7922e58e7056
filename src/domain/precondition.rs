//! `If-Match`: the revision a change is made on.

/// The revision a change is made on: a store's or a parameter group's, as its `ETag` gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Only if the resource is still at this revision.
    Revision(i32),
    /// A revision nothing has: the change is refused.
    Never,
}

impl Precondition {
    /// Whether a change may be made on a resource now at `revision`.
    pub fn holds(self, revision: i32) -> bool {
        self == Self::Revision(revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_holds_only_at_its_revision() {
        assert!(Precondition::Revision(3).holds(3));
        assert!(!Precondition::Revision(2).holds(3));
        assert!(!Precondition::Never.holds(3));
    }
}
