//! SMS encoding and segments, counted as carriers count them.
//!
//! GSM 03.38: a message of basic-table characters is GSM-7; the extension table
//! (`^ { } \ [ ~ ] | €` and form feed) costs two septets (escape + character). Up to 160
//! septets is one SMS; longer messages are split into 153-septet segments, and an escape
//! pair never straddles two segments. Anything else is UCS-2: 70 UTF-16 units in one SMS,
//! 67 per segment, and a surrogate pair never straddles two segments.

/// How a text travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// 7-bit GSM default alphabet.
    Gsm7,
    /// UTF-16 (UCS-2 on the wire).
    Ucs2,
}

/// The cost of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Segments {
    /// Encoding chosen.
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 units (UCS-2).
    pub units: usize,
    /// Number of SMS billed.
    pub segments: usize,
}

const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const EXTENSION: &str = "^{}\\[~]|€\u{000C}";

fn gsm_cost(c: char) -> Option<usize> {
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

fn pack(costs: impl Iterator<Item = usize>, single: usize, per_segment: usize) -> (usize, usize) {
    let costs: Vec<usize> = costs.collect();
    let units: usize = costs.iter().sum();
    if units <= single {
        return (units, usize::from(units > 0).max(1));
    }
    let (mut segments, mut used) = (1, 0);
    for c in costs {
        if used + c > per_segment {
            segments += 1;
            used = 0;
        }
        used += c;
    }
    (units, segments)
}

/// Replace typographic look-alikes with their GSM-7 equivalents, as providers' "smart
/// encoding" does: CLDR's money and date formats use no-break and narrow no-break spaces
/// (`40,00 €`), and one such character would turn a whole German or French SMS into UCS-2
/// at more than twice the cost. Characters with no GSM-7 look-alike (kana, hanzi, emoji) are
/// kept, and such a text is UCS-2 as it must be.
pub fn smart_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' => out.push(' '),
            '\u{200B}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' => {}
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{2032}' | '\u{02BC}' => out.push('\''),
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{2033}' | '\u{00AB}' | '\u{00BB}' => out.push('"'),
            '\u{2010}'..='\u{2015}' | '\u{2212}' => out.push('-'),
            '\u{2026}' => out.push_str("..."),
            '\u{2022}' => out.push('-'),
            _ => out.push(c),
        }
    }
    out
}

/// Encoding, units and segments of `text`.
pub fn segments(text: &str) -> Segments {
    let gsm: Option<Vec<usize>> = text.chars().map(gsm_cost).collect();
    match gsm {
        Some(costs) => {
            let (units, segments) = pack(costs.into_iter(), 160, 153);
            Segments { encoding: Encoding::Gsm7, units, segments }
        }
        None => {
            let (units, segments) = pack(text.chars().map(char::len_utf16), 70, 67);
            Segments { encoding: Encoding::Ucs2, units, segments }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cldr_spacing_and_typography_stay_gsm7() {
        let de = smart_encode("Ihr Warenkorb (129,90\u{a0}€) – jetzt: „hier“ … jusqu’au 1\u{202f}234,50\u{a0}€");
        assert_eq!(de, "Ihr Warenkorb (129,90 €) - jetzt: \"hier\" ... jusqu'au 1 234,50 €");
        assert_eq!(segments(&de).encoding, Encoding::Gsm7);
        // Nothing to replace in Japanese: it stays UCS-2.
        let ja = smart_encode("カートの商品（￥13,480）");
        assert_eq!(ja, "カートの商品（￥13,480）");
        assert_eq!(segments(&ja).encoding, Encoding::Ucs2);
    }

    fn s(text: &str) -> (Encoding, usize, usize) {
        let r = segments(text);
        (r.encoding, r.units, r.segments)
    }

    #[test]
    fn gsm7_boundaries() {
        assert_eq!(s(&"a".repeat(160)), (Encoding::Gsm7, 160, 1));
        assert_eq!(s(&"a".repeat(161)), (Encoding::Gsm7, 161, 2));
        assert_eq!(s(&"a".repeat(306)), (Encoding::Gsm7, 306, 2));
        assert_eq!(s(&"a".repeat(307)), (Encoding::Gsm7, 307, 3));
        assert_eq!(s(""), (Encoding::Gsm7, 0, 1));
    }

    #[test]
    fn extension_characters_cost_two_and_never_split() {
        assert_eq!(s("€"), (Encoding::Gsm7, 2, 1));
        assert_eq!(s(&format!("{}€", "a".repeat(158))), (Encoding::Gsm7, 160, 1));
        assert_eq!(s(&format!("{}€", "a".repeat(159))), (Encoding::Gsm7, 161, 2));
        // 152 septets, then an escape pair: it would straddle 152|153, so it moves to segment 2.
        let t = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        assert_eq!(s(&t), (Encoding::Gsm7, 164, 2));
        let t = format!("{}{{", "a".repeat(152 + 153));
        assert_eq!(s(&t), (Encoding::Gsm7, 307, 3), "the pair after 152+153 septets cannot fit the second segment");
    }

    #[test]
    fn ucs2_boundaries_and_surrogates() {
        assert_eq!(s(&"ä".repeat(160)), (Encoding::Gsm7, 160, 1), "ä is in the GSM basic table");
        assert_eq!(s(&"カ".repeat(70)), (Encoding::Ucs2, 70, 1));
        assert_eq!(s(&"カ".repeat(71)), (Encoding::Ucs2, 71, 2));
        assert_eq!(s(&"カ".repeat(134)), (Encoding::Ucs2, 134, 2));
        assert_eq!(s(&"カ".repeat(135)), (Encoding::Ucs2, 135, 3));
        // An emoji is a surrogate pair (2 units); at 66 units it would straddle 66|67.
        let t = format!("{}😀{}", "カ".repeat(66), "カ".repeat(10));
        assert_eq!(s(&t), (Encoding::Ucs2, 78, 2));
        assert_eq!(s(&format!("{}😀", "カ".repeat(68))), (Encoding::Ucs2, 70, 1));
    }
}
