//! The names users give their resources, and the rules they keep to.

use super::{Error, Result};

/// Store (and VPC) names: 1 to 63 lower-case letters, digits and hyphens, starting with a letter
/// (they become host-name labels in other drivers).
pub fn store_name(raw: &str) -> Result<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 63
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && !raw.ends_with('-')
        && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(Error::field(
            "name",
            "must be 1 to 63 lower-case letters, digits and hyphens, starting with a letter and not ending with a hyphen",
        ))
    }
}

/// A store's tags: at most 20, each 1 to 64 of `A-Z a-z 0-9 - _ . : = /`; sorted, once each.
pub fn tags(raw: &[String]) -> Result<Vec<String>> {
    if raw.len() > 20 {
        return Err(Error::field("tags", "at most 20 tags"));
    }
    for t in raw {
        let ok = !t.is_empty()
            && t.len() <= 64
            && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '=' | '/'));
        if !ok {
            return Err(Error::field("tags", format!("{t:?}: 1 to 64 of A-Z a-z 0-9 - _ . : = /")));
        }
    }
    let mut out = raw.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names() {
        for good in ["a", "orders-db", "x1", &"a".repeat(63)] {
            assert!(store_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1db", "Orders", "a_b", "a-", "x'; drop table stores; --", &"a".repeat(64)] {
            assert!(store_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_are_sorted_once_each_and_bounded() {
        assert_eq!(tags(&["b".into(), "a".into(), "b".into()]).unwrap(), ["a", "b"]);
        assert!(tags(&["has space".into()]).is_err());
        assert!(tags(&vec!["t".to_owned(); 21]).is_err());
    }
}
