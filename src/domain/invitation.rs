use serde::Serialize;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

/// Where an invitation to an organization stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InvitationStatus {
    /// Waiting for the invitee's answer.
    Pending,
    /// The invitee accepted and is a member.
    Accepted,
    Declined,
    /// Withdrawn by the organization.
    Revoked,
    /// Pending past its expiry: nobody can answer it any more. Not stored, read from the time.
    Expired,
}

impl InvitationStatus {
    /// How long an invitation can be answered; inviting again renews it.
    pub const VALID_FOR: Duration = Duration::days(7);

    /// The status of a stored invitation at `now`; `None` for a value no migration writes.
    pub fn at(stored: &str, expires_at: OffsetDateTime, now: OffsetDateTime) -> Option<Self> {
        Some(match stored {
            "pending" if expires_at <= now => Self::Expired,
            "pending" => Self::Pending,
            "accepted" => Self::Accepted,
            "declined" => Self::Declined,
            "revoked" => Self::Revoked,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    /// As stored, for an answer; `Expired` is never stored.
    pub fn as_stored(self) -> &'static str {
        match self {
            Self::Expired => Self::Pending.as_str(),
            other => other.as_str(),
        }
    }

    /// Whether the organization may still withdraw it: until it is answered (an expired one
    /// too, so that it leaves the list of open ones).
    pub fn may_revoke(self) -> bool {
        matches!(self, Self::Pending | Self::Expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_invitation_expires_with_time_an_answered_one_stays() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(100);
        let later = now + InvitationStatus::VALID_FOR;
        assert_eq!(InvitationStatus::at("pending", later, now), Some(InvitationStatus::Pending));
        assert_eq!(InvitationStatus::at("pending", now, now), Some(InvitationStatus::Expired));
        assert_eq!(InvitationStatus::at("accepted", now, later), Some(InvitationStatus::Accepted));
        assert_eq!(InvitationStatus::at("maybe", later, now), None);
        assert!(InvitationStatus::Expired.may_revoke());
        assert!(!InvitationStatus::Declined.may_revoke());
        assert_eq!(InvitationStatus::Expired.as_stored(), "pending");
    }
}
