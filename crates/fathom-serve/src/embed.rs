//! Text or images in, vectors out: the [`Embedder`] a server may be given for `"text"`
//! queries and `"texts"` items, the [`ImageEmbedder`] for `"image"` queries and
//! `"images"` items (sent as base64, [`decode_base64`]), and the sentence splitter
//! `fathom index-text` uses.

use fathom_core::{Error, Result};

/// Turns texts into vectors of one fixed dimension (a sentence-embedding model).
pub trait Embedder: Send + Sync {
    /// The vectors' dimension.
    fn dim(&self) -> usize;
    /// One vector per text, concatenated.
    fn embed(&self, texts: &[String]) -> Result<Vec<f32>>;
    /// A name for `/health` ("all-MiniLM-L6-v2", …).
    fn name(&self) -> String;
}

/// Turns images (encoded files: JPEG, PNG, WebP) into vectors of one fixed dimension.
pub trait ImageEmbedder: Send + Sync {
    /// The vectors' dimension.
    fn dim(&self) -> usize;
    /// One vector per image, concatenated; an image that cannot be decoded is an error
    /// naming which one (`image <i>`) and why.
    fn embed_images(&self, images: &[&[u8]]) -> Result<Vec<f32>>;
    /// A name for `/health` ("efficientnet-lite0", …).
    fn name(&self) -> String;
    /// The text encoder into the same space, for a model that has one (CLIP): it serves
    /// `"text"` queries against the image collections this model fills.
    fn text_tower(self: std::sync::Arc<Self>) -> Option<std::sync::Arc<dyn Embedder>> {
        None
    }
}

/// A model directory's JSON file (`config.json`, …), parsed; the error names the file.
#[cfg(any(feature = "text", feature = "image"))]
pub(crate) fn read_json(path: &std::path::Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::format(path.display().to_string(), e.to_string()))
}

/// The ids `tokenizer` gives `text`, special tokens included (and truncated, where the
/// tokenizer truncates): what a text model sees.
#[cfg(any(feature = "text", feature = "image"))]
pub fn token_ids(tokenizer: &tokenizers::Tokenizer, text: &str) -> Result<Vec<u32>> {
    let enc = tokenizer
        .encode(text, true)
        .map_err(|e| Error::invalid(format!("tokenizing: {e}")))?;
    Ok(enc.get_ids().to_vec())
}

/// Decodes standard base64 (RFC 4648, padding optional, whitespace ignored), also as a
/// data URL (`data:image/png;base64,…`, what a browser's `FileReader` gives).
///
/// ```
/// use fathom_serve::embed::decode_base64;
/// assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
/// assert_eq!(decode_base64("data:text/plain;base64,aGVsbG8").unwrap(), b"hello");
/// assert!(decode_base64("not base64!").is_err());
/// ```
pub fn decode_base64(text: &str) -> Result<Vec<u8>> {
    let body = match text.strip_prefix("data:") {
        Some(url) => url
            .split_once(";base64,")
            .map(|(_, b)| b)
            .ok_or_else(|| Error::invalid("a data URL must be base64 (data:<type>;base64,…)"))?,
        None => text,
    };
    let mut out = Vec::with_capacity(body.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut ended = false;
    for (i, c) in body.bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                ended = true;
                continue;
            }
            b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => {
                return Err(Error::invalid(format!(
                    "not base64: byte {i} is {:?}",
                    char::from(c)
                )));
            }
        };
        if ended {
            return Err(Error::invalid(format!(
                "not base64: data after '=' at byte {i}"
            )));
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// Standard base64 (RFC 4648, with padding) of `bytes`: the inverse of [`decode_base64`].
///
/// ```
/// use fathom_serve::embed::{decode_base64, encode_base64};
/// assert_eq!(encode_base64(b"hello"), "aGVsbG8=");
/// assert_eq!(decode_base64(&encode_base64(&[0, 255, 7])).unwrap(), [0, 255, 7]);
/// ```
pub fn encode_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for k in 0..4 {
            out.push(if k <= chunk.len() {
                char::from(ALPHABET[(n >> (18 - 6 * k) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
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
