pub fn normalize(raw: &str) -> Result<std::borrow::Cow<'_, str>, ()> {
    Ok(raw.into())
}
pub fn segments(n: &str) -> impl Iterator<Item = &str> {
    n.strip_prefix('/').unwrap_or(n).split('/')
}
