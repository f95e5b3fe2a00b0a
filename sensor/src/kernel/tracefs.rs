//! Tracepoint record layouts from tracefs (`events/<category>/<name>/format`).

use std::{collections::HashMap, path::Path};

/// The tracefs mount: `/sys/kernel/tracing`, or the older `/sys/kernel/debug/tracing`.
pub fn root() -> Option<&'static Path> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("events").is_dir())
}

/// Whether the kernel has tracepoint `category:name`.
pub fn exists(category: &str, name: &str) -> bool {
    root().is_some_and(|r| r.join("events").join(category).join(name).is_dir())
}

/// Field name → byte offset in the tracepoint record.
pub fn field_offsets(category: &str, name: &str) -> Option<HashMap<String, u32>> {
    let text = std::fs::read_to_string(
        root()?
            .join("events")
            .join(category)
            .join(name)
            .join("format"),
    )
    .ok()?;
    Some(parse_format(&text))
}

/// Parses `field:int cap;\toffset:32;\tsize:4;\tsigned:1;` lines.
pub fn parse_format(text: &str) -> HashMap<String, u32> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let decl = line.strip_prefix("field:")?.split(';').next()?;
            let name = decl.split_whitespace().last()?.trim_start_matches('*');
            let name = name.split('[').next()?;
            let offset = line
                .split(';')
                .find_map(|p| p.trim().strip_prefix("offset:"))?;
            Some((name.to_owned(), offset.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_capable_format() {
        let text = "name: cap_capable\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\tfield:const struct cred * cred;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:int cap;\toffset:32;\tsize:4;\tsigned:1;\n\tfield:int ret;\toffset:36;\tsize:4;\tsigned:1;\n";
        let f = parse_format(text);
        assert_eq!(f["cap"], 32);
        assert_eq!(f["ret"], 36);
        assert_eq!(f["cred"], 8);
        assert_eq!(f["common_type"], 0);
    }
}
