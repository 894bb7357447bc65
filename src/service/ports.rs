//! The ports the service needs from the outside world. `store/` and `mail/` implement them;
//! only the wiring in `app.rs` knows which implementation runs.

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::domain::time::Millis;
use crate::domain::{RoleId, SessionId, TeamId, TokenHash, UserId};

/// A failure of a store. `Unavailable` is a dependency that is down or too slow: the service
/// fails closed with 503 and recovers when it returns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{dependency} unavailable: {reason}")]
    Unavailable {
        dependency: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a listener on the ephemeral store's pub/sub sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// Subscribed (again): messages from now on arrive.
    Up,
    /// The subscription is lost: messages may be missed until the next `Up`.
    Down,
    Message {
        channel: String,
        payload: String,
    },
}

// ---------------------------------------------------------------------------------------------
// The ephemeral store: shaped on what Redis does atomically.
// ---------------------------------------------------------------------------------------------

/// Fast, expiring state shared by every instance. Every key has a TTL.
#[async_trait]
pub trait EphemeralStore: Send + Sync {
    /// SET key value PX ttl.
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> StoreResult<()>;
    /// SET key value NX PX ttl; true when the key was absent and is now set.
    async fn set_if_absent(&self, key: &str, value: &str, ttl: Duration) -> StoreResult<bool>;
    async fn get(&self, key: &str) -> StoreResult<Option<String>>;
    /// GETDEL: atomic take; exactly one caller gets the value.
    async fn take(&self, key: &str) -> StoreResult<Option<String>>;
    async fn delete(&self, key: &str) -> StoreResult<bool>;
    /// INCRBY with an expiry set when the key is created. Returns the new count and the time
    /// left before the counter expires.
    async fn increment(&self, key: &str, by: i64, ttl: Duration) -> StoreResult<(i64, Duration)>;
    /// Replaces the value only if it is still `expected`; true when swapped.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        new: &str,
        ttl: Duration,
    ) -> StoreResult<bool>;
    /// Time to live of a key, `None` when absent.
    async fn ttl(&self, key: &str) -> StoreResult<Option<Duration>>;
    /// PUBLISH; how many listeners (of this store's connection, or node) received it.
    async fn publish(&self, channel: &str, message: &str) -> StoreResult<usize>;
    /// Every message published on channels starting with `prefix`, over one subscription
    /// connection that re-subscribes by itself. The stream says `Up` each time the subscription
    /// is (re)established and `Down` when it is lost: messages in between are lost, so whoever
    /// relies on them must treat `Down` as "I may have missed something".
    fn listen(&self, prefix: &str) -> BoxStream<'static, BusEvent>;
    /// Takes a place for `member` in every bounded set `(key, limit)` until `ttl` (renewing it
    /// when already held), atomically: false, and nothing taken, when any set is full.
    async fn acquire_slots(
        &self,
        sets: &[(String, usize)],
        member: &str,
        ttl: Duration,
    ) -> StoreResult<bool>;
    /// Gives back what `acquire_slots` took.
    async fn release_slots(&self, sets: &[String], member: &str) -> StoreResult<()>;
    async fn ping(&self) -> StoreResult<()>;
    /// Keys matching a glob pattern (for diagnostics), with their time to live (`None`: the
    /// key never expires). At most `limit` keys.
    async fn scan(
        &self,
        pattern: &str,
        limit: usize,
    ) -> StoreResult<Vec<(String, Option<Duration>)>>;
}

// ---------------------------------------------------------------------------------------------
// The SQL repository.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub email_verified_at: Option<Millis>,
    pub deleted_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub team_id: TeamId,
    pub team_name: String,
    pub role_id: RoleId,
    pub role_name: String,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: UserId,
    pub team_id: TeamId,
    pub refresh_token_jti: String,
    pub device_id: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: Millis,
    pub expires_at: Millis,
}

#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: UserId,
    pub team_id: TeamId,
    pub refresh_token_jti: String,
    pub refresh_generation: i64,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: Millis,
    pub last_seen_at: Millis,
    pub expires_at: Millis,
    pub revoked_at: Option<Millis>,
    /// The refresh jti replaced by the last rotation, when it happened, and the access jti
    /// minted with it: a repeat of that old token within the grace window gets the same tokens.
    pub previous_refresh_jti: Option<String>,
    pub rotated_at: Option<Millis>,
    pub next_access_jti: Option<String>,
}

/// One refresh rotation, applied only while `current_jti` is still the session's token.
#[derive(Debug, Clone)]
pub struct RefreshRotation<'a> {
    pub session_id: SessionId,
    pub current_jti: &'a str,
    pub next_jti: &'a str,
    pub next_access_jti: &'a str,
    pub now: Millis,
    /// The session must have been active since then (idle timeout).
    pub active_since: Millis,
}

#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: i64,
    pub to_address: String,
    pub kind: String,
    pub payload: String,
    pub attempts: i64,
}

/// For diagnostics: one outbox message's delivery state (never its payload).
#[derive(Debug, Clone)]
pub struct OutboxState {
    pub kind: String,
    /// `pending`, `sending`, `sent` or `failed` (given up).
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub sent_at: Option<Millis>,
}

/// For diagnostics: an emailed link's token (never the token itself).
#[derive(Debug, Clone)]
pub struct LinkTokenState {
    /// `verification` or `password_reset`.
    pub kind: &'static str,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub used_at: Option<Millis>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    pub event: &'static str,
    pub actor_user_id: Option<UserId>,
    pub user_id: Option<UserId>,
    pub team_id: Option<TeamId>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
}

#[async_trait]
pub trait UserRepo: Send + Sync {
    /// Creates the user and a personal team whose Owner is the user, atomically.
    /// `None` when the email is taken.
    async fn create_user_with_team(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        team_name: &str,
        now: Millis,
    ) -> StoreResult<Option<UserId>>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>>;
    async fn set_password_hash(
        &self,
        id: UserId,
        password_hash: &str,
        now: Millis,
    ) -> StoreResult<()>;
    /// Soft delete (`Some(at)`) or restore (`None`); false when nothing changed.
    async fn set_user_deleted(&self, id: UserId, deleted_at: Option<Millis>) -> StoreResult<bool>;
    /// The user's display name (already validated); false when no live user has this id.
    async fn set_user_name(&self, id: UserId, name: &str, now: Millis) -> StoreResult<bool>;
}

#[async_trait]
pub trait VerificationRepo: Send + Sync {
    async fn insert_email_verification(
        &self,
        token: &str,
        user_id: UserId,
        expires_at: Millis,
        now: Millis,
    ) -> StoreResult<()>;
    /// Marks the token used and the user verified, atomically; the user id when the token was
    /// unused and unexpired.
    async fn consume_email_verification(
        &self,
        token: &str,
        now: Millis,
    ) -> StoreResult<Option<UserId>>;
    /// Stores the hash of a password-reset token.
    async fn insert_password_reset(
        &self,
        token_hash: &TokenHash,
        user_id: UserId,
        expires_at: Millis,
        now: Millis,
    ) -> StoreResult<()>;
    /// The user of an unused, unexpired reset token (read only: the token stays usable).
    async fn password_reset_user(
        &self,
        token_hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<UserId>>;
    /// Marks an unused, unexpired reset token used; its user.
    async fn consume_password_reset(
        &self,
        token_hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<UserId>>;
    /// Voids every unused reset token of the user (after a password change or reset).
    async fn void_password_resets(&self, user_id: UserId, now: Millis) -> StoreResult<()>;
}

#[async_trait]
pub trait TeamRepo: Send + Sync {
    /// The user's teams with their roles, oldest membership first.
    async fn memberships(&self, user_id: UserId) -> StoreResult<Vec<Membership>>;
    async fn membership(&self, user_id: UserId, team_id: TeamId)
    -> StoreResult<Option<Membership>>;
    async fn role_permissions(&self, role_id: RoleId) -> StoreResult<Vec<String>>;
    /// Creates a team with `owner_user_id` as its Owner.
    async fn create_team(
        &self,
        name: &str,
        owner_user_id: UserId,
        now: Millis,
    ) -> StoreResult<TeamId>;
    async fn team_members(&self, team_id: TeamId) -> StoreResult<Vec<MemberRecord>>;
    async fn role(&self, role_id: RoleId) -> StoreResult<Option<RoleRecord>>;
    /// The built-in roles and the team's own, with their permissions.
    async fn team_roles(&self, team_id: TeamId) -> StoreResult<Vec<(RoleRecord, Vec<String>)>>;
    /// `None` when the team already has a role of that name.
    async fn create_role(
        &self,
        team_id: TeamId,
        name: &str,
        permissions: &[String],
        now: Millis,
    ) -> StoreResult<Option<RoleId>>;
    async fn set_role_permissions(
        &self,
        role_id: RoleId,
        permissions: &[String],
    ) -> StoreResult<()>;
    /// Changes a member's role, refusing to leave the team without an Owner.
    async fn set_member_role(
        &self,
        team_id: TeamId,
        user_id: UserId,
        role_id: RoleId,
    ) -> StoreResult<MemberChange>;
    /// Removes a member, refusing to leave the team without an Owner.
    async fn remove_member(&self, team_id: TeamId, user_id: UserId) -> StoreResult<MemberChange>;
    /// False when the user is already a member.
    async fn add_member(
        &self,
        team_id: TeamId,
        user_id: UserId,
        role_id: RoleId,
        now: Millis,
    ) -> StoreResult<bool>;
    async fn permission_catalogue(&self) -> StoreResult<Vec<(String, String)>>;
    async fn team_virtuozzo(&self, team_id: TeamId) -> StoreResult<Option<VirtuozzoRecord>>;
    /// Stores new (encrypted) credentials and clears the session key.
    async fn set_virtuozzo_credentials(
        &self,
        team_id: TeamId,
        email: &str,
        password_sealed: &str,
    ) -> StoreResult<()>;
    /// Stores a session key, only while the credentials are still `password_sealed`.
    async fn set_virtuozzo_session(
        &self,
        team_id: TeamId,
        session_sealed: &str,
        expires_at: Millis,
        password_sealed: &str,
    ) -> StoreResult<bool>;
}

/// A team's Virtuozzo account: secrets only in sealed form.
#[derive(Debug, Clone)]
pub struct VirtuozzoRecord {
    pub vz_email: Option<String>,
    pub password_sealed: Option<String>,
    pub session_sealed: Option<String>,
    pub session_key_expires_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    Done,
    NotAMember,
    LastOwner,
}

#[derive(Debug, Clone)]
pub struct MemberRecord {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub role_id: RoleId,
    pub role_name: String,
}

#[derive(Debug, Clone)]
pub struct RoleRecord {
    pub id: RoleId,
    pub name: String,
    /// `None` for the built-in roles shared by every team.
    pub team_id: Option<TeamId>,
    pub builtin: bool,
}

#[derive(Debug, Clone)]
pub struct InviteRecord {
    pub id: i64,
    pub team_id: TeamId,
    pub email: String,
    pub role_id: RoleId,
    pub invited_by_user_id: UserId,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub accepted_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

#[derive(Debug, Clone)]
pub struct NewInvite<'a> {
    pub team_id: TeamId,
    pub email: &'a str,
    pub role_id: RoleId,
    pub token_hash: &'a TokenHash,
    pub invited_by_user_id: UserId,
    pub created_at: Millis,
    pub expires_at: Millis,
}

#[async_trait]
pub trait InviteRepo: Send + Sync {
    async fn create_invite(&self, invite: &NewInvite<'_>) -> StoreResult<i64>;
    async fn invite_by_token_hash(
        &self,
        token_hash: &TokenHash,
    ) -> StoreResult<Option<InviteRecord>>;
    async fn team_invites(&self, team_id: TeamId) -> StoreResult<Vec<InviteRecord>>;
    /// Marks a usable invite accepted and adds the member with the invite's role, atomically.
    /// The team and role when it was usable.
    async fn accept_invite(
        &self,
        invite_id: i64,
        user_id: UserId,
        now: Millis,
    ) -> StoreResult<Option<(TeamId, RoleId)>>;
    async fn revoke_invite(
        &self,
        team_id: TeamId,
        invite_id: i64,
        now: Millis,
    ) -> StoreResult<bool>;
}

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: i64,
    pub at: Millis,
    pub event: String,
    pub actor_user_id: Option<UserId>,
    pub actor_email: Option<String>,
    pub user_id: Option<UserId>,
    pub team_id: Option<TeamId>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub details: String,
}

/// A device whose emailed code was verified: it signs in without a code until `expires_at`.
#[derive(Debug, Clone)]
pub struct TrustedDeviceRecord {
    pub id: i64,
    pub device_hash: String,
    pub user_agent: Option<String>,
    pub created_at: Millis,
    pub last_used_at: Millis,
    pub expires_at: Millis,
}

#[async_trait]
pub trait DeviceRepo: Send + Sync {
    async fn is_trusted_device(
        &self,
        user_id: UserId,
        device_hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<bool>;
    async fn trust_device(
        &self,
        user_id: UserId,
        device_hash: &TokenHash,
        user_agent: Option<&str>,
        now: Millis,
        expires_at: Millis,
    ) -> StoreResult<()>;
    /// The user's devices trusted at `now`, most recently used first.
    async fn trusted_devices(
        &self,
        user_id: UserId,
        now: Millis,
    ) -> StoreResult<Vec<TrustedDeviceRecord>>;
    /// Ends the trust in the user's trusted device with this row id; false when there is none.
    async fn distrust_device_by_id(
        &self,
        user_id: UserId,
        id: i64,
        now: Millis,
    ) -> StoreResult<bool>;
    /// Ends the trust in one device of the user, or in all of them (`None`).
    async fn distrust_devices(
        &self,
        user_id: UserId,
        device_hash: Option<&TokenHash>,
        now: Millis,
    ) -> StoreResult<()>;
}

/// What `known_devices` says about a device (user agent + client IP) at a sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceHistory {
    /// The user has signed in from some device before.
    pub any_known: bool,
    /// ... from this one.
    pub this_known: bool,
}

/// Devices signed in from, and the single-use "this wasn't me" links of new-device alerts.
#[async_trait]
pub trait DeviceHistoryRepo: Send + Sync {
    async fn device_history(
        &self,
        user_id: UserId,
        fingerprint: &str,
    ) -> StoreResult<DeviceHistory>;
    /// Records a sign-in from the device (first time, or again).
    async fn remember_device(
        &self,
        user_id: UserId,
        fingerprint: &str,
        now: Millis,
    ) -> StoreResult<()>;
    async fn forget_device(&self, user_id: UserId, fingerprint: &str) -> StoreResult<()>;
    async fn insert_device_alert(
        &self,
        token_hash: &TokenHash,
        user_id: UserId,
        fingerprint: &str,
        now: Millis,
        expires_at: Millis,
    ) -> StoreResult<()>;
    /// Marks the link used, once, if unexpired: its user and device.
    async fn consume_device_alert(
        &self,
        token_hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<(UserId, String)>>;
}

/// A registered passkey. `passkey` is webauthn-rs's verified credential as JSON (public key,
/// counter: nothing secret).
#[derive(Debug, Clone)]
pub struct PasskeyRecord {
    pub id: i64,
    pub name: String,
    pub passkey: String,
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
}

#[async_trait]
pub trait PasskeyRepo: Send + Sync {
    async fn passkeys(&self, user_id: UserId) -> StoreResult<Vec<PasskeyRecord>>;
    /// `None` when the credential is registered already (to anyone).
    async fn insert_passkey(
        &self,
        user_id: UserId,
        credential_id: &str,
        name: &str,
        passkey: &str,
        now: Millis,
    ) -> StoreResult<Option<i64>>;
    async fn rename_passkey(&self, user_id: UserId, id: i64, name: &str) -> StoreResult<bool>;
    async fn delete_passkey(&self, user_id: UserId, id: i64) -> StoreResult<bool>;
    /// After a sign-in with it: the updated credential (counter) and when.
    async fn passkey_used(
        &self,
        user_id: UserId,
        id: i64,
        passkey: &str,
        now: Millis,
    ) -> StoreResult<()>;
}

/// A team's security policy as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamPolicyRecord {
    pub require_mfa: bool,
    pub grace_days: i64,
    /// When `require_mfa` was switched on.
    pub enforced_from: Option<Millis>,
    pub updated_at: Millis,
}

#[async_trait]
pub trait TeamPolicyRepo: Send + Sync {
    async fn team_policy(&self, team_id: TeamId) -> StoreResult<Option<TeamPolicyRecord>>;
    async fn set_team_policy(
        &self,
        team_id: TeamId,
        policy: &TeamPolicyRecord,
        updated_by: UserId,
    ) -> StoreResult<()>;
    /// Members of the team with no second factor: (user id, email).
    async fn members_without_mfa(&self, team_id: TeamId) -> StoreResult<Vec<(UserId, String)>>;
    /// A confirmed TOTP or at least one passkey.
    async fn has_second_factor(&self, user_id: UserId) -> StoreResult<bool>;
}

#[async_trait]
pub trait SessionRepo: Send + Sync {
    async fn create_session(&self, session: &NewSession) -> StoreResult<SessionId>;
    async fn session(&self, id: SessionId) -> StoreResult<Option<SessionRecord>>;
    /// Rotates the session's refresh token in one atomic statement, if the presented jti is
    /// still the current one and the session is live (not revoked, unexpired, not idle). The
    /// session as it is after the rotation; `None` when nothing changed.
    async fn rotate_refresh(
        &self,
        rotation: &RefreshRotation<'_>,
    ) -> StoreResult<Option<SessionRecord>>;
    /// Moves the session to another team (after a team switch).
    async fn set_session_team(&self, id: SessionId, team_id: TeamId) -> StoreResult<()>;
    /// Sets `revoked_at`; false when it was already revoked.
    async fn revoke_session(&self, id: SessionId, reason: &str, now: Millis) -> StoreResult<bool>;
    /// The user's sessions that are not revoked, not expired, not idle since `idle_since`, and
    /// in a team the user still belongs to: the sessions that could still be refreshed.
    async fn active_sessions(
        &self,
        user_id: UserId,
        now: Millis,
        idle_since: Millis,
    ) -> StoreResult<Vec<SessionRecord>>;
    /// Unexpired sessions revoked after `since` (by any process): `(id, expires_at, revoked_at)`.
    async fn sessions_revoked_since(
        &self,
        since: Millis,
        now: Millis,
    ) -> StoreResult<Vec<(SessionId, Millis, Millis)>>;
    /// The user's unrevoked sessions in one team (to end them when the membership ends).
    async fn team_sessions(&self, user_id: UserId, team_id: TeamId) -> StoreResult<Vec<SessionId>>;
    /// For diagnostics: the user's latest sessions, newest first, each with its
    /// `revoked_reason` (`None` while unrevoked).
    async fn recent_sessions(
        &self,
        user_id: UserId,
        limit: i64,
    ) -> StoreResult<Vec<(SessionRecord, Option<String>)>>;
    /// For diagnostics: why a session was revoked (`None`: not revoked, or no reason kept).
    async fn revoked_reason(&self, id: SessionId) -> StoreResult<Option<String>>;
}

/// A user's second factors as stored: secrets only in sealed form.
#[derive(Debug, Clone, Default)]
pub struct MfaRecord {
    /// The confirmed TOTP secret (base32, sealed), when TOTP is on.
    pub totp_secret_sealed: Option<String>,
    pub totp_confirmed_at: Option<Millis>,
    /// The last time step a TOTP code was accepted for (replays are refused).
    pub totp_last_step: Option<i64>,
    /// An enrolment waiting for its first code.
    pub totp_pending_sealed: Option<String>,
    pub totp_pending_at: Option<Millis>,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
}

impl MfaRecord {
    pub fn totp_enabled(&self) -> bool {
        self.totp_secret_sealed.is_some() && self.totp_confirmed_at.is_some()
    }
}

#[async_trait]
pub trait MfaRepo: Send + Sync {
    /// The user's second factors (an empty record when there are none).
    async fn mfa(&self, user_id: UserId) -> StoreResult<MfaRecord>;
    /// Starts (or restarts) a TOTP enrolment with a new sealed secret.
    async fn set_pending_totp(&self, user_id: UserId, sealed: &str, now: Millis)
    -> StoreResult<()>;
    /// Makes the pending secret — only if it is still `pending_sealed` — the active one, with
    /// `step` used, and replaces the recovery codes, in one transaction. False when the
    /// enrolment changed meanwhile.
    async fn confirm_totp(
        &self,
        user_id: UserId,
        pending_sealed: &str,
        step: i64,
        recovery_code_hashes: &[TokenHash],
        now: Millis,
    ) -> StoreResult<bool>;
    /// Records `step` as used if it is later than the last used one, atomically: true once per
    /// step (a replayed or older code gets false).
    async fn use_totp_step(&self, user_id: UserId, step: i64, now: Millis) -> StoreResult<bool>;
    /// Turns TOTP off (and drops a pending enrolment); false when it was not on.
    async fn remove_totp(&self, user_id: UserId, now: Millis) -> StoreResult<bool>;
    /// Voids every recovery code of the user and stores these (possibly none).
    async fn replace_recovery_codes(
        &self,
        user_id: UserId,
        code_hashes: &[TokenHash],
        now: Millis,
    ) -> StoreResult<()>;
    /// Marks an unused recovery code used; true once per code.
    async fn use_recovery_code(
        &self,
        user_id: UserId,
        code_hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<bool>;
}

/// When a session's user last proved who they are (sign-in or reauth), for step-up.
#[async_trait]
pub trait StepUpRepo: Send + Sync {
    /// `None` when there is no such session.
    async fn session_authenticated_at(&self, id: SessionId) -> StoreResult<Option<Millis>>;
    async fn set_session_authenticated_at(&self, id: SessionId, at: Millis) -> StoreResult<()>;
}

#[async_trait]
pub trait OutboxRepo: Send + Sync {
    async fn enqueue_email(
        &self,
        to: &str,
        kind: &str,
        payload: &str,
        now: Millis,
    ) -> StoreResult<i64>;
    /// Leases up to `limit` due messages until `lease_until`; a crashed sender's lease expires
    /// and the message is sent again.
    async fn claim_due_emails(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>>;
    async fn mark_email_sent(&self, id: i64, now: Millis) -> StoreResult<()>;
    /// Records a failed attempt: retried at `retry_at`, or given up when `None`.
    async fn mark_email_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<Millis>,
    ) -> StoreResult<()>;
    /// For diagnostics: the latest messages to `to`, newest first.
    async fn recent_emails(&self, to: &str, limit: i64) -> StoreResult<Vec<OutboxState>>;
    /// For diagnostics: the user's latest verification and reset links, newest first.
    async fn recent_link_tokens(
        &self,
        user_id: UserId,
        limit: i64,
    ) -> StoreResult<Vec<LinkTokenState>>;
}

#[async_trait]
pub trait AuditRepo: Send + Sync {
    async fn append_audit(&self, entry: &AuditEntry, at: Millis) -> StoreResult<()>;
    /// One user's own events (as subject), newest first, before `before_id`.
    async fn user_audit(
        &self,
        user_id: UserId,
        before_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>>;
    /// The team's events and its members' own account events, newest first, before `before_id`.
    async fn team_audit(
        &self,
        team_id: TeamId,
        before_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>>;
}

#[async_trait]
pub trait HealthRepo: Send + Sync {
    async fn ping_db(&self) -> StoreResult<()>;
    /// Versions recorded (successful) in `_sqlx_migrations`.
    async fn applied_migrations(&self) -> StoreResult<Vec<i64>>;
    /// Names of the indexes on our tables.
    async fn index_names(&self) -> StoreResult<Vec<String>>;
}

/// Everything the service needs from SQL.
pub trait Repository:
    UserRepo
    + VerificationRepo
    + TeamRepo
    + InviteRepo
    + DeviceRepo
    + DeviceHistoryRepo
    + TeamPolicyRepo
    + PasskeyRepo
    + SessionRepo
    + OutboxRepo
    + AuditRepo
    + HealthRepo
    + RetentionRepo
    + MfaRepo
    + StepUpRepo
{
}

impl<T> Repository for T where
    T: UserRepo
        + VerificationRepo
        + TeamRepo
        + InviteRepo
        + DeviceRepo
        + DeviceHistoryRepo
        + TeamPolicyRepo
        + PasskeyRepo
        + SessionRepo
        + OutboxRepo
        + AuditRepo
        + HealthRepo
        + RetentionRepo
        + MfaRepo
        + StepUpRepo
{
}

// ---------------------------------------------------------------------------------------------
// Email delivery.
// ---------------------------------------------------------------------------------------------

/// A message ready for a backend. `template` names what it is, `model` carries its variables
/// (Postmark templates render from the model; the other backends use `subject`/`text`).
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    pub to: String,
    pub template: String,
    pub subject: String,
    pub text: String,
    pub model: serde_json::Value,
}

#[async_trait]
pub trait EmailSender: Send + Sync {
    /// Sends one message; the error is a reason fit for logs (never the message body).
    async fn send(&self, email: &OutgoingEmail) -> Result<(), String>;
}

// ---------------------------------------------------------------------------------------------
// Virtuozzo.
// ---------------------------------------------------------------------------------------------

#[async_trait]
pub trait VirtuozzoSignIn: Send + Sync {
    /// Signs in; the session key, or a reason fit for logs (never the password).
    async fn sign_in(&self, email: &str, password: &str) -> Result<String, String>;
}

// ---------------------------------------------------------------------------------------------
// Breached passwords.
// ---------------------------------------------------------------------------------------------

/// A breach-range API (k-anonymity): the `SUFFIX:COUNT` lines of every breached password whose
/// SHA-1 (upper-case hex) starts with `prefix` (5 hex digits).
#[async_trait]
pub trait BreachedPasswordRange: Send + Sync {
    /// The answer's text, or a reason fit for logs.
    async fn range(&self, prefix: &str) -> Result<String, String>;
}

// ---------------------------------------------------------------------------------------------
// Retention.
// ---------------------------------------------------------------------------------------------

/// What one retention run purges: everything that stopped mattering before these times.
#[derive(Debug, Clone)]
pub struct RetentionCutoffs {
    /// Sessions that expired or were revoked before this.
    pub sessions_before: Millis,
    /// Verification and reset tokens used or expired, and invites ended, before this.
    pub tokens_before: Millis,
    /// Sent or failed outbox rows created before this (sent payloads are blanked whatever
    /// their age).
    pub outbox_before: Millis,
    /// Audit entries older than this.
    pub audit_before: Millis,
    /// Rows per statement, and statements per kind per run.
    pub batch_size: i64,
    pub max_batches: u32,
}

/// Rows purged by one run, per kind (the names are the metric's `kind` label).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionCounts {
    pub sessions: u64,
    pub email_verification_tokens: u64,
    pub password_reset_tokens: u64,
    pub team_invites: u64,
    pub new_device_alerts: u64,
    pub trusted_devices: u64,
    pub outbox_payloads: u64,
    pub outbox_messages: u64,
    pub audit_entries: u64,
}

impl RetentionCounts {
    pub fn by_kind(&self) -> [(&'static str, u64); 9] {
        [
            ("sessions", self.sessions),
            ("email_verification_tokens", self.email_verification_tokens),
            ("password_reset_tokens", self.password_reset_tokens),
            ("team_invites", self.team_invites),
            ("new_device_alerts", self.new_device_alerts),
            ("trusted_devices", self.trusted_devices),
            ("outbox_payloads", self.outbox_payloads),
            ("outbox_messages", self.outbox_messages),
            ("audit_entries", self.audit_entries),
        ]
    }

    pub fn total(&self) -> u64 {
        self.by_kind().iter().map(|(_, n)| n).sum()
    }
}

#[async_trait]
pub trait RetentionRepo: Send + Sync {
    /// One run in one transaction, by one instance at a time: `None` when another instance is
    /// running it now. The only path that may delete from `audit_log`.
    async fn purge_expired(&self, c: &RetentionCutoffs) -> StoreResult<Option<RetentionCounts>>;
}
