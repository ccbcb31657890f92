//! Text in, vectors out: the [`Embedder`] a server may be given for `"text"` queries and
//! `"texts"` items, and the sentence splitter `fathom index-text` uses.

use fathom_core::Result;

/// Turns texts into vectors of one fixed dimension (a sentence-embedding model).
pub trait Embedder: Send + Sync {
    /// The vectors' dimension.
    fn dim(&self) -> usize;
    /// One vector per text, concatenated.
    fn embed(&self, texts: &[String]) -> Result<Vec<f32>>;
    /// A name for `/health` ("all-MiniLM-L6-v2", …).
    fn name(&self) -> String;
}

/// Splits text into sentences after `。！？.!?` (a run of them stays together, and a
/// closing quote or bracket right after stays with its sentence — a straight quote only
/// when no word follows it at once) and at line breaks; trims each and drops empty ones.
///
/// ```
/// use fathom_serve::embed::split_sentences;
/// let s = split_sentences("Hello there! How are you?\nFine.  你好。再见！\"Quoted.\" End");
/// assert_eq!(s, ["Hello there!", "How are you?", "Fine.", "你好。", "再见！", "\"Quoted.\"", "End"]);
/// ```
pub fn split_sentences(text: &str) -> Vec<String> {
    const ENDS: &[char] = &['。', '！', '？', '.', '!', '?'];
    const CLOSERS: &[char] = &['"', '\'', '”', '’', ')', ']', '」', '』', '）'];
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    let mut flush = |cur: &mut String| {
        let t = cur.trim();
        if !t.is_empty() {
            out.push(t.to_string());
        }
        cur.clear();
    };
    while let Some(c) = chars.next() {
        if c == '\n' || c == '\r' {
            flush(&mut cur);
            continue;
        }
        cur.push(c);
        if ENDS.contains(&c) {
            while let Some(&n) = chars.peek() {
                // A straight quote closes only when no word follows it at once
                // (`said!" Then` closes, `！"Quoted` opens the next sentence).
                let closes = CLOSERS.contains(&n)
                    && (!matches!(n, '"' | '\'') || {
                        let mut ahead = chars.clone();
                        ahead.next();
                        ahead
                            .peek()
                            .is_none_or(|a| a.is_whitespace() || CLOSERS.contains(a))
                    });
                if ENDS.contains(&n) || closes {
                    cur.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            flush(&mut cur);
        }
    }
    flush(&mut cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_runs_quotes_lines_and_keeps_unfinished_tails() {
        assert_eq!(split_sentences(""), Vec::<String>::new());
        assert_eq!(split_sentences("  \n\n "), Vec::<String>::new());
        assert_eq!(
            split_sentences("Wait... what?! OK"),
            ["Wait...", "what?!", "OK"]
        );
        assert_eq!(split_sentences("一。二？三"), ["一。", "二？", "三"]);
        assert_eq!(
            split_sentences("line one\r\nline two"),
            ["line one", "line two"]
        );
        assert_eq!(split_sentences("(Aside.) Next."), ["(Aside.)", "Next."]);
    }
}
