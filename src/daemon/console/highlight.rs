//! A sync's model, cut into pieces classed for highlighting (keyword, identifier, string,
//! number, comment). sqlparser's tokenizer does the lexing; each piece is the model's own text
//! between token boundaries, so the page shows exactly what the file holds. Pure.

use serde::Serialize;
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Location, Token, Tokenizer, Whitespace};

#[derive(Debug, Serialize, PartialEq)]
pub struct Piece {
    /// A CSS class (`kw`, `str`, `num`, `com`, `ph`), empty for plain text.
    pub class: &'static str,
    pub text: String,
}

fn class(token: &Token) -> &'static str {
    match token {
        Token::Word(w) if w.quote_style.is_none() && w.keyword != Keyword::NoKeyword => "kw",
        Token::Number(..) => "num",
        Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::EscapedStringLiteral(_)
        | Token::NationalStringLiteral(_)
        | Token::HexStringLiteral(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::UnicodeStringLiteral(_) => "str",
        Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)) => "com",
        Token::Placeholder(_) => "ph",
        _ => "",
    }
}

/// The model's text in classed pieces; one plain piece when it does not tokenize (an
/// unterminated string, say: the file is shown as it is all the same).
pub fn sql(text: &str) -> Vec<Piece> {
    let plain = || vec![Piece { class: "", text: text.to_string() }];
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize_with_location() else { return plain() };
    // Byte offset of each (line, column) the tokenizer reports (both from 1, columns in chars).
    let mut line_starts = vec![0usize];
    line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    let offset = |at: Location| -> Option<usize> {
        let start = *line_starts.get((at.line as usize).checked_sub(1)?)?;
        let line = &text[start..];
        let column = (at.column as usize).checked_sub(1)?;
        Some(start + line.char_indices().nth(column).map_or(line.len(), |(i, _)| i))
    };
    let mut pieces: Vec<Piece> = Vec::new();
    let mut at = 0;
    for token in &tokens {
        let Some(end) = offset(token.span.end).filter(|end| *end >= at && *end <= text.len()) else { return plain() };
        let class = class(&token.token);
        let piece = &text[at..end];
        match pieces.last_mut() {
            Some(last) if last.class == class => last.text.push_str(piece),
            _ => pieces.push(Piece { class, text: piece.to_string() }),
        }
        at = end;
    }
    if at < text.len() {
        pieces.push(Piece { class: "", text: text[at..].to_string() });
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_the_model_text_classed() {
        let model = "-- churn\nSELECT id, 'é''s' AS name, 42 FROM t WHERE \"Select\" = $1 /* end */";
        let pieces = sql(model);
        assert_eq!(pieces.iter().map(|p| p.text.as_str()).collect::<String>(), model, "nothing lost or changed");
        let of = |text: &str| pieces.iter().find(|p| p.text.trim() == text).map(|p| p.class);
        assert_eq!(of("-- churn"), Some("com"));
        assert_eq!(of("SELECT"), Some("kw"));
        assert_eq!(of("'é''s'"), Some("str"));
        assert_eq!(of("42"), Some("num"));
        assert_eq!(of("/* end */"), Some("com"));
        assert_eq!(of("$1"), Some("ph"));
        // A quoted identifier is no keyword.
        assert!(pieces.iter().any(|p| p.text.contains("\"Select\"") && p.class != "kw"));
    }

    #[test]
    fn text_that_does_not_tokenize_is_shown_plain() {
        let model = "SELECT 'unterminated";
        assert_eq!(sql(model), vec![Piece { class: "", text: model.to_string() }]);
    }
}
