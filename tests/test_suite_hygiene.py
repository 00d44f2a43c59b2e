"""The test suite never points outside this machine: every URL written in a test names a
loopback address, the in-process test host, or a name reserved never to resolve (RFC 2606's
`.example`, `.test`, `.invalid`). A guard that regressed then connects here, never out.
Addresses that must be refused (cloud metadata, private ranges) are tested as literals on the
pure functions in tests/test_images.py, not as URLs a server would follow."""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

ROOTS = [Path(__file__).parent, Path(__file__).parent.parent / "testkit", Path(__file__).parent.parent / "bench"]
URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://(\[[^\]]*\]|[^/\"'\s:),]*)", re.IGNORECASE)
RESERVED_SUFFIXES = (".example", ".test", ".invalid")
NAMES = {"localhost", "testserver"}
# XML and JSON Schema namespaces: identifiers, never fetched
IDENTIFIERS = {"www.w3.org", "json-schema.org"}
LOOPBACK_SPELLINGS = {"2130706433", "0x7f000001", "127.1", "0177.0.0.1"}


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host in LOOPBACK_SPELLINGS:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def allowed(host: str) -> bool:
    host = host.lower()
    return (not host or "{" in host or is_loopback(host) or host in NAMES | IDENTIFIERS
            or host.endswith(RESERVED_SUFFIXES))


def urls() -> list[tuple[str, str]]:
    found = []
    for root in ROOTS:
        for path in sorted(root.rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                for match in URL.finditer(line):
                    found.append((f"{path.name}:{number}", match.group(2)))
    return found


def test_every_url_in_the_suite_stays_on_this_machine():
    found = urls()
    assert len(found) > 20  # the scan sees the suite's URLs
    assert [(where, host) for where, host in found if not allowed(host)] == []


@pytest.mark.parametrize("host", ["169.254.169.254", "10.0.0.1", "192.168.1.1", "example.com", "x", "[fd00::1]",
                                  "8.8.8.8", "[::ffff:10.0.0.1]", "metadata.google.internal"])
def test_the_scan_catches_hosts_outside(host):
    assert not allowed(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "localhost", "127.1", "2130706433", "0x7f000001",
                                  "[::ffff:127.0.0.1]", "127.0.0.2", "rebind.test", "app.example", ""])
def test_the_scan_lets_loopback_and_reserved_names_through(host):
    assert allowed(host)
