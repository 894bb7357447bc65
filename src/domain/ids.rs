//! The ids of our records, one type each, so that a user id cannot be passed where a team id
//! is expected (nor the arguments of `set_member_role(team, user, role)` swapped). Each is an
//! `i64` on the wire and in SQL: serde and sqlx see the number (transparent), the OpenAPI
//! document an `integer` of format `int64`.
//!
//! ```compile_fail
//! use mbpanel_auth::domain::{TeamId, UserId};
//! fn members_of(_team: TeamId) {}
//! members_of(UserId(1)); // a user id where a team id belongs does not compile
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The number, for a log field or a key.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }

        /// The same schema as an `i64`.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                <i64 as utoipa::PartialSchema>::schema()
            }
        }

        /// No component of its own: response fields of this type say `#[schema(value_type = i64)]`
        /// (or `inline`), so the document shows the integer itself.
        impl utoipa::ToSchema for $name {}
    };
}

id_type!(
    /// A user (`users.id`).
    UserId
);
id_type!(
    /// A team (`teams.id`).
    TeamId
);
id_type!(
    /// A role, built-in or a team's own (`roles.id`).
    RoleId
);
id_type!(
    /// A session (`active_sessions.id`), the `sid` of its tokens.
    SessionId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_numbers_on_the_wire_and_in_text() {
        let id = UserId(42);
        assert_eq!(serde_json::to_string(&id).unwrap(), "42");
        assert_eq!(serde_json::from_str::<UserId>("42").unwrap(), id);
        assert!(serde_json::from_str::<UserId>("\"42\"").is_err());
        assert_eq!(id.to_string(), "42");
        assert_eq!("42".parse::<UserId>().unwrap(), id);
        assert!("4x".parse::<TeamId>().is_err());
    }

    #[test]
    fn ids_have_the_schema_of_an_i64() {
        use utoipa::PartialSchema;
        let id = serde_json::to_value(UserId::schema()).unwrap();
        let int = serde_json::to_value(<i64 as PartialSchema>::schema()).unwrap();
        assert_eq!(id, int);
    }
}
