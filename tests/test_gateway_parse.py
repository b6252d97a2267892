"""Strict HTTP Basic: malformed partner headers are auth_missing, with no database or argon2."""

from __future__ import annotations

import base64

import pytest

from credentials import crypto
from credentials.gateway import MAX_HEADER_LENGTH, parse_basic
from tests.gateway_helpers import basic, error_code, forward, verify

KEY = "pk_" + "A1b2C3d4E5f6G7h8I9j0Kl"  # well-formed, never issued
SECRET = crypto.generate_secret()
assert crypto.is_well_formed_partner_key(KEY) and crypto.is_well_formed_secret(SECRET)


def b64(raw: bytes | str) -> str:
    if isinstance(raw, str):
        raw = raw.encode()
    return base64.b64encode(raw).decode()


GOOD = b64(f"{KEY}:{SECRET}")
NOT_UTF8 = b64(f"{KEY}:{SECRET}".encode() + bytes([0xFF, 0xFE]))
LATIN1 = b64(f"{KEY}:{SECRET}\u00e9".encode("latin-1"))
WRONG_CHECKSUM = SECRET[:-1] + ("Y" if SECRET.endswith("Z") else "Z")
UNPADDED_PAYLOAD = f"{KEY}:{SECRET}x"  # length not a multiple of 3: its encoding has padding
PADDED = b64(UNPADDED_PAYLOAD)
assert PADDED.endswith("=")


def _non_canonical(token: str) -> str:
    """Change the unused low bits before the padding: decodes the same, encodes differently."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    stripped = token.rstrip("=")
    last = alphabet.index(stripped[-1])
    return stripped[:-1] + alphabet[last | 1] + token[len(stripped) :]


def _urlsafe_token() -> str:
    for n in range(1000):  # find a payload whose standard encoding needs + or /
        raw = f"{KEY}:{SECRET}".encode() + bytes([0xFB + n % 4, 0xFF])
        token = base64.urlsafe_b64encode(raw).decode()
        if "-" in token or "_" in token:
            return token
    raise AssertionError("no url-safe token found")


# (id, header value, expected code). None means the header is absent.
MISSING = "auth_missing"
INVALID = "auth_invalid_credential"
MALFORMED_HEADERS = [
    ("absent", None, MISSING),
    ("empty", "", MISSING),
    ("scheme only", "Basic", MISSING),
    ("scheme and space only", "Basic ", MISSING),
    ("bearer scheme", f"Bearer {GOOD}", MISSING),
    ("digest scheme", f'Digest username="{KEY}"', MISSING),
    ("no space after scheme", f"Basic{GOOD}", MISSING),
    ("tab after scheme", f"Basic\t{GOOD}", MISSING),
    ("leading space", f" Basic {GOOD}", MISSING),
    ("trailing space after token", f"Basic {GOOD} ", MISSING),
    ("space inside token", f"Basic {GOOD[:12]} {GOOD[12:]}", MISSING),
    ("newline inside token", f"Basic {GOOD[:12]}\n{GOOD[12:]}", MISSING),
    ("scheme twice", f"Basic Basic {GOOD}", MISSING),
    ("two credentials joined", f"Basic {GOOD}, Basic {GOOD}", MISSING),
    ("not base64 at all", "Basic !!!!****", MISSING),
    ("base64url alphabet", f"Basic {_urlsafe_token()}", MISSING),
    ("missing padding", f"Basic {PADDED.rstrip('=')}", MISSING),
    ("extra padding", f"Basic {GOOD}==", MISSING),
    ("one padding too many", f"Basic {PADDED}=", MISSING),
    ("data after padding", f"Basic {PADDED}{b64('junk')}", MISSING),
    ("non-canonical padding bits", f"Basic {_non_canonical(PADDED)}", MISSING),
    ("non-ASCII in token", f"Basic {GOOD[:8]}é{GOOD[9:]}", MISSING),
    ("no colon", f"Basic {b64(KEY + SECRET)}", MISSING),
    ("empty partner key", f"Basic {b64(':' + SECRET)}", MISSING),
    ("empty secret", f"Basic {b64(KEY + ':')}", MISSING),
    ("colon only", f"Basic {b64(':')}", MISSING),
    ("NUL in secret", f"Basic {b64(KEY + ':' + SECRET[:5] + chr(0) + SECRET[5:])}", MISSING),
    ("NUL after secret", f"Basic {b64(KEY + ':' + SECRET + chr(0))}", MISSING),
    (
        "unit separator in key",
        f"Basic {b64(KEY[:4] + chr(0x1F) + KEY[4:] + ':' + SECRET)}",
        MISSING,
    ),
    ("DEL in secret", f"Basic {b64(KEY + ':' + SECRET + chr(0x7F))}", MISSING),
    ("C1 control in secret", f"Basic {b64(KEY + ':' + SECRET + chr(0x85))}", MISSING),
    ("CR LF in payload", f"Basic {b64(KEY + ':' + SECRET + chr(13) + chr(10))}", MISSING),
    ("not UTF-8", f"Basic {NOT_UTF8}", MISSING),
    ("latin-1 payload", f"Basic {LATIN1}", MISSING),
    ("7 KB header (fits the 8 KB JSON body)", "Basic " + "QUFB" * 1792, MISSING),
    ("just over the 1 KB cap", f"Basic {b64(KEY + ':' + SECRET + 'a' * 700)}", MISSING),
    # Parsed, but not a credential we could have issued: invalid, still no database or argon2.
    ("two colons: secret contains one", f"Basic {b64(KEY + ':' + SECRET + ':x')}", INVALID),
    ("trailing space in secret", f"Basic {b64(KEY + ':' + SECRET + ' ')}", INVALID),
    ("leading space in secret", f"Basic {b64(KEY + ': ' + SECRET)}", INVALID),
    ("secret with a wrong checksum", f"Basic {b64(KEY + ':' + WRONG_CHECKSUM)}", INVALID),
    ("key and secret swapped", f"Basic {b64(SECRET + ':' + KEY)}", INVALID),
    ("partner key too short", f"Basic {b64(KEY[:-1] + ':' + SECRET)}", INVALID),
    ("key is not a pk_ key", f"Basic {b64('user:' + SECRET)}", INVALID),
]
assert len(MALFORMED_HEADERS) >= 30
assert len("Basic " + b64(KEY + ":" + SECRET + "a" * 700)) > MAX_HEADER_LENGTH


@pytest.mark.parametrize(
    "header,expected",
    [(h, c) for _, h, c in MALFORMED_HEADERS],
    ids=[i for i, _, _ in MALFORMED_HEADERS],
)
@pytest.mark.django_db
def test_malformed_header_is_refused_without_database_or_argon2(
    client, gateway, header, expected, django_assert_num_queries
):
    before = crypto.argon2_calls()
    with django_assert_num_queries(0):
        response = verify(client, header)
    assert response.status_code == 401
    assert error_code(response) == expected
    assert response["WWW-Authenticate"] == 'Basic realm="klikit", charset="UTF-8"'
    assert crypto.argon2_calls() == before


@pytest.mark.parametrize(
    "header,expected",
    [(h, c) for _, h, c in MALFORMED_HEADERS if h is None or "\n" not in h],
    ids=[i for i, h, _ in MALFORMED_HEADERS if h is None or "\n" not in h],
)
@pytest.mark.django_db
def test_malformed_header_in_forward_auth_mode(client, gateway, header, expected):
    before = crypto.argon2_calls()
    response = forward(client, header)
    assert response.status_code == 401
    assert error_code(response) == expected
    assert response["X-Klikit-Error-Code"] == expected
    assert crypto.argon2_calls() == before


@pytest.mark.django_db
def test_10_kb_header_in_forward_auth_mode_is_auth_missing(
    client, gateway, django_assert_num_queries
):
    before = crypto.argon2_calls()
    with django_assert_num_queries(0):
        response = forward(client, "Basic " + "QUFB" * 2560)
    assert response.status_code == 401
    assert error_code(response) == MISSING
    assert crypto.argon2_calls() == before


@pytest.mark.django_db
def test_10_kb_header_in_json_mode_exceeds_the_body_cap(client, gateway):
    response = verify(client, "Basic " + "QUFB" * 2560)
    assert response.status_code == 400
    assert error_code(response) == "request_invalid"


@pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC", "bAsIc"])
def test_scheme_is_case_insensitive(scheme):
    assert parse_basic(basic(KEY, SECRET, scheme=scheme)) == (KEY, SECRET)


def test_several_spaces_after_the_scheme_are_allowed():
    # RFC 7235: credentials = auth-scheme 1*SP token68
    assert parse_basic(f"Basic   {GOOD}") == (KEY, SECRET)


def test_split_at_the_first_colon_keeps_the_rest_in_the_secret():
    assert parse_basic(basic(KEY, "a:b:c")) == (KEY, "a:b:c")


def test_nothing_is_trimmed_or_case_folded():
    assert parse_basic(basic(KEY, " Secret ")) == (KEY, " Secret ")


def test_header_at_exactly_the_cap_is_parsed():
    filler = "a" * 2000
    for n in range(2000):
        header = basic(KEY, SECRET + filler[:n])
        if len(header) >= MAX_HEADER_LENGTH - 3:
            break
    assert len(header) <= MAX_HEADER_LENGTH
    assert parse_basic(header) is not None
    assert parse_basic(header + "QUFB") is None  # over the cap, even though valid base64


@pytest.mark.django_db
def test_lowercase_scheme_is_accepted_end_to_end(client, gateway, issue):
    credential, secret = issue()
    response = verify(client, basic(credential.partner_key, secret, scheme="basic"))
    assert response.status_code == 200
    assert response.json()["data"]["partner_key"] == credential.partner_key
