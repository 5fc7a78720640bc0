//! Text out of uploaded files: plain text and Markdown, HTML, CSV (one line per row, "column:
//! value" pairs as Dify's CSV extractor writes them), JSON, PDF and DOCX. A file that cannot
//! be read is an error with the reason, never a panic: PDF parsing runs under catch_unwind.

use std::io::{Cursor, Read};

/// Extensions this build can index.
pub const SUPPORTED: &[&str] = &["txt", "md", "markdown", "mdx", "html", "htm", "csv", "json", "pdf", "docx"];

/// Whether `extension` (lower-case, no dot) can be indexed.
pub fn supported(extension: &str) -> bool {
    SUPPORTED.contains(&extension)
}

/// The text of a file, or why it has none.
pub fn extract(bytes: &[u8], extension: &str) -> Result<String, String> {
    let text = match extension {
        "txt" | "md" | "markdown" | "mdx" => utf8(bytes)?,
        "html" | "htm" => html_text(&utf8(bytes)?),
        "csv" => csv_text(bytes)?,
        "json" => {
            let value: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|e| format!("the file is not valid JSON: {e}"))?;
            serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?
        }
        "pdf" => pdf_text(bytes)?,
        "docx" => docx_text(bytes)?,
        other => return Err(format!("files of type .{other} are not supported")),
    };
    if text.trim().is_empty() {
        return Err("the file contains no text".into());
    }
    Ok(text)
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8(bytes.to_vec()).map_err(|_| "the file is not valid UTF-8 text".to_owned())
}

fn pdf_text(bytes: &[u8]) -> Result<String, String> {
    if !bytes.starts_with(b"%PDF") {
        return Err("the file is not a PDF (no %PDF header)".into());
    }
    let owned = bytes.to_vec();
    // pdf-extract may panic on malformed input; a bad upload must not take a thread down.
    // (The panic hook still logs it; the process-wide hook is not swapped from here.)
    let result = std::panic::catch_unwind(move || pdf_extract::extract_text_from_mem(&owned));
    match result {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(error)) => Err(format!("the PDF cannot be read: {error}")),
        Err(_) => Err("the PDF cannot be read: it is malformed".into()),
    }
}

fn docx_text(bytes: &[u8]) -> Result<String, String> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("the file is not a DOCX (zip): {e}"))?;
    let mut xml = String::new();
    archive
        .by_name("word/document.xml")
        .map_err(|_| "the file is not a DOCX: word/document.xml is missing".to_owned())?
        .take(64 * 1024 * 1024)
        .read_to_string(&mut xml)
        .map_err(|e| format!("the DOCX cannot be read: {e}"))?;
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut out = String::new();
    let mut in_text = false;
    loop {
        use quick_xml::events::Event;
        match reader.read_event().map_err(|e| format!("the DOCX cannot be read: {e}"))? {
            Event::Start(tag) if tag.name().into_inner() == "w:t" => in_text = true,
            Event::End(tag) => match tag.name().into_inner() {
                "w:t" => in_text = false,
                "w:p" => out.push('\n'),
                _ => {}
            },
            Event::Empty(tag) => match tag.name().into_inner() {
                "w:tab" => out.push('\t'),
                "w:br" | "w:cr" => out.push('\n'),
                _ => {}
            },
            Event::Text(text) if in_text => out.push_str(&text.into_inner()),
            Event::GeneralRef(entity) if in_text => {
                out.push_str(&decode_html(&format!("&{};", entity.into_inner())))
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

fn decode_entity(name: &str) -> &'static str {
    match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        "nbsp" => " ",
        _ => "",
    }
}

fn csv_text(bytes: &[u8]) -> Result<String, String> {
    let text = utf8(bytes)?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("the CSV cannot be read: {e}"))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut out = String::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("the CSV cannot be read: {e}"))?;
        let pairs: Vec<String> = record
            .iter()
            .enumerate()
            .map(|(i, value)| format!("{}: {}", headers.get(i).map_or("", String::as_str), value.trim()))
            .collect();
        out.push_str(&pairs.join("; "));
        out.push_str("\n\n");
    }
    Ok(out)
}

/// Visible text of an HTML page: scripts and styles dropped, block ends as line breaks,
/// common entities decoded.
fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&decode_html(&rest[..start]));
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else { break };
        let tag = after[..end].trim().to_ascii_lowercase();
        let name: String =
            tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        rest = &after[end + 1..];
        if !tag.starts_with('/') && (name == "script" || name == "style") {
            let close = format!("</{name}");
            rest = match rest.to_ascii_lowercase().find(&close) {
                Some(at) => rest[at..].find('>').map_or("", |gt| &rest[at + gt + 1..]),
                None => "",
            };
            continue;
        }
        if matches!(
            name.as_str(),
            "p" | "div"
                | "br"
                | "li"
                | "tr"
                | "h1"
                | "h2"
                | "h3"
                | "h4"
                | "h5"
                | "h6"
                | "section"
                | "article"
                | "table"
                | "ul"
                | "ol"
                | "pre"
                | "blockquote"
        ) {
            out.push('\n');
        }
    }
    out.push_str(&decode_html(rest));
    out
}

fn decode_html(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match after.find(';').filter(|end| *end <= 10) {
            Some(end) => {
                let entity = &after[..end];
                let decoded = match entity.strip_prefix('#') {
                    Some(num) => {
                        let code = match num.strip_prefix(['x', 'X']) {
                            Some(hex) => u32::from_str_radix(hex, 16).ok(),
                            None => num.parse().ok(),
                        };
                        code.and_then(char::from_u32).map(String::from)
                    }
                    None => Some(decode_entity(entity).to_owned()).filter(|s| !s.is_empty()),
                };
                match decoded {
                    Some(d) => out.push_str(&d),
                    None => out.push_str(&rest[at..at + end + 2]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_keeps_visible_text_only() {
        let html = "<html><head><style>p{}</style><script>alert(1)</script></head>\
                    <body><h1>Title</h1><p>Fish &amp; chips &#169; &lt;3</p></body></html>";
        let text = html_text(html);
        assert!(text.contains("Title\n") && text.contains("Fish & chips © <3"), "{text:?}");
        assert!(!text.contains("alert") && !text.contains("p{}"), "{text:?}");
    }

    #[test]
    fn csv_rows_become_column_value_lines() {
        let text = extract(b"name,city\nAda,London\nGrace,Arlington\n", "csv").expect("csv");
        assert_eq!(text, "name: Ada; city: London\n\nname: Grace; city: Arlington\n\n");
    }

    #[test]
    fn bad_files_are_errors_not_panics() {
        assert!(extract(b"%PDF-1.4 garbage", "pdf").is_err());
        assert!(extract(b"not a pdf", "pdf").is_err());
        assert!(extract(b"PK not a zip", "docx").is_err());
        assert!(extract(b"{bad json", "json").is_err());
        assert!(extract(&[0xff, 0xfe, 0x00], "txt").is_err());
        assert!(extract(b"   ", "txt").is_err(), "empty text");
        assert!(extract(b"x", "exe").is_err());
    }
}
