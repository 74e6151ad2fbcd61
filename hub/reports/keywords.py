"""Keywords: the significant words (and two-word phrases) of a customer's message, for the keyword trends
(docs/reports.md, "Keyword trends"). Pure text rules, no storage: the roller counts what `terms` returns."""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import pairwise

# One pass over the text finds, in order: links and email addresses (not topics, and their parts do not count
# either), words (Unicode letters and digits: str patterns are Unicode-aware; apostrophes inside: "don't",
# "l'été"), and punctuation that ends a phrase ("late. Refund" is two sentences, not the phrase "late refund").
_TOKEN = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+\.\S+|(\w+(?:['\u2019]\w+)*)|[.,;:!?¡¿()\[\]{}\"\n]",
                    re.IGNORECASE)

#: English and Spanish stop words (with and without accents: customers type both)
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before being below
between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each few for
from further get got had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him
himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself just let's me more most mustn't my
myself no nor not now of off on once only or other ought our ours ourselves out over own please same shan't she
she'd she'll she's should shouldn't so some such than thank thanks that that's the their theirs them themselves then
there there's these they they'd they'll they're they've this those through to too under until up us very was wasn't
we we'd we'll we're we've were weren't what what's when when's where where's which while who who's whom why why's
will with won't would wouldn't you you'd you'll you're you've your yours yourself yourselves hi hello hey ok okay yes
im dont cant ive id
al algo algunas algunos ante antes aqui aquí como cómo con contra cual cuál cuando cuándo de del desde donde dónde
durante e el él ella ellas ellos en entre era eres es esa esas ese eso esos esta está estaba estado estamos estan
están estar estas éstas este esto estos estoy fue fueron fui ha han has hasta hay he la las le les lo los me mi mí
mis mucho muchos muy más mas nada ni no nos nosotros o os otra otras otro otros para pero poco por porque que qué
quien quién quienes se sea ser si sí sido sin sobre sois somos son soy su sus también tambien te tengo tiene tienen
ti tu tú tus un una uno unos usted ustedes vosotros y ya yo hola gracias buenas buenos dias días favor saludos
""".split())

#: shorter words are not kept (one letter says nothing; two-letter words are nearly all stop words)
MIN_LENGTH = 3
#: the longest word kept (longer runs are tokens, hashes and pasted junk)
MAX_LENGTH = 30


_LETTERS = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")  # no digit, no underscore


@lru_cache(maxsize=1 << 16)  # the roller asks about the same few thousand words all day long
def _significant(w: str) -> bool:
    return MIN_LENGTH <= len(w) <= MAX_LENGTH and w not in STOP_WORDS and _LETTERS.fullmatch(w) is not None


def runs(text: str) -> list[list[str]]:
    """TEXT's significant words, lower-cased, in runs of adjacent ones: no stop words, numbers, ids (anything with a
    digit or an underscore), links or email addresses. A dropped word, a link or punctuation ends a run."""
    out: list[list[str]] = []
    run: list[str] = []
    for m in _TOKEN.finditer(text.lower()):
        w = m.group(1)
        if w is not None:
            w = w.replace("\u2019", "'")  # a typographic apostrophe is the same word
            if _significant(w):
                run.append(w)
                continue
        if run:
            out.append(run)
            run = []
    if run:
        out.append(run)
    return out


def terms(text: str, phrases: bool = True) -> set[str]:
    """What a message counts once each: its significant words and (PHRASES) each two of them written next to each
    other. The same terms as `runs` gives, found with one findall and comprehensions (the roller calls this for
    every customer message: a Python step per token cost more than ingesting the message)."""
    # group 1 is the word, "" for a link, an address or punctuation: each of those ends a run, as in `runs`
    kept = [w if _significant(w) else "" for w in _TOKEN.findall(text.lower().replace("\u2019", "'"))]
    out = set(kept)
    out.discard("")
    if phrases:
        out.update([f"{a} {b}" for a, b in pairwise(kept) if a and b])
    return out
