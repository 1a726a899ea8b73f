//! Closed sets of values known by their names (API statuses, event types):
//! reading a name back is the same search over the set for each of them.

/// The member of `all` whose name is `name`.
pub fn by_name<T: Copy>(all: &[T], name: &str, name_of: fn(T) -> &'static str) -> Option<T> {
    all.iter().copied().find(|&value| name_of(value) == name)
}

/// `name` as quoted in an error: at most 64 characters of it, whatever was sent.
pub fn shown(name: &str) -> String {
    name.chars().take(64).collect()
}
