"""What a text costs on SMS: GSM 03.38 or UCS-2, and the segments, with known answers."""

import pytest

from shared.core.sms import GSM_7, UCS_2, SmsCost, is_gsm7, sms_cost

# 3GPP TS 23.038's default alphabet by position: 0x00 to 0x1F its own (0x1B the escape to the
# extension table, no character), 0x20 to 0x7F ASCII but for thirteen.
GSM_LOW = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
NOT_ASCII = {0x24: "¤", 0x40: "¡", 0x5B: "Ä", 0x5C: "Ö", 0x5D: "Ñ", 0x5E: "Ü", 0x5F: "§"}
NOT_ASCII |= {0x60: "¿", 0x7B: "ä", 0x7C: "ö", 0x7D: "ñ", 0x7E: "ü", 0x7F: "à"}
GSM_BASIC = GSM_LOW.replace("\x1b", "") + "".join(
    NOT_ASCII.get(code, chr(code)) for code in range(0x20, 0x80)
)
GSM_EXTENSION = "\f^{}\\[~]|€"


def test_the_alphabet_and_its_extension_are_gsm7_and_nothing_else_of_latin_1_is():
    assert len(set(GSM_BASIC)) == 127
    assert is_gsm7(GSM_BASIC + GSM_EXTENSION)
    others = [chr(c) for c in range(0x100) if chr(c) not in GSM_BASIC + GSM_EXTENSION]
    assert [ch for ch in others if is_gsm7(ch)] == []


@pytest.mark.parametrize(
    "character",
    [
        "…",  # what a shortened value used to end in
        "ç",  # 0x09 is the capital Ç
        "á",
        "`",
        "’",  # a phone keyboard's apostrophe
        "“",
        "–",
        "\u00a0",
        "\x1b",  # the escape is no character of its own
        "Α",  # Greek capital alpha: GSM has the Latin A
        "😀",
    ],
)
def test_characters_outside_gsm_03_38_need_ucs2(character):
    assert not is_gsm7(f"Hi Jane{character}")
    assert sms_cost(f"Hi Jane{character}").encoding == UCS_2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 160, SmsCost(GSM_7, 1)),
        ("a" * 161, SmsCost(GSM_7, 2)),
        ("a" * 306, SmsCost(GSM_7, 2)),
        ("a" * 307, SmsCost(GSM_7, 3)),
        ("a" * 319, SmsCost(GSM_7, 3)),
        ("a" * 459, SmsCost(GSM_7, 3)),
        ("a" * 460, SmsCost(GSM_7, 4)),
        # The extension table's characters take two septets.
        ("€" * 80, SmsCost(GSM_7, 1)),
        ("€" * 81, SmsCost(GSM_7, 2)),
        ("{" + "2" * 158, SmsCost(GSM_7, 1)),
        ("{" + "2" * 159, SmsCost(GSM_7, 2)),
        # 306 septets would fill two parts, but the escape and its € are never split.
        ("a" * 152 + "€" + "a" * 152, SmsCost(GSM_7, 3)),
        ("a" * 151 + "€" + "a" * 153, SmsCost(GSM_7, 2)),
        ("á" * 70, SmsCost(UCS_2, 1)),
        ("á" * 71, SmsCost(UCS_2, 2)),
        ("á" * 134, SmsCost(UCS_2, 2)),
        ("á" * 135, SmsCost(UCS_2, 3)),
        ("a" * 318 + "…", SmsCost(UCS_2, 5)),
        # An emoji is two UTF-16 code units, and its halves are never split.
        ("😜" + "2" * 68, SmsCost(UCS_2, 1)),
        ("😜" + "2" * 69, SmsCost(UCS_2, 2)),
        ("á" * 66 + "😜" + "á" * 66, SmsCost(UCS_2, 3)),
        ("á" * 65 + "😜" + "á" * 67, SmsCost(UCS_2, 2)),
        # The first character beyond the 16-bit plane is two code units, the last within it one.
        ("á" * 69 + "\U00010000", SmsCost(UCS_2, 2)),
        ("á" * 69 + "\uffff", SmsCost(UCS_2, 1)),
    ],
)
def test_segments_are_these(text, expected):
    assert sms_cost(text) == expected
