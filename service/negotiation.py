"""Content negotiation: which of the media types we can produce an `Accept` header prefers."""

from __future__ import annotations


def preferred(accept: str, offered: list[str]) -> str | None:
    """The media type of `offered` (the server's order of preference) that an Accept header
    prefers: highest q of its most specific matching range; at equal q, a type the header names
    beats one only a wildcard covers, then the header's order, then the server's. None: q=0 for all."""
    ranges = []  # (type, subtype, q)
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if "/" not in media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0  # a malformed weight allows nothing
        kind, subtype = (x.strip().lower() for x in media.split("/", 1))
        ranges.append((kind, subtype, q))
    scored = []
    for rank, media in enumerate(offered):
        kind, subtype = media.split("/")
        matches = [(2 if (k, s) == (kind, subtype) else 1 if (k, s) == (kind, "*") else 0, -position, q)
                   for position, (k, s, q) in enumerate(ranges)
                   if (k, s) in ((kind, subtype), (kind, "*"), ("*", "*"))]
        if matches:
            specificity, position, q = max(matches)  # the most specific range decides
            if q > 0:
                scored.append((q, specificity, position, -rank, media))
    return max(scored)[-1] if scored else None
