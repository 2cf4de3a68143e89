//! Turns Cedar's diagnostics into plain text that says where the problem is:
//! `line 3, column 14`, the offending source line and Cedar's help. Cedar
//! reports positions as byte offsets into the text it parsed, which is the
//! whole text an administrator submitted for a level.

use miette::Diagnostic;

/// One diagnostic as text, located in `src` when Cedar gave a position.
pub(crate) fn describe(diag: &dyn Diagnostic, src: &str) -> String {
    let mut out = String::new();
    let first_label = diag.labels().and_then(|mut labels| labels.next());
    if let Some(label) = &first_label {
        let (line, column, line_text) = locate(src, label.offset());
        out.push_str(&format!("line {line}, column {column}: {diag}"));
        if let Some(what) = label.label() {
            out.push_str(&format!(" ({what})"));
        }
        out.push_str(&format!("\n  {line} | {line_text}"));
    } else {
        out.push_str(&diag.to_string());
    }
    if let Some(help) = diag.help() {
        out.push_str(&format!("\n  help: {help}"));
    }
    out
}

/// 1-based line and column (in characters) of a byte offset, and the text of
/// that line. An offset outside `src` (which Cedar should never give) is
/// clamped rather than trusted.
fn locate(src: &str, offset: usize) -> (usize, usize, &str) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[offset..].find('\n').map_or(src.len(), |i| offset + i);
    let line = before.matches('\n').count() + 1;
    let column = src[line_start..offset].chars().count() + 1;
    (line, column, src[line_start..line_end].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_offsets() {
        let src = "ab\ncdé\nf";
        assert_eq!(locate(src, 0), (1, 1, "ab"));
        assert_eq!(locate(src, 4), (2, 2, "cdé"));
        assert_eq!(locate(src, 8), (3, 1, "f"));
        assert_eq!(locate(src, 99), (3, 2, "f"));
        // inside the two bytes of 'é': moved back to its start
        assert_eq!(locate(src, 6), (2, 3, "cdé"));
    }
}
