//! Text processing for indexing: Dify's pre-processing rules, its splitters, a token
//! estimate, and the keywords of the economy index (words for alphabetic scripts, character
//! bigrams for Chinese, Japanese and Korean, so no dictionary has to be loaded).

use std::collections::BTreeSet;

/// Roughly how many tokens a text costs: a token per CJK character, and one per four
/// characters of other text (GPT-2's average on English). Dify counts with the embedding
/// model's tokenizer; economy datasets have none, so an estimate sizes the chunks.
pub fn estimate_tokens(text: &str) -> usize {
    let (mut cjk, mut other) = (0usize, 0usize);
    for c in text.chars() {
        if is_cjk(c) {
            cjk += 1;
        } else {
            other += 1;
        }
    }
    cjk + other.div_ceil(4)
}

/// Dify's word count: characters, as `len(text)` counts them.
pub fn word_count(text: &str) -> usize {
    text.chars().count()
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF   // hiragana, katakana
        | 0x3400..=0x4DBF // CJK extension A
        | 0x4E00..=0x9FFF // CJK unified ideographs
        | 0xAC00..=0xD7AF // hangul syllables
        | 0xF900..=0xFAFF // CJK compatibility ideographs
        | 0x20000..=0x2A6DF)
}

/// Pre-processing rules a process rule may switch on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cleaning {
    pub remove_extra_spaces: bool,
    pub remove_urls_emails: bool,
}

/// Dify's cleaning: always drop control characters and model special markers; then the rules.
pub fn clean(text: &str, rules: Cleaning) -> String {
    let mut out: String = text
        .replace("<|", "<")
        .replace("|>", ">")
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t') || *c == '\r')
        .filter(|c| *c != '\u{FFFE}')
        .collect();
    out = out.replace("\r\n", "\n").replace('\r', "\n");
    if rules.remove_urls_emails {
        out = out
            .split_inclusive(char::is_whitespace)
            .map(|word| {
                let bare = word.trim_end();
                let is_url =
                    bare.starts_with("http://") || bare.starts_with("https://") || bare.starts_with("www.");
                let is_email = bare.contains('@') && bare.rsplit('@').next().is_some_and(|d| d.contains('.'));
                if is_url || is_email { &word[bare.len()..] } else { word }
            })
            .collect();
    }
    if rules.remove_extra_spaces {
        // Three or more line breaks become two; runs of spaces and tabs become one space.
        let mut collapsed = String::with_capacity(out.len());
        let (mut newlines, mut spaces) = (0, 0);
        for c in out.chars() {
            match c {
                '\n' => {
                    newlines += 1;
                    spaces = 0;
                    if newlines <= 2 {
                        collapsed.push('\n');
                    }
                }
                ' ' | '\t' | '\u{3000}' | '\u{A0}' => {
                    spaces += 1;
                    if spaces == 1 {
                        collapsed.push(' ');
                    }
                }
                other => {
                    newlines = 0;
                    spaces = 0;
                    collapsed.push(other);
                }
            }
        }
        out = collapsed;
    }
    out
}

/// How to cut a cleaned text into segments.
#[derive(Debug, Clone)]
pub struct Splitting {
    /// Custom mode's separator: each part is a segment unless it is too long. `None` for
    /// automatic mode, which packs paragraphs and sentences up to `max_tokens`.
    pub separator: Option<String>,
    pub max_tokens: usize,
    pub chunk_overlap: usize,
}

/// Separators tried in turn when a piece is too long (Dify's recursive splitter).
const FALLBACK_SEPARATORS: [&str; 6] = ["\n\n", "\n", "。", ". ", " ", ""];

/// Splits a cleaned text into non-empty, trimmed segments.
pub fn split(text: &str, rule: &Splitting) -> Vec<String> {
    let max = rule.max_tokens.max(1);
    let overlap = rule.chunk_overlap.min(max / 2);
    let chunks = match rule.separator.as_deref().filter(|s| !s.is_empty()) {
        Some(separator) => {
            let separator = separator.replace("\\n", "\n");
            text.split(separator.as_str())
                .flat_map(|part| {
                    if estimate_tokens(part) > max {
                        recursive_split(part, max, overlap, 0)
                    } else {
                        vec![part.to_owned()]
                    }
                })
                .collect()
        }
        None => recursive_split(text, max, overlap, 0),
    };
    chunks.into_iter().map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect()
}

/// Cuts by the first separator that occurs, packs the pieces up to `max` tokens with
/// `overlap` tokens carried into the next chunk, and recurses into pieces still too long.
fn recursive_split(text: &str, max: usize, overlap: usize, level: usize) -> Vec<String> {
    if estimate_tokens(text) <= max {
        return vec![text.to_owned()];
    }
    let Some((index, separator)) =
        FALLBACK_SEPARATORS.iter().enumerate().skip(level).find(|(_, s)| s.is_empty() || text.contains(**s))
    else {
        return vec![text.to_owned()];
    };
    let pieces: Vec<String> = if separator.is_empty() {
        text.chars().map(String::from).collect()
    } else {
        // Keep the separator on the piece before it, so sentences keep their full stop.
        text.split_inclusive(separator).map(str::to_owned).collect()
    };
    let mut chunks = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut current_tokens = 0;
    for piece in pieces {
        let tokens = estimate_tokens(&piece);
        if tokens > max {
            if !current.is_empty() {
                chunks.push(current.concat());
                current.clear();
                current_tokens = 0;
            }
            chunks.extend(recursive_split(&piece, max, overlap, index + 1));
            continue;
        }
        if current_tokens + tokens > max && !current.is_empty() {
            chunks.push(current.concat());
            // Carry the tail of this chunk into the next one, up to `overlap` tokens.
            let mut kept = Vec::new();
            let mut kept_tokens = 0;
            for previous in current.iter().rev() {
                let t = estimate_tokens(previous);
                if kept_tokens + t > overlap || kept_tokens + t + tokens > max {
                    break;
                }
                kept_tokens += t;
                kept.push(previous.clone());
            }
            kept.reverse();
            current = kept;
            current_tokens = kept_tokens;
        }
        current_tokens += tokens;
        current.push(piece);
    }
    if !current.is_empty() {
        chunks.push(current.concat());
    }
    chunks
}

/// Common English words that say nothing about a segment.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "he", "her", "his",
    "i", "if", "in", "into", "is", "it", "its", "me", "my", "no", "not", "of", "on", "or", "our", "she",
    "so", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to", "was", "we",
    "were", "what", "when", "which", "who", "will", "with", "you", "your",
];

/// The keywords of a text: its distinct [`tokens`].
pub fn keywords(text: &str) -> BTreeSet<String> {
    tokens(text).into_iter().collect()
}

/// The search tokens of a text, in order and with repeats: lower-cased words (two
/// characters or more, stopwords dropped) and, for CJK runs, each character pair (a lone
/// character stays a token).
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut cjk_run: Vec<char> = Vec::new();
    let flush_word = |word: &mut String, out: &mut Vec<String>| {
        if word.chars().count() >= 2 && !STOPWORDS.contains(&word.as_str()) {
            out.push(std::mem::take(word));
        }
        word.clear();
    };
    let flush_cjk = |run: &mut Vec<char>, out: &mut Vec<String>| {
        match run.len() {
            0 => {}
            1 => out.push(run[0].to_string()),
            _ => out.extend(run.windows(2).map(|pair| pair.iter().collect::<String>())),
        }
        run.clear();
    };
    for c in text.chars() {
        if is_cjk(c) {
            flush_word(&mut word, &mut out);
            cjk_run.push(c);
        } else if c.is_alphanumeric() {
            flush_cjk(&mut cjk_run, &mut out);
            word.extend(c.to_lowercase());
        } else {
            flush_word(&mut word, &mut out);
            flush_cjk(&mut cjk_run, &mut out);
        }
    }
    flush_word(&mut word, &mut out);
    flush_cjk(&mut cjk_run, &mut out);
    out
}

/// What the full-text index stores for a segment: its tokens, space-separated.
pub fn search_text(text: &str) -> String {
    tokens(text).join(" ")
}

/// What a segment is found by.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentIndex {
    /// Keyword-index entries: the content's keywords (at most `cap`), and each child chunk's.
    pub keywords: Vec<String>,
    /// Full-text tokens: the content's, and those of child chunks not already in it (a
    /// customised child may say something its parent does not).
    pub search_text: String,
}

/// Indexes a segment and its child chunks. `given` keywords replace the extracted ones.
pub fn segment_index<S: AsRef<str>>(
    content: &str,
    children: &[S],
    given: Option<&[String]>,
    cap: usize,
) -> SegmentIndex {
    let keywords: Vec<String> = match given.filter(|k| !k.is_empty()) {
        Some(list) => {
            let set: BTreeSet<String> =
                list.iter().map(|k| k.trim().to_lowercase()).filter(|k| !k.is_empty()).collect();
            set.into_iter().collect()
        }
        None => {
            // A full-document parent has more words than the cap: its children, each
            // capped alone, carry the rest.
            let mut set: BTreeSet<String> = keywords(content).into_iter().take(cap).collect();
            for child in children {
                set.extend(keywords(child.as_ref()).into_iter().take(cap));
            }
            set.into_iter().collect()
        }
    };
    let mut search = search_text(content);
    for child in children.iter().map(AsRef::as_ref).filter(|c| !content.contains(*c)) {
        search.push(' ');
        search.push_str(&search_text(child));
    }
    SegmentIndex { keywords, search_text: search.trim().to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_index_takes_children_keywords_and_only_new_child_text() {
        let index = segment_index("Alpha beta.", &["beta", "gamma delta"], None, 500);
        assert_eq!(index.keywords, ["alpha", "beta", "delta", "gamma"]);
        assert_eq!(index.search_text, "alpha beta gamma delta");
        let given = vec![" Zeta ".to_owned(), "zeta".to_owned()];
        assert_eq!(segment_index("Alpha", &[] as &[&str], Some(&given), 500).keywords, ["zeta"]);
    }

    #[test]
    fn cleaning_follows_the_rules() {
        let text = "Hello   world\n\n\n\nMail me at a@b.com or see https://x.y/z now\u{0007}";
        let cleaned = clean(text, Cleaning { remove_extra_spaces: true, remove_urls_emails: true });
        assert_eq!(cleaned, "Hello world\n\nMail me at or see now");
        assert_eq!(clean("a  b", Cleaning::default()), "a  b", "rules off keep spacing");
    }

    #[test]
    fn custom_separator_parts_become_segments_and_long_ones_are_cut() {
        let rule = Splitting { separator: Some("\\n\\n".into()), max_tokens: 10, chunk_overlap: 0 };
        let long = "word ".repeat(30);
        let text = format!("First part.\n\nSecond part.\n\n{long}");
        let segments = split(&text, &rule);
        assert_eq!(&segments[..2], ["First part.", "Second part."]);
        assert!(segments.len() > 3, "{segments:?}");
        assert!(segments.iter().all(|s| estimate_tokens(s) <= 10), "{segments:?}");
    }

    #[test]
    fn automatic_mode_packs_sentences_with_overlap() {
        let text = (0..40).map(|i| format!("Sentence number {i}. ")).collect::<String>();
        let rule = Splitting { separator: None, max_tokens: 30, chunk_overlap: 10 };
        let segments = split(&text, &rule);
        assert!(segments.len() > 3, "{segments:?}");
        assert!(segments.iter().all(|s| estimate_tokens(s) <= 30));
        // Overlap: the last sentence of one segment opens the next.
        let last_of_first = segments[0].rsplit(". ").find(|s| !s.is_empty()).expect("sentence");
        assert!(segments[1].contains(last_of_first.trim_end_matches('.')), "{segments:?}");
    }

    #[test]
    fn keywords_cover_english_words_and_chinese_bigrams() {
        let words = keywords("The Quick brown fox, 快速的狐狸 and a 狗!");
        for expected in ["quick", "brown", "fox", "快速", "速的", "的狐", "狐狸", "狗"] {
            assert!(words.contains(expected), "{expected} missing from {words:?}");
        }
        assert!(!words.contains("the") && !words.contains("a"), "{words:?}");
    }
}
