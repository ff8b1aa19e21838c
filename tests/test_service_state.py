"""The service's own state beside the ledger: listings that resume after a cursor,
digests of archived ids without false negatives, and snapshots that keep both."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dpsched.budget import Accounting
from dpsched.core import Ledger
from dpsched.engine.durable import decode_snapshot, encode_snapshot
from dpsched.service.state import KeyDigests, Listing, ServiceState, canonical


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 60)), max_size=120))
def test_a_listing_resumes_after_any_cursor_as_a_plain_list_would(
    steps: list[tuple[bool, int]],
) -> None:
    listing, model, n = Listing(), {}, 0
    for add, pick in steps:
        if add or not model:
            n += 1
            listing.add(n, f"k{n}")
            model[n] = f"k{n}"
        else:
            gone = sorted(model)[pick % len(model)]
            listing.remove(gone)
            del model[gone]
        for cursor in (0, n // 2, n):
            assert list(listing.after(cursor)) == [
                (m, k) for m, k in sorted(model.items()) if m > cursor
            ]


def test_digests_have_no_false_negatives_and_survive_merging() -> None:
    digests = KeyDigests()
    keys = [f"tenant/claim-{i}" for i in range(KeyDigests.MERGE_AT + 10)]
    for key in keys:
        digests.add(key)
    assert all(digests.might_hold(key) for key in keys)
    strangers = [f"tenant/other-{i}" for i in range(10_000)]
    assert not any(digests.might_hold(key) for key in strangers)
    again = KeyDigests(digests.array())
    assert all(again.might_hold(key) for key in keys[::97])


def test_a_snapshot_keeps_claims_listings_and_archived_digests() -> None:
    state = ServiceState()
    state.add_tenant("a", "0" * 64)
    for i in range(5):
        state.add_claim("a", f"c{i}", canonical({"id": f"c{i}", "x": [1, 2.5]}))
    state.drop_claims(["a/c1", "a/c3"])
    copy = ServiceState()
    decode_snapshot(encode_snapshot(Ledger(Accounting("basic")), state), copy)
    assert copy.claims == state.claims and copy.next_n == 6
    assert list(copy.listing("a").after(0)) == [(1, "a/c0"), (3, "a/c2"), (5, "a/c4")]
    assert copy.archived.might_hold("a/c1") and copy.archived.might_hold("a/c3")
    assert not copy.archived.might_hold("a/c0")
    copy.add_claim("a", "c5", "{}")
    assert copy.claims["a/c5"].n == 6  # numbering goes on after the snapshot
