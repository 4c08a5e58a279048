//! Terminal output made safe to print on the operator's terminal
//! (`ccmanagerctl logs` without `--raw`): what a session printed is
//! untrusted, and a terminal obeys escape sequences wherever they come from.
//!
//! What a session's bytes could do to the terminal that shows its log, and
//! so what goes:
//! - every escape sequence (ECMA-48: `ESC` + final, CSI, and the strings
//!   OSC, DCS, SOS, PM, APC up to their terminator), in their 7-bit and
//!   their C1 forms (U+0080..U+009F, which some terminals obey in UTF-8).
//!   They rewrite the window title (OSC 0/2), set the clipboard (OSC 52),
//!   make the terminal answer queries (`CSI c`, `CSI 21 t` reports the
//!   title, DECRQSS) with bytes that arrive as the *operator's* typed input
//!   at their shell prompt, redefine keys and colours, switch screens and
//!   mouse modes, or move the cursor to paint over lines printed earlier
//!   (spoofing what the log seems to say). Colours (SGR) go too: keeping
//!   a subset would need a policy per parameter (SGR 8 hides text).
//! - C0 controls other than tab and newline (BEL, backspace that hides
//!   characters, SO/SI that switch to a line-drawing charset, NUL), DEL.
//! - carriage returns: `\r\n` (a pty turns every `\n` into that) is one
//!   newline, and a lone `\r` (progress bars) starts a new line instead of
//!   letting the next text overwrite the line (nothing printed is hidden).
//! - bytes that are not UTF-8 become U+FFFD, so no 8-bit C1 byte survives.
//!
//! Text is kept. A full-screen program's output stays hard to read (it is
//! cursor movement), so a sequence that moves to another line (CUP, VPA,
//! CUU/CUD, CNL/CPL, ED) becomes a newline and a move right (CUF) a space:
//! words on different rows do not run together. `--raw` writes the log's
//! bytes exactly, for `less -R` or a terminal replay.
//!
//! The sanitizer is a streaming state machine: the log arrives in chunks
//! that may split a sequence or a UTF-8 character anywhere, and the result
//! does not depend on where (tested below).

/// A string sequence (OSC, DCS, ...) longer than this ends: what follows
/// shows as text. An unterminated `ESC ]` would otherwise hide the rest of
/// the log. OSC 52 (clipboard) can be long; its base64 then shows, which
/// is harmless.
const MAX_STRING: usize = 64 * 1024;
/// Likewise for the parameters of a CSI sequence.
const MAX_CSI: usize = 1024;

const ESC: char = '\x1b';
const CAN: char = '\x18';
const SUB: char = '\x1a';
const BEL: char = '\x07';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    /// After `ESC`.
    Esc,
    /// `ESC` and intermediates (0x20..0x2f), e.g. `ESC ( 0`.
    EscIntermediate,
    /// In a CSI sequence, this many bytes long.
    Csi(usize),
    /// In OSC/DCS/SOS/PM/APC, this many bytes long.
    String(usize),
    /// `ESC` inside a string: `\` ends it (ST), anything else starts anew.
    StringEsc,
}

/// The streaming sanitizer; [`Sanitizer::feed`] each chunk in order, then
/// [`Sanitizer::finish`].
pub struct Sanitizer {
    state: State,
    /// The start of a UTF-8 character split by the chunk's end.
    carry: Vec<u8>,
    /// A `\r` seen, not yet written: a newline unless `\n` follows.
    cr: bool,
    /// The last character written was a newline (or none was written).
    line_start: bool,
}

impl Default for Sanitizer {
    fn default() -> Self {
        Sanitizer { state: State::Ground, carry: Vec::new(), cr: false, line_start: true }
    }
}

impl Sanitizer {
    /// Appends the safe form of `input` to `out` (always UTF-8).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let joined;
        let mut rest: &[u8] = if self.carry.is_empty() {
            input
        } else {
            joined = [std::mem::take(&mut self.carry).as_slice(), input].concat();
            &joined
        };
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    text.chars().for_each(|c| self.char(c, out));
                    return;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    let valid = std::str::from_utf8(valid).unwrap_or_default();
                    valid.chars().for_each(|c| self.char(c, out));
                    match e.error_len() {
                        None => {
                            self.carry = after.to_vec();
                            return;
                        }
                        Some(n) => {
                            self.char(char::REPLACEMENT_CHARACTER, out);
                            rest = &after[n..];
                        }
                    }
                }
            }
        }
    }

    /// The end of the input: a split character is U+FFFD, a last `\r` a
    /// newline.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !std::mem::take(&mut self.carry).is_empty() {
            self.char(char::REPLACEMENT_CHARACTER, out);
        }
        if std::mem::take(&mut self.cr) {
            self.put('\n', out);
        }
    }

    fn put(&mut self, c: char, out: &mut Vec<u8>) {
        // A pending `\r` is a line break, which a newline also is.
        if std::mem::take(&mut self.cr) && c != '\n' {
            self.put('\n', out);
        }
        let mut utf8 = [0; 4];
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        self.line_start = c == '\n';
    }

    fn char(&mut self, c: char, out: &mut Vec<u8>) {
        self.state = match (self.state, c) {
            (_, CAN | SUB) => State::Ground,
            (State::Ground, c) => return self.ground(c, out),
            (State::Esc, '[') => State::Csi(0),
            (State::Esc, ']' | 'P' | 'X' | '^' | '_') => State::String(0),
            (State::Esc | State::EscIntermediate, ' '..='/') => State::EscIntermediate,
            (State::Esc | State::EscIntermediate, '0'..='~') => State::Ground,
            (State::Csi(n), '\x20'..='\x3f') if n < MAX_CSI => State::Csi(n + 1),
            (State::Csi(_), '@'..='~') => {
                self.csi_final(c, out);
                State::Ground
            }
            (State::String(_), BEL | '\u{9c}') => State::Ground,
            (State::String(_), ESC) => State::StringEsc,
            (State::String(n), _) if n < MAX_STRING => State::String(n + c.len_utf8()),
            (State::StringEsc, '\\') => State::Ground,
            (State::StringEsc, c) => {
                self.state = State::Esc;
                return self.char(c, out);
            }
            (_, ESC) => State::Esc,
            // Other C0 controls inside a sequence are dropped (a terminal
            // would execute them; here they would be dropped anyway).
            (State::Esc | State::EscIntermediate | State::Csi(_), '\0'..='\x1f') => self.state,
            // Anything else ends the sequence and counts as text: a broken
            // or overlong sequence hides nothing after it.
            (_, c) => {
                self.state = State::Ground;
                return self.ground(c, out);
            }
        };
    }

    fn ground(&mut self, c: char, out: &mut Vec<u8>) {
        match c {
            ESC => self.state = State::Esc,
            '\u{9b}' => self.state = State::Csi(0),
            '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => self.state = State::String(0),
            '\r' => self.cr = true,
            '\n' => {
                self.cr = false;
                self.put('\n', out);
            }
            '\t' => self.put('\t', out),
            '\0'..='\x1f' | '\x7f'..='\u{9f}' => {}
            c => self.put(c, out),
        }
    }

    /// What a CSI sequence leaves: a line break for a move to another
    /// row, a space for a move right, nothing otherwise.
    fn csi_final(&mut self, c: char, out: &mut Vec<u8>) {
        match c {
            'H' | 'f' | 'd' | 'A' | 'B' | 'E' | 'F' | 'J' if !self.line_start => {
                self.put('\n', out)
            }
            'C' if !self.line_start => self.put(' ', out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clean(input: &[u8]) -> String {
        let mut s = Sanitizer::default();
        let mut out = Vec::new();
        s.feed(input, &mut out);
        s.finish(&mut out);
        String::from_utf8(out).expect("always UTF-8")
    }

    #[test]
    fn escape_sequences_go_and_text_stays() {
        assert_eq!(clean(b"\x1b]0;pwned\x07title\x1b]2;x\x1b\\ok"), "titleok");
        assert_eq!(clean(b"\x1b[1;31mred\x1b[0m plain"), "red plain");
        assert_eq!(clean(b"a\x1bP1$qm\x1b\\b\x1b_apc\x1b\\c\x1b^pm\x1b\\d"), "abcd");
        assert_eq!(clean(b"\x1b(0lqk\x1b(B\x0e\x0fx\x1b7\x1b8\x1bc"), "lqkx");
        assert_eq!(clean(b"\x1b[c\x1b[21t\x1b[>0q\x1b[?1049h\x1b[?1000hq"), "q");
        // C1 forms, encoded as UTF-8: CSI, OSC ... ST.
        assert_eq!(clean("a\u{9b}31mb\u{9d}0;t\u{9c}c\u{85}".as_bytes()), "abc");
        // 8-bit C1 bytes are not UTF-8.
        assert_eq!(clean(b"a\x9b31mb"), "a\u{fffd}31mb");
        assert_eq!(clean(b"bell\x07 bs\x08 nul\x00 del\x7f tab\t."), "bell bs nul del tab\t.");
    }

    #[test]
    fn carriage_returns_become_line_breaks() {
        assert_eq!(clean(b"one\r\ntwo\r\r\nthree\n"), "one\ntwo\nthree\n");
        assert_eq!(clean(b"10%\r\x1b[K50%\r100%\r"), "10%\n50%\n100%\n");
    }

    #[test]
    fn cursor_moves_separate_words() {
        assert_eq!(clean(b"\x1b[2J\x1b[1;1Htop\x1b[2;5Hnext\x1b[3Cright"), "top\nnext right");
    }

    #[test]
    fn an_unterminated_string_hides_only_so_much() {
        let mut input = b"\x1b]52;c;".to_vec();
        input.extend(std::iter::repeat_n(b'A', MAX_STRING + 10));
        input.extend_from_slice(b"\nvisible");
        let out = clean(&input);
        assert!(out.ends_with("\nvisible") && out.len() < 40, "{out:?}");
    }

    /// Bytes that exercise the machine: escapes, C1, controls, UTF-8.
    fn terminal_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"\x1b".to_vec()),
            Just(b"[".to_vec()),
            Just(b"]".to_vec()),
            Just(b"\\".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\x07".to_vec()),
            Just("\u{9b}\u{9c}\u{9d}é€😀".as_bytes().to_vec()),
            Just(b"31;1m".to_vec()),
            any::<u8>().prop_map(|b| vec![b]),
            "[a-z ]{0,5}".prop_map(String::into_bytes),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn output_is_safe_and_split_anywhere_the_same(
            input in terminal_bytes(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            let whole = clean(&input);
            prop_assert!(!whole.chars().any(|c| c.is_control() && c != '\n' && c != '\t'));
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
            cuts.sort();
            let (mut s, mut out, mut at) = (Sanitizer::default(), Vec::new(), 0);
            for cut in cuts {
                s.feed(&input[at..cut], &mut out);
                at = cut;
            }
            s.feed(&input[at..], &mut out);
            s.finish(&mut out);
            prop_assert_eq!(String::from_utf8(out).unwrap(), whole);
        }
    }
}
