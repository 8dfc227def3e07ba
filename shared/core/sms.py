"""What a text costs on SMS: its encoding (GSM 03.38's 7-bit alphabet, else UCS-2) and segments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]
GSM_7: Encoding = "GSM-7"
UCS_2: Encoding = "UCS-2"

# 3GPP TS 23.038 (GSM 03.38), the default alphabet: one septet each. 0x09 is the capital Ç
# (a small ç needs UCS-2), and 0x1B is the escape to the extension table, no character itself.
_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: the escape and the character, two septets each.
_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM_7 = _BASIC | _EXTENSION
# One SMS carries 140 octets: 160 septets, or 70 UCS-2 code units. A longer text goes in parts
# joined by a 6-octet header, which leaves each part 153 septets, or 67 code units.
_ONE_MESSAGE = {GSM_7: 160, UCS_2: 70}
_ONE_PART = {GSM_7: 153, UCS_2: 67}


@dataclass(frozen=True)
class SmsCost:
    """How a text goes out over SMS: its encoding, and the segments carriers bill for."""

    encoding: Encoding
    segments: int


def is_gsm7(text: str) -> bool:
    """Whether every character of `text` is in GSM 03.38's alphabet or its extension table."""
    return set(text) <= _GSM_7


def sms_cost(text: str) -> SmsCost:
    """The encoding and segment count of `text` as an SMS: GSM-7 when every character allows it,
    else UCS-2. A part never ends halfway through a character (an escape and its extension
    character, or the two UTF-16 halves of an emoji), so such a character may open the next."""
    encoding = GSM_7 if is_gsm7(text) else UCS_2
    if encoding == GSM_7:
        sizes = [2 if ch in _EXTENSION else 1 for ch in text]
    else:
        sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    if sum(sizes) <= _ONE_MESSAGE[encoding]:
        return SmsCost(encoding, 1)
    segments, room = 1, _ONE_PART[encoding]
    for size in sizes:
        if size > room:
            segments, room = segments + 1, _ONE_PART[encoding]
        room -= size
    return SmsCost(encoding, segments)
