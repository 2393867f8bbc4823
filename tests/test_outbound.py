"""pie.outbound without a server: signatures as the Standard Webhooks reference library
makes and checks them, secret and allow-list settings, and which addresses the guard
refuses."""

from __future__ import annotations

import base64
import ipaddress
import json
import socket
import threading
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from pie import config
from pie.outbound import dns, guard, signing

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def test_signatures_match_the_reference_library():
    body = json.dumps({"job_id": "j1", "input": {"x": "☃"}}).encode()
    headers = signing.headers([SECRET], "j1.1", body, timestamp=1_700_000_000)
    assert headers["webhook-id"] == "j1.1"
    assert headers["webhook-timestamp"] == "1700000000"
    when = datetime.fromtimestamp(1_700_000_000, tz=UTC)
    assert headers["webhook-signature"] == Webhook(SECRET).sign("j1.1", when, body.decode())


def test_every_secret_signs_and_the_receiver_of_any_one_verifies():
    other = signing.generate_secret()
    body = b'{"a":1}'
    headers = signing.headers([SECRET, other], "m", body)
    first, second = headers["webhook-signature"].split(" ")
    assert first.startswith("v1,") and second.startswith("v1,")
    assert Webhook(other).verify(body, headers) == {"a": 1}
    assert Webhook(SECRET).verify(body, headers) == {"a": 1}


def test_generated_secrets_are_valid_and_distinct():
    a, b = signing.generate_secret(), signing.generate_secret()
    assert a != b and len(signing.secret_key(a)) == 32


@pytest.mark.parametrize(
    "value, expected",
    [
        ("not-a-secret", "must start with 'whsec_'"),
        ("whsec_***", "followed by base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 bytes"),
    ],
)
def test_a_bad_signing_secret_stops_start_up_without_showing_it(value, expected):
    with pytest.raises(config.ConfigurationError) as caught:
        config.load({"PIE_OUTBOUND_SIGNING_SECRETS": f"{SECRET},{value}"})
    message = str(caught.value.message)
    assert "PIE_OUTBOUND_SIGNING_SECRETS" in message and expected in message
    assert "secret 2" in message


def test_settings_parse():
    settings = config.load(
        {
            "PIE_OUTBOUND_SIGNING_SECRETS": f"{SECRET}, {SECRET}",
            "PIE_OUTBOUND_ALLOWED_HOSTS": "10.0.0.0/8, models.internal,::1",
            "PIE_HTTP_SYNC_TIMEOUT_SECONDS": "120",
        }
    )
    assert settings["PIE_OUTBOUND_SIGNING_SECRETS"] == [SECRET, SECRET]
    assert settings["PIE_OUTBOUND_ALLOWED_HOSTS"] == ["10.0.0.0/8", "models.internal", "::1"]
    assert settings["PIE_HTTP_SYNC_TIMEOUT_SECONDS"] == 120
    assert settings["PIE_HTTP_CALLBACK_TIMEOUT_SECONDS"] == 10
    with pytest.raises(config.ConfigurationError, match="PIE_OUTBOUND_ALLOWED_HOSTS"):
        config.load({"PIE_OUTBOUND_ALLOWED_HOSTS": "http://x/"})
    with pytest.raises(config.ConfigurationError, match="PIE_HTTP_SYNC_TIMEOUT_SECONDS"):
        config.load({"PIE_HTTP_SYNC_TIMEOUT_SECONDS": "0"})
    assert settings["PIE_OUTBOUND_DNS_TIMEOUT_SECONDS"] == 5
    assert (
        config.load({"PIE_OUTBOUND_DNS_TIMEOUT_SECONDS": "0.5"})["PIE_OUTBOUND_DNS_TIMEOUT_SECONDS"]
        == 0.5
    )
    for bad in ("0", "61", "soon"):
        with pytest.raises(config.ConfigurationError, match="PIE_OUTBOUND_DNS_TIMEOUT_SECONDS"):
            config.load({"PIE_OUTBOUND_DNS_TIMEOUT_SECONDS": bad})


@pytest.mark.parametrize(
    "address, reason",
    [
        ("127.0.0.1", "a loopback address"),
        ("10.2.3.4", "a private address"),
        ("172.31.255.255", "a private address"),
        ("192.168.0.1", "a private address"),
        ("100.64.0.1", "a non-global address"),
        ("169.254.1.1", "a link-local address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("224.0.0.1", "a multicast address"),
        ("240.0.0.1", "a private address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("::1", "a loopback address"),
        ("fc00::1", "a private address"),
        ("fe80::1", "a link-local address"),
        ("ff02::1", "a multicast address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("::ffff:127.0.0.1", "a loopback address (inside IPv6)"),
        ("64:ff9b::a00:1", "a private address (inside IPv6)"),
        ("2002:7f00:2::", "a loopback address (inside IPv6)"),  # 6to4 of 127.0.0.2
        ("2002:a9fe:a9fe::1", "a cloud metadata address (inside IPv6)"),
        ("fec0::1", "a site-local address"),
        ("2002:808:808::1", None),  # 6to4 of a public address
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_refused_addresses(address, reason):
    assert guard.refusal(ipaddress.ip_address(address)) == reason


def test_allowed_networks_and_names():
    allowed = guard.Allowed.parse(["10.0.0.0/8", "Models.Internal.", "169.254.0.0/16"])
    assert allowed.allows_address(ipaddress.ip_address("10.9.9.9"))
    assert allowed.allows_name("models.internal")
    # A wide range never allows a metadata address; naming it does.
    assert not allowed.allows_address(ipaddress.ip_address("169.254.169.254"))
    assert guard.Allowed.parse(["169.254.169.254"]).allows_address(
        ipaddress.ip_address("169.254.169.254")
    )


def test_check_url_keeps_path_and_query_and_drops_the_fragment():
    destination = guard.check_url("https://Example.COM:8443/a/b?c=1#frag", guard.Allowed())
    assert (destination.host, destination.port, destination.target) == (
        "example.com",
        8443,
        "/a/b?c=1",
    )
    assert guard.check_url("http://example.com", guard.Allowed()).target == "/"


def test_an_allowed_name_still_may_not_resolve_to_metadata():
    resolver = dns.Resolver(
        5,
        lookup=lambda *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80))
        ],
    )
    allowed = guard.Allowed.parse(["models.internal"])
    destination = guard.check_url("http://models.internal/", allowed)
    with pytest.raises(guard.DestinationRefused, match="cloud metadata address"):
        guard.resolve(destination, allowed, resolver)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://[::1", "cannot be read"),
        ("http://[v1.x]/", "neither a host name nor an address"),
        ("http://a..b/", "neither a host name nor an address"),
        ("https://%6c%6fcalhost/", "neither a host name nor an address"),
        ("http://ex\\ample.com/", "neither a host name nor an address"),
        ("http://-bad.example/", "neither a host name nor an address"),
        ("http://example.com:99999/", "port is not valid"),
        ("http://:80/", "names no host"),
        ("http://exa mple.com/", "printable ASCII"),
        ("http://example.com/\x00", "printable ASCII"),
        ("javascript:alert(1)", "scheme must be http or https"),
        ("http://" + "a" * 2050, "longer than 2048"),
    ],
)
def test_malformed_urls_are_refused_not_crashed_on(url, expected):
    with pytest.raises(guard.InvalidURL, match=expected):
        guard.parse_url(url)
    with pytest.raises(guard.InvalidURL, match=expected):
        guard.check_url(url, guard.Allowed())


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://[fe80::1%25eth0]/", "link-local address"),
        ("http://0x7f.1/", "loopback address"),
        ("http://app.localhost:8080/", "names this machine"),
    ],
)
def test_well_formed_urls_to_refused_destinations_are_refusals_not_malformed(url, expected):
    guard.parse_url(url)  # well-formed: not a 400 at registration
    with pytest.raises(guard.DestinationRefused, match=expected) as refused:
        guard.check_url(url, guard.Allowed())
    assert not isinstance(refused.value, guard.InvalidURL)


@pytest.mark.parametrize(
    "url", ["HTTP://EXAMPLE.com/", "http://my_host.internal-x.example/", "http://8.8.8.8:8080/"]
)
def test_ordinary_urls_pass(url):
    guard.check_url(url, guard.Allowed())


# --- DNS lookups bounded in time ---------------------------------------------------------


def test_a_lookup_that_hangs_fails_after_the_timeout_and_its_threads_are_capped():
    release = threading.Event()
    calls: list[str] = []

    def hangs(host: str, *args: object, **kwargs: object) -> list:
        calls.append(host)
        release.wait(30)
        return []

    resolver = dns.Resolver(0.2, limit=2, lookup=hangs)
    try:
        for host in ("a.example", "b.example", "c.example"):
            started = time.monotonic()
            with pytest.raises(
                dns.LookupFailed, match=f"DNS lookup of {host} timed out after 0.2 s"
            ):
                resolver(host, 80)
            assert time.monotonic() - started < 5
        # The third waited for one of the two hung lookups' slots and never started its own.
        assert calls == ["a.example", "b.example"]
    finally:
        release.set()
    # Once the hung lookups return, their slots are free again (waited for up to 5 s).
    resolver.timeout = 5
    resolver.lookup = lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", 80))]
    assert resolver("d.example", 80)[0][4] == ("8.8.8.8", 80)


def test_a_failed_lookup_is_lookup_failed_not_a_refusal():
    def nxdomain(*args: object, **kwargs: object) -> list:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    destination = guard.check_url("http://nx.example/", guard.Allowed())
    with pytest.raises(dns.LookupFailed, match="cannot resolve nx.example: .*not known"):
        guard.resolve(destination, guard.Allowed(), dns.Resolver(5, lookup=nxdomain))
    with pytest.raises(dns.LookupFailed, match="resolves to no address"):
        guard.resolve(destination, guard.Allowed(), dns.Resolver(5, lookup=lambda *a, **k: []))
