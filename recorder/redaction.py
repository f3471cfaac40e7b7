"""Secret scrubbing for events and session metadata, before anything touches disk.

Standard library only: the stdlib-only Python client (``recorder/client.py``) imports
this module too, so a client can scrub before sending and the server scrubs again on
ingestion. Scrubbing is idempotent: a value already equal to ``[Filtered]`` is left
alone and not reported again.

Public API
----------
``DEFAULT_POLICY``            the policy dict shape with its defaults (see below)
``compile_policy(policy)``    validate a policy dict once, precompile its regexes
``redact_event(event, p)``    scrub an envelope dict in place, return scrubbed paths
``redact_mapping(data, p)``   scrub session metadata (a plain dict) in place
``preview(event, policy)``    dashboard preview on a copy: ``{"event", "scrubbed"}``
``FILTERED``                  the replacement text, exactly ``[Filtered]``

Policy dict (stored as JSON on the Application; every field is optional)
------------------------------------------------------------------------
``extra_keys``     list[str]  more key words, matched like the default key words
``patterns``       list[str]  regexes; every match inside any string value is replaced
``keep_keys``      list[str]  key names never scrubbed by a key rule (exact name,
                              case/separator-insensitive: ``auth_method`` keeps
                              ``authMethod`` and ``AUTH-METHOD`` too)
``capture_bodies`` bool       keep HTTP bodies (default False: they are dropped)
``body_limit``     int        bytes of a kept body (UTF-8 / compact JSON), default 65536
``mask_emails``    bool       ``john@example.com`` -> ``j***@example.com`` (default False)
``mask_ips``       bool       IPv4 last octet -> 0 (``10.1.2.0``); IPv6 keeps its /48
                              prefix (``2001:db8:85a3::``) (default False)

Key rule (which dict keys get their whole value replaced)
---------------------------------------------------------
A key is normalised first: camelCase is split, everything is lower-cased and any run
of non-alphanumerics (``_ - . [ ]`` space ...) becomes one ``_``; so ``X-API-Key``,
``apiKey`` and ``api_key`` all become ``..._api_key``. The key is secret when a rule
word is a whole part of it or the *end* of a part (multi-word rules such as
``api_key`` may span parts and also match written together, ``apikey``):

* ``access_token``, ``client_secret``, ``db_password``, ``X-CSRFToken``, ``JSESSIONID``,
  ``oauth``, ``Proxy-Authorization`` -> scrubbed
* ``author``, ``sessions_count``, ``tokenizer``, ``max_tokens`` -> kept (the word is
  only a prefix of the part, never a whole part or suffix)
* ``session`` only matches the exact key ``session`` (``session_count`` and
  ``session_start`` are everyday fields); ``session_id``, ``sessionId``, ``sessionid`` match
  the ``session_id`` word. The envelope's own top-level ``session`` (the session key) is
  never touched: only ``payload``, ``state`` and metadata are walked.
* A part match has false positives on purpose (``password_changed_at``,
  ``auth_method``): for a recorder, losing a harmless value beats storing a secret.
  ``keep_keys`` is the escape hatch.

A matched key keeps its name; its value becomes ``[Filtered]``, whatever its type,
except values that cannot hold a secret: ``None``, booleans and empty strings,
lists or dicts (``"has_password": true`` stays readable).

Value rules (any string in ``message``, ``payload``, ``state`` and metadata)
----------------------------------------------------------------------------
Only the secret span is replaced, the surrounding text stays:
``Bearer <token>`` / ``Basic <base64 user:pass>``; card numbers (13-19 digits, spaces
or dashes allowed, first digit 2-6 as for all issuer networks, Luhn-checked); PEM private
key blocks (markers kept, body replaced); ``scheme://user:password@`` (user kept);
``name=value`` pairs in URLs, query strings, logfmt and cookies when the name is
secret by the key rule or is a signed-URL parameter (``X-Amz-Signature``, ``sig``,
...); ``"name": "value"`` in JSON or Python-repr text; ``Name: value`` header lines;
HAR-style ``{"name": ..., "value": ...}`` dicts and ``[name, value]`` pairs.

Scrubbed paths
--------------
``redact_event`` returns a sorted list of where something was replaced, never what:
``message``, ``payload.headers.authorization``, ``payload.url``,
``payload.headers[2].value``, ``state.value.token``. HTTP bodies that were removed
appear as ``payload.response_body (dropped)``, bodies cut to ``body_limit`` as
``payload.body (truncated)``. Paths are for humans: keys are joined with ``.``
unescaped, list items are ``[index]``.

Performance: this runs on every ingested event in the request path. Key decisions
are cached per policy (key names repeat across events), every value rule sits behind
a cheap substring pre-check, and unchanged structures are never copied.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "FILTERED",
    "DEFAULT_POLICY",
    "CompiledPolicy",
    "compile_policy",
    "redact_event",
    "redact_mapping",
    "preview",
]

FILTERED = "[Filtered]"

DEFAULT_POLICY: dict[str, Any] = {
    "extra_keys": [],
    "patterns": [],
    "keep_keys": [],
    "capture_bodies": False,
    "body_limit": 65536,
    "mask_emails": False,
    "mask_ips": False,
}

# Default key words, written in normalised form. "_" inside a word means "the parts
# may be separate or written together" (api_key matches api_key, apikey, x-api-key).
# A trailing "s?" accepts the plural where the plural is still a secret container
# (requests' "cookies", "secrets"), but not for "token" ("max_tokens" is a count).
# Several well-known names need no word of their own: csrftoken, x-csrf-token and
# x-xsrf-token end in "token", proxy-authorization has the part "authorization",
# set-cookie the part "cookie", x-api-key the parts "api_key", JSESSIONID ends in
# "sessionid". "pwd" alone is not a word: $PWD is a directory, not a password.
DEFAULT_KEY_WORDS: tuple[str, ...] = (
    "passwords?",
    "passwd",
    "passphrase",
    "secrets?",
    "token",
    "api_keys?",
    "auth",
    "authorization",
    "cookies?",
    "credentials?",
    "private_keys?",
    "session_id",
    "sessid",
    "mysql_pwd",
)
# Words that only match the whole key: common as a prefix of harmless fields.
DEFAULT_EXACT_KEYS: frozenset[str] = frozenset({"session"})

# Query/kv parameter names of signed URLs (AWS SigV4, GCS, Azure SAS, generic).
# Matched case-insensitively on the exact name, in addition to the key rule.
SIGNED_URL_PARAMS: frozenset[str] = frozenset(
    {
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "signature",
        "sig",
        "x-goog-signature",
        "x-goog-credential",
    }
)

# HTTP bodies: top-level payload keys, and "body" inside payload.request/response.
BODY_KEYS: tuple[str, ...] = ("request_body", "response_body", "body")
BODY_PARENTS: tuple[str, ...] = ("request", "response")

# Deeper than this, a subtree is replaced wholesale: we will not store what we did
# not inspect, and hostile nesting must not blow the interpreter stack.
MAX_DEPTH = 64

# Key decisions cached per policy; cleared when it grows past this (hostile clients
# can send endless distinct key names; the cache must not become a memory leak).
_KEY_CACHE_LIMIT = 8192
# Strings up to this length that held nothing are remembered per policy (see
# CompiledPolicy.scrub_text); longer ones rarely repeat and would only fill memory.
_CLEAN_CACHE_MAX_LEN = 128

# ---------------------------------------------------------------------------
# Key names
# ---------------------------------------------------------------------------

_CAMEL_1 = re.compile(r"([a-z0-9])([A-Z])")  # apiKey -> api_Key
_CAMEL_2 = re.compile(r"([A-Z]+)([A-Z][a-z])")  # CSRFToken -> CSRF_Token
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalize_key(name: str) -> str:
    """``X-CSRFToken`` -> ``x_csrf_token``: the one form all key rules compare against."""
    name = _CAMEL_2.sub(r"\1_\2", _CAMEL_1.sub(r"\1_\2", name))
    return _NON_ALNUM.sub("_", name.lower()).strip("_")


def _word_regex(word: str) -> str:
    """A normalised word as a regex fragment; "_" becomes optional ("apikey" too).

    Only the built-in words may end in "s?" (optional plural); user words are
    normalised to [a-z0-9_] first, so escaping them changes nothing.
    """
    plural = word.endswith("s?")
    parts = (word[:-2] if plural else word).split("_")
    return "_?".join(re.escape(p) for p in parts) + ("s?" if plural else "")


def _build_key_regex(words: list[str]) -> re.Pattern[str]:
    # (start or "_") + any prefix inside the same part + the word + (end or "_"):
    # the word is a whole part or the suffix of a part, never a prefix ("author").
    alternation = "|".join(_word_regex(w) for w in words)
    return re.compile(rf"(?:^|_)[a-z0-9]*(?:{alternation})(?:_|$)")


# ---------------------------------------------------------------------------
# Value rules (module-level regexes: they do not depend on the policy)
# ---------------------------------------------------------------------------

_BEARER_RE = re.compile(r"\b(bearer|basic)([ \t]+)([A-Za-z0-9\-._~+/]+=*)", re.IGNORECASE)
# A candidate card: 13-19 digits, single spaces/dashes between them allowed. Letters
# or digits around it mean an id/hash, not a card. The pattern starts with a plain
# character class so the regex engine can skip non-digits in C; the "no letter or
# digit before" check lives in _card_sub (a leading lookbehind would disable that).
_CARD_RE = re.compile(r"[0-9](?:[ -]?[0-9]){12,18}(?![0-9A-Za-z])")
_NON_DIGIT_BYTES = bytes(b for b in range(256) if not 0x30 <= b <= 0x39)
_PEM_RE = re.compile(
    r"(-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY(?: BLOCK)?-----)(.*?)"
    r"(-----END \2PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)
_USERINFO_RE = re.compile(r"(://[^/\s:@?#]*):([^/\s@?#]+)@")
# name=value: name at start, or after ? & ; , whitespace (URL, query, logfmt, cookie).
# The delimiter comes first so the engine can skip to candidates in C (the caller
# prepends "&" so a name at the very start is found too). Captures the name only.
_KV_RE = re.compile(r"[?&;,\s]([A-Za-z0-9_.\-\[\]%]+)=")
_KV_VALUE_RE = re.compile(r"[^&#;,\s\"']*")
# "name": value  or  'name': value  (JSON or Python repr inside a log message).
_QKEY_RE = re.compile(r"([\"'])([^\"'\n]{1,100})\1\s*:\s*")
_QVALUE_RES = {
    '"': re.compile(r'"((?:[^"\\]|\\.)*)"?', re.DOTALL),
    "'": re.compile(r"'((?:[^'\\]|\\.)*)'?", re.DOTALL),
}
_BARE_VALUE_RE = re.compile(r"[^,}\]\s]*")
# Name: value header lines (a raw header block, "X-Api-Key: abc" in a message).
_HEADER_LINE_RE = re.compile(r"(?m)^[ \t]*([A-Za-z][A-Za-z0-9_.\-]*)[ \t]*:[ \t]*")
_LINE_VALUE_RE = re.compile(r"[^\r\n]*")

_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+\-])([A-Za-z0-9])[A-Za-z0-9._%+\-]*@"
    r"([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})"
)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_RE = re.compile(rf"(?<![0-9.])({_OCTET}\.{_OCTET}\.{_OCTET}\.){_OCTET}(?!\.?[0-9])")
_IPV6_RE = re.compile(
    r"(?<![0-9A-Za-z:.])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:]{2,39}(?![0-9A-Za-z:.])"
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_sub(m: re.Match[str]) -> str:
    start = m.start()
    if start and m.string[start - 1].isalnum():
        return m.group(0)
    digits = m.group(0).replace(" ", "").replace("-", "")
    # Every issuer network starts with 2-6; this also keeps epoch-millisecond
    # timestamps (13 digits starting with 1) that pass Luhn one time in ten.
    if digits[0] in "23456" and _luhn_ok(digits):
        return FILTERED
    return m.group(0)


def _bearer_sub(m: re.Match[str]) -> str:
    # "Bearer [Filtered]" never matches again: "[" is not in the token alphabet.
    scheme, space, token = m.groups()
    if scheme.lower() == "basic":
        # Only base64 of "user:pass" is a credential; "Basic setup done" is prose.
        try:
            decoded = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError):
            return m.group(0)
        if b":" not in decoded:
            return m.group(0)
    elif not (len(token) >= 16 or any(not c.islower() for c in token)):
        # "bearer of bad news": an all-lowercase short word is prose, not a token.
        return m.group(0)
    return f"{scheme}{space}{FILTERED}"


def _pem_sub(m: re.Match[str]) -> str:
    if m.group(3) == FILTERED:
        return m.group(0)
    return f"{m.group(1)}{FILTERED}{m.group(4)}"


def _userinfo_sub(m: re.Match[str]) -> str:
    return f"{m.group(1)}:{FILTERED}@"


def _email_sub(m: re.Match[str]) -> str:
    return f"{m.group(1)}***@{m.group(2)}"


def _ipv4_sub(m: re.Match[str]) -> str:
    return f"{m.group(1)}0"


def _ipv6_sub(m: re.Match[str]) -> str:
    text = m.group(0)
    try:
        addr = ipaddress.IPv6Address(text)
    except ValueError:  # "12:30:45" and friends: not an address
        return text
    return str(ipaddress.IPv6Network((addr, 48), strict=False).network_address)


# ---------------------------------------------------------------------------
# Compiled policy
# ---------------------------------------------------------------------------


class CompiledPolicy:
    """A validated policy with its regexes compiled; build it with :func:`compile_policy`.

    Immutable apart from its caches (key decisions, known-clean short strings; each
    bounded and only ever holding harmless data), so one instance can be shared by all
    requests (and threads) of an application.
    """

    __slots__ = (
        "policy",
        "capture_bodies",
        "body_limit",
        "mask_emails",
        "mask_ips",
        "patterns",
        "min_len",
        "_key_re",
        "_exact",
        "_keep",
        "_key_cache",
        "_param_cache",
        "_clean",
    )

    def __init__(self, policy: dict[str, Any]) -> None:
        self.policy = policy  # the normalised dict, suitable for storing back
        self.capture_bodies: bool = policy["capture_bodies"]
        self.body_limit: int = policy["body_limit"]
        self.mask_emails: bool = policy["mask_emails"]
        self.mask_ips: bool = policy["mask_ips"]
        self.patterns: tuple[re.Pattern[str], ...] = tuple(
            re.compile(p) for p in policy["patterns"]
        )
        extra = [normalize_key(k) for k in policy["extra_keys"]]
        self._key_re = _build_key_regex(list(DEFAULT_KEY_WORDS) + [k for k in extra if k])
        self._exact = DEFAULT_EXACT_KEYS
        self._keep = frozenset(normalize_key(k) for k in policy["keep_keys"])
        self._key_cache: dict[str, bool] = {}
        self._param_cache: dict[str, bool] = {}
        # Short strings already seen to hold nothing (content types, user agents,
        # methods, hosts repeat across events). Only clean strings are remembered, so
        # this set never keeps a secret alive in memory.
        self._clean: set[str] = set()
        # Nothing a value rule looks for fits in fewer characters ("sig=x", "a@b.c");
        # custom patterns can match anything, so they switch the shortcut off.
        self.min_len = 1 if self.patterns else 5

    def is_secret_key(self, name: Any) -> bool:
        """True when a dict key (or parameter name) names a secret under this policy."""
        try:
            return self._key_cache[name]
        except (KeyError, TypeError):
            pass
        norm = normalize_key(name if isinstance(name, str) else str(name))
        secret = norm not in self._keep and (
            norm in self._exact or self._key_re.search(norm) is not None
        )
        if isinstance(name, str):
            if len(self._key_cache) >= _KEY_CACHE_LIMIT:
                self._key_cache.clear()
            self._key_cache[name] = secret
        return secret

    def _is_secret_param(self, name: str) -> bool:
        """Key rule plus the signed-URL parameter names (for name=value pairs only)."""
        try:
            return self._param_cache[name]
        except KeyError:
            pass
        secret = name.lower() in SIGNED_URL_PARAMS or self.is_secret_key(name)
        if len(self._param_cache) >= _KEY_CACHE_LIMIT:
            self._param_cache.clear()
        self._param_cache[name] = secret
        return secret

    def scrub_text(self, s: str) -> str:
        """Apply the value rules to one string; returns ``s`` itself when nothing matched.

        Each rule runs only if a substring test says it could match: most strings in
        an event (methods, paths, levels, short messages) skip every regex.
        """
        if len(s) < self.min_len or s in self._clean:
            return s
        out = s
        if "=" in out:
            # A leading "&" lets one delimiter-first regex also see a name at the very
            # start ("token=x&a=1"), instead of a second regex call.
            padded = "&" + out
            scrubbed = _scrub_named(
                padded, _KV_RE, self._kv_value_span, self._is_secret_param, cache=self._param_cache
            )
            if scrubbed is not padded:
                out = scrubbed[1:]
        if "@" in out and "://" in out:
            out = _USERINFO_RE.sub(_userinfo_sub, out)
        if "earer" in out or "asic" in out or "EARER" in out or "ASIC" in out:
            out = _BEARER_RE.sub(_bearer_sub, out)
        if "-----BEGIN" in out:
            out = _PEM_RE.sub(_pem_sub, out)
        # Counting digits through bytes.translate (C, ~0.1 us) is several times
        # cheaper than letting the card regex scan a string that cannot hold a card.
        if (
            len(out) >= 13
            and len(out.encode("utf-8", "surrogatepass").translate(None, _NON_DIGIT_BYTES)) >= 13
        ):
            out = _CARD_RE.sub(_card_sub, out)
        if ": " in out or '":' in out or "':" in out:
            if '"' in out or "'" in out:
                out = _scrub_named(out, _QKEY_RE, _quoted_value_span, self.is_secret_key, group=2)
            out = _scrub_named(out, _HEADER_LINE_RE, _line_value_span, self.is_secret_key)
        for rx in self.patterns:
            out = rx.sub(FILTERED, out)
        if self.mask_emails and "@" in out:
            out = _EMAIL_RE.sub(_email_sub, out)
        if self.mask_ips:
            if "." in out:
                out = _IPV4_RE.sub(_ipv4_sub, out)
            if ":" in out:
                out = _IPV6_RE.sub(_ipv6_sub, out)
        if out is s or out == s:  # out == s: a rule rebuilt the same text
            if len(s) <= _CLEAN_CACHE_MAX_LEN:
                if len(self._clean) >= _KEY_CACHE_LIMIT:
                    self._clean.clear()
                self._clean.add(s)
            return s
        return out

    @staticmethod
    def _kv_value_span(s: str, start: int) -> tuple[int, int]:
        if start < len(s) and s[start] in "\"'":
            return _quoted_value_span(s, start)
        return start, _KV_VALUE_RE.match(s, start).end()  # type: ignore[union-attr]


def _quoted_value_span(s: str, start: int) -> tuple[int, int]:
    """Span of the value after ``name:``/``name=``: inside quotes, or up to , } ] space."""
    quote = s[start : start + 1]
    rx = _QVALUE_RES.get(quote)
    if rx is not None:
        m = rx.match(s, start)
        return m.start(1), m.end(1)  # type: ignore[union-attr]
    return start, _BARE_VALUE_RE.match(s, start).end()  # type: ignore[union-attr]


def _line_value_span(s: str, start: int) -> tuple[int, int]:
    return start, _LINE_VALUE_RE.match(s, start).end()  # type: ignore[union-attr]


def _scrub_named(
    s: str,
    name_re: re.Pattern[str],
    value_span: Callable[[str, int], tuple[int, int]],
    is_secret: Callable[[str], bool],
    group: int = 1,
    cache: dict[str, bool] | None = None,
) -> str:
    """Replace the value after every secret ``name`` found by ``name_re``.

    ``name_re`` matches only the name and its separator, so a URL inside a harmless
    value (``next=https://x/?token=abc``) is still scanned for its own parameters.
    """
    # Fast path: findall runs in C and most strings have no secret name at all
    # (?page=2&limit=50), so the match-object loop below is rarely entered.
    # Fast path: findall runs in C and most strings have no secret name at all
    # (?page=2&limit=50), so the match-object loop below is rarely entered.
    names = name_re.findall(s)
    if group != 1:
        names = [n[group - 1] for n in names]
    if cache is not None:
        known = list(map(cache.get, names))  # True / False / None (not seen yet)
        if True not in known and None not in known:
            return s
    if not any(map(is_secret, names)):
        return s
    pieces: list[str] = []
    last = 0
    for m in name_re.finditer(s):
        if m.start(group) < last:  # inside a value we already replaced
            continue
        if not is_secret(m.group(group)):
            continue
        vstart, vend = value_span(s, m.end())
        if vend == vstart or s[vstart:vend] == FILTERED:
            continue
        pieces.append(s[last:vstart])
        pieces.append(FILTERED)
        last = vend
    if not pieces:
        return s
    pieces.append(s[last:])
    return "".join(pieces)


def _validate(policy: dict[str, Any] | None) -> dict[str, Any]:
    if policy is None:
        policy = {}
    if not isinstance(policy, dict):
        raise ValueError(f"redaction policy must be a JSON object, not {type(policy).__name__}")
    unknown = sorted(map(str, set(policy) - set(DEFAULT_POLICY)))
    if unknown:
        raise ValueError(
            f"unknown redaction policy field(s): {', '.join(unknown)}; "
            f"allowed: {', '.join(DEFAULT_POLICY)}"
        )
    out: dict[str, Any] = {}
    for field, default in DEFAULT_POLICY.items():
        value = policy.get(field, default)
        if isinstance(default, list):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"redaction policy field {field!r} must be a list of strings")
            if field != "patterns" and any(not normalize_key(v) for v in value):
                raise ValueError(f"redaction policy field {field!r} has an empty key name")
            value = list(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"redaction policy field {field!r} must be true or false")
        else:  # body_limit
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"redaction policy field {field!r} must be an integer >= 0")
        out[field] = value
    for i, pattern in enumerate(out["patterns"]):
        if not pattern:
            raise ValueError(f"redaction policy patterns[{i}] is empty")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(
                f"redaction policy patterns[{i}] {pattern!r} is not a valid regex: {exc}"
            ) from None
    return out


_POLICY_CACHE: dict[str, CompiledPolicy] = {}
_POLICY_CACHE_LIMIT = 256


def compile_policy(policy: dict[str, Any] | None) -> CompiledPolicy:
    """Validate a policy dict (``None`` = defaults) and precompile it.

    Raises ``ValueError`` with a readable message on an unknown field, a wrong type or
    a bad regex, so the dashboard can show it next to the form. Results are cached by
    the policy's content, so calling this per request compiles once per application.
    """
    try:
        cache_key = json.dumps(policy, sort_keys=True, default=str)
    except TypeError:  # keys of mixed types cannot be sorted; _validate will reject it
        return CompiledPolicy(_validate(policy))
    compiled = _POLICY_CACHE.get(cache_key)
    if compiled is None:
        compiled = CompiledPolicy(_validate(policy))
        if len(_POLICY_CACHE) >= _POLICY_CACHE_LIMIT:
            _POLICY_CACHE.clear()
        _POLICY_CACHE[cache_key] = compiled
    return compiled


# ---------------------------------------------------------------------------
# Walking events
# ---------------------------------------------------------------------------


def _holds_nothing(v: Any) -> bool:
    """Values that cannot carry a secret stay readable even under a secret key."""
    return v is None or v is True or v is False or v == "" or v == [] or v == {}


def _replace_all(container: Any, slot: Any, path: str, out: list[str]) -> None:
    v = container[slot]
    if not _holds_nothing(v) and v != FILTERED:
        container[slot] = FILTERED
        out.append(path)


def _walk_dict(d: dict[Any, Any], path: str, p: CompiledPolicy, out: list[str], depth: int) -> None:
    # Hot loop: the two cache lookups are inlined (dict.get / set membership run in C)
    # so a known-harmless key or a known-clean string costs no Python call.
    key_cache = p._key_cache
    clean = p._clean
    min_len = p.min_len
    # HAR-style {"name": "Authorization", "value": "..."} (Postman uses "key").
    if "value" in d:
        name = d.get("name", d.get("key"))
        if type(name) is str and p.is_secret_key(name):
            _replace_all(d, "value", f"{path}.value", out)
    for k, v in d.items():  # assigning to existing keys while iterating is safe
        secret = key_cache.get(k)
        if secret is None:
            secret = p.is_secret_key(k)
        if secret:
            if not _holds_nothing(v) and v != FILTERED:
                d[k] = FILTERED
                out.append(f"{path}.{k}")
            continue
        tv = type(v)
        if tv is str:
            if len(v) >= min_len and v not in clean:
                nv = p.scrub_text(v)
                if nv is not v:
                    d[k] = nv
                    out.append(f"{path}.{k}")
        elif tv is dict or tv is list:
            _walk(d, k, f"{path}.{k}", p, out, depth + 1)


def _walk_list(lst: list[Any], path: str, p: CompiledPolicy, out: list[str], depth: int) -> None:
    min_len = p.min_len
    clean = p._clean
    for i, v in enumerate(lst):
        tv = type(v)
        if tv is str:
            if len(v) >= min_len and v not in clean:
                nv = p.scrub_text(v)
                if nv is not v:
                    lst[i] = nv
                    out.append(f"{path}[{i}]")
        elif tv is dict:
            _walk(lst, i, f"{path}[{i}]", p, out, depth + 1)
        elif tv is list:
            # [name, value] header pairs (WSGI/ASGI style).
            if len(v) == 2 and type(v[0]) is str and p.is_secret_key(v[0]):
                _replace_all(v, 1, f"{path}[{i}][1]", out)
            else:
                _walk(lst, i, f"{path}[{i}]", p, out, depth + 1)


def _walk(
    container: Any, slot: Any, path: str, p: CompiledPolicy, out: list[str], depth: int
) -> None:
    """Scrub ``container[slot]`` whatever its type (replacing it if it is a string)."""
    v = container[slot]
    tv = type(v)
    if tv is str:
        nv = p.scrub_text(v)
        if nv is not v:
            container[slot] = nv
            out.append(path)
    elif tv is dict or tv is list:
        if depth > MAX_DEPTH:
            container[slot] = FILTERED
            out.append(f"{path} (too deep)")
        elif tv is dict:
            _walk_dict(v, path, p, out, depth)
        else:
            _walk_list(v, path, p, out, depth)


def _pointer_is_secret(pointer: Any, p: CompiledPolicy) -> bool:
    """A JSON pointer like ``/db/password`` addresses a secret if any segment does."""
    if type(pointer) is not str or not pointer:
        return False
    for seg in pointer.split("/"):
        if seg and p.is_secret_key(seg.replace("~1", "/").replace("~0", "~")):
            return True
    return False


def _redact_state(state: dict[str, Any], p: CompiledPolicy, out: list[str]) -> None:
    # A "set" at /user/password carries the secret with no key around it: the
    # pointer decides. "merge" values are ordinary dicts and go through the walk.
    if "value" in state:
        if _pointer_is_secret(state.get("path"), p):
            _replace_all(state, "value", "state.value", out)
        else:
            _walk(state, "value", "state.value", p, out, 1)
    patch = state.get("patch")
    if type(patch) is list:
        for i, op in enumerate(patch):
            if type(op) is dict and "value" in op and _pointer_is_secret(op.get("path"), p):
                _replace_all(op, "value", f"state.patch[{i}].value", out)
        _walk(state, "patch", "state.patch", p, out, 1)


def _body_size(v: Any) -> tuple[int, str]:
    text = v if type(v) is str else json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8")), text


def _body_slots(payload: dict[str, Any]) -> list[tuple[dict[str, Any], str, str]]:
    slots = [(payload, k, f"payload.{k}") for k in BODY_KEYS if k in payload]
    for parent in BODY_PARENTS:
        sub = payload.get(parent)
        if type(sub) is dict and "body" in sub:
            slots.append((sub, "body", f"payload.{parent}.body"))
    return slots


def _parse_json_bodies(payload: dict[str, Any], p: CompiledPolicy, out: list[str]) -> None:
    # A JSON body sent as text would hide its keys from the key rules: parse it,
    # scrub it like a payload, and store it back as text.
    for container, key, path in _body_slots(payload):
        v = container[key]
        if type(v) is str and v[:1] in "{[" and len(v) > 1:
            try:
                parsed = json.loads(v)
            except (ValueError, RecursionError):  # not JSON, or nested past the stack
                continue
            holder = [parsed]
            before = len(out)
            _walk(holder, 0, path, p, out, 1)
            if len(out) != before:
                container[key] = json.dumps(holder[0], ensure_ascii=False, separators=(",", ":"))


def _cap_bodies(payload: dict[str, Any], limit: int, out: list[str]) -> None:
    for container, key, path in _body_slots(payload):
        v = container[key]
        if v is None:
            continue
        size, text = _body_size(v)
        if size > limit:
            kept = text.encode("utf-8")[:limit].decode("utf-8", "ignore")
            container[key] = f"{kept}...[truncated: {size} bytes]"
            out.append(f"{path} (truncated)")


def redact_event(event: dict[str, Any], policy: CompiledPolicy) -> list[str]:
    """Scrub one envelope dict in place; return the sorted paths that were scrubbed.

    In place because this is the ingestion hot path and most events have nothing to
    scrub: copying them would cost more than checking them. Top-level envelope fields
    (``session``, ``key``, ``actor``, ``id``...) are identifiers and are left alone;
    ``message``, ``payload`` and ``state`` are scrubbed.
    """
    out: list[str] = []
    msg = event.get("message")
    if type(msg) is str:
        nv = policy.scrub_text(msg)
        if nv is not msg:
            event["message"] = nv
            out.append("message")
    payload = event.get("payload")
    http = event.get("type") == "http" and type(payload) is dict
    if http:
        if policy.capture_bodies:
            _parse_json_bodies(payload, policy, out)  # type: ignore[arg-type]
        else:
            # Bodies are dropped before the walk: no point scrubbing what we discard.
            for container, key, path in _body_slots(payload):  # type: ignore[arg-type]
                if not _holds_nothing(container.pop(key)):
                    out.append(f"{path} (dropped)")
    if payload is not None:
        _walk(event, "payload", "payload", policy, out, 0)
    if http and policy.capture_bodies:
        _cap_bodies(payload, policy.body_limit, out)  # type: ignore[arg-type]
    state = event.get("state")
    if type(state) is dict:
        _redact_state(state, policy, out)
    if len(out) > 1:
        out = sorted(set(out))
    return out


# --- Would redaction change this event? ---------------------------------------------
# The Python client sends most events as their own encoding when nothing in them is a
# secret: deciding that by reading is about half the cost of copying the event through
# JSON and redacting the copy. These functions mirror redact_event and its walk.


# Types a JSON round trip gives back unchanged, apart from containers (walked apart).
_SCALARS = frozenset({int, float, bool, type(None)})


def _kept(value: Any) -> bool:
    """Values the redaction walk leaves as they are under a secret key (its
    _holds_nothing, or already [Filtered]), by exact type: a value of any other type
    sends the event down the slow path."""
    if value is None or value is True or value is False:
        return True
    tv = type(value)
    if tv is str:
        return not value or value == FILTERED
    return (tv is dict or tv is list) and not value


def _pointer_secret_str(pointer: Any, policy: CompiledPolicy) -> bool:
    # Same decision as _pointer_is_secret, on a pointer known to be a str.
    for seg in pointer.split("/"):
        if seg and policy.is_secret_key(seg.replace("~1", "/").replace("~0", "~")):
            return True
    return False


def _clean(value: Any, policy: CompiledPolicy, depth: int) -> bool:
    """True when _walk at this depth would change nothing in a JSON copy of
    value, and value is plain JSON (exact dict/list/str/int/float/bool/None types, str
    keys), so that its JSON copy is equal to it. False otherwise, including whenever in
    doubt: False only costs the slow path, which redacts a JSON copy as before."""
    tv = type(value)
    if tv is str:
        return policy.scrub_text(value) is value
    if tv is dict:
        if depth > MAX_DEPTH:
            return False
        is_secret = policy.is_secret_key
        # HAR-style {"name": "Authorization", "value": "..."}, as in _walk_dict.
        if "value" in value:
            name = value.get("name", value.get("key"))
            if type(name) is str and is_secret(name) and not _kept(value["value"]):
                return False
        for k, v in value.items():
            if type(k) is not str:
                return False
            if is_secret(k):
                if not _kept(v):
                    return False
                continue
            tv = type(v)
            if tv is str:
                if policy.scrub_text(v) is not v:
                    return False
            elif tv is dict or tv is list:
                if not _clean(v, policy, depth + 1):
                    return False
            elif tv not in _SCALARS:
                return False
        return True
    if tv is list:
        if depth > MAX_DEPTH:
            return False
        for v in value:
            tv = type(v)
            if tv is str:
                if policy.scrub_text(v) is not v:
                    return False
            elif tv is dict:
                if not _clean(v, policy, depth + 1):
                    return False
            elif tv is list:
                # [name, value] header pairs, as in _walk_list: the pair is not walked.
                if len(v) == 2 and type(v[0]) is str and policy.is_secret_key(v[0]):
                    if not _kept(v[1]):
                        return False
                elif not _clean(v, policy, depth + 1):
                    return False
            elif tv not in _SCALARS:
                return False
        return True
    return tv in _SCALARS


def event_untouched(event: dict, policy: CompiledPolicy) -> bool:
    """True when redact_event would change nothing in a JSON copy of event:
    then the event's own encoding is the line to send, and the JSON copy (a decode and
    a walk that edits) is skipped. Mirrors redact_event field by field; tests compare
    the two on generated events (tests/test_client_prepare.py): change them together."""
    message = event.get("message")
    tm = type(message)
    if tm is str:
        if policy.scrub_text(message) is not message:
            return False
    elif tm not in _SCALARS:
        return False
    kind = event.get("type")
    if type(kind) is not str:
        return False
    payload = event.get("payload")
    if payload is not None:
        if kind == "http" and type(payload) is dict:
            # Bodies are dropped, kept, cut or parsed: whatever happens, the slow path.
            for key in BODY_KEYS:
                if key in payload:
                    return False
            for parent in BODY_PARENTS:
                sub = payload.get(parent)
                if type(sub) is dict and "body" in sub:
                    return False
        if not _clean(payload, policy, 0):
            return False
    state = event.get("state")
    if state is None:
        return True
    ts = type(state)
    if ts is not dict:
        return ts in _SCALARS or ts is str or ts is list  # their copies are not walked
    path = state.get("path")
    if path is not None and type(path) is not str:
        return False
    if "value" in state:
        if path and _pointer_secret_str(path, policy):
            if not _kept(state["value"]):
                return False
        elif not _clean(state["value"], policy, 1):
            return False
    patch = state.get("patch")
    if patch is None:
        return True
    if type(patch) is not list:
        return False
    for op in patch:
        if type(op) is dict and "value" in op:
            pointer = op.get("path")
            if pointer is not None and type(pointer) is not str:
                return False
            if pointer and _pointer_secret_str(pointer, policy) and not _kept(op["value"]):
                return False
    return _clean(patch, policy, 1)


def redact_mapping(
    data: dict[str, Any], policy: CompiledPolicy, prefix: str = "metadata"
) -> list[str]:
    """Scrub a plain dict (session metadata) in place; return sorted scrubbed paths.

    ``prefix`` is only used to spell the paths (``metadata.token``).
    """
    out: list[str] = []
    if type(data) is dict:
        _walk_dict(data, prefix, policy, out, 0)
    return sorted(set(out))


def preview(sample_event: dict[str, Any], policy_dict: dict[str, Any] | None) -> dict[str, Any]:
    """Show what a policy would do to a sample event, without touching the sample.

    For the dashboard's policy editor: raises ``ValueError`` on an invalid policy
    (same messages as :func:`compile_policy`) or a sample that is not a JSON object.
    """
    if not isinstance(sample_event, dict):
        raise ValueError("sample event must be a JSON object")
    policy = compile_policy(policy_dict)
    try:
        event = json.loads(json.dumps(sample_event))  # deep copy, and proves it is JSON
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sample event is not JSON-serialisable: {exc}") from None
    scrubbed = redact_event(event, policy)
    return {"event": event, "scrubbed": scrubbed}
