//! Which schema a database has, against the one this binary was built for.
//!
//! The binary's schema is the list `sqlx::migrate!` embedded for the engine,
//! so a migration added later is counted here with no change to this file. The
//! database's is sqlx's own bookkeeping table, `_sqlx_migrations`. A schema is
//! named by its newest migration's version (`20261202000005`), the number an
//! operator finds in that table and in `migrations/<engine>/`.
//!
//! Only `run` and `migrate` change a schema. Every other command asks here
//! first and refuses a database that is behind (an older daemon may still be
//! running on it: upgrading it under that daemon is the operator's decision,
//! made with `migrate`) or ahead (a newer binary upgraded it: this one does not
//! know what its columns mean).

use sqlx::migrate::Migrator;

use super::StoreError;

/// A database's schema against this binary's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// Every migration this binary knows is applied, and no other.
    Current,
    /// Migrations of this binary are missing: `migrate` applies them.
    /// `has` is the newest applied (0: none), `needs` this binary's newest.
    Behind { has: i64, needs: i64 },
    /// Migrations this binary does not know are applied: a newer binary
    /// upgraded the database. `knows` is this binary's newest.
    Ahead {
        has: i64,
        knows: i64,
        unknown: Vec<i64>,
    },
}

/// The versions of this binary's (up) migrations in `migrator`, in order.
pub(in crate::store) fn embedded(migrator: &Migrator) -> Vec<i64> {
    let mut versions: Vec<i64> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    versions.sort_unstable();
    versions.dedup();
    versions
}

/// `applied` (a database's migrations) against `known` (a binary's). Pure.
/// Unknown migrations win over missing ones: this binary's `migrate` could not
/// bring such a database up to date anyway.
pub(in crate::store) fn compare(applied: &[i64], known: &[i64]) -> SchemaState {
    let newest = |v: &[i64]| v.iter().copied().max().unwrap_or(0);
    let unknown: Vec<i64> = applied
        .iter()
        .copied()
        .filter(|v| !known.contains(v))
        .collect();
    if !unknown.is_empty() {
        return SchemaState::Ahead {
            has: newest(applied),
            knows: newest(known),
            unknown,
        };
    }
    if known.iter().any(|v| !applied.contains(v)) {
        return SchemaState::Behind {
            has: newest(applied),
            needs: newest(known),
        };
    }
    SchemaState::Current
}

/// `Ok` for a current schema, else the error that says what to do.
pub(in crate::store) fn require_current(state: SchemaState, path: &str) -> Result<(), StoreError> {
    match state {
        SchemaState::Current => Ok(()),
        SchemaState::Behind { has, needs } => Err(StoreError::SchemaBehind {
            path: path.to_owned(),
            has,
            needs,
        }),
        ahead @ SchemaState::Ahead { .. } => Err(ahead_error(ahead, path)),
    }
}

/// The error for a database a newer binary upgraded (also what `migrate` and
/// `run` say, instead of sqlx's "previously applied but is missing").
pub(in crate::store) fn ahead_error(state: SchemaState, path: &str) -> StoreError {
    let SchemaState::Ahead {
        has,
        knows,
        unknown,
    } = state
    else {
        return StoreError::Migrate(format!("internal error: {state:?} is not ahead"));
    };
    StoreError::SchemaAhead {
        path: path.to_owned(),
        has,
        knows,
        unknown: unknown
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_is_current_behind_or_ahead() {
        let known = [1, 2, 3];
        assert_eq!(compare(&[1, 2, 3], &known), SchemaState::Current);
        assert_eq!(
            compare(&[1, 2], &known),
            SchemaState::Behind { has: 2, needs: 3 }
        );
        assert_eq!(
            compare(&[], &known),
            SchemaState::Behind { has: 0, needs: 3 }
        );
        assert_eq!(
            compare(&[1, 2, 3, 4], &known),
            SchemaState::Ahead {
                has: 4,
                knows: 3,
                unknown: vec![4]
            }
        );
        // A gap filled by another branch's migration is still unknown here.
        assert_eq!(
            compare(&[1, 2, 5], &known),
            SchemaState::Ahead {
                has: 5,
                knows: 3,
                unknown: vec![5]
            }
        );
    }

    #[test]
    fn the_embedded_list_is_the_migrations_directory() {
        let mut files: Vec<i64> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
                .unwrap()
                .filter_map(|e| {
                    let name = e.ok()?.file_name().into_string().ok()?;
                    name.split('_').next()?.parse().ok()
                })
                .collect();
        files.sort_unstable();
        assert_eq!(embedded(&crate::store::sqlite::MIGRATOR), files);
    }
}
