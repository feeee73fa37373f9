"""What the abuse limits count by: a client's address (an IPv6 client's /64), a mailbox."""

from __future__ import annotations

from starlette.datastructures import Address

from api.rate_limits import Hit, client_bucket, recipient_bucket


def test_an_ipv6_client_is_counted_by_its_64_and_an_ipv4_one_by_its_address() -> None:
    def bucket(host: str) -> str:
        return client_bucket(Address(host, 443))

    assert bucket("2001:db8:1:2::1") == bucket("2001:db8:1:2:ffff::9")
    assert bucket("2001:db8:1:2::1") != bucket("2001:db8:1:3::1")
    assert bucket("::ffff:198.51.100.7") == bucket("198.51.100.7")
    assert bucket("198.51.100.7") != bucket("198.51.100.8")
    assert client_bucket(None) == client_bucket(None)


def test_a_mailbox_is_counted_once_however_its_address_is_spelt() -> None:
    assert recipient_bucket("Ada+promo@Example.com") == recipient_bucket("ada@example.com")
    assert recipient_bucket("ada@example.com") != recipient_bucket("ada@example.org")


def test_buckets_hold_no_address() -> None:
    for bucket in (recipient_bucket("ada@example.com"), client_bucket(Address("198.51.100.7", 1))):
        assert "ada" not in bucket and "198.51" not in bucket


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    assert Hit(hits=9, seconds_left=2.1).retry_after == "3"
    assert Hit(hits=9, seconds_left=0.0).retry_after == "1"
