"""The multilingual parity corpus: the 12 Llama 4 languages, code, emoji and ZWJ sequences, CRLF, long
whitespace and digit runs, mixed scripts, Unicode whitespace edge cases, special-token text, and invalid
UTF-8 bytes. Returns a list of (name, bytes)."""

LANGUAGES = {
    "arabic": "مرحبا بالعالم! كيف حالك اليوم؟ اللغة العربية تُكتب من اليمين إلى اليسار، والأرقام ١٢٣ و456.",
    "english": "The quick brown fox jumps over the lazy dog. It's 3:45 PM; we'll see what they've done, I'd say.",
    "french": "L'été dernier, nous sommes allés à Paris : « C'était magnifique ! » s'exclama-t-elle. Ça coûte 12,50 €.",
    "german": "Größenwahn ist keine Lösung. Die Straße führt über die Brücke; Übermorgen schließen wir um 18:00 Uhr.",
    "hindi": "नमस्ते दुनिया! आप कैसे हैं? हिन्दी देवनागरी लिपि में लिखी जाती है। संख्या: १२३४ और 5678.",
    "indonesian": "Selamat pagi! Saya sedang belajar bahasa Indonesia di Jakarta. Harga tiketnya Rp 150.000,00.",
    "italian": "Perché l'Italia è così bella? Città, perciò, caffè: all'università c'è più di un'aula.",
    "portuguese": "Não sei se você vai à reunião amanhã. Ação, coração, pão e limões custam R$ 7,90.",
    "spanish": "¿Dónde está la biblioteca? ¡Qué día tan hermoso! El niño comió piña y jamón en Año Nuevo.",
    "tagalog": "Magandang umaga po! Kumusta ka na? Salamat sa iyong tulong, kaibigan. Mahal kita.",
    "thai": "สวัสดีครับ ยินดีที่ได้รู้จัก ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ ราคา ๑๒๓ บาท",
    "vietnamese": "Xin chào thế giới! Tiếng Việt có nhiều dấu: ă, â, đ, ê, ô, ơ, ư. Hôm nay trời đẹp quá.",
}

CODE = [
    ("code_python", "def fib(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
                    "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n"),
    ("code_cpp", "#include <vector>\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\tfor (auto& x : v) x *= 2;"
                 "\n\treturn v[0] == 2 ? 0 : 1;  // done\n}\n"),
    ("code_json", '{"name": "llama4", "layers": [0, 1, 2], "ok": true, "path": "/usr/local/bin"}'),
    ("code_shell", "for f in *.txt; do wc -l \"$f\" | awk '{print $1}' >> /tmp/out.log 2>&1; done"),
]

MISC = [
    ("emoji", "I love 🦙 llamas! 😀😃😄 🇫🇷 🇯🇵 👍🏽 ❤️ ✨🎉"),
    ("zwj", "Family 👨‍👩‍👧‍👦, rainbow 🏳️‍🌈, technologist 🧑🏿‍💻, couple 👩‍❤️‍💋‍👨 and 🐻‍❄️."),
    ("crlf", "first line\r\nsecond line\r\n\r\nfourth\rfifth\n\n\nend\r\n"),
    ("whitespace_runs", "a" + " " * 300 + "b\t\t\t\tc" + "\n" * 40 + "   d   " + " \t \n " * 30 + "e   "),
    ("digits", "0123456789 12345678901234567890 3.14159265358979 1,000,000 ١٢٣٤٥٦٧٨٩٠ ๑๒๓๔ 2026-11-27"),
    ("mixed_scripts", "Hello世界Привет مرحبا नमस्ते こんにちは안녕하세요 שלום Γειά σου abcДЕФghi ἀρχή"),
    ("contractions", "I'M HERE, YOU'LL SEE. She's, they're, we've, I'd, it'S, THEY'D, we'Ll. ſ'S and O'Neil's"),
    ("unicode_space", "a\u00a0b\u2009c\u3000d\u200be\u180ef\u0085g\u2028h\u2029i\u202fj\u205fk\u1680l\x0bm\x0cn"),
    ("mongolian_vowel_separator", "x!!\u180e!!y \u180e\u180e z\u180e \u180e\n\u180e  \u180e"),
    ("combining", "e\u0301 a\u0308 n\u0303 \u0915\u094d\u0937 Z\u0351\u0352\u0353\u0354 \u1e9b\u0323 x\u20dd"),
    ("specials_text", "<|begin_of_text|>Hi<|eot|><|header_start|>user<|header_end|>\n\n<|patch|><|not_special|><|eot"),
    ("punctuation", "Wait... what?!?! (yes) [no] {maybe} <tag/> --flag=value // comment /* c */ #!$%^&*~`|\\"),
    ("url_email", "See https://example.com/a/b?c=d&e=f#g or mail someone@example.org; path C:\\Users\\x\\file.txt"),
    ("single_chars", "a"),
    ("unreachable_token", "qqqq qqqq,qqqq"),
    ("empty", ""),
    ("only_space", " "),
    ("leading_trailing", "   leading and trailing spaces   "),
]

INVALID = [
    ("invalid_lone_continuation", b"abc\x80def"),
    ("invalid_truncated", b"caf\xc3 and \xe2\x82 and \xf0\x9f\x98"),
    ("invalid_overlong", b"\xc0\xaf \xe0\x80\xaf \xed\xa0\x80 surrogate"),
    ("invalid_high", b"\xf5\xff\xfe ok \xf4\x90\x80\x80"),
]


def build_corpus(bundled_lines):
    cases = [(name, text.encode()) for name, text in LANGUAGES.items()]
    cases += [(name, text.encode()) for name, text in CODE + MISC]
    cases += INVALID
    cases += [(f"corpus_{i}", line.encode()) for i, line in enumerate(bundled_lines)]
    cases.append(("all_languages", " ".join(LANGUAGES.values()).encode()))
    # Longer than Meta's 25,000-character runs: tiktoken (sliced) and HF (unsliced) may legitimately differ.
    cases.append(("long_space_run", (" " * 30000 + "x").encode()))
    cases.append(("long_letter_run", ("ab" * 15000 + " end").encode()))
    cases.append(("long_digit_run", ("9" * 1000).encode()))
    return cases
