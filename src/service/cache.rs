//! The per-instance cache of the facts every authenticated request needs: sessions, users and
//! (user, team) access. SQL is the record; this cache lets the hot path run no SQL at all.
//!
//! It is coherent across instances through the invalidation bus (`service::bus`): every change
//! of a fact is published, and every instance drops its copy. The cache is trusted only while
//! the bus is up — when the subscription is lost (Redis down, a connection dropped, a listener
//! that fell behind) every entry is dropped and nothing is cached until the bus is back, so
//! a missed invalidation can never keep a stale fact alive. Entries also age out (a backstop).
//!
//! A fill races an invalidation of the same key: the fill reads the generation before going to
//! SQL and removes what it inserted if an invalidation happened meanwhile.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use moka::sync::Cache;

use super::Result;
use super::ports::{SessionRecord, UserRecord};
use super::rbac::TeamAccess;
use crate::domain::claims::AccessClaims;
use crate::domain::{SessionId, TeamId, UserId};

const MAX_ENTRIES: u64 = 200_000;
const SESSION_MAX_AGE: Duration = Duration::from_secs(60);
const USER_MAX_AGE: Duration = Duration::from_secs(60);
const ACCESS_MAX_AGE: Duration = Duration::from_secs(30);
const VERIFIED_TOKEN_MAX_AGE: Duration = Duration::from_secs(300);

/// Access tokens that verified (signature, header, claims), by their exact text: verifying a
/// token is a pure function of its text and our keys, so a repeat is answered from here —
/// except for the expiry, which is checked on every use. The session behind it is checked on
/// every request all the same.
pub struct VerifiedTokens {
    tokens: Cache<Box<str>, Arc<AccessClaims>>,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self {
            tokens: Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(VERIFIED_TOKEN_MAX_AGE)
                .build(),
        }
    }
}

impl VerifiedTokens {
    /// The claims of a token verified before, if it has not expired since.
    pub fn get(&self, token: &str, now_seconds: i64) -> Option<Arc<AccessClaims>> {
        self.tokens
            .get(token)
            .filter(|claims| claims.exp > now_seconds)
    }

    pub fn put(&self, token: &str, claims: Arc<AccessClaims>) {
        self.tokens.insert(token.into(), claims);
    }
}

/// A fact that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    Session(SessionId),
    User(UserId),
    /// A role, its permissions or a membership of the team.
    Team(TeamId),
    /// Everything (a bulk change).
    All,
}

impl Fact {
    pub fn encode(self) -> String {
        match self {
            Fact::Session(id) => format!("s:{id}"),
            Fact::User(id) => format!("u:{id}"),
            Fact::Team(id) => format!("t:{id}"),
            Fact::All => "*".to_owned(),
        }
    }

    pub fn decode(s: &str) -> Option<Fact> {
        if s == "*" {
            return Some(Fact::All);
        }
        let (kind, id) = s.split_once(':')?;
        let id: i64 = id.parse().ok()?;
        match kind {
            "s" => Some(Fact::Session(SessionId(id))),
            "u" => Some(Fact::User(UserId(id))),
            "t" => Some(Fact::Team(TeamId(id))),
            _ => None,
        }
    }
}

pub struct FactCache {
    sessions: Cache<SessionId, Arc<SessionRecord>>,
    users: Cache<UserId, Arc<UserRecord>>,
    access: Cache<(UserId, TeamId), Option<Arc<TeamAccess>>>,
    /// True while the invalidation bus is up: only then is anything cached or trusted.
    coherent: AtomicBool,
    /// Bumped by every invalidation.
    generation: AtomicU64,
}

impl Default for FactCache {
    fn default() -> Self {
        fn cache<K, V>(max_age: Duration) -> Cache<K, V>
        where
            K: Hash + Eq + Send + Sync + 'static,
            V: Clone + Send + Sync + 'static,
        {
            Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(max_age)
                .build()
        }
        Self {
            sessions: cache(SESSION_MAX_AGE),
            users: cache(USER_MAX_AGE),
            access: cache(ACCESS_MAX_AGE),
            coherent: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        }
    }
}

impl FactCache {
    pub fn is_coherent(&self) -> bool {
        self.coherent.load(Ordering::SeqCst)
    }

    /// The bus is up (`true`: start trusting, from empty) or lost (`false`: trust nothing).
    pub fn set_coherent(&self, coherent: bool) {
        if !coherent {
            self.coherent.store(false, Ordering::SeqCst);
        }
        self.drop_all();
        if coherent {
            self.coherent.store(true, Ordering::SeqCst);
        }
    }

    fn drop_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.sessions.invalidate_all();
        self.users.invalidate_all();
        self.access.invalidate_all();
    }

    pub fn invalidate(&self, fact: Fact) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        match fact {
            Fact::Session(id) => self.sessions.invalidate(&id),
            Fact::User(id) => self.users.invalidate(&id),
            // Access entries are keyed by (user, team); team changes are rare: drop them all.
            Fact::Team(_) => self.access.invalidate_all(),
            Fact::All => self.drop_all(),
        }
    }

    /// A session by id; only sessions that exist are cached, so a session created on another
    /// instance is never hidden behind a cached absence.
    pub async fn session<F, Fut>(
        &self,
        id: SessionId,
        load: F,
    ) -> Result<Option<Arc<SessionRecord>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<SessionRecord>>>,
    {
        self.existing(&self.sessions, id, load).await
    }

    pub async fn user<F, Fut>(&self, id: UserId, load: F) -> Result<Option<Arc<UserRecord>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<UserRecord>>>,
    {
        self.existing(&self.users, id, load).await
    }

    /// Read-through for facts that are cached only when they exist.
    async fn existing<K, V, F, Fut>(
        &self,
        cache: &Cache<K, Arc<V>>,
        key: K,
        load: F,
    ) -> Result<Option<Arc<V>>>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>>>,
    {
        if self.is_coherent()
            && let Some(hit) = cache.get(&key)
        {
            return Ok(Some(hit));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let Some(found) = load().await? else {
            return Ok(None);
        };
        let found = Arc::new(found);
        self.fill(cache, key, Arc::clone(&found), generation);
        Ok(Some(found))
    }

    /// A member's access (`None`: not a member; absences are cached too, since a membership
    /// that appears is published as a team change).
    pub async fn access<F, Fut>(
        &self,
        user_id: UserId,
        team_id: TeamId,
        load: F,
    ) -> Result<Option<Arc<TeamAccess>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<TeamAccess>>>,
    {
        let key = (user_id, team_id);
        if self.is_coherent()
            && let Some(hit) = self.access.get(&key)
        {
            return Ok(hit);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let found = load().await?.map(Arc::new);
        self.fill(&self.access, key, found.clone(), generation);
        Ok(found)
    }

    fn fill<K, V>(&self, cache: &Cache<K, V>, key: K, value: V, generation: u64)
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        if !self.is_coherent() {
            return;
        }
        cache.insert(key.clone(), value);
        // An invalidation since the read may have missed this entry: drop it, to be safe.
        if self.generation.load(Ordering::SeqCst) != generation || !self.is_coherent() {
            cache.invalidate(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_round_trip() {
        for f in [
            Fact::Session(SessionId(3)),
            Fact::User(UserId(4)),
            Fact::Team(TeamId(5)),
            Fact::All,
        ] {
            assert_eq!(Fact::decode(&f.encode()), Some(f));
        }
        assert_eq!(Fact::decode("x:1"), None);
        assert_eq!(Fact::decode("s:abc"), None);
    }

    fn user(id: UserId, name: &str) -> UserRecord {
        UserRecord {
            id,
            email: format!("{name}@example.com"),
            name: name.to_owned(),
            password_hash: String::new(),
            email_verified_at: None,
            deleted_at: None,
        }
    }

    #[tokio::test]
    async fn caches_only_while_coherent_and_forgets_on_invalidation() {
        let cache = FactCache::default();
        let load = |name: &'static str| move || async move { Ok(Some(user(UserId(1), name))) };
        // Not coherent: nothing is kept.
        cache.user(UserId(1), load("a")).await.unwrap();
        assert_eq!(
            cache
                .user(UserId(1), load("b"))
                .await
                .unwrap()
                .unwrap()
                .name,
            "b"
        );

        cache.set_coherent(true);
        cache.user(UserId(1), load("c")).await.unwrap();
        assert_eq!(
            cache
                .user(UserId(1), load("d"))
                .await
                .unwrap()
                .unwrap()
                .name,
            "c"
        );
        cache.invalidate(Fact::User(UserId(1)));
        assert_eq!(
            cache
                .user(UserId(1), load("e"))
                .await
                .unwrap()
                .unwrap()
                .name,
            "e"
        );

        // Losing the bus drops everything.
        cache.set_coherent(false);
        cache.set_coherent(true);
        assert_eq!(
            cache
                .user(UserId(1), load("f"))
                .await
                .unwrap()
                .unwrap()
                .name,
            "f"
        );
    }

    #[tokio::test]
    async fn a_fill_racing_an_invalidation_is_not_kept() {
        let cache = Arc::new(FactCache::default());
        cache.set_coherent(true);
        let racing = Arc::clone(&cache);
        cache
            .user(UserId(1), || async move {
                // The fact changes while this request reads the old value from SQL.
                racing.invalidate(Fact::User(UserId(1)));
                Ok(Some(user(UserId(1), "stale")))
            })
            .await
            .unwrap();
        let fresh = cache
            .user(UserId(1), || async { Ok(Some(user(UserId(1), "fresh"))) })
            .await
            .unwrap();
        assert_eq!(fresh.unwrap().name, "fresh");
    }
}
